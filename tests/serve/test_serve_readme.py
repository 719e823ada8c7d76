"""The README's serving example runs as written (bash, the installed ``skyhop``)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.timeout(300)


def _example() -> str:
    text = (ROOT / "README.md").read_text()
    return next(b for b in re.findall(r"```bash\n(.*?)```", text, re.S) if "skyhop serve up" in b)


def test_the_readme_serving_example_runs(server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    env = {**server.env, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    done = subprocess.run(["bash", "-ec", _example()], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Endpoint: http://" in done.stdout
    assert "Load balancer listening on" in done.stdout  # serve logs --controller
    assert "relabelled to version 2" in done.stdout
    out = subprocess.run([sys.executable, "-m", "skyhop.cli", "serve", "status"], env=env,
                         capture_output=True, text=True, timeout=60)
    assert "No existing services." in out.stdout
