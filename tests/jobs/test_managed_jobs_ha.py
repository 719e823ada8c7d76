"""Managed jobs on two API server replicas sharing a real PostgreSQL and one path.

Each job has exactly one owner (a lease in its row). Killing the owner mid-run hands
the job to the other replica within about a lease; it keeps watching the same cluster,
so the job runs once and finishes, and its cluster is torn down.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from jobcalls import Capture
from serverproc import ServerProcess

import skyhop as sky
from skyhop.client import ApiClient, using

pytestmark = pytest.mark.timeout(180)

LEASE = 2.0


def logs(job_id: int, controller: bool = False) -> str:
    out = Capture()
    sky.jobs.tail_logs(job_id=job_id, follow=False, controller=controller,
                       output_stream=out)  # type: ignore[arg-type]
    return out.text


def status(job_id: int) -> str:
    (row,) = sky.get(sky.jobs.queue(refresh=False, job_ids=[job_id]))
    return str(row["status"].value)


def wait_for(predicate: Callable[[], Any], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.1)


def owner_pid(db: sa.Engine, job_id: int) -> int | None:
    with db.connect() as conn:
        row = conn.execute(
            sa.text(
                "SELECT s.pid FROM managed_jobs j JOIN servers s ON s.server_id = j.owner "
                "WHERE j.job_id = :id"
            ),
            {"id": job_id},
        ).first()
    return None if row is None else int(row[0])


def test_killing_the_owner_hands_the_job_to_the_other_replica(
    make_server: Callable[..., ServerProcess], tmp_path: Path, pg_url: str
) -> None:
    env = {
        "SKYHOP_DB_URL": pg_url,
        "SKYHOP_SERVER_LEASE_SECONDS": str(LEASE),
        "SKYHOP_JOBS_POLL_SECONDS": "0.2",
        # Jobs here signal the test through marker files on the host, which a sandboxed
        # node cannot write (tests/plugins/local tests the sandbox itself).
        "SKYHOP_LOCAL_SANDBOX": "off",
    }
    shared = tmp_path / "shared"
    a, b = make_server(shared, env=env), make_server(shared, env=env)
    db = sa.create_engine(pg_url)
    release = tmp_path / "release"
    task = {
        "name": "ha",
        "resources": {"infra": "local"},
        "run": f"echo begin; while [ ! -f {release} ]; do sleep 0.1; done; echo end",
    }
    with using(ApiClient(a.endpoint, auto_start=False)):
        job_id = int(sky.get(sky.jobs.launch(task))["job_id"])
        wait_for(lambda: status(job_id) == "RUNNING", "the job runs")
        wait_for(lambda: "begin" in logs(job_id), "the job started")
    pids = {a.proc.pid: a, b.proc.pid: b}  # type: ignore[union-attr]
    owner = pids[owner_pid(db, job_id)]  # type: ignore[index]
    other = b if owner is a else a
    owner.kill(signal.SIGKILL)
    killed = time.monotonic()
    with using(ApiClient(other.endpoint, auto_start=False)):
        wait_for(lambda: owner_pid(db, job_id) == other.proc.pid,  # type: ignore[union-attr]
                 "the other replica owns the job", timeout=30)
        assert time.monotonic() - killed < 4 * LEASE + 5
        assert status(job_id) == "RUNNING"
        release.touch()
        wait_for(lambda: status(job_id) == "SUCCEEDED", "the job finishes", timeout=60)
        text = logs(job_id)
        assert text.count("begin") == 1 and text.count("end") == 1, text
        controller = logs(job_id, controller=True)
        assert controller.count("Launching cluster") == 1, controller
        assert "Resuming: watching job" in controller
        assert not sky.get(sky.status())
    db.dispose()
