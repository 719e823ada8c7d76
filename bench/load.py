"""Reads under load: SDK status round trips while long requests are in flight.

The load: one job on the ``bench`` local cluster prints a line every 0.2 s, and N
``logs --follow`` requests on it (50; 10 in quick mode) run on the server at once, each
with its own tail process and each writing the job's output into its request log. They
are real long-running requests (the ``stream`` class): they hold their slot until
cancelled. The baseline is the same reads just before the load starts.
"""

from __future__ import annotations

import time

from bench.jobs import BENCH_CLUSTER, cancel_job, ensure_cluster, submit_job, submit_logs
from bench.report import Figure, Target
from bench.requests import sdk_read
from bench.util import Run, repeat, summary

TICKER = "i=0; while [ $i -lt 3000 ]; do echo tick $i; i=$((i+1)); sleep 0.2; done"


def _wait_running(request_ids: list[str], timeout: float = 60) -> int:
    """Wait until all requests are RUNNING; return how many are."""
    import skyhop as sky

    deadline = time.monotonic() + timeout
    while True:
        records = sky.api_status(request_ids)
        running = sum(str(getattr(r.status, "value", r.status)) == "RUNNING" for r in records)
        if running == len(request_ids) or time.monotonic() >= deadline:
            return running
        time.sleep(0.1)


def reads_under_load(run: Run) -> list[Figure]:
    import skyhop as sky

    ensure_cluster(run)
    job_id = submit_job(BENCH_CLUSTER, TICKER)
    n_load = run.reps(10, 50)
    reads = run.reps(200, 1000)
    load: list[str] = []
    try:
        base = repeat(sdk_read, reads, warmup=20)
        load = [submit_logs(BENCH_CLUSTER, job_id, follow=True) for _ in range(n_load)]
        running = _wait_running(load)
        time.sleep(1.0)  # let every follower reach steady state
        loaded = repeat(sdk_read, reads, warmup=5)
        still = _wait_running(load, timeout=0)
    finally:
        if load:
            sky.api_cancel(load)
        cancel_job(BENCH_CLUSTER, job_id)
    s, b = summary(loaded, 1000), summary(base, 1000)
    note = (f"{reads} sequential sky.get(sky.status()) while {n_load} `logs --follow` requests "
            f"followed a job printing 5 lines/s ({running} running at start, {still} at end)")
    fig = Figure("load", f"read round trip, {n_load} long requests in flight", "ms", s["p50"],
                 s["p99"], "same reads without load", b["p50"], b["p99"],
                 Target("<", 50, on="p99"), note)
    if running < n_load:
        fig.error = f"only {running} of {n_load} load requests were running"
    return [fig]

