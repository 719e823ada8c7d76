"""Running the ``skyhop`` CLI as a user types it (``python -m skyhop.cli ...``) against a
test server, for the CLI parity and output-contract tests."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from serverproc import ServerProcess


def sky(
    srv: ServerProcess,
    *args: str,
    check: bool = True,
    stdin: str | None = None,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, "-m", "skyhop.cli", *args],
        env=env if env is not None else srv.env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=180,
        cwd=cwd,
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"skyhop {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
        )
    return proc
