"""Managed jobs on local: N ``echo`` jobs submitted at once, each on its own cluster.

Measured through the SDK on the warm server, as ``skyhop jobs launch --async`` would
submit them (16 client threads): the time until every ``jobs_launch`` submission is
accepted (its request ID back; the note adds when every job ID was back), until every
job is SUCCEEDED (total; jobs/minute), and
the server process's peak RSS while they run (sampled every 0.2 s; the clusters' agents
are separate processes and not counted). The same-run baseline is N plain ``exec``
requests of the same ``echo`` on one UP local cluster: accepted, and all finished.

N is 200 (20 with ``--quick``). The server runs with its default settings
(``SKYHOP_JOBS_MAX_LAUNCHES`` 8, ``SKYHOP_JOBS_POLL_SECONDS`` 5).
"""

from __future__ import annotations

import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from bench.jobs import ensure_cluster, task
from bench.report import Figure, Target
from bench.util import Run, rss_bytes

MB = 1024 * 1024
CLUSTER = "bench-exec-baseline"
THREADS = 16


def _accept(submit: Any, total: int) -> tuple[float, float, list[Any]]:
    """(seconds until every submission is accepted — its request ID back, what
    ``--async`` waits for —, seconds until every result is back, the results)."""
    import skyhop as sky

    start = time.perf_counter()
    with ThreadPoolExecutor(THREADS) as pool:
        request_ids = list(pool.map(submit, range(total)))
        accepted = time.perf_counter() - start
        results = list(pool.map(sky.get, request_ids))
    return accepted, time.perf_counter() - start, results


def _until(predicate: Any, timeout: float, poll: float = 0.5) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("the jobs did not finish in time")
        time.sleep(poll)


class _PeakRss:
    def __init__(self, pid: int) -> None:
        self.pid, self.peak, self._stop = pid, 0, threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_bytes(self.pid))
            self._stop.wait(0.2)

    def __enter__(self) -> _PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def managed_echo(run: Run) -> list[Figure]:
    import skyhop as sky

    total = run.reps(20, 200)
    idle_mb = rss_bytes(run.server.pid) / MB

    # Baseline: the same echo as plain exec jobs on one UP cluster.
    ensure_cluster(run, CLUSTER)
    base_start = time.perf_counter()
    base_accept, base_results, submitted = _accept(
        lambda i: sky.exec(task(f"echo bench-{i}"), cluster_name=CLUSTER), total
    )
    wanted = {int(r["job_id"]) for r in submitted}

    def base_done() -> bool:
        jobs = sky.get(sky.queue(CLUSTER))
        return all(j["status"].is_terminal() for j in jobs if j["job_id"] in wanted)

    _until(base_done, 1800)
    base_total = time.perf_counter() - base_start

    def launch(i: int) -> str:
        body = {"name": f"bench-mj-{i}", "run": f"echo managed-{i}", **task()}
        return sky.jobs.launch(body)

    with _PeakRss(run.server.pid) as rss:
        start = time.perf_counter()
        accepted, with_ids, results = _accept(launch, total)
        ids = [int(r["job_id"]) for r in results]

        def done() -> bool:
            rows = sky.get(sky.jobs.queue(refresh=False, job_ids=ids))
            return all(r["status"].is_terminal() for r in rows)

        _until(done, 3600)
        elapsed = time.perf_counter() - start
    rows = sky.get(sky.jobs.queue(refresh=False, job_ids=ids))
    failed = [r for r in rows if r["status"] is not sky.ManagedJobStatus.SUCCEEDED]
    leaked = [c["name"] for c in sky.get(sky.status()) if c["name"].startswith("bench-mj-")]
    note = (f"{total} managed `echo` jobs on local, {THREADS} submitting threads, accepted = "
            f"request ID back (`--async`); every job ID back after {with_ids:.1f} s (exec: "
            f"{base_results:.1f} s); {len(failed)} not SUCCEEDED, {len(leaked)} clusters left")
    return [
        Figure("managed_jobs", f"{total} managed jobs: all accepted", "s", accepted, None,
               f"{total} exec requests accepted", base_accept, None,
               Target("<", 5.0, also_zero_errors=True), note,
               errors=len(failed) + len(leaked)),
        Figure("managed_jobs", f"{total} managed jobs: all SUCCEEDED", "s", elapsed, None,
               f"{total} exec jobs finished", base_total, None, None,
               f"{total / elapsed * 60:.0f} jobs/min (each launches and tears down its own "
               "cluster)"),
        Figure("managed_jobs", f"{total} managed jobs: peak server RSS", "MB", rss.peak / MB,
               None, "idle before", idle_mb, None, Target("<", 1024),
               "the API server process (controllers included; cluster agents excluded)"),
    ]


def held_running(run: Run) -> list[Figure]:
    """N managed jobs (10,000; 500 with ``--quick``) held RUNNING at once on the in-memory
    backend (its own server): the controllers' own cost (RSS, CPU per monitored
    job-minute) and a ``status`` read while they run, against the same reads before."""
    import skyhop as sky
    from bench.servers import ApiServer
    from bench.util import CLK_TCK, environment, summary

    def cpu_seconds(pid: int) -> float:
        """user + system CPU of the whole process (exited threads included)."""
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK
    from skyhop.client import ApiClient, using

    total = run.reps(500, 10_000)
    window = run.reps(20, 60)
    server = ApiServer()
    repo = str(Path(__file__).resolve().parent.parent)
    server.env.update({
        "SKYHOP_PLUGINS": "bench.memory_backend",
        "PYTHONPATH": repo + os.pathsep + server.env.get("PYTHONPATH", ""),
        "MEMORY_JOB_SECONDS": "3600",
        "SKYHOP_JOBS_MAX_LAUNCHES": "64",
        "SKYHOP_JOBS_MAX_RUNNING": str(total),
    })
    try:
        server.start()
        with environment(server.env), using(ApiClient(server.endpoint, auto_start=False)):
            task_body = {"run": "sleep", "resources": {"infra": "memory"}}
            idle_reads = []
            for _ in range(50):
                t0 = time.perf_counter()
                sky.get(sky.status())
                idle_reads.append(time.perf_counter() - t0)
            idle = summary(idle_reads, 1000)
            idle_mb = rss_bytes(server.pid) / MB
            start = time.perf_counter()
            _accept(lambda i: sky.jobs.launch({**task_body, "name": f"m{i}"}), total)

            def all_running() -> bool:
                rows = sky.get(sky.jobs.queue(refresh=False, skip_finished=True))
                return sum(r["status"] is sky.ManagedJobStatus.RUNNING for r in rows) == total

            _until(all_running, 3600, poll=5.0)  # a queue of 10,000 is not a cheap read
            ramp = time.perf_counter() - start
            cpu_before, wall_before = cpu_seconds(server.pid), time.perf_counter()
            reads: list[float] = []
            while time.perf_counter() - wall_before < window:
                t0 = time.perf_counter()
                sky.get(sky.status())
                reads.append(time.perf_counter() - t0)
                time.sleep(0.05)
            minutes = (time.perf_counter() - wall_before) / 60
            cpu = cpu_seconds(server.pid) - cpu_before
            rss = rss_bytes(server.pid) / MB
            t0 = time.perf_counter()
            shown = len(sky.get(sky.status(include_managed_jobs=True)))
            with_jobs = (time.perf_counter() - t0) * 1000
            cancel_start = time.perf_counter()
            cancelled = sky.get(sky.jobs.cancel(all=True))
            cancel_time = time.perf_counter() - cancel_start
        stats = summary(reads, 1000)
        per_job = cpu / (total * minutes) * 1000
        note = f"{total:,} managed jobs RUNNING on the in-memory backend"
        return [
            Figure("managed_jobs", f"{total:,} managed jobs RUNNING: server RSS", "MB", rss,
                   None, "idle before", idle_mb, None, Target("<", 1024),
                   f"{note}; all RUNNING after "
                   f"{ramp:.0f} s (64 launches at a time)"),
            Figure("managed_jobs", f"{total:,} managed jobs RUNNING: CPU per job-minute",
                   "ms", per_job, None, "", None, None, None,
                   f"server CPU over {minutes * 60:.0f} s while they ran (each controller "
                   "asks its backend and its job every 20 s)"),
            Figure("managed_jobs", f"{total:,} managed jobs RUNNING: status read", "ms",
                   stats["p50"], stats["p99"], "same reads before the jobs", idle["p50"],
                   idle["p99"], Target("<", 50, on="p99"),
                   f"{len(reads)} sequential sky.get(sky.status()) while they ran (the "
                   "jobs' clusters are left out of `status`, as SkyPilot's live on its "
                   f"controller; `status --include-managed-jobs` listed all {shown:,} in "
                   f"{with_jobs:.0f} ms)"),
            Figure("managed_jobs", f"{total:,} managed jobs: cancel -a", "s", cancel_time,
                   None, "", None, None, None,
                   f"{len(cancelled):,} of {total:,} cancelled (all CANCELLED when it returns)",
                   errors=total - len(cancelled)),
        ]
    finally:
        server.cleanup()
