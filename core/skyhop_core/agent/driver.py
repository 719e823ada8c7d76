"""Running one job: setup then run on each of its nodes (gang launch), into one log.

A driver runs in a thread of the daemon. It starts every rank's process, records their
pids in the database (so that ``cancel`` and ``stop``, which are other processes, can kill
the process groups), waits, and on the first failing rank kills the others. Statuses
only move through conditional updates, so a job cancelled meanwhile stays CANCELLED.
"""

from __future__ import annotations

import contextlib
import json
import math
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
#: Job variables are set under both names: ours and SkyPilot's.
ENV_PREFIXES = ("SKYHOP_", "SKYPILOT_")
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
    """The environment of each job rank: HOME, envs, secrets and the SKYHOP_*/SKYPILOT_*
    variables."""
    nodes = {n["rank"]: n for n in cluster.nodes}
    ips = [str(nodes[r].get("ip", "127.0.0.1")) for r in ranks]
    gpus = spec.get("gpus") or {}
    info = {
        "cluster_name": cluster.name,
        "backend": cluster.data.get("backend"),
        "cloud": cluster.data.get("backend"),  # SkyPilot's name for it
        "instance_type": cluster.data.get("instance_type"),
        "region": cluster.data.get("region"),
        "zone": cluster.data.get("zone"),
        "job_id": job_id,
        "num_nodes": len(ranks),
        "node_ips": ips,
    }
    ours = {
        "NODE_IPS": "\n".join(ips),
        "NUM_NODES": str(len(ranks)),
        # A fractional share of a GPU (T4:0.5) still sees one device.
        "NUM_GPUS_PER_NODE": str(math.ceil(sum(float(v) for v in gpus.values()) - 1e-9)),
        "TASK_ID": spec.get("task_id") or f"skyhop-{cluster.name}-{job_id}",
        "CLUSTER_INFO": json.dumps(info),
    }
    base = {
        **{k: str(v) for k, v in (spec.get("envs") or {}).items()},
        **{k: str(v) for k, v in (spec.get("secrets") or {}).items()},
        **_both_names(ours),
    }
    # ``~`` in a job is the node's home on every backend (a local node's home is its own
    # directory, not the home of whoever runs the server); the task's envs may override.
    homes = [nodes[r].get("home") for r in ranks]
    return [
        {**({"HOME": str(homes[i])} if homes[i] else {}), **base,
         **_both_names({"NODE_RANK": str(i)})}
        for i in range(len(ranks))
    ]


def _both_names(values: dict[str, str]) -> dict[str, str]:
    """Each job variable under our name and SkyPilot's (``SKYHOP_X`` and ``SKYPILOT_X``), so
    task files written for SkyPilot read the same values."""
    return {f"{prefix}{k}": v for k, v in values.items() for prefix in ENV_PREFIXES}


def setup_env(env: dict[str, str], rank: int) -> dict[str, str]:
    """A rank's environment for ``setup``: its job variables plus the setup node rank."""
    return {**env, **_both_names({"SETUP_NODE_RANK": str(rank)})}


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
        nodes = f"{len(self.nodes)} node{'s' if len(self.nodes) != 1 else ''}"
        if setup:
            self.log.line(f"⚙︎ Running setup on {nodes}.")
            if not self._phase([setup] * len(self.nodes), "setup"):
                self._finish(db.FAILED_SETUP)
                return
            with db.connect(self.runtime.db) as conn:
                if not db.transition(conn, self.job_id, db.RUNNING, only_from=(db.SETTING_UP,)):
                    return  # cancelled during setup
            # Without setup the run's first line comes at once; after one, say it starts.
            self.log.line(f"⚙︎ Job started: running on {nodes}.")
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
                    env = setup_env(self.envs[rank], rank) if what == "setup" else self.envs[rank]
                    procs[rank] = spawn(
                        self.nodes[rank], command, env, self.spec.get("workdir"),
                        script_path=script,
                    )
                except LaunchError as exc:
                    self.log.message(f"{what} failed: {exc}", rank, what)
                    return False
                pump = threading.Thread(
                    target=self.log.pump, args=(procs[rank].stdout, rank, what), daemon=True
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

    def _save_exit_codes(self, codes: list[int]) -> None:
        """Keep the failed ranks' exit codes for ``queue`` (managed jobs recover on chosen
        codes: ``job_recovery.recover_on_exit_codes``)."""
        path = self.runtime.exit_codes_path(self.job_id)
        with contextlib.suppress(OSError), open(path, "w") as f:
            json.dump(codes, f)

    def _wait(self, procs: dict[int, subprocess.Popen[bytes]], what: str) -> bool:
        running = dict(procs)
        while running:
            failed: dict[int, int] = {}
            for rank, proc in list(running.items()):
                code = proc.poll()
                if code is None:
                    continue
                del running[rank]
                if code != 0:
                    failed[rank] = code
            if failed:
                if self._status() not in db.TERMINAL:
                    self._report_failed(failed, what)
                    self._save_exit_codes([code for _, code in sorted(failed.items())])
                return False
            if running:
                time.sleep(POLL_SECONDS)
        return True

    def _report_failed(self, failed: dict[int, int], what: str) -> None:
        """The ranks that failed on their own (the gang's others are killed after)."""
        for rank, code in sorted(failed.items()):
            self.log.message(f"{what} failed with exit code {code}", rank, what)
        workers = ", ".join(f"rank {rank} (exit code {code})" for rank, code in sorted(failed.items()))
        self.log.line(f"Failed workers: {workers}. See error logs above for more details.")
