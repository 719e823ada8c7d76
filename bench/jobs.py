"""Jobs on local clusters: exec-to-first-output, launch-to-first-output, cancel latency.

First output is measured the way ``skyhop exec NAME CMD`` sees it, through the SDK in this
(warm) process: submit the request, get its result (the job ID), submit a following
``logs`` request and read its stream until the job's marker line arrives. The baseline
is a fork/exec of ``/bin/true`` from Python (``subprocess.run``) in the same run.
"""

from __future__ import annotations

import contextlib
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

from bench.report import Figure, Target
from bench.util import Run, alive, descendants, summary

LOCAL = {"infra": "local"}
BENCH_CLUSTER = "bench"


def task(run_cmd: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"resources": dict(LOCAL)}
    if run_cmd is not None:
        body["run"] = run_cmd
    return body


def ensure_cluster(run: Run, name: str = BENCH_CLUSTER) -> None:
    """Launch the local cluster ``name`` (no job) unless this run already did."""
    import skyhop as sky

    if name in run.clusters:
        return
    run.clusters.add(name)
    sky.get(sky.launch(task(), cluster_name=name))


def submit_job(cluster: str, command: str) -> int:
    """Exec ``command`` on the cluster; return the job ID."""
    import skyhop as sky

    return int(sky.get(sky.exec(task(command), cluster_name=cluster))["job_id"])


def submit_logs(cluster: str, job_id: int, follow: bool) -> str:
    """Submit the ``logs`` request behind ``sky.tail_logs``; return its request ID."""
    from skyhop import sdk

    return sdk.submit_logs(cluster, job_id, follow=follow)


def cancel_job(cluster: str, job_id: int) -> None:
    import skyhop as sky

    with contextlib.suppress(Exception):
        sky.get(sky.cancel(cluster, job_ids=[job_id]))


@contextlib.contextmanager
def watchdog(request_id: str, seconds: float) -> Iterator[None]:
    """Cancel the request after ``seconds`` (so a stuck stream ends); a bounded wait."""
    import skyhop as sky

    timer = threading.Timer(seconds, lambda: sky.api_cancel(request_id))
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()


def wait_for_output(cluster: str, job_id: int, marker: str, timeout: float = 60) -> None:
    """Follow the job's log through a ``logs`` request until ``marker`` shows up."""
    from skyhop.client import current_client

    request_id = submit_logs(cluster, job_id, follow=True)
    seen = ""
    with watchdog(request_id, timeout):
        for chunk in current_client().stream(request_id, follow=True):
            seen = (seen + chunk)[-4096:]
            if marker in seen:
                return
    raise RuntimeError(f"the job's log ended without {marker!r}; tail: {seen[-300:]!r}")


def _first_output(submit: Callable[[str], str], cluster: str) -> float:
    import skyhop as sky

    marker = f"bench-{uuid.uuid4().hex[:8]}"
    start = time.perf_counter()
    job_id = sky.get(submit(f"echo {marker}"))["job_id"]
    wait_for_output(cluster, int(job_id), marker)
    return time.perf_counter() - start


def _fork_exec() -> float:
    start = time.perf_counter()
    subprocess.run(["/bin/true"], check=True)
    return time.perf_counter() - start


def exec_first_output(run: Run) -> list[Figure]:
    import skyhop as sky

    ensure_cluster(run)
    runs = run.reps(5, 20)
    samples, base = [], []
    for i in range(runs + 1):
        elapsed = _first_output(lambda cmd: sky.exec(task(cmd), cluster_name=BENCH_CLUSTER),
                                BENCH_CLUSTER)
        if i:  # the first one is a warm-up
            samples.append(elapsed)
            base.append(_fork_exec())
    s, b = summary(samples, 1000), summary(base, 1000)
    return [Figure("jobs", "exec to first output (UP cluster)", "ms", s["p50"], s["p99"],
                   "fork/exec /bin/true", b["p50"], b["p99"], Target("<", 300),
                   f"{runs} runs after 1 warm-up: sky.exec + get + logs --follow until "
                   "the echo arrives")]


def launch_first_output(run: Run) -> list[Figure]:
    import skyhop as sky

    runs = run.reps(2, 5)
    samples, base = [], []
    for i in range(runs):
        name = f"bench-new-{i}-{uuid.uuid4().hex[:4]}"
        run.clusters.add(name)
        try:
            samples.append(_first_output(
                lambda cmd, n=name: sky.launch(task(cmd), cluster_name=n), name))
        finally:
            with contextlib.suppress(Exception):
                sky.get(sky.down(name))
                run.clusters.discard(name)
        base.append(_fork_exec())
    s, b = summary(samples, 1000), summary(base, 1000)
    return [Figure("jobs", "launch to first output (new cluster)", "ms", s["p50"], s["p99"],
                   "fork/exec /bin/true", b["p50"], b["p99"], None,
                   f"{runs} new local clusters, each torn down after (untimed)")]


def _cancel_once(run: Run, job_id: int) -> tuple[float, float]:
    """Cancel a following ``logs`` request. Seconds until the client is told it is
    cancelled (``sky.get(sky.api_cancel(ID))`` lists it) with its processes gone, and
    until a following ``sky.api_status`` shows it CANCELLED as well.

    By the time ``api_cancel``'s result reaches the client the server has committed the
    cancelled request's CANCELLED row (written before the cancel request's own) and
    reaped its processes; both are checked here, not assumed."""
    import skyhop as sky

    server_pid = run.server.pid
    before = descendants(server_pid)
    request_id = submit_logs(BENCH_CLUSTER, job_id, follow=True)
    deadline = time.monotonic() + 30
    procs: set[int] = set()
    while not procs:
        if time.monotonic() > deadline:
            sky.api_cancel(request_id)
            raise TimeoutError("the logs request started no process within 30 s")
        time.sleep(0.02)
        procs = descendants(server_pid) - before
    time.sleep(0.2)  # let it settle into following
    procs = descendants(server_pid) - before
    start = time.perf_counter()
    cancelled = sky.get(sky.api_cancel(request_id))
    told = time.perf_counter() - start
    if cancelled != [request_id]:
        raise RuntimeError(f"api_cancel({request_id}) cancelled {cancelled}")
    if any(alive(p) for p in procs):
        raise RuntimeError("api_cancel returned before the request's processes were gone")
    record = sky.api_status([request_id])[0]
    seen = time.perf_counter() - start
    if str(getattr(record.status, "value", record.status)) != "CANCELLED":
        raise RuntimeError(f"api_cancel returned but the request is {record.status}")
    return told, seen


def _kill_baseline() -> float:
    proc = subprocess.Popen(["sleep", "600"])
    time.sleep(0.05)
    start = time.perf_counter()
    proc.terminate()
    proc.wait(timeout=10)
    return time.perf_counter() - start


def cancel_latency(run: Run) -> list[Figure]:
    ensure_cluster(run)
    job_id = submit_job(BENCH_CLUSTER, "echo sleeping; sleep 600")
    runs = run.reps(3, 10)
    told, seen, base = [], [], []
    try:
        for _ in range(runs):
            t, s = _cancel_once(run, job_id)
            told.append(t)
            seen.append(s)
            base.append(_kill_baseline())
    finally:
        cancel_job(BENCH_CLUSTER, job_id)
    t, s, b = summary(told, 1000), summary(seen, 1000), summary(base, 1000)
    return [
        Figure("cancel", "cancel latency", "ms", t["p50"], t["p99"],
               "SIGTERM + reap of a child", b["p50"], b["p99"], Target("<", 10),
               f"{runs} runs: sky.get(sky.api_cancel(ID)) of a `logs --follow` request on a "
               "sleeping job, until the client is told it is cancelled (its row CANCELLED "
               "and its tail process gone, both checked)"),
        Figure("cancel", "cancel latency, then api_status shows it", "ms", s["p50"],
               s["p99"], "SIGTERM + reap of a child", b["p50"], b["p99"], None,
               "the same, until a following sky.api_status([ID]) answers CANCELLED "
               "(before 2026-12-02 the figure above was measured this way, polling)"),
    ]
