"""Services end to end on the local backend, against a real API server.

Replicas are real clusters running a real HTTP server (``replica_app/app.py`` under
hypercorn, in sandboxed local nodes whose port 8080 is mapped to a host port); the
tests call the service's real endpoint: both replicas serve, streaming and WebSockets
pass through, a killed replica is taken out and replaced, a version that never gets
ready stops launching, rolling and blue-green updates are checked by which version
answers, terminate-replica drains, down removes everything.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from servecalls import (
    FAST,
    get,
    make_tls,
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
        # spotlocal (tests/serve/spotlocal.py): the same nodes, sold as spot too.
        (root / "config.yaml").write_text(yaml.safe_dump(
            {"backends": {"local": local, "spotlocal": local}}))
        path = os.pathsep.join(filter(None, [str(Path(__file__).parent),
                                             os.environ.get("PYTHONPATH")]))
        server = ServerProcess(root, env={**FAST, "SKYHOP_LOCAL_NETWORK": "",
                                          "SKYHOP_SERVE_PORTS": port_range(),
                                          "SKYHOP_PLUGINS": "spotlocal", "PYTHONPATH": path})
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
    time.sleep(1.5)  # no launch/fail loop (rounds are 0.3 s apart): still the one replica
    assert replicas("never") == {1: ("FAILED_INITIAL_DELAY", 1)}
    reason = next(i["failure_reason"] for i in record("never")["replica_info"])
    assert "initial delay (2 s)" in reason and "The last probe: GET /missing: HTTP 404" in reason
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


def test_cli_up_status_down_over_tls(client: ServerProcess, tmp_path: Path) -> None:
    """service.tls: the CLI uploads the user's key and certificate, the load balancer
    serves HTTPS with them (the CA pinned, nothing else trusted), bad files fail
    `serve up` precisely and leave nothing behind."""
    import ssl

    pytest.importorskip("cryptography")
    ca, key, cert = make_tls(tmp_path)
    env = client.env

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "skyhop.cli", "serve", *args],
                              capture_output=True, text=True, env=env, timeout=120,
                              cwd=tmp_path)

    def write(name: str, tls: dict[str, str], **service: Any) -> Path:
        spec = tmp_path / name
        task = service_task(replicas=1, tls=tls)
        task["service"].update(service)
        spec.write_text(yaml.safe_dump(task))
        return spec

    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({**service_task(), "service": {"readiness_probe": "/",
                                                                  "replicas": "two"}}))
    out = cli("up", "-y", str(bad))
    assert out.returncode == 1
    assert f"{bad}: invalid value for 'service.replicas': 'two'" in out.stderr
    # A key file that is not there: said before anything is sent.
    with pytest.raises(sky.exceptions.TaskValidationError,
                       match="service.tls.keyfile: '/nowhere/key.pem' does not exist on this"):
        sky.serve.up(service_task(replicas=1, tls={"keyfile": "/nowhere/key.pem",
                                                   "certfile": str(cert)}), "cli")
    # A key that is not the certificate's, and a certificate that is no PEM: the server
    # says so; no service is left.
    (tmp_path / "other").mkdir()
    _, other_key, _ = make_tls(tmp_path / "other")
    (tmp_path / "nothing.pem").write_text("not a certificate\n")
    for tls, name, why in [
            ({"keyfile": other_key, "certfile": cert}, "cert.pem", "KEY_VALUES_MISMATCH"),
            ({"keyfile": key, "certfile": tmp_path / "nothing.pem"}, "nothing.pem", "")]:
        task = service_task(replicas=1, tls={k: str(v) for k, v in tls.items()})
        with pytest.raises(sky.exceptions.TaskValidationError,
                           match=f"service.tls: the certificate {name!r} and key "
                                 f"'key.pem' cannot be used together .*{why}"):
            sky.get(sky.serve.up(task, "cli"))
    # A bucket that is not there: refused before a replica is launched.
    with pytest.raises(sky.exceptions.StorageError, match=r"file_mounts\['/data'\].*'sh-no-bucket'"):
        sky.get(sky.serve.up({**service_task(replicas=1), "file_mounts": {
            "/data": "local://sh-no-bucket"}}, "cli"))  # fmt: skip
    assert sky.get(sky.serve.status()) == []
    out = cli("up", "-y", "-n", "cli", str(write("svc.yaml", {"keyfile": "key.pem",
                                                              "certfile": "cert.pem"})))
    assert out.returncode == 0, out.stderr
    assert "Endpoint: https://127.0.0.1:" in out.stdout
    wait_ready("cli", 1)
    out = cli("status", "cli")
    assert "READY" in out.stdout and "cli" in out.stdout and "Service Replicas" in out.stdout
    assert "PRIVATE KEY" not in out.stdout
    endpoint = cli("status", "cli", "--endpoint").stdout.strip()
    assert endpoint.startswith("https://127.0.0.1:") and record("cli")["endpoint"] == endpoint
    pinned = ssl.create_default_context(cafile=str(ca))
    assert get(endpoint, verify=pinned).text == "v1 r1"
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        get(endpoint, verify=ssl.create_default_context())  # not a public CA's
    with pytest.raises(httpx.HTTPError):
        get(endpoint.replace("https://", "http://"))  # no plain HTTP on that port
    # The scheme stays: an update cannot drop tls.
    with pytest.raises(ValueError, match="cannot add or remove service.tls"):
        sky.get(sky.serve.update(service_task(replicas=1), "cli"))
    # A renewed certificate (here from another CA) is served to new connections on the
    # same endpoint as soon as the update is in; a connection opened before it stays up
    # (the load balancer was not restarted).
    (tmp_path / "renewed").mkdir()
    new_ca, new_key, new_cert = make_tls(tmp_path / "renewed")
    with httpx.Client(verify=pinned, trust_env=False, timeout=30) as before:
        assert before.get(endpoint + "/").text == "v1 r1"
        out = cli("update", "-y", "cli", str(write("renewed.yaml", {
            "keyfile": str(new_key), "certfile": str(new_cert)})))  # fmt: skip
        assert out.returncode == 0, out.stderr
        renewed = ssl.create_default_context(cafile=str(new_ca))

        def serves_renewed() -> bool:
            try:
                return get(endpoint, verify=renewed).text == "v1 r1"
            except httpx.ConnectError:
                return False

        wait_for(serves_renewed, 60, "the renewed certificate on " + endpoint)
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            get(endpoint, verify=pinned)  # a new connection gets the renewed one
        assert before.get(endpoint + "/").text == "v1 r1"  # the open connection
    assert cli("status", "cli", "--endpoint").stdout.strip() == endpoint
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


def test_a_failed_controller_is_restarted_then_given_up_on(client: ServerProcess) -> None:
    """A controller that fails (here: its row's autoscaler state is corrupted under it)
    leaves the service CONTROLLER_FAILED with the reason, and its own server starts it
    again after a backoff: same endpoint, same replica. Failing every time, it is given
    up on after SKYHOP_SERVE_MAX_CONTROLLER_RESTARTS (2 here) and stays failed."""
    import sqlalchemy as sa

    policy = {"min_replicas": 1, "max_replicas": 2, "target_qps_per_replica": 1000}
    _, endpoint = sky.get(sky.serve.up(service_task(policy=policy), service_name="crash"))
    wait_ready("crash", 1)
    db = sa.create_engine(f"sqlite:///{client.root / 'skyhop.db'}")

    def corrupt_until_failed() -> None:
        def failed() -> bool:
            with db.begin() as conn:
                conn.execute(sa.text("UPDATE services SET autoscaler = :bad WHERE name = 'crash'"
                                     " AND status != 'CONTROLLER_FAILED'"),
                             {"bad": '{"target": "broken"}'})
            return record("crash")["status"].value == "CONTROLLER_FAILED"
        wait_for(failed, 30, "CONTROLLER_FAILED", poll=0.05)

    def repair() -> None:
        with db.begin() as conn:
            conn.execute(sa.text("UPDATE services SET autoscaler = '{}' WHERE name = 'crash'"))

    try:
        corrupt_until_failed()
        assert "TypeError" in record("crash")["failure_reason"]
        repair()
        # Restarted after the backoff (1 s): the same replica serves at the same endpoint.
        wait_for(lambda: record("crash")["status"].value == "READY", 30, "READY again")
        assert get(endpoint).text == "v1 r1" and set(replicas("crash")) == {1}
        assert record("crash")["failure_reason"] is None
        log = io.StringIO()
        sky.serve.tail_logs("crash", "controller", follow=False, output_stream=log)
        assert "Restarting the controller in 1.0 s (restart 1 of at most 2)" in log.getvalue()
        assert "The controller is running again." in log.getvalue()
        # Broken for good: the second restart fails too, and then no more.
        corrupt_until_failed()
        wait_for(lambda: "not restarted again" in (record("crash")["failure_reason"] or ""),
                 30, "given up")
        reason = record("crash")["failure_reason"]
        assert reason.startswith("TypeError") and "failed 3 times" in reason
        time.sleep(2.5)  # longer than the next backoff would be (4 s from the last: no)
        assert record("crash")["status"].value == "CONTROLLER_FAILED"
        with pytest.raises(httpx.ConnectError):
            httpx.get(endpoint, trust_env=False, timeout=5)
    finally:
        repair()
        db.dispose()
    # `serve down` starts it again to take the service down.
    sky.get(sky.serve.down("crash"))
    assert sky.get(sky.serve.status("crash")) == []


def test_spot_replicas_with_on_demand_fallback(client: ServerProcess) -> None:
    """SkyPilot's fallbacks: base_ondemand_fallback_replicas on-demand replicas always
    run next to the spot ones; dynamic_ondemand_fallback adds one on-demand replica for
    each wanted spot replica that is not READY, and takes it away once the spot one is.
    A preempted spot replica (its node gone) is covered meanwhile. The backend is
    tests/serve/spotlocal.py: local nodes with a spot offer."""
    task = service_task(policy={"min_replicas": 2, "base_ondemand_fallback_replicas": 1,
                                "dynamic_ondemand_fallback": True})
    task["resources"] = {"infra": "spotlocal", "use_spot": True}
    sky.get(sky.serve.up(task, service_name="spot"))

    def kinds(ready_only: bool = False) -> dict[int, bool]:
        """replica ID -> launched as spot (what its cluster's handle says)."""
        return {i["replica_id"]: i["is_spot"] for i in record("spot")["replica_info"]
                if (i["status"].value == "READY" or not ready_only)
                and i["status"].value not in ("SHUTTING_DOWN", "PREEMPTED")}

    # One spot replica (2 - 1 base); on-demand: the base one and a cover for the spot one
    # until it is READY.
    def when(check: Any) -> Any:
        """``kinds()`` when ``check`` holds for it, else None (for wait_for)."""
        return lambda: (lambda k: k if check(k) else None)(kinds())

    seen = wait_for(when(lambda k: len(k) == 3), 30, "3 replicas")
    assert sorted(seen.values()) == [False, False, True], seen
    # The spot one READY: the cover goes; one spot, one on-demand remain.
    wait_for(lambda: sorted(kinds(ready_only=True).values()) == [False, True]
             and len(kinds()) == 2, 90, "1 spot + 1 on-demand READY")
    for info in record("spot")["replica_info"]:
        if info["status"].value == "READY":  # its cluster says the same
            assert info["handle"]["use_spot"] is info["is_spot"], info
    (spot_id,) = [i for i, spot in kinds().items() if spot]
    # Preemption: the spot node goes away under the replica.
    cluster_dir = client.root / "backends" / "spotlocal" / "clusters" / f"spot-{spot_id}"
    assert cluster_dir.is_dir()
    kill_processes_under(cluster_dir)
    wait_for(lambda: spot_id not in kinds(), 30, "the spot replica out")
    # Covered: a new spot replica and an on-demand one for it while it comes up...
    covered = wait_for(when(lambda k: sorted(k.values()) == [False, False, True]
                            and spot_id not in k), 30, "an on-demand cover")
    # ...which goes again once the new spot replica is READY.
    wait_for(lambda: sorted(kinds(ready_only=True).values()) == [False, True]
             and len(kinds()) == 2, 90, "back to 1 spot + 1 on-demand")
    assert max(covered) > spot_id
    sky.get(sky.serve.down("spot"))
