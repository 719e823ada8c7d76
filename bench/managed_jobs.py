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
    """Poll ``predicate`` until true. A poll the server did not answer in time (a shared
    machine under a ramp of thousands of launches) is retried, not fatal."""
    from skyhop_core.exceptions import ApiServerError

    deadline = time.monotonic() + timeout
    while True:
        try:
            if predicate():
                return
        except ApiServerError as exc:
            print(f"bench: a poll failed ({exc}); retrying", flush=True)
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


def _cpu_seconds(pid: int) -> float:
    """user + system CPU of the whole process (exited threads included)."""
    from bench.util import CLK_TCK

    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def _timed_reads(read: Any, seconds: float, pause: float = 0.05) -> list[float]:
    """Sequential ``read()`` calls for ``seconds``; their latencies."""
    samples: list[float] = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        t0 = time.perf_counter()
        read()
        samples.append(time.perf_counter() - t0)
        time.sleep(pause)
    return samples


def held_running(run: Run) -> list[Figure]:
    """N managed jobs (10,000; 1,000 with ``--quick``; ``SKYHOP_BENCH_HELD_JOBS``) held RUNNING at once on the
    in-memory backend (its own server): the controllers' own cost, and reads while they
    run against the same reads before.

    Phases, each measured on its own: the idle server's CPU over the window (the
    baseline); the submissions (server CPU per accepted ``jobs_launch``); the ramp until
    every job is RUNNING (server CPU per launch); a quiet window with no client traffic
    (server CPU per monitored job per minute, RSS); then sequential ``status`` and
    ``jobs queue`` (one job) reads for the same window (p50/p99).
    """
    import skyhop as sky
    from bench.servers import ApiServer
    from bench.util import environment, summary
    from skyhop.client import ApiClient, using

    # SKYHOP_BENCH_HELD_JOBS: another N, for iterating on a change (e.g. 3,000).
    total = int(os.environ.get("SKYHOP_BENCH_HELD_JOBS") or run.reps(1000, 10_000))
    window = run.reps(20, 60)
    launches = 64
    server = ApiServer()
    repo = str(Path(__file__).resolve().parent.parent)
    server.env.update({
        "SKYHOP_PLUGINS": "bench.memory_backend",
        "PYTHONPATH": repo + os.pathsep + server.env.get("PYTHONPATH", ""),
        "MEMORY_JOB_SECONDS": "7200",
        "SKYHOP_JOBS_MAX_LAUNCHES": str(launches),
        "SKYHOP_JOBS_MAX_RUNNING": str(total),
    })
    try:
        server.start()
        pid = server.pid
        with environment(server.env), using(ApiClient(server.endpoint, auto_start=False)):
            task_body = {"run": "sleep", "resources": {"infra": "memory"}}

            def status() -> None:
                sky.get(sky.status())

            probe: list[int] = []

            def queue_one() -> None:
                sky.get(sky.jobs.queue(refresh=False, job_ids=probe))

            idle_reads = _timed_reads(status, min(window, 10))
            cpu0, wall0 = _cpu_seconds(pid), time.perf_counter()
            time.sleep(window)
            idle_cpu_per_min = (_cpu_seconds(pid) - cpu0) / ((time.perf_counter() - wall0) / 60)
            idle_mb = rss_bytes(pid) / MB

            cpu0, start = _cpu_seconds(pid), time.perf_counter()
            _, _, results = _accept(
                lambda i: sky.jobs.launch({**task_body, "name": f"m{i}"}), total
            )
            accepted = time.perf_counter() - start
            cpu_accept = _cpu_seconds(pid) - cpu0
            ids = sorted(int(r["job_id"]) for r in results)
            probe.append(ids[0])
            last = ids[-launches:]  # launched last (same priority: by job ID)

            def running(job_ids: list[int] | None) -> int:
                rows = sky.get(sky.jobs.queue(refresh=False, job_ids=job_ids))
                return sum(r["status"] is sky.ManagedJobStatus.RUNNING for r in rows)

            _until(lambda: running(last) == len(last), 3600, poll=2.0)
            ramp = time.perf_counter() - start
            cpu_ramp = _cpu_seconds(pid) - cpu0 - cpu_accept
            shown_running = running(None)

            cpu0, wall0 = _cpu_seconds(pid), time.perf_counter()
            time.sleep(window)
            minutes = (time.perf_counter() - wall0) / 60
            cpu = _cpu_seconds(pid) - cpu0
            rss = rss_bytes(pid) / MB
            reads = _timed_reads(status, window)
            queue_reads = _timed_reads(queue_one, min(window, 10))
            t0 = time.perf_counter()
            shown = len(sky.get(sky.status(include_managed_jobs=True)))
            with_jobs = (time.perf_counter() - t0) * 1000
            cancel_start = time.perf_counter()
            cancelled = sky.get(sky.jobs.cancel(all=True))
            cancel_time = time.perf_counter() - cancel_start
        stats, idle = summary(reads, 1000), summary(idle_reads, 1000)
        queue_stats = summary(queue_reads, 1000)
        per_job = cpu / (total * minutes) * 1000
        note = (f"{total:,} managed jobs on the in-memory backend ({shown_running:,} RUNNING "
                "when measured)")
        load = os.getloadavg()[0]
        return [
            Figure("managed_jobs", f"{total:,} managed jobs: all accepted", "s", accepted,
                   None, "", None, None, None,
                   f"{THREADS} submitting threads; server CPU "
                   f"{cpu_accept / total * 1000:.1f} ms per accepted `jobs_launch` "
                   "(request handling included)"),
            Figure("managed_jobs", f"{total:,} managed jobs: all RUNNING", "s", ramp, None,
                   "", None, None, None,
                   f"from the first submission, {launches} launches at a time; server CPU "
                   f"{cpu_ramp / total * 1000:.1f} ms per launch after acceptance; "
                   f"{total / ramp:.0f} jobs/s"),
            Figure("managed_jobs", f"{total:,} managed jobs RUNNING: server RSS", "MB", rss,
                   None, "idle before", idle_mb, None, Target("<", 1024), note),
            Figure("managed_jobs", f"{total:,} managed jobs RUNNING: CPU per job-minute",
                   "ms", per_job, None, "idle server's CPU per minute ÷ jobs",
                   idle_cpu_per_min / total * 1000, None, None,
                   f"server CPU over a {minutes * 60:.0f} s window with no client traffic: "
                   f"{cpu / minutes / 60 * 100:.0f} % of one CPU (idle server: "
                   f"{idle_cpu_per_min / 60 * 100:.1f} %); each controller asks its backend "
                   f"and its job every 20 s; load average {load:.1f}"),
            Figure("managed_jobs", f"{total:,} managed jobs RUNNING: status read", "ms",
                   stats["p50"], stats["p99"], "same reads before the jobs", idle["p50"],
                   idle["p99"], Target("<", 50, on="p99"),
                   f"{len(reads)} sequential sky.get(sky.status()) while they ran (the "
                   "jobs' clusters are left out of `status`, as SkyPilot's live on its "
                   f"controller; `status --include-managed-jobs` listed all {shown:,} in "
                   f"{with_jobs:.0f} ms); `jobs queue` of one job: p50 "
                   f"{queue_stats['p50']:.1f} / p99 {queue_stats['p99']:.1f} ms"),
            Figure("managed_jobs", f"{total:,} managed jobs: cancel -a", "s", cancel_time,
                   None, "", None, None, None,
                   f"{len(cancelled):,} of {total:,} cancelled (all CANCELLED when it returns)",
                   errors=total - len(cancelled)),
        ]
    finally:
        server.cleanup()
