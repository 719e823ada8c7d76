"""The README's quick-start task runs as written, from the directory the README says."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "quickstart"


def _readme_yaml() -> dict:
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```yaml\n(.*?)```", text, re.S)
    return yaml.safe_load(next(b for b in blocks if "train.py" in b))


def test_the_readme_shows_the_shipped_example() -> None:
    shipped = yaml.safe_load((EXAMPLE / "task.yaml").read_text())
    assert _readme_yaml() == shipped
    assert (EXAMPLE / "train.py").is_file() and (EXAMPLE / "requirements.txt").is_file()


def test_the_quickstart_runs_from_its_directory(server, tmp_path: Path) -> None:
    workdir = tmp_path / "quickstart"
    shutil.copytree(EXAMPLE, workdir)

    def skyhop(*args: str) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [sys.executable, "-m", "skyhop.cli", *args],
            env=server.env,
            cwd=workdir,
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert proc.returncode == 0, f"skyhop {' '.join(args)}:\n{proc.stdout}\n{proc.stderr}"
        return proc

    out = skyhop("launch", "-y", "-c", "train", "task.yaml").stdout
    for rank in (0, 1):
        assert f"rank {rank} of 2 nodes, training for 3 epochs" in out
        assert f"rank {rank}: done" in out
    assert "rank 1: epoch" in skyhop("exec", "train", "--workdir", ".", "python3 train.py --rank 1").stdout
    skyhop("down", "-y", "train")
