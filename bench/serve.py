"""Services: what the load balancer adds, and how fast the service reacts.

One API server of its own (sandboxed local nodes on a bridge of the run's, so replicas
listen on the same port at their own addresses), replicas running the tests' replica
app (``tests/serve/replica_app/app.py``: hypercorn answering a short text). Measured in
the same run:

- **added latency**: ``GET /`` through the service endpoint vs straight to the replica,
  one client, sequential requests on a kept-alive connection: p50/p99 of each.
- **throughput**: requests/s with 1 and with 50 concurrent clients (asyncio loops on one
  httpx.AsyncClient pool of as many connections) through the endpoint vs straight to
  the replica.
- **death to removal**: a replica of two is SIGKILLed (its app's ``/die``) while a
  client keeps calling the endpoint; time until the replica is out of the ready set
  (the load balancer's log line; no client request fails meanwhile — counted).
- **load to scale-up**: min 1 / max 2 replicas, ``target_qps_per_replica`` 5 and no
  upscale delay; from the start of a 20 QPS load: until the autoscaler's target is 2,
  and until the second replica serves.

Server settings: ``SKYHOP_SERVE_PROBE_SECONDS`` 2 (production default 10),
``SKYHOP_SERVE_QPS_WINDOW_SECONDS`` 10 (default 60).
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

from bench.report import Figure
from bench.servers import ApiServer
from bench.util import Run, environment, percentile

NAME = "serve"
APP = Path(__file__).resolve().parents[1] / "tests" / "serve" / "replica_app"


def _task(replicas: int | None = 1, policy: dict[str, Any] | None = None) -> dict[str, Any]:
    service: dict[str, Any] = {"readiness_probe": {"path": "/health",
                                                   "initial_delay_seconds": 120},
                               "ports": 8080}
    if policy:
        service["replica_policy"] = policy
    else:
        service["replicas"] = replicas
    return {"name": "bench", "workdir": str(APP), "resources": {"infra": "local"},
            "run": f"exec {sys.executable} app.py 8080", "service": service}


def _wait(predicate: Any, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("the service did not get there in time")
        time.sleep(0.1)


def _record(name: str) -> dict[str, Any]:
    import skyhop as sky

    return sky.get(sky.serve.status(name))[0]  # type: ignore[no-any-return]


def _ready(name: str) -> list[dict[str, Any]]:
    return [r for r in _record(name)["replica_info"] if r["status"].value == "READY"]


def _latencies(url: str, n: int) -> list[float]:
    with httpx.Client(trust_env=False) as client:
        client.get(url)
        out = []
        for _ in range(n):
            start = time.perf_counter()
            client.get(url).raise_for_status()
            out.append((time.perf_counter() - start) * 1000)
    return out


async def _throughput(url: str, clients: int, seconds: float) -> float:
    """Requests/s of ``clients`` concurrent loops on one pool of as many connections
    (built and warmed before the clock starts: an httpx client's set-up is not the
    load balancer's cost)."""
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(trust_env=False, timeout=30, limits=limits) as client:
        await asyncio.gather(*(client.get(url) for _ in range(clients)))
        done = 0
        deadline = time.perf_counter() + seconds

        async def one() -> None:
            nonlocal done
            while time.perf_counter() < deadline:
                (await client.get(url)).raise_for_status()
                done += 1

        start = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(clients)))
        return done / (time.perf_counter() - start)


def _network(root: Path) -> tuple[dict[str, Any], str]:
    bridge = f"skv{os.getpid() % 100000}"
    return {"backends": {"local": {"network": {
        "enabled": "on", "bridge": bridge, "subnet": f"10.151.{os.getpid() % 250}.0/24",
        "registry": str(root / "addresses"), "egress": "none",
    }}}}, bridge  # fmt: skip


def serve_figures(run: Run) -> list[Figure]:
    import skyhop as sky

    server = ApiServer()
    config, bridge = _network(server.root)
    (server.root / "config.yaml").write_text(yaml.safe_dump(config))
    server.env.update({"SKYHOP_LOCAL_NETWORK": "on", "SKYHOP_SERVE_PROBE_SECONDS": "2",
                       "SKYHOP_SERVE_QPS_WINDOW_SECONDS": "10",
                       "SKYHOP_SERVE_PORTS": "39100-39199"})
    figures: list[Figure] = []
    try:
        server.start()
        with environment(server.env):
            figures += _overhead(run)
            figures += _death_to_removal(server)
            figures += _scale_up()
            for r in sky.get(sky.serve.status()):
                sky.get(sky.serve.down(r["name"], purge=True))
    finally:
        server.cleanup()
        subprocess.run(["ip", "link", "del", bridge], capture_output=True)
    return figures


def _overhead(run: Run) -> list[Figure]:
    import skyhop as sky

    _, endpoint = sky.get(sky.serve.up(_task(1), service_name="bench-lb"))
    _wait(lambda: len(_ready("bench-lb")) == 1)
    direct = _ready("bench-lb")[0]["endpoint"]
    n = run.reps(300, 2000)
    via, straight = _latencies(endpoint + "/", n), _latencies(direct + "/", n)
    added = [a - b for a, b in zip(sorted(via), sorted(straight), strict=True)]
    figures = [Figure(
        NAME, "GET / through the load balancer (1 client)", "ms",
        p50=percentile(via, 50), p99=percentile(via, 99), baseline="straight to the replica",
        baseline_p50=percentile(straight, 50), baseline_p99=percentile(straight, 99),
        note=f"added p50 {percentile(added, 50):.2f} ms, p99 {percentile(added, 99):.2f} ms;"
             f" {n} requests each",
    )]
    seconds = 3.0 if run.quick else 10.0
    for clients in (1, 50):
        lb = asyncio.run(_throughput(endpoint + "/", clients, seconds))
        base = asyncio.run(_throughput(direct + "/", clients, seconds))
        figures.append(Figure(
            NAME, f"throughput, {clients} client(s)", "req/s", p50=lb,
            baseline="straight to the replica", baseline_p50=base,
            note=f"{lb / base:.0%} of direct; {seconds:g} s each",
        ))
    sky.get(sky.serve.down("bench-lb"))
    return figures


def _death_to_removal(server: ApiServer) -> list[Figure]:
    import skyhop as sky

    _, endpoint = sky.get(sky.serve.up(_task(2), service_name="bench-die"))
    _wait(lambda: len(_ready("bench-die")) == 2)
    victim = next(r for r in _ready("bench-die") if r["replica_id"] == 1)["endpoint"]
    log = server.root / "serve" / "bench-die.load_balancer.log"
    stop, failures, served = threading.Event(), [0], [0]

    def load() -> None:
        with httpx.Client(trust_env=False, timeout=10) as client:
            while not stop.is_set():
                try:
                    client.get(endpoint + "/").raise_for_status()
                    served[0] += 1
                except httpx.HTTPError:
                    failures[0] += 1
                time.sleep(0.01)

    loader = threading.Thread(target=load)
    loader.start()
    time.sleep(0.5)
    lines_before = log.read_text().count("\n")
    killed = time.time()
    try:
        with httpx.Client(trust_env=False, timeout=5) as client:
            client.get(victim + "/die")
    except httpx.HTTPError:
        pass
    removed = None
    deadline = time.monotonic() + 60
    while removed is None and time.monotonic() < deadline:
        for line in log.read_text().splitlines()[lines_before:]:
            if re.search(r"Ready replicas: \[2\]", line):
                removed = time.time()
                break
        time.sleep(0.01)
    stop.set()
    loader.join()
    sky.get(sky.serve.down("bench-die"))
    if removed is None:
        return [Figure(NAME, "replica death to out of the ready set", "ms",
                       error="the replica was not removed within 60 s")]
    return [Figure(
        NAME, "replica death to out of the ready set (under load)", "ms",
        p50=(removed - killed) * 1000,
        note=f"client requests meanwhile: {served[0]} served, {failures[0]} failed "
             "(refused connections are retried on the other replica and trigger a probe; "
             "idle, removal waits for the next probe: <= SKYHOP_SERVE_PROBE_SECONDS)",
    )]


def _scale_up() -> list[Figure]:
    import skyhop as sky

    policy = {"min_replicas": 1, "max_replicas": 2, "target_qps_per_replica": 5,
              "upscale_delay_seconds": 0, "downscale_delay_seconds": 600}
    _, endpoint = sky.get(sky.serve.up(_task(policy=policy), service_name="bench-scale"))
    _wait(lambda: len(_ready("bench-scale")) == 1)
    stop = threading.Event()

    def load() -> None:
        with httpx.Client(trust_env=False, timeout=10) as client:
            while not stop.is_set():
                client.get(endpoint + "/")
                time.sleep(0.05)

    loader = threading.Thread(target=load)
    start = time.monotonic()
    loader.start()
    try:
        _wait(lambda: _record("bench-scale")["autoscaler"].get("target") == 2, 60)
        decided = time.monotonic() - start
        _wait(lambda: len(_ready("bench-scale")) == 2, 120)
        serving = time.monotonic() - start
    finally:
        stop.set()
        loader.join()
    sky.get(sky.serve.down("bench-scale"))
    return [
        Figure(NAME, "load to scale-up decision (20 QPS, target 5/replica)", "s", p50=decided,
               note="QPS over a 10 s window crosses 5 after ~2.5 s of load; no upscale delay"),
        Figure(NAME, "load to the second replica READY", "s", p50=serving,
               note="decision + local launch + first probe (probe interval 2 s)"),
    ]
