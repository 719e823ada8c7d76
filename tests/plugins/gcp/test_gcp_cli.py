"""``skyhop`` on GCP through a real API server, on the fake Compute API: check and
show-gpus; then a 2-node launch that fails over from a stocked-out zone, a single-node
job, stop, start (a new external IP), another job and down — the entry-point plugin with
its default config, the node agent installed over SSH on the fake's sshd hosts."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

CONFIG = "backends:\n  gcp:\n    poll_interval: 0.05\n    ssh_wait_seconds: 60\n"


def skyhop(server: Any, *args: str, timeout: float = 300) -> str:
    proc = subprocess.run([sys.executable, "-m", "skyhop.cli", *args], env=server.env,
                          capture_output=True, text=True, timeout=timeout)  # fmt: skip
    assert proc.returncode == 0, (
        f"skyhop {args} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
    )
    return proc.stdout


def gcp_server(make_server: Any, tmp_path: Path) -> Any:
    root = tmp_path / "state"
    root.mkdir()
    (root / "config.yaml").write_text(CONFIG)
    return make_server(root)


def test_check_and_show_gpus(gcp_env: Any, make_server: Any, tmp_path: Path) -> None:
    server = gcp_server(make_server, tmp_path)
    check = skyhop(server, "check")
    line = next(ln for ln in check.splitlines() if ln.strip().startswith("gcp:"))
    assert "enabled" in line and "disabled" not in line, check

    summary = skyhop(server, "show-gpus").splitlines()
    for gpu in ("L4", "A100", "A100-80GB", "H100", "T4", "V100"):
        row = next((ln for ln in summary if ln.startswith(gpu + " ")), None)
        assert row is not None and "gcp" in row, (gpu, summary)
    details = skyhop(server, "show-gpus", "L4", "--infra", "gcp/us-central1")
    rows = details.splitlines()[1:]
    assert rows and all("L4" in r and r.rstrip().endswith("us-central1") for r in rows), details
    assert any("g2-standard-4" in r and "0.707" in r for r in rows), details
    t4 = skyhop(server, "show-gpus", "T4", "--infra", "gcp/us-central1")
    assert any("n1-standard-4" in r and "0.54" in r for r in t4.splitlines()), t4


def test_launch_fail_over_jobs_stop_start_down(
    gce_hosts: Any, make_server: Any, tmp_path: Path
) -> None:
    server = gcp_server(make_server, tmp_path)
    gce_hosts.control("inject", {"zone": "us-central1-a", "code": "ZONE_RESOURCE_POOL_EXHAUSTED"})
    task = tmp_path / "task.yaml"
    task.write_text(
        "num_nodes: 2\nresources:\n  infra: gcp/us-central1\n  instance_type: e2-standard-2\n"
        "run: echo gcp-rank-$SKYHOP_NODE_RANK-of-$SKYHOP_NUM_NODES\n"
    )
    try:
        out = skyhop(server, "launch", "-y", "-c", "gdev", str(task))
        assert "ZONE_RESOURCE_POOL_EXHAUSTED" in out and "us-central1-b" in out, out
        assert "gcp-rank-0-of-2" in out and "gcp-rank-1-of-2" in out, out
        fake = gce_hosts.instances()
        assert [(i["zone"], i["status"]) for i in fake] == [("us-central1-b", "RUNNING")] * 2
        single = skyhop(server, "exec", "gdev", "echo single-$SKYHOP_NUM_NODES-on-$(hostname -I)")
        head_ip = fake[0]["natIP"] if fake[0]["labels"]["skyhop-rank"] == "0" else fake[1]["natIP"]
        assert "single-1-on-" in single, single

        skyhop(server, "stop", "-y", "gdev")
        assert "STOPPED" in skyhop(server, "status")
        assert {i["status"] for i in gce_hosts.instances()} == {"TERMINATED"}
        skyhop(server, "start", "-y", "gdev")
        restarted = {i["labels"]["skyhop-rank"]: i for i in gce_hosts.instances()}
        assert restarted["0"]["natIP"] != head_ip  # a new external IP after the restart
        again = skyhop(server, "exec", "gdev", "--num-nodes", "2", "echo again-$SKYHOP_NODE_RANK")
        assert "again-0" in again and "again-1" in again, again
    finally:
        skyhop(server, "down", "-y", "gdev")
    assert gce_hosts.instances() == []
    assert gce_hosts.control("firewalls")["firewalls"] == []
