"""The load balancer in-process, against a real hypercorn upstream under trio.

In-flight counts (what ``least_load`` picks by) must come back to zero on every path:
a refused connection retried elsewhere, an upstream that breaks off mid-body, a client
that goes away mid-request. No ready replica is a 503 that says so; only unreachable
ones, a 502.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import httpx
import trio
from hypercorn.config import Config
from hypercorn.trio import serve
from serverproc import free_port

from skyhop_core.serve.load_balancer import LoadBalancer


async def upstream(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            await send({"type": message["type"] + ".complete"})
            if message["type"] == "lifespan.shutdown":
                return
    if scope["path"] == "/slow":
        await trio.sleep(30)
    await send({"type": "http.response.start", "status": 200, "headers": []})
    if scope["path"] == "/break":
        await send({"type": "http.response.body", "body": b"partial", "more_body": True})
        raise RuntimeError("the replica breaks off")
    await send({"type": "http.response.body", "body": scope["method"].encode()})


async def _with_upstream(test: Any) -> None:
    config = Config()
    config.bind = ["127.0.0.1:0"]
    config.accesslog = config.errorlog = None
    async with trio.open_nursery() as nursery:
        (bound,) = await nursery.start(partial(serve, upstream, config))
        await test(bound.removeprefix("http://"))
        nursery.cancel_scope.cancel()


def test_in_flight_counts_return_to_zero_on_every_path() -> None:
    refused: list[int] = []

    async def test(live: str) -> None:
        lb = LoadBalancer("svc", "least_load", on_connect_failure=refused.append)
        lb.set_ready({1: f"127.0.0.1:{free_port()}", 2: live})
        transport = httpx.ASGITransport(app=lb)  # type: ignore[arg-type]
        async with httpx.AsyncClient(transport=transport, base_url="http://lb") as client:
            for method in ("GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"):
                response = await client.request(method, "/")
                assert response.status_code == 200 and response.text == method
            assert refused and set(refused) == {1}  # retried on replica 2, reported
            broken = await client.get("/break")
            assert broken.content == b"partial"  # cut short, not hung
            with trio.move_on_after(0.5):
                await client.get("/slow")  # the client gives up mid-request
            assert lb.policy.in_flight == {}
            lb.set_ready({1: f"127.0.0.1:{free_port()}"})
            unreachable = await client.get("/")
            assert unreachable.status_code == 502
            lb.set_ready({})
            none = await client.get("/")
            assert none.status_code == 503 and "no ready replica" in none.json()["error"]
            assert lb.policy.in_flight == {}
        assert lb.qps() > 0

    trio.run(_with_upstream, test)
