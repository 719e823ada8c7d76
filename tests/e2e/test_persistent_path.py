"""All state lives under the persistent path: with HOME read-only and empty, the whole
cycle works and nothing is written anywhere else."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from serverproc import free_port, kill_processes_under


def snapshot(directory: Path) -> set[str]:
    return {str(p) for p in directory.rglob("*")} if directory.exists() else set()


def test_full_cycle_with_a_read_only_home(tmp_path: Path):
    home = tmp_path / "home"
    home.mkdir()
    home.chmod(0o555)
    state = tmp_path / "state"
    scratch = tmp_path / "tmpdir"
    scratch.mkdir()
    env = {
        k: v for k, v in os.environ.items()
        if not k.startswith("SKYHOP_") and k not in ("XDG_CONFIG_HOME", "XDG_CACHE_HOME")
    }
    env["SKYHOP_LOCAL_NETWORK"] = os.environ["SKYHOP_LOCAL_NETWORK"]  # see tests/conftest.py
    env.update(
        HOME=str(home),
        SKYHOP_PERSISTENT_PATH=str(state),
        SKYHOP_API_SERVER_ENDPOINT=f"http://127.0.0.1:{free_port()}",
        PYTHONDONTWRITEBYTECODE="1",
        TMPDIR=str(scratch),
    )

    def skyhop(*args: str) -> str:
        proc = subprocess.run(
            [sys.executable, "-m", "skyhop.cli", *args], env=env, capture_output=True,
            text=True, timeout=120, cwd=tmp_path,
        )
        assert proc.returncode == 0, f"skyhop {' '.join(args)}:\n{proc.stdout}\n{proc.stderr}"
        return proc.stdout

    try:
        skyhop("api", "start")
        assert "hello-home" in skyhop("launch", "-y", "-c", "ro", "echo hello-home")
        skyhop("exec", "ro", "echo second")
        assert "second" in skyhop("logs", "ro", "2")
        skyhop("stop", "-y", "ro")
        skyhop("start", "-y", "ro")
        skyhop("down", "-y", "ro")
        assert str(state) in skyhop("api", "info")
        skyhop("api", "stop")
    finally:
        kill_processes_under(state)
        home.chmod(0o755)
    assert list(home.iterdir()) == [], "something was written to HOME"
    assert (state / "skyhop.db").exists()
    assert any((state / "requests").iterdir())
    assert snapshot(scratch) == set(), "temporary files were left behind"
