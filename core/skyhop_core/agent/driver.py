"""Running one job: setup then run on each of its nodes (gang launch), into one log.

A driver runs in a thread of the daemon. It starts every rank's process, records their
pids in the database (so that ``cancel`` and ``stop``, which are other processes, can kill
the process groups), waits, and on the first failing rank kills the others. Statuses
only move through conditional updates, so a job cancelled meanwhile stays CANCELLED.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

from . import db
from .cluster import ClusterInfo
from .launcher import JobLog, LaunchError, spawn
from .layout import Runtime
from .procs import kill_groups

POLL_SECONDS = 0.02
PUMP_JOIN_SECONDS = 2.0


def rank_commands(run: Any, num_nodes: int) -> list[str | None]:
    """One command (or None) per job rank from a spec's ``run``."""
    if run is None:
        return [None] * num_nodes
    if isinstance(run, str):
        return [run] * num_nodes
    commands = [None if c is None else str(c) for c in run]
    return (commands + [None] * num_nodes)[:num_nodes]


def job_env(
    cluster: ClusterInfo, spec: dict[str, Any], job_id: int, ranks: list[int]
) -> list[dict[str, str]]:
    """The environment of each job rank: HOME, envs, secrets and the SKYHOP_* variables."""
    nodes = {n["rank"]: n for n in cluster.nodes}
    ips = [str(nodes[r].get("ip", "127.0.0.1")) for r in ranks]
    gpus = spec.get("gpus") or {}
    info = {
        "cluster_name": cluster.name,
        "backend": cluster.data.get("backend"),
        "instance_type": cluster.data.get("instance_type"),
        "region": cluster.data.get("region"),
        "zone": cluster.data.get("zone"),
        "job_id": job_id,
        "num_nodes": len(ranks),
        "node_ips": ips,
    }
    base = {
        **{k: str(v) for k, v in (spec.get("envs") or {}).items()},
        **{k: str(v) for k, v in (spec.get("secrets") or {}).items()},
        "SKYHOP_NODE_IPS": "\n".join(ips),
        "SKYHOP_NUM_NODES": str(len(ranks)),
        "SKYHOP_NUM_GPUS_PER_NODE": str(sum(int(v) for v in gpus.values())),
        "SKYHOP_TASK_ID": spec.get("task_id") or f"skyhop-{cluster.name}-{job_id}",
        "SKYHOP_CLUSTER_INFO": json.dumps(info),
    }
    # ``~`` in a job is the node's home on every backend (a local node's home is its own
    # directory, not the home of whoever runs the server); the task's envs may override.
    homes = [nodes[r].get("home") for r in ranks]
    return [
        {**({"HOME": str(homes[i])} if homes[i] else {}), **base, "SKYHOP_NODE_RANK": str(i)}
        for i in range(len(ranks))
    ]


class JobDriver:
    """Runs one allocated job to a terminal status; calls ``on_done(job_id)`` at the end."""

    def __init__(
        self,
        runtime: Runtime,
        cluster: ClusterInfo,
        job_id: int,
        spec: dict[str, Any],
        ranks: list[int],
        on_done: Callable[[int], None],
    ) -> None:
        self.runtime = runtime
        self.cluster = cluster
        self.job_id = job_id
        self.spec = spec
        self.nodes = [next(n for n in cluster.nodes if n["rank"] == r) for r in ranks]
        self.envs = job_env(cluster, spec, job_id, ranks)
        self.on_done = on_done
        self.log = JobLog(runtime.log_path(job_id), prefixed=len(ranks) > 1)

    def start(self) -> None:
        threading.Thread(target=self.run, name=f"job-{self.job_id}", daemon=True).start()

    def run(self) -> None:
        try:
            self._run()
        except Exception:
            self.log.message("the agent failed while running this job:\n" + traceback.format_exc())
            self._finish(db.FAILED_DRIVER)
        finally:
            self.log.close()
            self.on_done(self.job_id)

    def _finish(self, status: str) -> bool:
        with db.connect(self.runtime.db) as conn:
            return db.transition(conn, self.job_id, status, only_from=db.ACTIVE)

    def _status(self) -> str:
        with db.connect(self.runtime.db) as conn:
            row = db.get_job(conn, self.job_id)
        return str(row["status"]) if row else db.CANCELLED

    def _run(self) -> None:
        setup = self.spec.get("setup")
        if setup:
            if not self._phase([setup] * len(self.nodes), "setup"):
                self._finish(db.FAILED_SETUP)
                return
            with db.connect(self.runtime.db) as conn:
                if not db.transition(conn, self.job_id, db.RUNNING, only_from=(db.SETTING_UP,)):
                    return  # cancelled during setup
        commands = rank_commands(self.spec.get("run"), len(self.nodes))
        ok = self._phase(commands, "run")
        self._finish(db.SUCCEEDED if ok else db.FAILED)

    def _phase(self, commands: list[str | None], what: str) -> bool:
        """Run ``commands`` (one per rank) at once; True when every rank exits 0."""
        procs: dict[int, subprocess.Popen[bytes]] = {}
        pumps: list[threading.Thread] = []
        scripts: list[str] = []
        try:
            for rank, command in enumerate(commands):
                if command is None:
                    continue
                script = os.path.join(self.runtime.job_dir(self.job_id), f"{what}-{rank}.sh")
                scripts.append(script)
                try:
                    procs[rank] = spawn(
                        self.nodes[rank], command, self.envs[rank], self.spec.get("workdir"),
                        script_path=script,
                    )
                except LaunchError as exc:
                    self.log.message(f"{what} failed: {exc}", rank)
                    return False
                pump = threading.Thread(
                    target=self.log.pump, args=(procs[rank].stdout, rank), daemon=True
                )
                pump.start()
                pumps.append(pump)
            with db.connect(self.runtime.db) as conn:
                db.set_pids(conn, self.job_id, [p.pid for p in procs.values()])
            if self._status() in db.TERMINAL:
                return False  # cancelled before the pids were recorded
            return self._wait(procs, what)
        finally:
            # Kill leftovers (failed gang members, background children) so nothing outlives
            # the job, then let the pumps drain what was written.
            kill_groups([p.pid for p in procs.values()], grace=0.5)
            for p in procs.values():
                p.wait()
            for pump in pumps:
                pump.join(PUMP_JOIN_SECONDS)
            for script in scripts:
                with contextlib.suppress(OSError):
                    os.unlink(script)

    def _save_exit_code(self, code: int) -> None:
        """Keep the failing exit code for ``queue`` (managed jobs recover on chosen
        codes: ``job_recovery.recover_on_exit_codes``)."""
        path = self.runtime.exit_codes_path(self.job_id)
        with contextlib.suppress(OSError), open(path, "w") as f:
            json.dump([code], f)

    def _wait(self, procs: dict[int, subprocess.Popen[bytes]], what: str) -> bool:
        running = dict(procs)
        while running:
            for rank, proc in list(running.items()):
                code = proc.poll()
                if code is None:
                    continue
                del running[rank]
                if code != 0:
                    if self._status() not in db.TERMINAL:
                        self.log.message(f"{what} failed with exit code {code}", rank)
                        self._save_exit_code(code)
                    return False
            if running:
                time.sleep(POLL_SECONDS)
        return True
