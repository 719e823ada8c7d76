"""The AWS cluster lifecycle: provision, stop, start, down, query, open ports.

Each function takes the hook's context and an :class:`Ec2` (a client factory bound to a
region); the blocking steps are in :mod:`skyhop_aws.ec2` and run in worker threads.
Waiting polls ``describe_instances`` with ``trio.sleep`` so it is cancellable at once.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

import attrs
import trio

from skyhop_aws import catalog, ec2, runtime
from skyhop_aws.aws import ClientFactory, in_thread
from skyhop_core.context import BackendContext
from skyhop_core.exceptions import CapacityError, ResourcesUnavailableError
from skyhop_core.models.records import (
    ClusterHandle,
    NodeInfo,
    NodeState,
    NodeStatus,
    ProvisionRequest,
)

BACKEND = "aws"
DEFAULT_USER = "ubuntu"
WAIT_TIMEOUT = 900.0
STATES = {
    "pending": NodeState.PENDING,
    "running": NodeState.RUNNING,
    "stopping": NodeState.STOPPING,
    "stopped": NodeState.STOPPED,
    "shutting-down": NodeState.TERMINATED,
    "terminated": NodeState.TERMINATED,
}


@attrs.frozen
class Ec2:
    """EC2 in one region: the client and the place errors are attributed to."""

    client: Any
    region: str
    zone: str | None = None

    async def __call__(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return await in_thread(fn, self.client, *args, place=(self.region, self.zone), **kwargs)


def connect(factory: ClientFactory, region: str, zone: str | None = None) -> Ec2:
    return Ec2(factory("ec2", region), region, zone)


def key_name(ctx: BackendContext) -> str:
    return f"skyhop-{(ctx.user_hash or 'default')[:8]}"


def key_path(ctx: BackendContext) -> str:
    return os.path.join(ctx.ensure_state_dir(), "keys", f"{key_name(ctx)}.pem")


def poll_interval(ctx: BackendContext) -> float:
    return float(ctx.config.get("poll_interval", 2.0))


def _image(ctx: BackendContext, request: ProvisionRequest, region: str) -> str | None:
    for source in (getattr(request.resources, "image_id", None), ctx.config.get("image_id")):
        if isinstance(source, str) and source:
            return source
        if isinstance(source, dict) and source.get(region):
            return str(source[region])
    return None


async def wait_for(
    ctx: BackendContext, aws: Ec2, ids: Sequence[str], state: str, *, timeout: float = WAIT_TIMEOUT
) -> dict[str, dict[str, Any]]:
    """Poll until every instance in ``ids`` is in ``state``; return their descriptions.

    An instance that terminates while we wait for ``running`` (a spot instance taken
    back, an instance AWS could not place) is a capacity error in its zone.
    """
    with trio.fail_after(timeout):
        while True:
            found = await aws(ec2.describe, ids)
            states = {i: found[i]["State"]["Name"] if i in found else "terminated" for i in ids}
            if all(s == state for s in states.values()):
                return found
            if state == "running" and any(
                s in ("shutting-down", "terminated") for s in states.values()
            ):
                raise CapacityError(
                    f"An instance terminated while starting in {aws.zone or aws.region}.",
                    backend=BACKEND,
                    region=aws.region,
                    zone=aws.zone,
                )
            await trio.sleep(poll_interval(ctx))


def build_handle(
    ctx: BackendContext,
    cluster: str,
    instances: Sequence[dict[str, Any]],
    region: str,
    *,
    use_spot: bool,
    group_id: str,
    ports: dict[int, str] | None = None,
) -> ClusterHandle:
    """The handle of ``instances`` (head first); paths follow from the SSH user, and
    ranks > 0 get their launcher (:func:`skyhop_aws.runtime.with_launchers`)."""
    user = str(ctx.config.get("ssh_user", DEFAULT_USER))
    home = f"/home/{user}" if user != "root" else "/root"
    nodes = []
    for rank, inst in enumerate(instances):
        entry = catalog.entry(inst["InstanceType"], region)
        private_ip = str(inst.get("PrivateIpAddress") or "")
        nodes.append(
            NodeInfo(
                rank=rank,
                ip=str(inst.get("PublicIpAddress") or private_ip),
                instance_id=str(inst["InstanceId"]),
                cpus=entry.cpus if entry else 0.0,
                memory_gb=entry.memory_gb if entry else 0.0,
                runtime_dir=f"{home}/.skyhop_runtime",
                home=home,
                gpus=dict(entry.accelerators) if entry else {},
                extra={
                    "ssh_user": user,
                    "ssh_port": "22",
                    "ssh_identity_file": key_path(ctx),
                    "private_ip": private_ip,
                },  # fmt: skip
            )
        )
    if nodes and not nodes[0].ip:
        raise ResourcesUnavailableError(f"The instances of {cluster!r} have no IP address.")
    handle = ClusterHandle(
        cluster_name=cluster,
        backend=BACKEND,
        nodes=tuple(nodes),
        instance_type=str(instances[0]["InstanceType"]) if instances else "",
        region=region,
        zone=str(instances[0]["Placement"]["AvailabilityZone"]) if instances else None,
        use_spot=use_spot,
        ports=ports if ports is not None else {},
        extra={"security_group_id": group_id, "key_name": key_name(ctx)},
    )
    return runtime.with_launchers(handle)


async def provision(
    ctx: BackendContext, factory: ClientFactory, request: ProvisionRequest
) -> ClusterHandle:
    """Bring up the cluster (reusing its live instances); see ``skyhop_provision``."""
    offer = request.offer
    region = offer.region or "us-east-1"
    previous = request.previous
    if previous is not None and previous.region and previous.region != region:
        await down(ctx, factory, previous)  # moving regions: leave nothing behind
    aws = connect(factory, region, offer.zone)
    name = request.cluster_name
    existing = await aws(ec2.cluster_instances, name)
    surplus = [i["InstanceId"] for i in existing[request.num_nodes :]]
    existing = existing[: request.num_nodes]
    if existing:  # a relaunch stays where its nodes are
        aws = attrs.evolve(aws, zone=existing[0]["Placement"]["AvailabilityZone"])
    if surplus:
        await aws(lambda c: c.terminate_instances(InstanceIds=surplus))
    ctx.log(f"Preparing the key pair and security group in {region}.")
    await aws(ec2.ensure_key_pair, key_name(ctx), key_path(ctx))
    group_id = await aws(ec2.ensure_security_group, name, request.ports)
    try:
        stopped = [i["InstanceId"] for i in existing
                   if i["State"]["Name"] in ("stopped", "stopping")]  # fmt: skip
        if stopped:
            if any(i["State"]["Name"] == "stopping" for i in existing):
                await wait_for(ctx, aws, stopped, "stopped")
            await aws(lambda c: c.start_instances(InstanceIds=stopped))
        have = {ec2.rank_of(i) for i in existing}
        ranks = [r for r in range(request.num_nodes) if r not in have][
            : request.num_nodes - len(existing)
        ]
        ids = [i["InstanceId"] for i in existing]
        if ranks:
            image = _image(ctx, request, region) or await aws(ec2.choose_image)
            kind = "spot" if request.use_spot else "on-demand"
            ctx.log(f"Launching {len(ranks)} {kind} {offer.instance_type} in {aws.zone}.")
            ids += await aws(
                ec2.run_instances, cluster=name, user_hash=ctx.user_hash, ranks=ranks,
                image_id=image, instance_type=offer.instance_type, zone=aws.zone,
                key_name=key_name(ctx), group_id=group_id, use_spot=request.use_spot,
                disk_size=getattr(request.resources, "disk_size", None),
            )  # fmt: skip
        ctx.log("Waiting for the instances to be running.")
        found = await wait_for(ctx, aws, ids, "running")
    except BaseException:
        if not existing:
            with trio.CancelScope(shield=True):
                await _cleanup_failed(ctx, aws, name)
        raise
    instances = sorted(found.values(), key=lambda i: (ec2.rank_of(i), i["InstanceId"]))
    handle = build_handle(ctx, name, instances, region, use_spot=request.use_spot,
                          group_id=group_id)  # fmt: skip
    return attrs.evolve(handle, ports={p: f"{handle.head.ip}:{p}" for p in request.ports})


async def _cleanup_failed(ctx: BackendContext, aws: Ec2, name: str) -> None:
    """After a failed first launch: terminate what started, drop the security group."""
    try:
        await _terminate_all(ctx, aws, name)
    except Exception as exc:  # the original error matters more; down() retries this
        ctx.log(f"Cleaning up {name!r} after the failure failed: {exc}")


async def _terminate_all(ctx: BackendContext, aws: Ec2, name: str) -> None:
    live = [i["InstanceId"] for i in await aws(ec2.cluster_instances, name)]
    if live:
        await aws(lambda c: c.terminate_instances(InstanceIds=live))
        await wait_for(ctx, aws, live, "terminated")
    with trio.fail_after(WAIT_TIMEOUT):
        while not await aws(ec2.delete_security_group, name):
            await trio.sleep(poll_interval(ctx))


async def down(ctx: BackendContext, factory: ClientFactory, handle: ClusterHandle) -> None:
    """Terminate every instance of the cluster and delete its security group."""
    aws = connect(factory, handle.region or "us-east-1", handle.zone)
    await _terminate_all(ctx, aws, handle.cluster_name)
    ctx.log(f"Terminated cluster {handle.cluster_name!r} in {aws.region}.")


async def stop(ctx: BackendContext, factory: ClientFactory, handle: ClusterHandle) -> None:
    aws = connect(factory, handle.region or "us-east-1", handle.zone)
    ids = [n.instance_id for n in handle.nodes]
    await aws(lambda c: c.stop_instances(InstanceIds=ids))
    await wait_for(ctx, aws, ids, "stopped")


async def start(
    ctx: BackendContext, factory: ClientFactory, handle: ClusterHandle
) -> ClusterHandle:
    """Start the stopped instances; their public IPs change, so the handle is rebuilt."""
    aws = connect(factory, handle.region or "us-east-1", handle.zone)
    ids = [n.instance_id for n in handle.nodes]
    found = await aws(ec2.describe, ids)
    if any(found.get(i, {}).get("State", {}).get("Name") == "stopping" for i in ids):
        await wait_for(ctx, aws, ids, "stopped")
    await aws(lambda c: c.start_instances(InstanceIds=ids))
    found = await wait_for(ctx, aws, ids, "running")
    fresh = build_handle(ctx, handle.cluster_name, [found[i] for i in ids],
                         aws.region, use_spot=handle.use_spot,
                         group_id=handle.extra.get("security_group_id", ""))  # fmt: skip
    return attrs.evolve(fresh, ports={p: f"{fresh.head.ip}:{p}" for p in handle.ports})


async def query(
    ctx: BackendContext, factory: ClientFactory, handle: ClusterHandle
) -> list[NodeStatus]:
    """Each node's EC2 state; a spot instance AWS took back shows as TERMINATED."""
    aws = connect(factory, handle.region or "us-east-1", handle.zone)
    found = await aws(ec2.describe, [n.instance_id for n in handle.nodes])
    out = []
    for node in handle.nodes:
        inst = found.get(node.instance_id)
        if inst is None:
            out.append(NodeStatus(node.rank, NodeState.TERMINATED, "instance not found"))
            continue
        reason = (inst.get("StateReason") or {}).get("Message", "")
        spot = " (spot)" if inst.get("InstanceLifecycle") == "spot" else ""
        out.append(
            NodeStatus(
                node.rank,
                STATES.get(inst["State"]["Name"], NodeState.UNKNOWN),
                f"{inst['State']['Name']}{spot}{': ' + reason if reason else ''}",
            )
        )
    return out


async def open_ports(
    ctx: BackendContext, factory: ClientFactory, handle: ClusterHandle, ports: Sequence[int]
) -> ClusterHandle:
    """Open ``ports`` in the cluster's security group; map each to ``head-ip:port``."""
    aws = connect(factory, handle.region or "us-east-1", handle.zone)
    group_id = handle.extra.get("security_group_id") or await aws(
        ec2.find_security_group, handle.cluster_name
    )
    await aws(ec2.authorize_ports, group_id, ports)
    mapped = dict(handle.ports)
    mapped.update({p: f"{handle.head.ip}:{p}" for p in ports})
    return attrs.evolve(handle, ports=mapped)
