"""``kill -9`` of the API server in the middle of a launch, an exec or a down (SQLite).

After a restart: the state knows every cluster that exists on the machine, a half-made
(or half-removed) cluster is INIT and ``status`` says which step was interrupted, the
next ``down`` removes it completely (directories and agent processes), and nothing that
finished before the kill is lost.
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from pathlib import Path

import pytest
from apicalls import call, clusters, log, requests, result, submit, wait_for, with_uploads
from serverproc import ServerProcess, processes_under

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
LOCAL_TASK = {"resources": {"infra": "local"}, "run": "echo finished-before-the-kill"}

pytestmark = pytest.mark.timeout(60)

Start = Callable[..., ServerProcess]


@pytest.fixture
def start(make_server: Callable[..., ServerProcess], tmp_path: Path) -> Start:
    """``start(**delays)``: a server on one persistent path with the slow backend."""

    def run(**delays: float) -> ServerProcess:
        env = {"SKYHOP_PLUGINS": "slow_backend", "PYTHONPATH": str(FIXTURES)}
        env.update({f"SLOW_BACKEND_{k.upper()}": str(v) for k, v in delays.items()})
        return make_server(tmp_path / "crash", env=env)

    return run


def node_dirs(server: ServerProcess) -> set[str]:
    """Clusters that exist on this machine, by their backends' directories."""
    found = set()
    for where in (
        server.root / "backends" / "slow",
        server.root / "backends" / "local" / "clusters",
    ):
        if where.is_dir():
            found |= {p.name for p in where.iterdir() if p.is_dir()}
    return found


def assert_state_knows_every_cluster(server: ServerProcess) -> dict[str, str]:
    known = clusters(server)
    assert node_dirs(server) <= set(known), f"clusters unknown to the state: {node_dirs(server)}"
    return known


def down_completely(server: ServerProcess, name: str) -> None:
    call(server, "down", {"cluster_name": name})
    cluster_root = server.root / "backends" / "slow" / name
    assert not cluster_root.exists(), "down left the cluster's nodes behind"
    wait_for(lambda: not processes_under(cluster_root), f"{name}'s processes are gone", 10)
    assert name not in clusters(server)


def crash(server: ServerProcess, start: Start, **delays: float) -> ServerProcess:
    server.kill(signal.SIGKILL)
    return start(**delays)


def wait_log(server: ServerProcess, request_id: str, text: bytes) -> None:
    wait_for(lambda: text in log(server, request_id), f"{request_id} logs {text!r}")


def reason(server: ServerProcess, name: str) -> str:
    """Why ``skyhop status`` says the cluster is in its status."""
    (record,) = call(server, "status", {"cluster_names": [name]})
    return str(record["metadata"].get("status_reason") or "")


def assert_restarted(server: ServerProcess, request_id: str) -> None:
    done = result(server, request_id)
    assert (done["status"], done["error"]["type"]) == ("FAILED", "ServerRestartedError")


def test_kill_mid_provisioning(start: Start) -> None:
    server = start(delay=30)
    finished = submit(server, "launch", {"task": LOCAL_TASK, "cluster_name": "lc"})
    job_id = result(server, finished)["result"]["job_id"]
    launch = submit(server, "launch", {"task": {"resources": {"infra": "slow"}},
                                       "cluster_name": "half"})  # fmt: skip
    wait_log(server, launch, b"slow: waiting")
    assert (server.root / "backends" / "slow" / "half").is_dir()
    server = crash(server, start, delay=30)

    assert_restarted(server, launch)
    done = result(server, finished)
    assert (done["status"], done["result"]["job_id"]) == ("SUCCEEDED", job_id)
    assert assert_state_knows_every_cluster(server) == {"lc": "UP", "half": "INIT"}
    down_completely(server, "half")
    queue = call(server, "queue", {"cluster_name": "lc"})
    assert [(j["job_id"], j["status"]) for j in queue] == [(job_id, "SUCCEEDED")]
    call(server, "down", {"cluster_name": "lc"})


def test_kill_after_the_agent_started_before_up(start: Start) -> None:
    server = start(delay=0.1, setup_delay=30)
    launch = submit(server, "launch", {"task": {"resources": {"infra": "slow"}},
                                       "cluster_name": "boot"})  # fmt: skip
    wait_log(server, launch, b"slow: setup waits")
    server = crash(server, start)

    assert_restarted(server, launch)
    assert assert_state_knows_every_cluster(server) == {"boot": "INIT"}
    why = reason(server, "boot")
    assert "launch was interrupted: its API server stopped" in why
    assert "starting the skyhop runtime" in why and "skyhop down boot" in why
    down_completely(server, "boot")


def test_kill_mid_file_sync_leaves_init_with_a_reason(start: Start, tmp_path: Path) -> None:
    workdir = tmp_path / "project"
    workdir.mkdir()
    (workdir / "train.py").write_text("print('hi')\n")
    server = start(delay=0.1, upload_delay=30)
    task = {"resources": {"infra": "slow"}, "workdir": str(workdir), "run": "cat train.py"}
    body = with_uploads(server, "launch", {"task": task, "cluster_name": "sync"})
    launch = submit(server, "launch", body)
    wait_log(server, launch, b"slow: upload waits")
    # The nodes and the agent are up, but the launch has not done its work: not UP.
    assert clusters(server) == {"sync": "INIT"}
    (record,) = call(server, "status", {"cluster_names": ["sync"]})
    assert record["metadata"]["operation"]["phase"] == "syncing files"
    server = crash(server, start)

    assert_restarted(server, launch)
    assert assert_state_knows_every_cluster(server) == {"sync": "INIT"}
    why = reason(server, "sync")
    assert "its API server stopped while syncing files" in why, why
    down_completely(server, "sync")


def test_kill_mid_exec_keeps_the_submitted_job(start: Start) -> None:
    server = start(delay=0.1, submit_delay=30)
    launched = call(server, "launch", {"task": {"resources": {"infra": "slow"}},
                                       "cluster_name": "ex"})  # fmt: skip
    exec_id = submit(server, "exec", {"task": {"run": "echo exec-ran"}, "cluster_name": "ex"})
    wait_log(server, exec_id, b"slow: submit")
    before = requests(server)
    server = crash(server, start)

    after = requests(server)
    assert set(before) <= set(after)
    assert_restarted(server, exec_id)
    assert launched["job_id"] is None
    assert assert_state_knows_every_cluster(server) == {"ex": "UP"}

    def job_done() -> bool:
        queue = call(server, "queue", {"cluster_name": "ex"})
        return [j["status"] for j in queue] == ["SUCCEEDED"]

    wait_for(job_done, "the job the killed exec submitted ran")
    down_completely(server, "ex")


def test_kill_mid_down_then_down_again(start: Start) -> None:
    server = start(delay=0.1, down_delay=30)
    job = call(server, "launch", {"task": {"resources": {"infra": "slow"}, "run": "sleep 300"},
                                  "cluster_name": "dn"})  # fmt: skip
    cluster_root = server.root / "backends" / "slow" / "dn"
    wait_for(lambda: bool(processes_under(cluster_root)), "the job runs")
    down = submit(server, "down", {"cluster_name": "dn"})
    wait_log(server, down, b"slow: down waits")
    server = crash(server, start)

    assert_restarted(server, down)
    assert job["job_id"] is not None
    assert assert_state_knows_every_cluster(server) == {"dn": "INIT"}  # partly torn down
    why = reason(server, "dn")
    assert "down was interrupted" in why and "while tearing down" in why, why
    assert "skyhop down dn" in why
    down_completely(server, "dn")
    assert assert_state_knows_every_cluster(server) == {}
