"""The output-line contract of docs/cli-output.md: one test per line, through a real
server, as a script would run the CLI and grep its output."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from clirun import sky
from serverproc import ServerProcess, kill_processes_under


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    server = ServerProcess(tmp_path_factory.mktemp("output") / "state").start()
    yield server
    try:
        server.stop()
    except Exception:
        server.kill()
    kill_processes_under(server.root)


@pytest.fixture(scope="module")
def launched(srv: ServerProcess, tmp_path_factory: pytest.TempPathFactory) -> str:
    """``skyhop launch`` of a task with setup on a 2-node cluster whose rank 1 fails."""
    task = tmp_path_factory.mktemp("t") / "task.yaml"
    task.write_text(
        yaml.safe_dump(
            {
                "num_nodes": 2,
                "setup": "echo setting-up",
                # Rank 1 fails after a moment: a failed rank has the gang's others
                # killed, and under load rank 0 could be killed before it printed.
                "run": 'echo running; [ "$SKYHOP_NODE_RANK" = 1 ] && sleep 3 && exit 7; true',
            }
        )
    )
    proc = sky(srv, "launch", "-y", "-c", "out", str(task), check=False)
    assert proc.returncode == 100, proc.stdout + proc.stderr
    return proc.stdout


def test_launching_on(launched: str) -> None:
    assert re.search(r"^⚙︎ Launching on Local: local x2\.$", launched, re.M)


def test_cluster_launched(launched: str) -> None:
    assert "✔ Cluster launched: out. Cluster 'out' is UP." in launched.splitlines()


def test_job_submitted(launched: str) -> None:
    assert "Job submitted, ID: 1" in launched.splitlines()


def test_setup_and_run_starting(launched: str) -> None:
    lines = launched.splitlines()
    setup = lines.index("⚙︎ Running setup on 2 nodes.")
    started = lines.index("⚙︎ Job started: running on 2 nodes.")
    assert setup < lines.index("(setup, rank 0) setting-up") < started
    assert started < lines.index("(rank 0) running")


def test_failed_workers_then_see_error_logs(launched: str) -> None:
    assert "(rank 1) skyhop: run failed with exit code 7" in launched
    assert (
        "Failed workers: rank 1 (exit code 7). See error logs above for more details."
        in launched.splitlines()
    )


def test_job_finished_failed(launched: str) -> None:
    assert "✗ Job finished (status: FAILED)." in launched.splitlines()


def test_useful_commands(launched: str) -> None:
    block = launched[launched.index("📋 Useful Commands") :]
    assert "Job ID: 1" in block and "skyhop logs out 1" in block and "skyhop cancel out 1" in block
    assert "Cluster name: out" in block and "skyhop down out" in block


def test_job_finished_succeeded_and_prefixes_on_one_node(srv: ServerProcess, tmp_path: Path) -> None:
    task = tmp_path / "one.yaml"
    task.write_text(yaml.safe_dump({"setup": "echo in-setup", "run": "echo in-run"}))
    out = sky(srv, "launch", "-y", "-c", "one", str(task)).stdout.splitlines()
    assert "(setup) in-setup" in out
    assert "in-run" in out  # a single node's run output is unprefixed
    assert "✓ Job finished (status: SUCCEEDED)." in out
    logs = sky(srv, "logs", "one", "1").stdout.splitlines()
    assert logs[-1] == "✓ Job finished (status: SUCCEEDED)."
    sky(srv, "down", "-y", "one")


def test_enabled_infra(srv: ServerProcess) -> None:
    out = sky(srv, "check").stdout.splitlines()
    heading = out.index("🎉 Enabled infra 🎉")
    assert "  local" in out[heading + 1 :]
