"""The ``example`` backend: a cluster's nodes are directories under the backend's state dir.

Layout, under ``ctx.state_dir``::

    clusters/<cluster>/cluster.json      what was provisioned (so provision is idempotent)
    clusters/<cluster>/nodes/<rank>/home      the node's home (``~``)
    clusters/<cluster>/nodes/<rank>/runtime   the node agent's runtime directory
    faults.json                          places that refuse, like a cloud out of capacity

Its "cloud" has regions and zones (config ``backends: {example: {regions: {NAME: [ZONE,
...]}}}``, default one region ``here`` with zones ``here-a`` and ``here-b``); the further
down the list a region is, the dearer. ``faults.json`` (``{"capacity": [zone or region,
...], "quota": [region, ...]}``, see :func:`refuse`) makes a zone answer
``CapacityError`` and a region ``QuotaError``, the way a real cloud does when it runs
out: that is how skyhop's tests and the conformance suite exercise failover on it.

Commands "on a node" are subprocesses on this machine
(:class:`skyhop_core.localrunner.LocalCommandRunner`), so the core's default job hooks
(submit, queue, logs, cancel, idle time) work unchanged through :func:`skyhop_command_runner`.
The backend supports several nodes per cluster; it cannot stop clusters or open ports, so
the core answers ``NotSupportedError`` for those.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import trio

from skyhop_core.agentjobs import agent_call
from skyhop_core.context import BackendContext
from skyhop_core.exceptions import CapacityError, QuotaError
from skyhop_core.hookspecs import hookimpl
from skyhop_core.localrunner import LocalCommandRunner
from skyhop_core.models.records import (
    BackendInfo,
    CheckResult,
    ClusterHandle,
    Feature,
    NodeInfo,
    NodeState,
    NodeStatus,
    Offer,
    ProvisionRequest,
)
from skyhop_core.runner import CommandRunner

if TYPE_CHECKING:
    from skyhop_core.models.resources import Resources

NAME = "example"
#: The node sizes this backend offers (vCPUs, GB, $/hour in the first region); every node
#: shares this machine, so they are small.
SIZES = {"example-small": (1.0, 2.0, 0.01), "example-medium": (2.0, 4.0, 0.02)}
DEFAULT_REGIONS = {"here": ["here-a", "here-b"]}
FAULTS = "faults.json"


@hookimpl
def skyhop_backend_info() -> BackendInfo:
    return BackendInfo(
        name=NAME,
        display_name="Example",
        features=frozenset({Feature.MULTI_NODE}),
        description="Nodes are directories on this machine (an out-of-tree plugin example).",
    )


@hookimpl
async def skyhop_check(ctx: BackendContext) -> CheckResult:
    if shutil.which("bash") is None:
        return CheckResult(
            NAME, enabled=False, reason="bash is not installed.", fix="Install bash."
        )
    return CheckResult(NAME, enabled=True)


def _regions(ctx: BackendContext) -> dict[str, list[str]]:
    regions = ctx.config.get("regions") or DEFAULT_REGIONS
    return {str(region): [str(z) for z in zones] for region, zones in regions.items()}


@hookimpl
async def skyhop_offers(ctx: BackendContext, resources: Resources) -> list[Offer]:
    offers = [
        Offer(NAME, instance_type, cpus=cpus, memory_gb=memory, price=price * (1 + i),
              region=region, zone=zone)  # fmt: skip
        for instance_type, (cpus, memory, price) in SIZES.items()
        for i, (region, zones) in enumerate(_regions(ctx).items())
        for zone in zones
    ]
    return [offer for offer in offers if resources.fits(offer)]


def refuse(state_dir: str, *, capacity: Sequence[str] = (), quota: Sequence[str] = ()) -> None:
    """From now on, provisioning in these zones (or regions) raises ``CapacityError`` and in
    these regions ``QuotaError``; empty lists lift every refusal."""
    os.makedirs(state_dir, exist_ok=True)
    Path(state_dir, FAULTS).write_text(json.dumps({"capacity": list(capacity), "quota": list(quota)}))


def _check_faults(ctx: BackendContext, offer: Offer) -> None:
    path = Path(ctx.state_dir) / FAULTS
    if not path.exists():
        return
    faults = json.loads(path.read_text())
    if offer.region in faults.get("quota", []):
        raise QuotaError(f"vCPU quota exhausted in region {offer.region}", backend=NAME,
                         region=offer.region)  # fmt: skip
    for place in faults.get("capacity", []):
        if place == offer.zone:
            raise CapacityError(f"no {offer.instance_type} capacity in zone {place}",
                                backend=NAME, region=offer.region, zone=place)  # fmt: skip
        if place == offer.region:
            raise CapacityError(f"no {offer.instance_type} capacity in region {place}",
                                backend=NAME, region=place)  # fmt: skip


def _cluster_dir(ctx: BackendContext, cluster_name: str) -> Path:
    return Path(ctx.ensure_state_dir()) / "clusters" / cluster_name


def _make_handle(ctx: BackendContext, request: ProvisionRequest) -> ClusterHandle:
    root = _cluster_dir(ctx, request.cluster_name)
    nodes = []
    for rank in range(request.num_nodes):
        node_dir = root / "nodes" / str(rank)
        for sub in ("home", "runtime"):
            (node_dir / sub).mkdir(parents=True, exist_ok=True)
        nodes.append(
            NodeInfo(
                rank=rank,
                ip="127.0.0.1",
                instance_id=f"{request.cluster_name}-{rank}",
                cpus=request.offer.cpus,
                memory_gb=request.offer.memory_gb,
                runtime_dir=str(node_dir / "runtime"),
                home=str(node_dir / "home"),
            )
        )
    return ClusterHandle(
        cluster_name=request.cluster_name,
        backend=NAME,
        nodes=tuple(nodes),
        instance_type=request.offer.instance_type,
        region=request.offer.region,
        zone=request.offer.zone,
    )


@hookimpl
async def skyhop_provision(ctx: BackendContext, request: ProvisionRequest) -> ClusterHandle:
    marker = _cluster_dir(ctx, request.cluster_name) / "cluster.json"
    if request.previous is None or not marker.exists():
        _check_faults(ctx, request.offer)
    # The "cloud calls" (make the nodes, then record the cluster) run in threads, as a
    # real SDK's would; a launch cancelled in between leaves node directories without
    # cluster.json, which down (even of a handle without nodes) removes.
    handle = await trio.to_thread.run_sync(_make_handle, ctx, request)
    if not marker.exists():
        ctx.log(f"Creating {request.num_nodes} node directories for {request.cluster_name}.")
        text = json.dumps({"instance_type": handle.instance_type})
        await trio.to_thread.run_sync(marker.write_text, text)
    return handle


@hookimpl
async def skyhop_query(ctx: BackendContext, handle: ClusterHandle) -> list[NodeStatus]:
    if not (_cluster_dir(ctx, handle.cluster_name) / "cluster.json").exists():
        return [NodeStatus(node.rank, NodeState.TERMINATED) for node in handle.nodes]
    return [NodeStatus(node.rank, NodeState.RUNNING) for node in handle.nodes]


@hookimpl
async def skyhop_down(ctx: BackendContext, handle: ClusterHandle) -> None:
    # The handle may have no nodes (a launch that was cancelled or refused before it
    # returned one): everything is found by the cluster's name.
    root = _cluster_dir(ctx, handle.cluster_name)
    if not root.exists():
        return
    head = handle.nodes[0] if handle.nodes else _found_head(root)
    if os.path.isdir(head.runtime_dir):
        # Stop the agent and every job it started before removing their directories.
        await agent_call(LocalCommandRunner(head), "stop")
    await trio.to_thread.run_sync(shutil.rmtree, root, True)


def _found_head(root: Path) -> NodeInfo:
    """Node 0 as its directory says (for a node-less handle)."""
    node_dir = root / "nodes" / "0"
    return NodeInfo(rank=0, ip="127.0.0.1", instance_id=f"{root.name}-0", cpus=1.0,
                    memory_gb=1.0, runtime_dir=str(node_dir / "runtime"),
                    home=str(node_dir / "home"))  # fmt: skip


def leftovers(state_dir: str, cluster_name: str) -> list[str]:
    """What still exists of ``cluster_name`` (for the conformance suite's leak checks)."""
    root = Path(state_dir) / "clusters" / cluster_name
    return [str(root)] if root.exists() else []


@hookimpl
def skyhop_command_runner(
    ctx: BackendContext, handle: ClusterHandle, node: NodeInfo
) -> CommandRunner:
    return LocalCommandRunner(node)
