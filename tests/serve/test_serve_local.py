"""Services end to end on the local backend, against a real API server.

Replicas are real clusters running a real HTTP server (``replica_app/app.py`` under
hypercorn, in sandboxed local nodes whose port 8080 is mapped to a host port); the
tests call the service's real endpoint: both replicas serve, streaming and WebSockets
pass through, a killed replica is taken out and replaced, a version that never gets
ready stops launching, rolling and blue-green updates are checked by which version
answers, terminate-replica drains, down removes everything.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml
from servecalls import (
    FAST,
    get,
    node_network_config,
    port_range,
    record,
    replicas,
    service_task,
    wait_for,
    wait_ready,
    websocket_echo,
)
from serverproc import ServerProcess, kill_processes_under

import skyhop as sky
from skyhop.client import ApiClient, using

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def serve_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """Sandboxed local nodes with a network of their own (a bridge of this test's), so
    two replicas listen on the same port 8080 at different addresses, as on machines."""
    root = tmp_path_factory.mktemp("serve")
    with node_network_config() as local:
        root.mkdir(parents=True, exist_ok=True)
        (root / "config.yaml").write_text(yaml.safe_dump({"backends": {"local": local}}))
        server = ServerProcess(root, env={**FAST, "SKYHOP_LOCAL_NETWORK": "",
                                          "SKYHOP_SERVE_PORTS": port_range()})
        server.start()
        yield server
        server.stop()
        kill_processes_under(root)


@pytest.fixture
def client(serve_server: ServerProcess) -> Iterator[ServerProcess]:
    with using(ApiClient(serve_server.endpoint, auto_start=False)):
        yield serve_server
        for r in sky.get(sky.serve.status()):
            sky.get(sky.serve.down(r["name"], purge=True))


def clusters() -> set[str]:
    return {c["name"] for c in sky.get(sky.status())}


def test_two_replicas_serve_stream_and_pass_websockets(client: ServerProcess) -> None:
    name, endpoint = sky.get(sky.serve.up(service_task(), service_name="web"))
    assert name == "web" and endpoint.startswith("http://127.0.0.1:")
    # The endpoint listens at once; with no replica ready it says so.
    early = get(endpoint)
    assert early.status_code == 503 and "no ready replica" in early.json()["error"]
    wait_ready("web", 2)
    rec = record("web")
    assert rec["status"] is sky.ServiceStatus.READY
    assert {i["name"] for i in rec["replica_info"]} == {"web-1", "web-2"}
    assert {"web-1", "web-2"} <= clusters()
    assert rec["load_balancing_policy"] == "least_load" and rec["policy"] == "Fixed replicas: 2"
    answers = {get(endpoint).text for _ in range(10)}
    assert answers == {"v1 r1", "v1 r2"}  # both replicas serve (ties rotate)
    # A body goes up, methods pass through.
    assert httpx.post(endpoint + "/echo", content=b"x" * 100_000, trust_env=False).content \
        == b"x" * 100_000
    assert httpx.put(endpoint + "/echo?q=1", content=b"put", trust_env=False).content == b"put"
    # Server-sent events arrive as they are produced, not at the end.
    with httpx.stream("GET", endpoint + "/stream", trust_env=False, timeout=10) as response:
        started = time.monotonic()
        chunks = response.iter_raw()
        first = next(chunks)
        assert first.startswith(b"data: 0") and time.monotonic() - started < 0.35
        rest = b"".join(chunks)
        assert b"data: 2" in rest and time.monotonic() - started > 0.7
    assert websocket_echo(endpoint, "hello") in ("v1 r1: hello", "v1 r2: hello")
    # Each replica saw SKYHOP_SERVE_REPLICA_ID (the app answers with it); the replica log.
    out = subprocess.run(
        [sys.executable, "-m", "skyhop.cli", "serve", "logs", "web", "--controller",
         "--no-follow"], capture_output=True, text=True, env=client.env, timeout=60,
    )
    assert "Replica 1: STARTING -> READY" in out.stdout, out.stderr


def test_a_killed_replica_is_taken_out_at_once_and_replaced(client: ServerProcess) -> None:
    _, endpoint = sky.get(sky.serve.up(service_task(), service_name="kill"))
    wait_ready("kill", 2)
    victim = next(i["endpoint"] for i in record("kill")["replica_info"] if i["replica_id"] == 1)
    with pytest.raises(httpx.HTTPError):
        httpx.get(victim + "/die", trust_env=False, timeout=5)
    # The load balancer retries refused connections on the other replica: no errors.
    codes = [get(endpoint).status_code for _ in range(20)]
    assert codes == [200] * 20
    wait_for(lambda: replicas("kill").get(1, ("",))[0] in ("NOT_READY", "FAILED_PROBING")
             or 1 not in replicas("kill"), 30, "replica 1 out of service")
    wait_for(lambda: replicas("kill").get(3, ("",))[0] == "READY", 90, "replacement READY")
    wait_for(lambda: "kill-1" not in clusters(), 30, "kill-1 torn down")
    assert {get(endpoint).text for _ in range(10)} == {"v1 r2", "v1 r3"}
    # Failed probing: kept, visible, until purged. (On a starved machine the health
    # watcher may call the cluster INIT first: then it is PREEMPTED, and gone.)
    if replicas("kill").get(1, ("PREEMPTED",))[0] != "PREEMPTED":
        assert replicas("kill")[1][0] == "FAILED_PROBING"
        with pytest.raises(ValueError, match="--purge"):
            sky.get(sky.serve.terminate_replica("kill", 1))
        sky.get(sky.serve.terminate_replica("kill", 1, purge=True))
    assert 1 not in replicas("kill")


def test_a_version_that_never_gets_ready_stops_launching(client: ServerProcess) -> None:
    task = service_task(replicas=1, probe={"path": "/missing", "initial_delay_seconds": 2})
    _, endpoint = sky.get(sky.serve.up(task, service_name="never"))
    wait_for(lambda: record("never")["status"].value == "FAILED", 60, "service FAILED")
    time.sleep(3)  # no launch/fail loop: still the one replica
    assert replicas("never") == {1: ("FAILED_INITIAL_DELAY", 1)}
    assert get(endpoint).status_code == 503
    # An update brings a fixed version up.
    sky.get(sky.serve.update(service_task(replicas=1), "never"))
    wait_ready("never", 1, version=2)
    assert get(endpoint).text == "v1 r2"


def _answers_during(endpoint: str, stop: threading.Event, seen: list[str]) -> None:
    while not stop.is_set():
        try:
            response = httpx.get(endpoint, trust_env=False, timeout=10)
            seen.append(response.text if response.status_code == 200 else str(response.status_code))
        except httpx.HTTPError as exc:
            seen.append(type(exc).__name__)
        time.sleep(0.05)


def test_rolling_then_blue_green_updates(client: ServerProcess) -> None:
    _, endpoint = sky.get(sky.serve.up(service_task(), service_name="roll"))
    wait_ready("roll", 2)
    # Rolling: new replicas come up, old ones go once enough new ones are READY; no
    # request fails meanwhile.
    stop, seen = threading.Event(), []  # type: ignore[var-annotated]
    loader = threading.Thread(target=_answers_during, args=(endpoint, stop, seen))
    loader.start()
    try:
        sky.get(sky.serve.update(service_task(version=2), "roll"))
        wait_for(lambda: set(replicas("roll").values()) == {("READY", 2)}, 120, "all v2")
    finally:
        stop.set()
        loader.join()
    assert seen and all(s.startswith("v") for s in seen), set(seen)
    assert {get(endpoint).text.split()[0] for _ in range(6)} == {"v2"}
    # Blue-green: traffic stays on v2 until v3 has its replicas READY, then switches;
    # it never mixes.
    stop, seen = threading.Event(), []
    loader = threading.Thread(target=_answers_during, args=(endpoint, stop, seen))
    loader.start()
    try:
        sky.get(sky.serve.update(service_task(version=3), "roll", mode="blue_green"))
        wait_for(lambda: set(replicas("roll").values()) == {("READY", 3)}, 120, "all v3")
        time.sleep(0.5)
    finally:
        stop.set()
        loader.join()
    versions = [s.split()[0] for s in seen]
    assert set(versions) == {"v2", "v3"}, set(seen)
    switch = versions.index("v3")
    assert set(versions[:switch]) == {"v2"} and set(versions[switch:]) == {"v3"}
    # Only the service section changes: the running replicas are relabelled.
    before = set(replicas("roll"))
    sky.get(sky.serve.update(service_task(version=3, load_balancing_policy="round_robin"),
                             "roll"))
    wait_for(lambda: {v for _, v in replicas("roll").values()} == {4}, 30, "relabelled")
    assert set(replicas("roll")) == before
    assert record("roll")["load_balancing_policy"] == "round_robin"


def test_terminate_replica_drains_then_down_removes_everything(client: ServerProcess) -> None:
    _, endpoint = sky.get(sky.serve.up(service_task(replicas=1), service_name="drain"))
    wait_ready("drain", 1)
    result: list[httpx.Response] = []
    slow = threading.Thread(target=lambda: result.append(get(endpoint, "/slow?s=3")))
    slow.start()
    time.sleep(0.5)
    sky.get(sky.serve.terminate_replica("drain", 1))
    assert replicas("drain")[1][0] == "SHUTTING_DOWN"
    slow.join()
    assert result[0].status_code == 200 and result[0].text == "v1 r1"  # drained, not cut
    wait_for(lambda: 1 not in replicas("drain"), 30, "replica 1 gone")
    wait_ready("drain", 1)  # replaced: the service wants one replica
    assert "drain-1" not in clusters()
    sky.get(sky.serve.down("drain"))
    assert sky.get(sky.serve.status("drain")) == []
    assert not {c for c in clusters() if c.startswith("drain-")}
    with pytest.raises(httpx.ConnectError):
        httpx.get(endpoint, trust_env=False, timeout=5)


def test_cli_up_status_down(client: ServerProcess, tmp_path: Path) -> None:
    spec = tmp_path / "svc.yaml"
    spec.write_text(yaml.safe_dump(service_task(replicas=1)))
    env = client.env

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "skyhop.cli", "serve", *args],
                              capture_output=True, text=True, env=env, timeout=120)

    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({**service_task(), "service": {"readiness_probe": "/",
                                                                  "replicas": "two"}}))
    out = cli("up", "-y", str(bad))
    assert out.returncode == 1
    assert f"{bad}: invalid value for 'service.replicas': 'two'" in out.stderr
    out = cli("up", "-y", "-n", "cli", str(spec))
    assert out.returncode == 0, out.stderr
    assert "Endpoint: http://127.0.0.1:" in out.stdout
    wait_ready("cli", 1)
    out = cli("status", "cli")
    assert "READY" in out.stdout and "cli" in out.stdout and "Service Replicas" in out.stdout
    endpoint = cli("status", "cli", "--endpoint").stdout.strip()
    assert get(endpoint).text == "v1 r1"
    out = cli("down", "-y", "cli")
    assert out.returncode == 0, out.stderr
    assert sky.get(sky.serve.status()) == []


def test_the_async_sdk_runs_a_service(client: ServerProcess) -> None:
    import io

    import trio

    from skyhop import aio

    async def main() -> tuple[str, list, str]:
        with aio.using(aio.AsyncApiClient(client.endpoint)):
            return await calls()

    async def calls() -> tuple[str, list, str]:
        name, endpoint = await aio.serve.up(service_task(replicas=1), "async",
                                            stream_logs=False)
        while True:
            (rec,) = await aio.serve.status("async")
            if rec["status"] is sky.ServiceStatus.READY:
                break
            await trio.sleep(0.3)
        out = io.StringIO()
        await aio.serve.tail_logs("async", sky.serve.ServiceComponent.LOAD_BALANCER,
                                  follow=False, output_stream=out)
        await aio.serve.down("async", stream_logs=False)
        return endpoint, await aio.serve.status(), out.getvalue()

    with using(ApiClient(client.endpoint, auto_start=False)):
        endpoint, after, lb_log = trio.run(main)
    assert endpoint.startswith("http://") and after == []
    assert "Ready replicas: [1]." in lb_log
