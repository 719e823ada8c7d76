"""A real API server whose state is in a real PostgreSQL (``SKYHOP_DB_URL``)."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
from apicalls import call, clusters, log, requests, result, submit, wait_for, wait_running
from serverproc import processes_under

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"

pytestmark = pytest.mark.timeout(90)


def test_a_server_on_postgres_survives_a_sigkill(make_server, pg_url: str, tmp_path: Path) -> None:
    env = {"SKYHOP_DB_URL": pg_url, "SKYHOP_PLUGINS": "slow_backend", "PYTHONPATH": str(FIXTURES)}
    root = tmp_path / "pgstate"
    first = make_server(root, env=env)
    launched = call(first, "launch", {"task": {"resources": {"infra": "local"}, "run": "echo pg"},
                                      "cluster_name": "pg"})  # fmt: skip
    job_id = launched["job_id"]
    assert clusters(first) == {"pg": "UP"}
    logs_id = submit(first, "logs", {"cluster_name": "pg", "job_id": job_id, "follow": True})
    assert result(first, logs_id)["result"] == 0
    assert b"pg" in log(first, logs_id)
    assert not (root / "skyhop.db").exists(), "the state went to SQLite, not PostgreSQL"

    slow = submit(first, "launch", {"task": {"resources": {"infra": "slow"}}, "cluster_name": "sl"})
    wait_running(first, slow)
    before = requests(first)
    first.kill(signal.SIGKILL)

    again = make_server(root, env=env)
    after = requests(again)
    assert set(after) == set(before), "requests were lost across the restart"
    assert after[logs_id]["status"] == "SUCCEEDED"
    restarted = result(again, slow)
    assert restarted["status"] == "FAILED"
    assert restarted["error"]["type"] == "ServerRestartedError"
    assert clusters(again) == {"pg": "UP", "sl": "INIT"}
    queue = call(again, "queue", {"cluster_name": "pg"})
    assert [(j["job_id"], j["status"]) for j in queue] == [(job_id, "SUCCEEDED")]
    for name in ("pg", "sl"):
        call(again, "down", {"cluster_name": name})
    assert clusters(again) == {}
    assert not (root / "backends" / "slow" / "sl").exists(), "down left the INIT cluster's nodes"
    wait_for(lambda: not processes_under(root / "backends"), "the clusters' processes are gone")
