"""The floor of the HTTP stack: server CPU per request, skyhop next to bare hypercorn.

The same 100 closed-loop clients (:mod:`bench.throughput`'s lean client) call, in turn:

- a raw ASGI app (one canned JSON body) under hypercorn's trio worker, skyhop's HTTP
  server — what any request costs before routing; and the reads figure's own clients
  (``bench.throughput.closed_loop``) against it: the latency and rate no server on this
  stack can beat with those clients on this machine;
- the same under Starlette (one route): what the routing layer adds;
- the warm skyhop server's ``GET /api/health`` (Starlette plus skyhop's middlewares);
- a skyhop read: ``POST /api/v1/status?wait=`` (a whole request: row, scope, result).

Each figure is the server process's CPU time (all threads) per request, from /proc, so
the other tenants of a shared machine move it less than they move throughput; the
baseline column is the raw ASGI app in the same run. The bare servers run as
``python -m bench.asgi_floor KIND PORT``.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import trio

from bench import throughput
from bench.report import Figure
from bench.servers import wait_healthy
from bench.util import Run, cpu_seconds, free_port, stop_process, summary

CLIENTS = 100
BODY = b'{"status": "healthy"}'
#: What the raw app answers a POST: a finished read, as skyhop's ``?wait=`` answer looks.
READ_BODY = (b'{"request_id": "0", "name": "status", "status": "SUCCEEDED", "result": [], '
             b'"error": null, "log_bytes": 0}')


async def _raw(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    body = BODY
    if scope["method"] == "POST":  # read the request body, as any real route does
        while (await receive()).get("more_body"):
            pass
        body = READ_BODY
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def _starlette() -> Any:
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def health(request: Any) -> JSONResponse:
        return JSONResponse({"status": "healthy"})

    return Starlette(routes=[Route("/api/health", health, methods=["GET"])])


def main(kind: str, port: int) -> None:
    from hypercorn.config import Config
    from hypercorn.trio import serve

    config = Config()
    config.bind = [f"127.0.0.1:{port}"]
    config.accesslog = None
    config.keep_alive_timeout = 75.0
    app = _raw if kind == "asgi" else _starlette()
    from skyhop_core.server.main import tune_gc

    tune_gc()  # as the skyhop server does, so the comparison is of the work per request
    trio.run(serve, app, config)  # type: ignore[arg-type]


async def _load(endpoint: str, method: str, path: str, body: Any, seconds: float) -> int:
    done = [0]
    async with contextlib.AsyncExitStack() as stack:
        made = throughput.connections(endpoint, CLIENTS, stack)
        stop_at = time.perf_counter() + seconds

        async def worker(conn: Any) -> None:
            while time.perf_counter() < stop_at:
                await throughput.call(conn, method, path, body)
                done[0] += 1

        async with trio.open_nursery() as nursery:
            for conn in made:
                nursery.start_soon(worker, conn)
    return done[0]


def _cpu_per_request(pid: int, endpoint: str, method: str, path: str, body: Any,
                     seconds: float) -> tuple[float, float]:
    """(server CPU ms per request, requests/s)."""
    trio.run(_load, endpoint, method, path, body, 0.5)  # warm-up
    before = cpu_seconds(pid)[1]
    n = trio.run(_load, endpoint, method, path, body, seconds)
    return (cpu_seconds(pid)[1] - before) * 1000 / max(n, 1), n / seconds


def floor(run: Run) -> list[Figure]:
    seconds = 2.0 if run.quick else 5.0
    results: dict[str, tuple[float, float]] = {}
    for kind in ("asgi", "starlette"):
        port = free_port()
        proc = subprocess.Popen(
            [sys.executable, "-m", "bench.asgi_floor", kind, str(port)],
            cwd=str(Path(__file__).resolve().parent.parent),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
        )
        try:
            endpoint = f"http://127.0.0.1:{port}"
            wait_healthy(endpoint + "/api/health", proc, 20)
            results[kind] = _cpu_per_request(proc.pid, endpoint, "GET", "/api/health", None,
                                             seconds)
            if kind == "asgi":  # the reads figure's own clients against a no-op server
                reads = trio.run(throughput.closed_loop, endpoint, CLIENTS, 1.0, seconds)
        finally:
            stop_process(proc)
    server = run.server
    results["health"] = _cpu_per_request(server.pid, server.endpoint, "GET", "/api/health",
                                         None, seconds)
    path = f"/api/v1/status?wait={throughput.SUBMIT_WAIT:g}"
    results["read"] = _cpu_per_request(server.pid, server.endpoint, "POST", path,
                                       throughput.STATUS_BODY, seconds)
    base = results["asgi"][0]
    rows = [
        ("starlette", "hypercorn + Starlette, one route"),
        ("health", "skyhop GET /api/health"),
        ("read", "skyhop read (POST /api/v1/status?wait=)"),
    ]
    figures = [Figure("asgi_floor", "hypercorn (trio), raw ASGI app: CPU per request", "ms",
                      base, None, "", None, None, None,
                      f"{CLIENTS} clients for {seconds:g} s; {results['asgi'][1]:,.0f} req/s")]
    lat = summary(reads["lat"], 1000)
    figures.append(Figure(
        "asgi_floor", f"hypercorn (trio), raw ASGI app: {CLIENTS} read clients' latency", "ms",
        lat["p50"], lat["p99"], "", None, None, None,
        f"the reads figure's clients and requests against an app that answers at once: "
        f"{reads['rps']:,.0f} req/s, {len(reads['errors'])} errors — the floor of the "
        "reads figures on this stack", errors=len(reads["errors"])))
    for key, label in rows:
        cpu, rate = results[key]
        figures.append(Figure("asgi_floor", f"{label}: CPU per request", "ms", cpu, None,
                              "raw ASGI app on hypercorn", base, None, None,
                              f"{CLIENTS} clients for {seconds:g} s; {rate:,.0f} req/s"))
    return figures


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
