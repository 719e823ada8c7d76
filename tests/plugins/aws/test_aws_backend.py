"""The AWS backend against moto's EC2 server: lifecycle, ports, spot, errors, failover."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import trio

from skyhop_aws import catalog, ec2
from skyhop_aws.plugin import AwsPlugin
from skyhop_core.context import BackendContext
from skyhop_core.exceptions import CapacityError, CredentialsError, QuotaError
from skyhop_core.models.records import ClusterHandle, NodeState, ProvisionRequest
from skyhop_core.models.resources import Resources

REGION = "us-east-1"


def run(fn: Callable[..., Any], *args: Any) -> Any:
    return trio.run(fn, *args)


@pytest.fixture
def ctx(tmp_path: Path) -> BackendContext:
    return BackendContext(
        state_dir=str(tmp_path / "aws"), persistent_path=str(tmp_path),
        config={"poll_interval": 0.05}, user_hash="abcdef12", user_name="tester",
    )  # fmt: skip


@pytest.fixture
def plugin(aws_env: str) -> AwsPlugin:
    return AwsPlugin()


def request_for(name: str, resources: Resources, num_nodes: int = 1, ports: tuple[int, ...] = (),
                previous: ClusterHandle | None = None) -> ProvisionRequest:  # fmt: skip
    offer = catalog.offers_for(resources)[0]
    return ProvisionRequest(
        cluster_name=name, num_nodes=num_nodes, resources=resources, offer=offer,
        ports=ports, use_spot=resources.use_spot, previous=previous,
    )  # fmt: skip


def states(statuses: list[Any]) -> list[NodeState]:
    return [s.state for s in statuses]


def test_check_uses_sts(plugin: AwsPlugin, ctx: BackendContext) -> None:
    result = run(plugin.skyhop_check, ctx)
    assert result.enabled, result
    assert result.details["identity"].startswith("arn:aws:")


def test_check_without_boto3_says_how_to_install(
    ctx: BackendContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    from skyhop_aws import plugin as plugin_module

    monkeypatch.setattr(plugin_module, "SDK_MODULES", {"boto3_not_here": "boto3"})
    result = run(AwsPlugin().skyhop_check, ctx)
    assert not result.enabled and result.fix == "pip install 'skyhop[aws]'"


def test_check_without_credentials_asks_no_network(
    ctx: BackendContext, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))

    def no_sts(service: str, region: str) -> Any:
        raise AssertionError("the check must not call AWS without credentials")

    result = run(AwsPlugin(client_factory=no_sts).skyhop_check, ctx)
    assert not result.enabled
    assert result.reason == "No AWS credentials found." and "aws configure" in result.fix


def test_full_lifecycle_with_ports(plugin: AwsPlugin, ctx: BackendContext, ec2_client: Any) -> None:
    resources = Resources(infra=f"aws/{REGION}", instance_type="m6i.large", ports=8080)
    request = request_for("life", resources, num_nodes=2, ports=(8080,))
    handle = run(plugin.skyhop_provision, ctx, request)
    assert handle.backend == "aws" and handle.region == REGION and handle.zone == request.offer.zone
    assert len(handle.nodes) == 2 and handle.head.rank == 0
    assert handle.head.cpus == 2 and handle.head.memory_gb == 8
    assert handle.head.extra["ssh_user"] == "ubuntu"
    assert handle.ports == {8080: f"{handle.head.ip}:8080"}
    assert states(run(plugin.skyhop_query, ctx, handle)) == [NodeState.RUNNING] * 2

    client = ec2_client
    instances = ec2.cluster_instances(client, "life")
    assert [ec2.tag(i, ec2.RANK_TAG) for i in instances] == ["0", "1"]
    assert all(i["InstanceType"] == "m6i.large" and i["KeyName"] for i in instances)
    group = handle.extra["security_group_id"]
    assert {22, 8080} <= ec2.open_ports(client, group)

    again = run(plugin.skyhop_provision, ctx, request_for(
        "life", resources, num_nodes=2, ports=(8080,), previous=handle))  # fmt: skip
    assert [n.instance_id for n in again.nodes] == [n.instance_id for n in handle.nodes]

    run(plugin.skyhop_stop, ctx, handle)
    assert states(run(plugin.skyhop_query, ctx, handle)) == [NodeState.STOPPED] * 2
    started = run(plugin.skyhop_start, ctx, handle)
    assert [n.instance_id for n in started.nodes] == [n.instance_id for n in handle.nodes]
    assert started.ports == {8080: f"{started.head.ip}:8080"}
    assert states(run(plugin.skyhop_query, ctx, started)) == [NodeState.RUNNING] * 2

    opened = run(plugin.skyhop_open_ports, ctx, started, [9000, 9001])
    assert opened.ports[9000] == f"{started.head.ip}:9000" and 8080 in opened.ports
    assert {22, 8080, 9000, 9001} <= ec2.open_ports(client, group)
    run(plugin.skyhop_open_ports, ctx, opened, [9000])  # already open: no error

    run(plugin.skyhop_down, ctx, opened)
    assert states(run(plugin.skyhop_query, ctx, opened)) == [NodeState.TERMINATED] * 2
    assert ec2.find_security_group(client, "life") is None
    run(plugin.skyhop_down, ctx, opened)  # idempotent


def test_relaunch_with_fewer_nodes_terminates_the_extra(
    plugin: AwsPlugin, ctx: BackendContext, ec2_client: Any
) -> None:
    resources = Resources(infra=f"aws/{REGION}", instance_type="t3.medium")
    handle = run(plugin.skyhop_provision, ctx, request_for("shrink", resources, num_nodes=2))
    smaller = run(plugin.skyhop_provision, ctx,
                  request_for("shrink", resources, num_nodes=1, previous=handle))  # fmt: skip
    assert [n.instance_id for n in smaller.nodes] == [handle.head.instance_id]
    assert len(ec2.cluster_instances(ec2_client, "shrink")) == 1
    run(plugin.skyhop_down, ctx, smaller)


def test_spot_instance_and_preemption_detected(
    plugin: AwsPlugin, ctx: BackendContext, ec2_client: Any
) -> None:
    resources = Resources(infra=f"aws/{REGION}", instance_type="g5.xlarge", use_spot=True)
    request = request_for("spot", resources)
    assert request.use_spot and request.offer.spot_price is not None
    handle = run(plugin.skyhop_provision, ctx, request)
    assert handle.use_spot and handle.head.gpus == {"A10G": 1}
    client = ec2_client
    (instance,) = ec2.cluster_instances(client, "spot")
    assert instance.get("InstanceLifecycle") == "spot"
    # AWS takes the instance back: query reports the node gone.
    client.terminate_instances(InstanceIds=[handle.head.instance_id])
    (status,) = run(plugin.skyhop_query, ctx, handle)
    assert status.state is NodeState.TERMINATED and "spot" in status.detail
    run(plugin.skyhop_down, ctx, handle)


def test_capacity_error_names_the_zone_and_cleans_up(
    ctx: BackendContext, ec2_client: Any, failing_factory: Any
) -> None:
    plugin = AwsPlugin(failing_factory("InsufficientInstanceCapacity", {"us-east-1a"}))
    resources = Resources(infra=f"aws/{REGION}/us-east-1a", instance_type="p3.2xlarge")
    with pytest.raises(CapacityError) as info:
        run(plugin.skyhop_provision, ctx, request_for("full", resources))
    err = info.value
    assert (err.backend, err.region, err.zone) == ("aws", REGION, "us-east-1a")
    assert "InsufficientInstanceCapacity" in str(err)
    client = ec2_client
    assert ec2.cluster_instances(client, "full") == []
    assert ec2.find_security_group(client, "full") is None


def test_quota_error_blocks_the_region(ctx: BackendContext, failing_factory: Any) -> None:
    plugin = AwsPlugin(failing_factory("VcpuLimitExceeded", {"us-east-1b"}))
    resources = Resources(infra=f"aws/{REGION}/us-east-1b", instance_type="c6i.large")
    with pytest.raises(QuotaError) as info:
        run(plugin.skyhop_provision, ctx, request_for("quota", resources))
    assert (info.value.region, info.value.zone) == (REGION, None)


def test_rejected_credentials_are_a_credentials_error(
    plugin: AwsPlugin, ctx: BackendContext
) -> None:
    from botocore.exceptions import ClientError

    from skyhop_aws.errors import translate

    error = ClientError({"Error": {"Code": "AuthFailure", "Message": "no"}}, "RunInstances")
    assert isinstance(translate(error, region=REGION), CredentialsError)
