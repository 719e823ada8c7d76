"""Log streaming: a finished job's 100 MB log (10 MB in quick mode) to an SDK client.

A job on the ``bench`` cluster writes the log (100-byte lines); once it has finished, a
``logs`` request (no follow) is submitted and its stream read to the end through the
SDK's client, timed from submission to the last byte. The baseline streams the same
number of bytes from the trivial server with httpx, in the same run. MB = 10^6 bytes.
"""

from __future__ import annotations

import time

import httpx

from bench.jobs import BENCH_CLUSTER, ensure_cluster, submit_job, submit_logs, watchdog
from bench.report import Figure, Target
from bench.util import Run, summary

LINE = "x" * 99


def _wait_job(cluster: str, job_id: int, timeout: float = 300) -> None:
    import skyhop as sky

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = sky.get(sky.job_status(cluster, [job_id])).get(str(job_id))
        value = str(getattr(status, "value", status))
        if value == "SUCCEEDED":
            return
        if value in ("FAILED", "FAILED_SETUP", "FAILED_DRIVER", "CANCELLED", "None"):
            raise RuntimeError(f"the log-writing job ended {value}")
        time.sleep(0.2)
    raise TimeoutError(f"the log-writing job did not finish within {timeout} s")


def _stream_job_log(job_id: int) -> tuple[int, float]:
    import skyhop as sky
    from skyhop.client import current_client

    start = time.perf_counter()
    request_id = submit_logs(BENCH_CLUSTER, job_id, follow=False)
    received = 0
    with watchdog(request_id, 300):
        for chunk in current_client().stream(request_id, follow=True):
            received += len(chunk)
    sky.get(request_id)
    return received, time.perf_counter() - start


def _stream_baseline(endpoint: str, size: int) -> tuple[int, float]:
    start = time.perf_counter()
    received = 0
    with httpx.Client(base_url=endpoint, timeout=60) as client, client.stream(
        "GET", "/bytes", params={"n": size}
    ) as response:
        for chunk in response.iter_text():
            received += len(chunk)
    return received, time.perf_counter() - start


def log_streaming(run: Run) -> list[Figure]:
    size = 10_000_000 if run.quick else 100_000_000
    runs = run.reps(2, 3)
    ensure_cluster(run)
    job_id = submit_job(BENCH_CLUSTER, f"yes {LINE} | head -c {size}")
    _wait_job(BENCH_CLUSTER, job_id)
    rates, base_rates, sizes = [], [], []
    for _ in range(runs):
        received, elapsed = _stream_job_log(job_id)
        sizes.append(received)
        rates.append(received / elapsed / 1e6)
        b_received, b_elapsed = _stream_baseline(run.trivial.endpoint, size)
        base_rates.append(b_received / b_elapsed / 1e6)
    s, b = summary(rates), summary(base_rates)
    fig = Figure("logs", f"log streaming ({size // 1_000_000} MB job log)", "MB/s", s["p50"],
                 None, "same bytes from trivial server", b["p50"], None, Target(">", 100),
                 f"{runs} runs of a `logs` request (no follow) on a finished job, submit to "
                 f"last byte; received {min(sizes):,} bytes")
    if min(sizes) < size:
        fig.error = f"received {min(sizes):,} of {size:,} bytes"
    return [fig]

