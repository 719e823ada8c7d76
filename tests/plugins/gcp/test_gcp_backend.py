"""The GCP backend's hooks on the fake Compute API: check and credentials, what
``instances.insert`` asks for (labels, ssh-keys, GPUs, spot, disks, image), firewall rules
for ports, a preempted spot VM in ``query``, and the core's failover loop around a zone
that is stocked out and a region out of quota."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import trio

from skyhop_core.exceptions import CapacityError, CredentialsError, ResourcesUnavailableError
from skyhop_core.models.records import NodeState, ProvisionRequest
from skyhop_core.models.resources import Resources
from skyhop_core.models.status import ClusterStatus, OptimizeTarget
from skyhop_core.models.task import Task
from skyhop_core.ops.provisioning import provision_with_failover
from skyhop_core.plugins import load_backends
from skyhop_core.requests.context import RequestContext, User
from skyhop_core.requests.logs import RequestLogWriter
from skyhop_core.services import Services
from skyhop_core.state import clusters as cl
from skyhop_core.state.db import open_store
from skyhop_core.testing.harness import make_context
from skyhop_gcp import catalog
from skyhop_gcp.plugin import GcpPlugin

CONFIG = {"poll_interval": 0.05, "ssh_wait_seconds": 60}


def context(tmp_path: Path, plugin: GcpPlugin, config: dict[str, Any] | None = None) -> Any:
    backends = load_backends([plugin], entry_points=False)
    return make_context(backends, "gcp", str(tmp_path), config=config or CONFIG, log=print)


def forged_credentials(real: Path, target: Path) -> Path:
    """The fake's key file with another private key: Google would refuse its JWTs."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    info = json.loads(real.read_text())
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    info["private_key"] = key.private_bytes(serialization.Encoding.PEM,
                                            serialization.PrivateFormat.PKCS8,
                                            serialization.NoEncryption()).decode()  # fmt: skip
    target.write_text(json.dumps(info))
    return target


def test_check_verifies_credentials_and_the_compute_api(
    gcp_env: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ctx = context(tmp_path, GcpPlugin())
    result = trio.run(GcpPlugin().skyhop_check, ctx)
    assert result.enabled, result
    assert result.details["project"] == gcp_env.project
    assert result.details["account"].startswith("skyhop-test@")

    forged = forged_credentials(gcp_env.credentials, tmp_path / "forged.json")
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(forged))
    refused = trio.run(GcpPlugin().skyhop_check, ctx)
    assert not refused.enabled and "invalid_grant" in refused.reason, refused
    assert "GOOGLE_APPLICATION_CREDENTIALS" in refused.fix
    resources = Resources(infra="gcp/us-central1", instance_type="e2-standard-2")
    request = ProvisionRequest(cluster_name="nocreds", num_nodes=1, resources=resources,
                               offer=catalog.offers_for(resources)[0])  # fmt: skip
    with pytest.raises(CredentialsError, match="rejected the credentials"):
        trio.run(GcpPlugin().skyhop_provision, ctx, request)

    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS")
    missing = trio.run(GcpPlugin().skyhop_check, ctx)
    assert not missing.enabled and "No GCP credentials found" in missing.reason
    assert gcp_env.instances() == []


def test_insert_asks_for_labels_keys_gpus_spot_and_disk(gcp_env: Any, tmp_path: Path) -> None:
    plugin = GcpPlugin()
    ctx = context(tmp_path, plugin)
    resources = Resources(infra="gcp/us-central1", accelerators="T4:2", use_spot=True,
                          disk_size=100, disk_tier="high", ports=8080)  # fmt: skip
    offers = sorted(catalog.offers_for(resources), key=lambda o: o.spot_price or 0)
    offer = offers[0]
    assert offer.instance_type.startswith("n1-") and offer.accelerators == {"T4": 2}
    request = ProvisionRequest(cluster_name="Train_Job.1", num_nodes=2, resources=resources,
                               offer=offer, ports=(8080,), use_spot=True)  # fmt: skip

    async def provision() -> Any:
        return await plugin.skyhop_provision(ctx, request)

    tokens_before = gcp_env.control("stats")["token_requests"]
    handle = trio.run(provision)
    assert handle.zone == offer.zone and [n.rank for n in handle.nodes] == [0, 1]
    inserts = gcp_env.control("inserts")["inserts"]
    assert len(inserts) == 2 and {i["zone"] for i in inserts} == {offer.zone}
    body = inserts[0]["body"]
    cluster_label = body["labels"]["skyhop-cluster"]
    assert cluster_label.startswith("train-job-1-")  # made a valid label value
    assert sorted(i["body"]["labels"]["skyhop-rank"] for i in inserts) == ["0", "1"]
    user, _, key = body["metadata"]["items"][0]["value"].partition(":")
    assert user == "skyhop" and key.startswith("ssh-ed25519 ")
    assert body["guestAccelerators"] == [{
        "acceleratorType": f"zones/{offer.zone}/acceleratorTypes/nvidia-tesla-t4",
        "acceleratorCount": 2}]  # fmt: skip
    assert body["scheduling"] == {"onHostMaintenance": "TERMINATE", "automaticRestart": False,
                                  "provisioningModel": "SPOT",
                                  "instanceTerminationAction": "DELETE"}  # fmt: skip
    params = body["disks"][0]["initializeParams"]
    assert params["diskSizeGb"] == "100" and params["diskType"].endswith("/pd-ssd")
    assert params["sourceImage"] == "projects/ubuntu-os-cloud/global/images/family/ubuntu-2204-lts"
    (rule,) = gcp_env.control("firewalls")["firewalls"]
    assert rule["allowed"] == [{"IPProtocol": "tcp", "ports": ["22", "8080"]}]
    assert rule["targetTags"] == body["tags"]["items"]
    fake = {i["name"]: i for i in gcp_env.instances()}
    head = fake[handle.head.instance_id]
    assert handle.head.ip == head["natIP"] and handle.head.extra["private_ip"] == head["networkIP"]
    assert handle.ports == {8080: f"{head['natIP']}:8080"}
    assert handle.head.gpus == {"T4": 2}

    opened = trio.run(plugin.skyhop_open_ports, ctx, handle, [9000])
    assert 9000 in opened.ports
    (rule,) = gcp_env.control("firewalls")["firewalls"]
    assert rule["allowed"][0]["ports"] == ["22", "8080", "9000"]

    gcp_env.control("preempt", {"zone": handle.zone, "instance": handle.nodes[1].instance_id})
    states = trio.run(plugin.skyhop_query, ctx, handle)
    assert states[0].state is NodeState.RUNNING
    assert states[1].state is NodeState.TERMINATED and "preempted" in states[1].detail
    trio.run(plugin.skyhop_down, ctx, handle)
    assert gcp_env.instances() == [] and gcp_env.control("firewalls")["firewalls"] == []
    trio.run(plugin.skyhop_down, ctx, handle)  # idempotent
    # One OAuth grant served every call of every hook: the token is reused until it expires.
    assert gcp_env.control("stats")["token_requests"] - tokens_before == 1


def request_context(tmp_path: Path, plugin: GcpPlugin) -> RequestContext:
    backends = load_backends([plugin], entry_points=False)
    services = Services(tmp_path, open_store(tmp_path), backends, config={"gcp": CONFIG})
    return RequestContext(
        request_id="req-failover", name="launch", user=User("tester", "abcdef12"),
        services=services, writer=RequestLogWriter(services.logs, "req-failover"),
    )  # fmt: skip


class NoRuntime(GcpPlugin):
    """Failover only needs the instances: skip the node agent (the conformance suite and
    the CLI test run it)."""

    from skyhop_core.hookspecs import hookimpl

    @hookimpl
    async def skyhop_setup_runtime(self, ctx: Any, handle: Any) -> None:
        ctx.log("(test) no node agent")


def failover(tmp_path: Path, infra: str, name: str) -> tuple[Any, str, RequestContext]:
    plugin = NoRuntime()
    ctx = request_context(tmp_path, plugin)
    task = Task(run="true", resources=Resources(infra=infra, instance_type="e2-standard-2"))

    async def main() -> Any:
        return await provision_with_failover(ctx, name, task, target=OptimizeTarget.COST,
                                             retry_until_up=False, previous=None)  # fmt: skip

    try:
        handle = trio.run(main)
    finally:
        log = ctx.services.logs.path(ctx.request_id).read_text()
    return handle, log, ctx


@pytest.mark.parametrize(
    "code", ["ZONE_RESOURCE_POOL_EXHAUSTED", "ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS"]
)
def test_a_stocked_out_zone_fails_over_to_the_next(gcp_env: Any, tmp_path: Path, code: str) -> None:
    gcp_env.control("inject", {"zone": "us-central1-a", "code": code})
    handle, log, ctx = failover(tmp_path, "gcp/us-central1", "fo")
    assert handle.zone == "us-central1-b"
    assert "Launching on GCP (us-central1-a)" in log and code in log
    assert ctx.services.store.run_sync(cl.get, "fo").status is ClusterStatus.UP
    assert [(i["zone"], i["status"]) for i in gcp_env.instances()] == [("us-central1-b", "RUNNING")]
    assert gcp_env.control("firewalls")["firewalls"], "the surviving cluster keeps its rule"
    trio.run(NoRuntime().skyhop_down, ctx.services.backend_ctx("gcp"), handle)


def test_quota_blocks_the_whole_region(gcp_env: Any, tmp_path: Path) -> None:
    gcp_env.control("inject", {"region": "us-central1", "code": "QUOTA_EXCEEDED"})
    handle, log, ctx = failover(tmp_path, "gcp", "quota")
    assert handle.region != "us-central1"
    assert log.count("Launching on GCP (us-central1-") == 1, log  # not every zone of it
    assert "QUOTA_EXCEEDED" in log
    trio.run(NoRuntime().skyhop_down, ctx.services.backend_ctx("gcp"), handle)


def test_every_zone_stocked_out_gives_the_history(gcp_env: Any, tmp_path: Path) -> None:
    gcp_env.control("inject", {"region": "us-central1", "code": "ZONE_RESOURCE_POOL_EXHAUSTED"})
    with pytest.raises(ResourcesUnavailableError) as info:
        failover(tmp_path, "gcp/us-central1", "full")
    history = info.value.failover_history
    assert [h.split(":")[0] for h in history] == [
        f"gcp/us-central1/us-central1-{z} e2-standard-2" for z in "abcf"]  # fmt: skip
    assert isinstance(info.value, CapacityError)  # every zone said so: the type says it too
    assert gcp_env.instances() == [] and gcp_env.control("firewalls")["firewalls"] == []
