"""The AWS backend through the API server and the CLI, on moto: check, show-gpus, and the
"Considered resources" plan of a launch."""

from __future__ import annotations

import subprocess
import sys
from typing import Any


def skyhop(server: Any, *args: str) -> str:
    proc = subprocess.run([sys.executable, "-m", "skyhop.cli", *args], env=server.env,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 0, f"skyhop {args} exited {proc.returncode}:\n{proc.stderr}"
    return proc.stdout


def test_check_show_gpus_and_plan(aws_env: str, server: Any, tmp_path: Any) -> None:
    check = skyhop(server, "check")
    line = next(ln for ln in check.splitlines() if ln.strip().startswith("aws:"))
    assert "enabled" in line and "disabled" not in line, check

    summary = skyhop(server, "show-gpus")
    a100 = next(ln for ln in summary.splitlines() if ln.startswith("A100 "))
    assert "8" in a100 and "aws" in a100
    assert any(ln.startswith("H100 ") for ln in summary.splitlines())

    details = skyhop(server, "show-gpus", "a10g", "--infra", "aws/us-west-2")
    rows = details.splitlines()[1:]
    assert rows and all("A10G" in r and r.rstrip().endswith("us-west-2") for r in rows)
    assert any("g5.xlarge" in r and "1.006" in r for r in rows), details

    task = tmp_path / "task.yaml"
    task.write_text("resources:\n  infra: aws\n  accelerators: V100:1\nrun: nvidia-smi\n")
    plan = skyhop(server, "launch", "--dryrun", "-y", str(task))
    assert "p3.2xlarge" in plan and "Considered resources" in plan, plan
