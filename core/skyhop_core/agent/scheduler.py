"""The daemon's scheduling pass: strict FIFO over queued jobs with resource accounting.

Jobs are considered oldest first. A job starts when ``num_nodes`` nodes each have its
``cpus`` and ``gpus`` free; otherwise it and every later job wait (no backfilling, so a
big job is never starved by small ones). A job that could never fit the cluster fails
at once instead of blocking the queue forever. A job with secrets also waits for the
daemon to receive them (see :mod:`.secrets`), which happens moments after its submit.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from collections.abc import Callable

from . import db, secrets
from .cluster import Accounting, ClusterInfo
from .driver import JobDriver
from .layout import Runtime


class Scheduler:
    """Starts queued jobs when resources free up; ``wake`` asks for another pass soon."""

    def __init__(self, runtime: Runtime, cluster: ClusterInfo, wake: Callable[[], None]) -> None:
        self.runtime = runtime
        self.cluster = cluster
        self.accounting = Accounting(cluster)
        self._lock = threading.Lock()
        self._wake = wake
        #: Secret values of queued jobs, by job ID: in memory only, until the job starts.
        self.secrets: dict[int, dict[str, str]] = {}

    def reload(self, cluster: ClusterInfo) -> None:
        """Use a new cluster description; running jobs keep their reservations."""
        with self._lock:
            accounting = Accounting(cluster)
            for job_id, ranks in self.accounting.allocations.items():
                accounting.reserve(job_id, ranks, *self.accounting.held(job_id))
            self.cluster, self.accounting = cluster, accounting

    def running_jobs(self) -> list[int]:
        with self._lock:
            return list(self.accounting.allocations)

    def _job_done(self, job_id: int) -> None:
        with self._lock:
            self.accounting.release(job_id)
        self._wake()

    def schedule_once(self) -> list[int]:
        """One pass over the queue; returns the IDs of the jobs it started."""
        started: list[int] = []
        with db.connect(self.runtime.db) as conn:
            conn.execute("UPDATE jobs SET status = ? WHERE status = ?", (db.PENDING, db.INIT))
            queued = db.jobs_with_status(conn, (db.PENDING,))
            waiting = {int(r["id"]) for r in queued}
            for job_id in [j for j in self.secrets if j not in waiting]:
                del self.secrets[job_id]  # cancelled before it started
            for row in queued:
                job_id = int(row["id"])
                spec = json.loads(row["spec"])
                if spec.get("secret_names") and job_id not in self.secrets:
                    if not secrets.waiting_too_long(row):
                        break  # they arrive moments after the submit; keep FIFO order
                    self._fail(conn, job_id, "this job's secrets never reached the agent "
                               "(it restarted before the job started); submit it again.")
                    continue
                num_nodes = int(spec.get("num_nodes") or 1)
                cpus = float(spec.get("cpus", 0.5))
                gpus = {k: float(v) for k, v in (spec.get("gpus") or {}).items()}
                if not self.accounting.feasible(cpus, gpus, num_nodes):
                    self._reject(conn, job_id, cpus, gpus, num_nodes)
                    continue
                with self._lock:
                    ranks = self.accounting.allocate(job_id, cpus, gpus, num_nodes)
                if ranks is None:
                    break
                first = db.SETTING_UP if spec.get("setup") else db.RUNNING
                if not db.transition(
                    conn, job_id, first, only_from=(db.PENDING,), start_at=time.time()
                ):
                    self._job_done(job_id)  # cancelled meanwhile
                    continue
                spec["secrets"] = self.secrets.pop(job_id, {})
                JobDriver(self.runtime, self.cluster, job_id, spec, ranks, self._job_done).start()
                started.append(job_id)
        return started

    def _reject(
        self,
        conn: sqlite3.Connection,
        job_id: int,
        cpus: float,
        gpus: dict[str, float],
        num_nodes: int,
    ) -> None:
        nodes = ", ".join(
            f"rank {n['rank']}: {n.get('cpus')} CPUs {n.get('gpus') or {}}"
            for n in self.cluster.nodes
        )
        why = (
            f"the job asks for {cpus:g} CPUs and {gpus or 'no GPUs'} on each of "
            f"{num_nodes} node(s), more than this cluster has ({nodes})."
        )
        self._fail(conn, job_id, why, db.FAILED)

    def _fail(
        self, conn: sqlite3.Connection, job_id: int, why: str, status: str = db.FAILED_DRIVER
    ) -> None:
        """End a queued job that cannot start, saying why in its log."""
        path = self.runtime.log_path(job_id)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "ab") as f:
            f.write(f"skyhop: {why}\n".encode())
        db.transition(conn, job_id, status, only_from=(db.PENDING,))
