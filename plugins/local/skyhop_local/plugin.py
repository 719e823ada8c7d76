"""The ``local`` backend plugin: every node of a cluster is a directory on this machine.

A cluster lives in ``<state_dir>/clusters/<name>/``: one ``node-<rank>/`` directory per
node (its home; the agent's runtime directory is ``node-<rank>/.skyhop_runtime``), a
``STOPPED`` marker while stopped, and nothing else. Commands run as local subprocesses
(:class:`~skyhop_core.localrunner.LocalCommandRunner`). Each node offers the machine's
CPUs, memory and GPUs; the head's agent runs jobs of every node (it has no launcher).

Ports a task declares are mapped to free host ports on loopback; the agent relays them
to the declared port while the cluster runs (``handle.extra["forward_ports"]``).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Sequence

import attrs
import trio

from skyhop_core.agentjobs import agent_call, cluster_description
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
from skyhop_core.models.resources import Resources
from skyhop_core.runner import CommandRunner
from skyhop_local import machine

NAME = "local"
INSTANCE_TYPE = "local"
STOPPED_MARKER = "STOPPED"
RUNTIME_SUBDIR = ".skyhop_runtime"
#: Most nodes of one local cluster unless the config says otherwise.
DEFAULT_MAX_NODES = 16


def cluster_dir(ctx: BackendContext, cluster_name: str) -> str:
    return os.path.join(ctx.state_dir, "clusters", cluster_name)


def _node_dir(root: str, rank: int) -> str:
    return os.path.join(root, f"node-{rank}")


@hookimpl
def skyhop_backend_info() -> BackendInfo:
    return BackendInfo(
        name=NAME,
        display_name="Local",
        features=frozenset(
            {Feature.STOP, Feature.AUTOSTOP, Feature.MULTI_NODE, Feature.OPEN_PORTS}
        ),
        description="This machine; a multi-node cluster is several node directories.",
        # Every node shares this machine; more is configurable (backends: local: max_nodes).
        max_nodes=DEFAULT_MAX_NODES,
    )


@hookimpl
async def skyhop_check(ctx: BackendContext) -> CheckResult:
    return CheckResult(backend=NAME, enabled=True)


async def machine_offer() -> Offer:
    """The one offer of this machine (GPUs probed in a thread)."""
    gpus = await trio.to_thread.run_sync(machine.gpus)
    return Offer(
        backend=NAME,
        instance_type=INSTANCE_TYPE,
        cpus=float(machine.cpu_count()),
        memory_gb=machine.memory_gb(),
        accelerators=gpus,
        price=0.0,
    )


@hookimpl
async def skyhop_offers(ctx: BackendContext, resources: Resources) -> list[Offer]:
    offer = await machine_offer()
    # This machine is a pool: asking for 1 of its 2 CPUs fits.
    return [offer] if resources.fits(offer, pooled=True) else []


def _map_ports(
    ctx: BackendContext, ports: Sequence[int], current: dict[int, str]
) -> dict[int, str]:
    mapped = dict(current)
    for port in ports:
        if port not in mapped:
            mapped[port] = f"127.0.0.1:{machine.free_port()}"
            ctx.log(f"Port {port} of the task is reachable at {mapped[port]}.")
    return mapped


@hookimpl
async def skyhop_provision(ctx: BackendContext, request: ProvisionRequest) -> ClusterHandle:
    root = cluster_dir(ctx, request.cluster_name)
    offer = await machine_offer()
    nodes = []
    for rank in range(request.num_nodes):
        home = _node_dir(root, rank)
        os.makedirs(os.path.join(home, RUNTIME_SUBDIR), exist_ok=True)
        nodes.append(
            NodeInfo(
                rank=rank,
                ip="127.0.0.1",
                instance_id=f"{request.cluster_name}-{rank}",
                cpus=offer.cpus,
                memory_gb=offer.memory_gb,
                runtime_dir=os.path.join(home, RUNTIME_SUBDIR),
                home=home,
                gpus=dict(offer.accelerators),
            )
        )
    for entry in os.listdir(root):  # a relaunch with fewer nodes drops the extra ones
        if entry.startswith("node-") and int(entry[5:]) >= request.num_nodes:
            shutil.rmtree(os.path.join(root, entry), ignore_errors=True)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(os.path.join(root, STOPPED_MARKER))
    previous_ports = dict(request.previous.ports) if request.previous else {}
    return ClusterHandle(
        cluster_name=request.cluster_name,
        backend=NAME,
        nodes=tuple(nodes),
        instance_type=INSTANCE_TYPE,
        ports=_map_ports(ctx, request.ports, previous_ports),
        extra={"forward_ports": "true"},
    )


async def _stop_agent(handle: ClusterHandle) -> None:
    """Stop the head's agent and kill every job (a no-op when there is no runtime)."""
    if not handle.nodes:
        return  # a launch that died before its nodes were handed over
    head = handle.head
    if os.path.isdir(head.runtime_dir):
        await agent_call(LocalCommandRunner(head), "stop")


@hookimpl
async def skyhop_stop(ctx: BackendContext, handle: ClusterHandle) -> None:
    await _stop_agent(handle)
    root = cluster_dir(ctx, handle.cluster_name)
    if os.path.isdir(root):
        with open(os.path.join(root, STOPPED_MARKER), "w") as f:
            f.write("stopped\n")


@hookimpl
async def skyhop_start(ctx: BackendContext, handle: ClusterHandle) -> ClusterHandle:
    root = cluster_dir(ctx, handle.cluster_name)
    for node in handle.nodes:
        os.makedirs(node.runtime_dir, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(os.path.join(root, STOPPED_MARKER))
    return handle


@hookimpl
async def skyhop_down(ctx: BackendContext, handle: ClusterHandle) -> None:
    await _stop_agent(handle)
    await trio.to_thread.run_sync(
        lambda: shutil.rmtree(cluster_dir(ctx, handle.cluster_name), ignore_errors=True)
    )


@hookimpl
async def skyhop_query(ctx: BackendContext, handle: ClusterHandle) -> list[NodeStatus]:
    root = cluster_dir(ctx, handle.cluster_name)
    stopped = os.path.exists(os.path.join(root, STOPPED_MARKER))
    statuses = []
    for node in handle.nodes:
        if not os.path.isdir(node.home):
            state = NodeState.TERMINATED
        else:
            state = NodeState.STOPPED if stopped else NodeState.RUNNING
        statuses.append(NodeStatus(rank=node.rank, state=state))
    return statuses


@hookimpl
async def skyhop_open_ports(
    ctx: BackendContext, handle: ClusterHandle, ports: Sequence[int]
) -> ClusterHandle:
    opened = attrs.evolve(handle, ports=_map_ports(ctx, ports, dict(handle.ports)))
    description = os.path.join(handle.head.runtime_dir, "cluster.json")
    if opened.ports != handle.ports and os.path.exists(description):
        # The running agent notices the rewritten description and starts relaying.
        with open(description + ".tmp", "w") as f:
            json.dump(cluster_description(opened), f, indent=2)
        os.replace(description + ".tmp", description)
    return opened


@hookimpl
def skyhop_command_runner(
    ctx: BackendContext, handle: ClusterHandle, node: NodeInfo
) -> CommandRunner:
    return LocalCommandRunner(node)
