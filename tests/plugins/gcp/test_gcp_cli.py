"""``skyhop`` on GCP through a real API server, on the fake Compute API: check and
show-gpus; then a 2-node launch that fails over from a stocked-out zone, a single-node
job, stop, start (a new external IP), another job and down — the entry-point plugin with
its default config, the node agent installed over SSH on the fake's sshd hosts."""

from __future__ import annotations

import subprocess
import sys
import time
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
    """Also: a gs:// bucket COPY and a temporary bucket (``persistent: false``, in the
    backend's own store, gcs) on GCP nodes, and a VM deleted behind skyhop's back."""
    server = gcp_server(make_server, tmp_path)
    gce_hosts.control("inject", {"zone": "us-central1-a", "code": "ZONE_RESOURCE_POOL_EXHAUSTED"})
    gce_hosts.control("gcs/put", {"bucket": "fk-shared", "objects": {"ds/0.txt": "shard-zero\n"}})
    (tmp_path / "ckpt").mkdir()
    (tmp_path / "ckpt" / "w.txt").write_text("weights\n")
    task = tmp_path / "task.yaml"
    task.write_text(
        "num_nodes: 2\nresources:\n  infra: gcp/us-central1\n  instance_type: e2-standard-2\n"
        "file_mounts:\n  ~/data: gs://fk-shared/ds\n"
        f"  ~/ckpt: {{name: fk-gdev-ckpt, source: {tmp_path}/ckpt, mode: COPY, persistent: false}}\n"
        "run: echo gcp-rank-$SKYHOP_NODE_RANK-of-$SKYHOP_NUM_NODES $(cat ~/data/0.txt ~/ckpt/w.txt)\n"
    )
    try:
        out = skyhop(server, "launch", "-y", "-c", "gdev", str(task))
        assert "ZONE_RESOURCE_POOL_EXHAUSTED" in out and "us-central1-b" in out, out
        assert "gcp-rank-0-of-2 shard-zero weights" in out, out
        assert "gcp-rank-1-of-2 shard-zero weights" in out, out
        assert gce_hosts.control("gcs/state")["buckets"]["fk-gdev-ckpt"] == {"w.txt": "weights\n"}
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

        # Someone deletes a VM in the console: stop stops the rest, start says what
        # happened and what to do, and status --refresh tells the truth.
        victim = next(i for i in gce_hosts.instances() if i["labels"]["skyhop-rank"] == "1")
        delete_instance(gce_hosts, victim)
        stopped = skyhop(server, "stop", "-y", "gdev")
        assert f"Instance {victim['name']} (rank 1) of 'gdev' no longer exists" in stopped, stopped
        start = subprocess.run([sys.executable, "-m", "skyhop.cli", "start", "-y", "gdev"],
                               env=server.env, capture_output=True, text=True, timeout=120)  # fmt: skip
        said = start.stdout + start.stderr
        assert start.returncode != 0, said
        assert f"Cannot start cluster 'gdev': its instance(s) {victim['name']} (rank 1) in " \
               "us-central1-b no longer exist" in said and "`skyhop down gdev`" in said, said
        assert "notFound" not in said, said  # not Google's raw 404
        status = skyhop(server, "status", "--refresh")
        assert f"gdev: INIT, node 1: instance {victim['name']} not found (deleted outside " \
               "skyhop). Run `skyhop down gdev` and launch it again." in status, status
    finally:
        skyhop(server, "down", "-y", "gdev")
    assert gce_hosts.instances() == []
    assert gce_hosts.control("firewalls")["firewalls"] == []
    buckets = gce_hosts.control("gcs/state")["buckets"]
    assert "fk-gdev-ckpt" not in buckets and "fk-shared" in buckets  # only ours went


def delete_instance(fake: Any, instance: dict[str, Any]) -> None:
    """Delete a VM through the Compute API (as the console would) and wait until it is gone."""
    from test_fakegce import session

    url = f"{fake.compute_endpoint}projects/{fake.project}/zones/{instance['zone']}/instances/"
    response = session(fake.credentials).delete(url + instance["name"])
    assert response.status_code == 200, response.text
    deadline = time.monotonic() + 30
    while any(i["name"] == instance["name"] for i in fake.instances()):
        assert time.monotonic() < deadline, "the fake never deleted the instance"
        time.sleep(0.05)


def test_autostop_waits_for_an_interactive_ssh_session(
    gce_hosts: Any, make_server: Any, tmp_path: Path
) -> None:
    """``autostop -i 0`` (``--wait-for jobs_and_ssh``, the default) leaves an idle cluster
    up while someone has a terminal on its head over SSH (``skyhop ssh``) and stops it
    once they log out (the client killed: the server hangs the session up);
    with ``--wait-for jobs`` another cluster stops under an open session."""
    root = tmp_path / "state"
    root.mkdir()
    (root / "config.yaml").write_text(CONFIG)
    server = make_server(root, env={"SKYHOP_AUTOSTOP_INTERVAL": "0.5"})
    task = tmp_path / "task.yaml"
    task.write_text("resources:\n  infra: gcp/us-central1\n  instance_type: e2-standard-2\n"
                    "run: echo up\n")  # fmt: skip

    def status(name: str) -> str:
        return next(ln for ln in skyhop(server, "status").splitlines() if ln.startswith(name))

    def instance(name: str) -> dict[str, Any]:
        return next(i for i in gce_hosts.instances() if i["labels"]["skyhop-cluster"] == name)

    def wait_stopped(name: str, what: str) -> None:
        deadline = time.monotonic() + 60
        while "STOPPED" not in status(name):
            assert time.monotonic() < deadline, f"{what}: not stopped: {status(name)}"
            time.sleep(0.5)
        assert instance(name)["status"] == "TERMINATED"

    def terminal(name: str) -> subprocess.Popen[str]:
        """An interactive login on the head (a pseudo-terminal), once it says so: `skyhop
        ssh -t`, through the server, which holds the key."""
        proc = subprocess.Popen(
            [sys.executable, "-m", "skyhop.cli", "ssh", "-t", name, "--",
             "echo logged-in; sleep 300"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
            env=server.env,
        )  # fmt: skip
        sessions.append(proc)
        assert proc.stdout is not None and "logged-in" in proc.stdout.readline()
        return proc

    sessions: list[subprocess.Popen[str]] = []
    try:
        skyhop(server, "launch", "-y", "-c", "gidle", str(task))
        session = terminal("gidle")
        skyhop(server, "autostop", "-y", "gidle", "-i", "0")
        time.sleep(5)  # ten rounds of the autostop loop, each finding the session
        assert "UP" in status("gidle"), status("gidle")
        session.kill()
        wait_stopped("gidle", "after the session closed")

        skyhop(server, "launch", "-y", "-c", "gjobs", str(task))
        terminal("gjobs")
        skyhop(server, "autostop", "-y", "gjobs", "-i", "0", "--wait-for", "jobs")
        wait_stopped("gjobs", "waiting for jobs only, with a session open")
    finally:
        for proc in sessions:
            proc.kill()
            proc.wait(timeout=10)
        for name in ("gidle", "gjobs"):  # the second may not have been made
            subprocess.run([sys.executable, "-m", "skyhop.cli", "down", "-y", name],
                           env=server.env, capture_output=True, timeout=300)  # fmt: skip
    assert gce_hosts.instances() == []
