"""Services that outlive their server, scale on load, and move between API replicas.

- Autoscaling under a real (bounded) httpx load loop with the delays shrunk: up to
  max_replicas while the load lasts, back to min_replicas after it; the autoscaler's
  target is in the service's row.
- SIGKILL of the API server mid-service, then a restart on the same path: the same
  endpoint answers again from the same replicas (no new cluster, none leaked), and the
  QPS window from before the kill still counts.
- Two API servers on one PostgreSQL: one owner per service (a lease); killing the owner
  hands the service to the other, which binds the same endpoint and keeps the replicas.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
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
)
from serverproc import ServerProcess, kill_processes_under

import skyhop as sky
from skyhop.client import ApiClient, using

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def local_network() -> Iterator[dict[str, Any]]:
    with node_network_config() as local:
        yield local


def _root(tmp_path: Path, local: dict[str, Any]) -> Path:
    root = tmp_path / "state"
    root.mkdir(parents=True, exist_ok=True)
    (root / "config.yaml").write_text(yaml.safe_dump({"backends": {"local": local}}))
    return root


def _env(**extra: str) -> dict[str, str]:
    return {**FAST, "SKYHOP_LOCAL_NETWORK": "", "SKYHOP_SERVE_PORTS": port_range(), **extra}


def clusters() -> set[str]:
    return {c["name"] for c in sky.get(sky.status())}


def _load(endpoint: str, stop: threading.Event, qps: float, codes: list[int]) -> None:
    with httpx.Client(trust_env=False, timeout=10) as client:
        while not stop.is_set():
            started = time.monotonic()
            try:
                codes.append(client.get(endpoint).status_code)
            except httpx.HTTPError:
                codes.append(0)
            time.sleep(max(0.0, 1 / qps - (time.monotonic() - started)))


def test_scales_up_under_load_and_down_after(
    make_server: Callable[..., ServerProcess], tmp_path: Path, local_network: dict[str, Any]
) -> None:
    server = make_server(_root(tmp_path, local_network), env=_env())
    policy = {"min_replicas": 1, "max_replicas": 2, "target_qps_per_replica": 2,
              "upscale_delay_seconds": 1, "downscale_delay_seconds": 2}
    with using(ApiClient(server.endpoint, auto_start=False)):
        _, endpoint = sky.get(sky.serve.up(service_task(policy=policy), service_name="auto"))
        wait_ready("auto", 1)
        assert record("auto")["policy"].startswith("Autoscaling from 1 to 2")
        stop, codes = threading.Event(), []  # type: ignore[var-annotated]
        loader = threading.Thread(target=_load, args=(endpoint, stop, 8.0, codes))
        loader.start()
        try:
            wait_for(lambda: sum(s == "READY" for s, _ in replicas("auto").values()) == 2,
                     90, "scaled up to 2 READY")
            assert record("auto")["autoscaler"]["target"] == 2
        finally:
            stop.set()
            loader.join()
        assert codes.count(200) == len(codes), set(codes)
        # No load: after the 4 s window and the 2 s downscale delay, back to one.
        wait_for(lambda: len(replicas("auto")) == 1, 60, "scaled down to 1")
        assert record("auto")["autoscaler"]["target"] == 1
        assert get(endpoint).status_code == 200
        sky.get(sky.serve.down("auto"))


def test_a_killed_server_resumes_its_service_on_restart(
    make_server: Callable[..., ServerProcess], tmp_path: Path, local_network: dict[str, Any]
) -> None:
    root = _root(tmp_path, local_network)
    env = _env(SKYHOP_SERVE_QPS_WINDOW_SECONDS="60")
    server = make_server(root, env=env)

    def window() -> int:
        """Requests in the QPS window the controller last saved in the row."""
        return sum((record("phoenix")["autoscaler"].get("window") or {}).get("counts", []))

    with using(ApiClient(server.endpoint, auto_start=False)):
        _, endpoint = sky.get(sky.serve.up(service_task(), service_name="phoenix"))
        wait_ready("phoenix", 2)
        for _ in range(30):
            assert get(endpoint).status_code == 200
        wait_for(lambda: window() >= 30, 30, "the window saved")
        before = (set(replicas("phoenix")), clusters())
    server.kill(signal.SIGKILL)
    with pytest.raises(httpx.ConnectError):
        httpx.get(endpoint, trust_env=False, timeout=5)  # the LB died with its server
    again = make_server(root, port=server.port, env=env)
    with using(ApiClient(again.endpoint, auto_start=False)):
        wait_for(lambda: get_ok(endpoint), 30, "the endpoint answers again")
        assert {get(endpoint).text for _ in range(10)} == {"v1 r1", "v1 r2"}
        assert (set(replicas("phoenix")), clusters()) == before  # no new or leaked replica
        assert record("phoenix")["status"].value == "READY"
        # The QPS window survived: the requests before the kill still count (the autoscaler
        # of a loaded service does not start from zero).
        wait_for(lambda: window() >= 40, 30, "the old and new requests in the window")
        sky.get(sky.serve.down("phoenix"))
        assert not clusters()


def get_ok(endpoint: str) -> bool:
    try:
        return httpx.get(endpoint, trust_env=False, timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


def owner_pid(db: sa.Engine, name: str) -> int | None:
    with db.connect() as conn:
        row = conn.execute(sa.text(
            "SELECT s.pid FROM services v JOIN servers s ON s.server_id = v.owner "
            "WHERE v.name = :n"), {"n": name}).first()
    return None if row is None else int(row[0])


def test_two_api_servers_on_postgres_hand_a_service_over(
    make_server: Callable[..., ServerProcess], tmp_path: Path, pg_url: str,
    local_network: dict[str, Any],
) -> None:
    root = _root(tmp_path, local_network)
    env = _env(SKYHOP_DB_URL=pg_url, SKYHOP_SERVER_LEASE_SECONDS="2")
    a, b = make_server(root, env=env), make_server(root, env=env)
    db = sa.create_engine(pg_url)
    try:
        with using(ApiClient(a.endpoint, auto_start=False)):
            _, endpoint = sky.get(sky.serve.up(service_task(), service_name="ha"))
            wait_ready("ha", 2)
            assert owner_pid(db, "ha") == a.proc.pid  # type: ignore[union-attr]
            before = set(replicas("ha"))
        a.kill(signal.SIGKILL)
        with using(ApiClient(b.endpoint, auto_start=False)):
            wait_for(lambda: owner_pid(db, "ha") == b.proc.pid, 30,  # type: ignore[union-attr]
                     "b owns the service")
            wait_for(lambda: get_ok(endpoint), 30, "the endpoint answers from b")
            assert {get(endpoint).text for _ in range(10)} == {"v1 r1", "v1 r2"}
            assert set(replicas("ha")) == before
            sky.get(sky.serve.down("ha"))
            assert sky.get(sky.serve.status()) == []
    finally:
        db.dispose()
        kill_processes_under(root)


def test_without_node_networks_the_lb_targets_the_mapped_port(
    make_server: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    """Nodes on the host's network: port 8080 is mapped to a free loopback port, and the
    load balancer sends to what the cluster record says."""
    server = make_server(tmp_path / "off", env={**FAST, "SKYHOP_SERVE_PORTS": port_range()})
    with using(ApiClient(server.endpoint, auto_start=False)):
        _, endpoint = sky.get(sky.serve.up(service_task(replicas=1), service_name="mapped"))
        wait_ready("mapped", 1)
        (info,) = record("mapped")["replica_info"]
        (cluster,) = sky.get(sky.status(["mapped-1"]))
        assert info["endpoint"] == f"http://{cluster['handle'].ports[8080]}"
        assert not info["endpoint"].endswith(":8080")
        assert get(endpoint).text == "v1 r1"
        sky.get(sky.serve.down("mapped"))
