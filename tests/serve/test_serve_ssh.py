"""A smoke test of serving on the ssh backend's fake hosts (sshd in network namespaces):
two replicas on two hosts of a pool, both answering through the endpoint, then down
releases the hosts."""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from servecalls import FAST, get, port_range, record, service_task, wait_ready

import skyhop as sky
from skyhop.client import ApiClient, using

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "plugins" / "ssh"))
from ssh_netns import FakeHosts, fake_hosts_or_skip  # noqa: E402

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def hosts() -> Iterator[FakeHosts]:
    with fake_hosts_or_skip(2, "serve on ssh") as fake:
        yield fake


def test_two_replicas_on_two_ssh_hosts(hosts: FakeHosts, make_server: Any) -> None:
    root = Path(f"/tmp/skyhop-serve-ssh-{hosts.tag}")  # short: agent sockets live here
    root.mkdir()
    try:
        (root / "ssh_node_pools.yaml").write_text(yaml.safe_dump({"lab": hosts.pool([0, 1])}))
        server = make_server(root, env={**FAST, "SKYHOP_SERVE_PORTS": port_range()})
        task = service_task()
        task["resources"] = {"infra": "ssh/lab"}
        with using(ApiClient(server.endpoint, auto_start=False)):
            _, endpoint = sky.get(sky.serve.up(task, service_name="sshweb"))
            try:
                wait_ready("sshweb", 2, timeout=180)
            except AssertionError:
                log = root / "serve" / "sshweb.controller.log"
                raise AssertionError(log.read_text()[-3000:] + str(record("sshweb"))) from None
            ips = {i["endpoint"] for i in record("sshweb")["replica_info"]}
            assert len(ips) == 2 and all(e.endswith(":8080") for e in ips)
            assert {get(endpoint).text for _ in range(10)} == {"v1 r1", "v1 r2"}
            sky.get(sky.serve.down("sshweb"))
        state = json.loads((root / "backends" / "ssh" / "hosts.json").read_text())
        assert state["hosts"] == {}, "down must release the hosts"
    finally:
        shutil.rmtree(root, ignore_errors=True)
