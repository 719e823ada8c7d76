"""The core's failover loop driving the AWS backend on moto: a zone without capacity is
blocked and the next candidate is launched; when every place fails the error carries
the history.

moto's instances cannot run commands, so the plugin under test replaces
``skyhop_setup_runtime`` (waiting for SSH, installing and starting the node agent) with a
no-op; everything up to it — the optimizer, the failover loop, the cluster record, EC2 —
is real. (``test_aws_runtime.py`` and ``TestAwsOnFakeHosts`` cover the runtime hook.)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import trio

from skyhop_aws.aws import default_client_factory
from skyhop_aws.plugin import AwsPlugin
from skyhop_core.exceptions import CapacityError, ResourcesUnavailableError
from skyhop_core.hookspecs import hookimpl
from skyhop_core.models.records import ClusterHandle
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

REGION = "us-east-1"


class NoRuntimeAwsPlugin(AwsPlugin):
    """The AWS plugin without the node agent (moto's instances run nothing)."""

    @hookimpl
    async def skyhop_setup_runtime(self, ctx: Any, handle: ClusterHandle) -> None:
        ctx.log("(test) skipping the node agent: moto instances cannot run commands")


def request_context(tmp_path: Path, plugin: AwsPlugin) -> RequestContext:
    backends = load_backends([plugin], entry_points=False)
    services = Services(tmp_path, open_store(tmp_path), backends,
                        config={"aws": {"poll_interval": 0.05}})  # fmt: skip
    return RequestContext(
        request_id="req-failover", name="launch", user=User("tester", "abcdef12"),
        services=services, writer=RequestLogWriter(services.logs, "req-failover"),
    )  # fmt: skip


def log_of(ctx: RequestContext) -> str:
    return ctx.services.logs.path(ctx.request_id).read_text()


def test_capacity_error_fails_over_to_the_next_zone(
    tmp_path: Path, ec2_client: Any, failing_factory: Any
) -> None:
    plugin = NoRuntimeAwsPlugin(failing_factory("InsufficientInstanceCapacity", {"us-east-1a"}))
    ctx = request_context(tmp_path, plugin)
    task = Task(run="true", resources=Resources(infra=f"aws/{REGION}", instance_type="c6i.large"))

    async def main() -> ClusterHandle:
        return await provision_with_failover(ctx, "fo", task, target=OptimizeTarget.COST,
                                             retry_until_up=False, previous=None)  # fmt: skip

    handle = trio.run(main)
    assert handle.zone == "us-east-1b"
    log = log_of(ctx)
    assert "Launching on AWS (us-east-1a)" in log and "InsufficientInstanceCapacity" in log
    assert "Launching on AWS (us-east-1b)" in log
    record = ctx.services.store.run_sync(cl.get, "fo")
    assert record.status is ClusterStatus.UP and record.handle.zone == "us-east-1b"
    from skyhop_aws import ec2

    instances = ec2.cluster_instances(ec2_client, "fo")
    assert [i["Placement"]["AvailabilityZone"] for i in instances] == ["us-east-1b"]
    trio.run(plugin.skyhop_down, ctx.services.backend_ctx("aws"), handle)


def test_every_zone_full_gives_the_failover_history(tmp_path: Path, failing_factory: Any) -> None:
    zones = {"us-east-1a", "us-east-1b", "us-east-1c"}
    plugin = NoRuntimeAwsPlugin(failing_factory("InsufficientInstanceCapacity", zones))
    ctx = request_context(tmp_path, plugin)
    task = Task(run="true", resources=Resources(infra=f"aws/{REGION}", instance_type="c6i.large"))

    async def main() -> None:
        await provision_with_failover(ctx, "full", task, target=OptimizeTarget.COST,
                                      retry_until_up=False, previous=None)  # fmt: skip

    with pytest.raises(ResourcesUnavailableError) as info:
        trio.run(main)
    history = info.value.failover_history
    assert len(history) == 3
    assert [h.split(":")[0] for h in history] == [
        f"aws/{REGION}/{z} c6i.large" for z in sorted(zones)
    ]
    assert isinstance(info.value, CapacityError)
    assert [a["zone"] for a in info.value.attempts] == sorted(zones)
    assert all("InsufficientInstanceCapacity" in h for h in history)


def test_retry_until_up_retries_after_backoff(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failing_factory: Any
) -> None:
    """With retry_until_up, a launch that found no capacity anywhere tries again."""
    from skyhop_core.ops import provisioning

    monkeypatch.setattr(provisioning, "RETRY_BACKOFF", (0.01,))
    attempts: list[str] = []
    broken = failing_factory("InsufficientInstanceCapacity", {"us-east-1a"})

    def flaky(service: str, region: str) -> Any:
        attempts.append(service)  # full on the first pass, then capacity frees up
        return broken(service, region) if attempts.count("ec2") <= 1 else \
            default_client_factory(service, region)  # fmt: skip

    plugin = NoRuntimeAwsPlugin(flaky)
    ctx = request_context(tmp_path, plugin)
    task = Task(run="true", resources=Resources(infra=f"aws/{REGION}/us-east-1a",
                                                instance_type="c6i.large"))  # fmt: skip

    async def main() -> ClusterHandle:
        return await provision_with_failover(ctx, "retry", task, target=OptimizeTarget.COST,
                                             retry_until_up=True, previous=None)  # fmt: skip

    handle = trio.run(main)
    assert handle.zone == "us-east-1a"
    assert "Retrying in" in log_of(ctx)
    trio.run(plugin.skyhop_down, ctx.services.backend_ctx("aws"), handle)
