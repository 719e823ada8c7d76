"""Read throughput with concurrent clients, and a burst of async requests.

Clients are trio tasks in this process, each with its own keep-alive connection
(:mod:`bench.rawhttp`, a lean client, so the load generator takes little of the CPU the
server needs). A read is what the SDK does: ``POST /api/v1/status`` then ``GET /api/get``;
one read is one skyhop request. The baseline runs the very same client code against the
trivial server, which answers both calls with canned bodies, so the client's own cost is
in both numbers and the ratio shows the server's.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any
from urllib.parse import urlparse

import trio

from bench.rawhttp import RawConnection
from bench.report import Figure, Target
from bench.util import MB, Run, cpu_seconds, summary, tree_rss

HEADERS = {"X-Skyhop-User": "bench", "X-Skyhop-User-Hash": "b0b0b0b0"}
STATUS_BODY = {"cluster_names": None, "refresh": "NONE", "all_users": False}
CALL_TIMEOUT = 30.0


def connections(endpoint: str, n: int, stack: contextlib.AsyncExitStack) -> list[RawConnection]:
    """``n`` keep-alive connections (opened on first use), closed with ``stack``."""
    url = urlparse(endpoint)
    made = [RawConnection(url.hostname or "127.0.0.1", url.port or 80, HEADERS)
            for _ in range(n)]
    for conn in made:
        stack.push_async_callback(conn.aclose)
    return made


async def call(conn: RawConnection, method: str, path: str, body: Any = None) -> Any:
    with trio.fail_after(CALL_TIMEOUT):
        status, data = await conn.request(method, path, body)
    if status >= 400:
        raise RuntimeError(f"{method} {path} -> HTTP {status}: {str(data)[:150]}")
    return data


#: What the SDK asks a submission to wait for a short request (``?wait=``).
SUBMIT_WAIT = 0.25


async def read_once(conn: RawConnection) -> None:
    """One SDK-style read: ``POST /api/v1/status?wait=`` answers with the result when
    the request finished in time, else with its ID for ``GET /api/get``; raises on
    any error."""
    got = await call(conn, "POST", f"/api/v1/status?wait={SUBMIT_WAIT:g}", STATUS_BODY)
    if "status" not in got:
        got = await call(conn, "GET", f"/api/get?request_id={got['request_id']}")
    if got.get("status") != "SUCCEEDED":
        raise RuntimeError(f"read ended {got.get('status')}")


async def closed_loop(endpoint: str, n: int, warmup: float, duration: float) -> dict[str, Any]:
    """``n`` clients read back to back; reads started after ``warmup`` count for ``duration``.

    Throughput: reads started in the window (all of which completed), per second.
    """
    latencies: list[float] = []
    errors: list[str] = []

    async def worker(conn: RawConnection) -> None:
        while (t0 := time.perf_counter()) < stop_at:
            try:
                await read_once(conn)
            except Exception as exc:
                if t0 >= measure_from:
                    errors.append(f"{type(exc).__name__}: {exc}"[:200])
                await trio.sleep(0.01)
                continue
            if t0 >= measure_from:
                latencies.append(time.perf_counter() - t0)

    async with contextlib.AsyncExitStack() as stack:
        made = connections(endpoint, n, stack)
        start = time.perf_counter()
        measure_from, stop_at = start + warmup, start + warmup + duration
        with trio.fail_after(warmup + duration + 2 * CALL_TIMEOUT + 10):
            async with trio.open_nursery() as nursery:
                for conn in made:
                    nursery.start_soon(worker, conn)
    return {"rps": len(latencies) / duration, "lat": latencies, "errors": errors}


def throughput(run: Run) -> list[Figure]:
    warmup, duration = (1.0, 3.0) if run.quick else (2.0, 10.0)
    figures = []
    for n in (10, 100):
        cpu0 = cpu_seconds(run.server.pid)
        got = trio.run(closed_loop, run.server.endpoint, n, warmup, duration)
        cpu1 = cpu_seconds(run.server.pid)
        base = trio.run(closed_loop, run.trivial.endpoint, n, warmup, duration)
        reads = got["rps"] * (duration + warmup) or 1  # approximately all reads of the run
        main_ms, all_ms = ((b - a) * 1000 / reads for a, b in zip(cpu0, cpu1, strict=True))
        lat, blat = summary(got["lat"], 1000), summary(base["lat"], 1000)
        errs = len(got["errors"])
        note = (f"{n} closed-loop clients for {duration:g} s after {warmup:g} s warm-up; "
                f"{errs} errors" + (f" (first: {got['errors'][0]})" if errs else "")
                + f"; server CPU ≈ {all_ms:.1f} ms per read ({main_ms:.1f} ms in its event-loop "
                f"thread, {all_ms - main_ms:.1f} ms in worker threads)")
        target = Target(">", 1000, also_zero_errors=True) if n == 100 else None
        figures.append(Figure("throughput", f"reads, {n} clients: throughput", "req/s",
                              got["rps"], None, "trivial server", base["rps"], None, target,
                              note, errors=errs))
        figures.append(Figure("throughput", f"reads, {n} clients: latency", "ms",
                              lat["p50"], lat["p99"], "trivial server", blat["p50"], blat["p99"],
                              Target("<", 100, on="p99") if n == 100 else None,
                              f"{lat['n']} reads measured", errors=errs))
    return figures


async def _burst(endpoint: str, total: int, server_pid: int | None, wait: bool) -> dict[str, Any]:
    """Submit ``total`` status requests from 32 connections; optionally wait for them all."""
    errors: list[str] = []
    peak = [0]
    done = trio.Event()
    todo = iter(range(total))

    async def sample_rss() -> None:
        while not done.is_set() and server_pid is not None:
            rss = await trio.to_thread.run_sync(tree_rss, server_pid)
            peak[0] = max(peak[0], rss)
            await trio.sleep(0.1)

    async def submitter(conn: RawConnection) -> None:
        for _ in todo:
            try:
                await call(conn, "POST", "/api/v1/status", STATUS_BODY)
            except Exception as exc:
                errors.append(f"{type(exc).__name__}: {exc}"[:200])

    async def wait_all(conn: RawConnection) -> None:
        while await call(conn, "GET", "/api/status?limit=1"):
            await trio.sleep(0.1)

    result: dict[str, Any] = {}
    async with contextlib.AsyncExitStack() as stack:
        made = connections(endpoint, 33, stack)
        start = time.perf_counter()
        with trio.fail_after(600):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(sample_rss)
                async with trio.open_nursery() as submitters:
                    for conn in made[:32]:
                        submitters.start_soon(submitter, conn)
                result["accepted"] = time.perf_counter() - start
                if wait:
                    await wait_all(made[32])
                result["finished"] = time.perf_counter() - start
                done.set()
    if server_pid is not None:
        peak[0] = max(peak[0], tree_rss(server_pid))
    return {**result, "peak_mb": peak[0] / MB, "errors": errors}


def burst(run: Run) -> list[Figure]:
    total = 1_000 if run.quick else 10_000
    before = tree_rss(run.server.pid) / MB
    got = trio.run(_burst, run.server.endpoint, total, run.server.pid, True)
    base = trio.run(_burst, run.trivial.endpoint, total, None, False)
    errs = len(got["errors"])
    load = (f"{total:,} async `status` submissions (POST /api/v1/status) from 32 connections; "
            f"{errs} errors" + (f" (first: {got['errors'][0]})" if errs else ""))
    scale = "" if total == 10_000 else f" (target scaled to {total:,})"
    return [
        Figure("burst", f"burst of {total:,}: all accepted", "s", got["accepted"], None,
               "trivial server", base["accepted"], None,
               Target("<", 10 * total / 10_000, also_zero_errors=True), load + scale,
               errors=errs),
        Figure("burst", f"burst of {total:,}: all finished", "s", got["finished"], None,
               "", None, None, None, "until GET /api/status lists no unfinished request"),
        Figure("burst", f"burst of {total:,}: peak server RSS", "MB", got["peak_mb"], None,
               "idle before", before, None, Target("<", 400),
               "server process tree, sampled every 0.1 s"),
    ]

