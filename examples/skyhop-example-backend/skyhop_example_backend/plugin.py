"""The ``example`` backend: a cluster's nodes are directories under the backend's state dir.

Layout, under ``ctx.state_dir``::

    clusters/<cluster>/cluster.json      what was provisioned (so provision is idempotent)
    clusters/<cluster>/nodes/<rank>/home      the node's home (``~``)
    clusters/<cluster>/nodes/<rank>/runtime   the node agent's runtime directory

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
from pathlib import Path
from typing import TYPE_CHECKING

import trio

from skyhop_core.agentjobs import agent_call
from skyhop_core.context import BackendContext
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
#: The node sizes this backend offers; every node shares this machine, so they are small.
SIZES = {"example-small": (1.0, 2.0), "example-medium": (2.0, 4.0)}


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


@hookimpl
async def skyhop_offers(ctx: BackendContext, resources: Resources) -> list[Offer]:
    offers = [
        Offer(NAME, instance_type, cpus=cpus, memory_gb=memory, region="here")
        for instance_type, (cpus, memory) in SIZES.items()
    ]
    return [offer for offer in offers if resources.fits(offer)]


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
    )


@hookimpl
async def skyhop_provision(ctx: BackendContext, request: ProvisionRequest) -> ClusterHandle:
    marker = _cluster_dir(ctx, request.cluster_name) / "cluster.json"
    handle = _make_handle(ctx, request)
    if not marker.exists():
        ctx.log(f"Creating {request.num_nodes} node directories for {request.cluster_name}.")
        marker.write_text(json.dumps({"instance_type": handle.instance_type}))
    return handle


@hookimpl
async def skyhop_query(ctx: BackendContext, handle: ClusterHandle) -> list[NodeStatus]:
    if not (_cluster_dir(ctx, handle.cluster_name) / "cluster.json").exists():
        return [NodeStatus(node.rank, NodeState.TERMINATED) for node in handle.nodes]
    return [NodeStatus(node.rank, NodeState.RUNNING) for node in handle.nodes]


@hookimpl
async def skyhop_down(ctx: BackendContext, handle: ClusterHandle) -> None:
    root = _cluster_dir(ctx, handle.cluster_name)
    if not root.exists():
        return
    head = handle.head
    if os.path.isdir(head.runtime_dir):
        # Stop the agent and every job it started before removing their directories.
        await agent_call(LocalCommandRunner(head), "stop")
    await trio.to_thread.run_sync(shutil.rmtree, root, True)


@hookimpl
def skyhop_command_runner(
    ctx: BackendContext, handle: ClusterHandle, node: NodeInfo
) -> CommandRunner:
    return LocalCommandRunner(node)
