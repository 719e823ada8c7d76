"""The ``local`` backend plugin: every node of a cluster is a sandbox on this machine.

A cluster lives in ``<state_dir>/clusters/<name>/``: one ``node-<rank>/`` directory per
node (its home; the agent's runtime directory is ``node-<rank>/.skyhop_runtime``), one
``layers/node-<rank>/`` per node (its own writable layer over the host's read-only root,
see :mod:`skyhop_local.sandbox`), a ``STOPPED`` marker while stopped, and nothing else.
The head's agent runs on the host and starts the jobs of every node, the head's
included, through that node's launcher (``NodeInfo.extra["job_launcher"]``), which
enters the node's sandbox. Each node offers the machine's CPUs, memory and GPUs.

Where the host cannot give sandboxes (not root, no overlayfs, ``sandbox: off``), nodes
are plain directories, jobs run on the host, and uploads outside a node's home are
refused; ``skyhop check`` says which isolation is active.

Where the host allows it (root, iproute2) each sandboxed node also has its own network
namespace and address on a host bridge (:mod:`skyhop_local.network`): a task's ports
are reachable at ``<head address>:<port>``. Otherwise ports a task declares are mapped
to free host ports on loopback and the agent relays them to the declared port while the
cluster runs (``handle.extra["forward_ports"]``). ``handle.extra`` and every node's
``extra`` record the isolation they were made with (``sandbox``: ``overlay``/``none``,
``network``: ``netns``/``none``).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Mapping, Sequence
from typing import Any

import attrs
import trio

from skyhop_core.agentjobs import agent_call, cluster_description
from skyhop_core.context import BackendContext
from skyhop_core.exceptions import NotSupportedError
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
from skyhop_local import machine, network, sandbox
from skyhop_local.policy import policy, run_as_user
from skyhop_local.runner import LocalNodeRunner

# The ``local`` store comes with the ``local`` backend (pluggy finds these hooks here).
from skyhop_local.store import (  # noqa: F401
    bind_into_node,
    skyhop_store_create,
    skyhop_store_delete,
    skyhop_store_download,
    skyhop_store_exists,
    skyhop_store_info,
    skyhop_store_list,
    skyhop_store_mount_plan,
    skyhop_store_upload,
)

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


def _layer(ctx: BackendContext, root: str, rank: int, own_network: bool) -> sandbox.Layer:
    root = os.path.realpath(root)
    layer_dir = os.path.join(root, "layers", f"node-{rank}")
    net = None
    if own_network:
        net = network.NodeNetwork(layer_dir, network.NetworkConfig.from_config(ctx.config))
    return sandbox.Layer(
        dir=layer_dir,
        home=_node_dir(root, rank),
        hidden=os.path.realpath(ctx.persistent_path),
        run_as=run_as_user(ctx),
        net=net,
    )


def _support(ctx: BackendContext, handle: ClusterHandle) -> sandbox.Support:
    """The isolation ``handle``'s nodes were made with (clusters from before: none)."""
    if handle.extra.get("sandbox") == "overlay":
        return sandbox.Support("overlay", "the cluster's nodes are sandboxes")
    detected = sandbox.detect(ctx.config)
    reason = "the cluster was made without sandboxes" if detected.sandboxed else detected.reason
    return sandbox.Support("none", reason)


async def _start_layers(ctx: BackendContext, handle: ClusterHandle) -> None:
    root = cluster_dir(ctx, handle.cluster_name)
    own_network = handle.extra.get("network") == "netns"
    for node in handle.nodes:
        await trio.to_thread.run_sync(_layer(ctx, root, node.rank, own_network).start)


async def _stop_layers(ctx: BackendContext, handle: ClusterHandle, remove: bool) -> None:
    """Stop (or remove) every node's sandbox, also of nodes a failed launch never handed
    over; stopping keeps the layers and addresses, removing gives them up."""
    root = cluster_dir(ctx, handle.cluster_name)
    layers = os.path.join(root, "layers")
    entries = os.listdir(layers) if os.path.isdir(layers) else []
    for entry in entries:
        if entry.startswith("node-") and entry[5:].isdigit():
            layer = _layer(ctx, root, int(entry[5:]), own_network=True)
            await trio.to_thread.run_sync(layer.remove if remove else layer.stop)


def _unmount_under(root: str) -> None:
    """Unmount (lazily, deepest first) whatever is mounted under ``root`` on the host: a
    plain node's storage mounts (rclone exits once its mount is gone)."""
    import subprocess

    root = os.path.realpath(root)
    try:
        with open("/proc/self/mountinfo") as f:
            points = [line.split()[4].encode().decode("unicode_escape") for line in f]
    except OSError:
        return
    for point in sorted((p for p in points if p.startswith(root + os.sep)), reverse=True):
        for command in (["fusermount3", "-u", "-z", point], ["umount", "-l", point]):
            with contextlib.suppress(OSError):
                if subprocess.run(command, capture_output=True, timeout=30).returncode == 0:
                    break


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
    support = await trio.to_thread.run_sync(sandbox.detect, ctx.config)
    allowed = policy(ctx, support)
    if not allowed.enabled:
        return CheckResult(backend=NAME, enabled=False, reason=allowed.reason, fix=allowed.fix)
    if support.sandboxed:
        filesystem = f"overlay: {support.reason}"
    else:
        filesystem = (
            f"fallback, no sandbox: {support.reason}; jobs run on the host and file mounts "
            "outside ~ are refused"
        )
    try:
        net = network.detect(ctx.config, support.sandboxed)
    except ValueError as exc:  # a bad local.network section
        return CheckResult(
            backend=NAME, enabled=False, reason=str(exc), fix="Correct the server's config."
        )
    networking = f"netns: {net.reason}" if net.isolated else f"fallback: {net.reason}"
    return CheckResult(
        backend=NAME, enabled=True, details={"filesystem": filesystem, "network": networking}
    )


def configured_gpus(config: Mapping[str, Any] | None) -> dict[str, int] | None:
    """``gpus: {T4: 1}`` in the backend's config declares this machine's GPUs instead of
    probing ``nvidia-smi`` (a GPU inventory of the operator's choosing)."""
    declared = (config or {}).get("gpus")
    if declared is None:
        return None
    if not isinstance(declared, Mapping) or not all(
        isinstance(k, str) and isinstance(v, int) and not isinstance(v, bool) and v > 0
        for k, v in declared.items()
    ):
        raise NotSupportedError(
            f"backends.local.gpus: {declared!r} is not a mapping of GPU name to count "
            "(e.g. {T4: 1})."
        )
    return dict(declared)


async def machine_offer(config: Mapping[str, Any] | None = None) -> Offer:
    """The one offer of this machine (GPUs probed in a thread, or as configured)."""
    gpus = configured_gpus(config)
    if gpus is None:
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
    offer = await machine_offer(ctx.config)
    # This machine is a pool: asking for 1 of its 2 CPUs fits.
    return [offer] if resources.fits(offer, pooled=True) else []


def _map_ports(
    ctx: BackendContext, ports: Sequence[int], current: dict[int, str], head_ip: str | None
) -> dict[int, str]:
    """Where each task port is reachable: on the head's own address when it has one,
    else on a free loopback port the agent relays to the declared port."""
    mapped = dict(current)
    for port in ports:
        if port not in mapped:
            mapped[port] = f"{head_ip}:{port}" if head_ip else f"127.0.0.1:{machine.free_port()}"
            ctx.log(f"Port {port} of the task is reachable at {mapped[port]}.")
    return mapped


@hookimpl
async def skyhop_provision(ctx: BackendContext, request: ProvisionRequest) -> ClusterHandle:
    support = await trio.to_thread.run_sync(sandbox.detect, ctx.config)
    allowed = policy(ctx, support)
    if not allowed.enabled:
        raise NotSupportedError(f"The local backend is not enabled: {allowed.reason} {allowed.fix}")
    net = network.detect(ctx.config, support.sandboxed)
    isolation = {"sandbox": support.mode, "network": net.mode}
    if request.previous:
        before = {k: request.previous.extra.get(k, "none") for k in isolation}
        if before != isolation:
            raise sandbox.SandboxError(
                f"The local cluster {request.cluster_name} was made with isolation {before} "
                f"but this server now gives {isolation} ({support.reason}; {net.reason}); "
                "take it down and launch it again."
            )
    root = cluster_dir(ctx, request.cluster_name)
    os.makedirs(root, exist_ok=True)
    root = os.path.realpath(root)  # the sandbox binds homes by their real path
    offer = await machine_offer(ctx.config)
    nodes = []
    for rank in range(request.num_nodes):
        home = _node_dir(root, rank)
        os.makedirs(os.path.join(home, RUNTIME_SUBDIR), exist_ok=True)
        if allowed.run_as:
            _chown(home, allowed.run_as)  # the runtime directory stays the server's
        extra = dict(isolation)
        ip = "127.0.0.1"
        if support.sandboxed:
            layer = _layer(ctx, root, rank, net.isolated)
            await trio.to_thread.run_sync(layer.start)
            extra["job_launcher"] = json.dumps(layer.launcher())
            extra["mount_launcher"] = json.dumps(layer.mount_launcher())
            if layer.net is not None:
                ip = await trio.to_thread.run_sync(layer.net.address)
        nodes.append(
            NodeInfo(
                rank=rank,
                ip=ip,
                instance_id=f"{request.cluster_name}-{rank}",
                cpus=offer.cpus,
                memory_gb=offer.memory_gb,
                runtime_dir=os.path.join(home, RUNTIME_SUBDIR),
                home=home,
                gpus=dict(offer.accelerators),
                extra=extra,
            )
        )
    for entry in os.listdir(root):  # a relaunch with fewer nodes drops the extra ones
        if entry.startswith("node-") and int(entry[5:]) >= request.num_nodes:
            extra_layer = _layer(ctx, root, int(entry[5:]), own_network=True)
            await trio.to_thread.run_sync(extra_layer.remove)
            shutil.rmtree(os.path.join(root, entry), ignore_errors=True)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(os.path.join(root, STOPPED_MARKER))
    previous_ports = dict(request.previous.ports) if request.previous else {}
    head_ip = nodes[0].ip if net.isolated else None
    return ClusterHandle(
        cluster_name=request.cluster_name,
        backend=NAME,
        nodes=tuple(nodes),
        instance_type=INSTANCE_TYPE,
        ports=_map_ports(ctx, request.ports, previous_ports, head_ip),
        extra={**isolation, "forward_ports": "false" if head_ip else "true"},
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
    await _stop_layers(ctx, handle, remove=False)  # the layers stay; the namespaces go
    await trio.to_thread.run_sync(_unmount_under, cluster_dir(ctx, handle.cluster_name))
    root = cluster_dir(ctx, handle.cluster_name)
    if os.path.isdir(root):
        with open(os.path.join(root, STOPPED_MARKER), "w") as f:
            f.write("stopped\n")


@hookimpl
async def skyhop_start(ctx: BackendContext, handle: ClusterHandle) -> ClusterHandle:
    root = cluster_dir(ctx, handle.cluster_name)
    for node in handle.nodes:
        os.makedirs(node.runtime_dir, exist_ok=True)
    if _support(ctx, handle).sandboxed:
        support = await trio.to_thread.run_sync(sandbox.detect, ctx.config)
        if not support.sandboxed:
            raise sandbox.SandboxError(
                f"Cannot start the local cluster {handle.cluster_name}: its nodes are "
                f"sandboxes and this server cannot make them now ({support.reason})."
            )
        await _start_layers(ctx, handle)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(os.path.join(root, STOPPED_MARKER))
    return handle


@hookimpl
async def skyhop_down(ctx: BackendContext, handle: ClusterHandle) -> None:
    await _stop_agent(handle)
    await _stop_layers(ctx, handle, remove=True)  # before the rmtree: no holder may remain
    # Nor a mount: the rmtree would walk into a bucket and delete its files.
    await trio.to_thread.run_sync(_unmount_under, cluster_dir(ctx, handle.cluster_name))
    await trio.to_thread.run_sync(
        lambda: shutil.rmtree(cluster_dir(ctx, handle.cluster_name), ignore_errors=True)
    )


@hookimpl
async def skyhop_query(ctx: BackendContext, handle: ClusterHandle) -> list[NodeStatus]:
    root = cluster_dir(ctx, handle.cluster_name)
    stopped = os.path.exists(os.path.join(root, STOPPED_MARKER))
    sandboxed = _support(ctx, handle).sandboxed
    statuses = []
    for node in handle.nodes:
        if not os.path.isdir(node.home):
            state = NodeState.TERMINATED
        elif stopped:
            state = NodeState.STOPPED
        elif sandboxed and _layer(ctx, root, node.rank, False).holder() is None:
            # The node's namespaces are gone (a reboot, a killed holder): like a machine
            # that is off, its layer kept; `start` brings it back.
            state = NodeState.STOPPED
        else:
            state = NodeState.RUNNING
        statuses.append(NodeStatus(rank=node.rank, state=state))
    return statuses


@hookimpl
async def skyhop_open_ports(
    ctx: BackendContext, handle: ClusterHandle, ports: Sequence[int]
) -> ClusterHandle:
    head_ip = handle.head.ip if handle.extra.get("network") == "netns" else None
    opened = attrs.evolve(handle, ports=_map_ports(ctx, ports, dict(handle.ports), head_ip))
    description = os.path.join(handle.head.runtime_dir, "cluster.json")
    if opened.ports != handle.ports and os.path.exists(description):
        # The running agent notices the rewritten description and starts relaying.
        with open(description + ".tmp", "w") as f:
            json.dump(cluster_description(opened), f, indent=2)
        os.replace(description + ".tmp", description)
    return opened


@hookimpl
async def skyhop_mount_host_path(
    ctx: BackendContext, handle: ClusterHandle, host_path: str, mount_path: str
) -> None:
    """Bind a directory of this machine (a ``local`` bucket) into every node."""
    support = _support(ctx, handle)
    root = cluster_dir(ctx, handle.cluster_name)
    for node in handle.nodes:
        runner = skyhop_command_runner(ctx, handle, node)
        target = runner.resolve(mount_path)
        if not target.startswith("/"):
            target = os.path.join(node.home, target)
        layer = _layer(ctx, root, node.rank, own_network=False) if support.sandboxed else None
        pid = layer.holder() if layer is not None else None
        if layer is not None and pid is None:
            raise NotSupportedError(f"The sandbox of node {node.rank} is not running.")
        await trio.to_thread.run_sync(
            bind_into_node, pid, layer.root if layer is not None else "/", host_path, target
        )


@hookimpl
def skyhop_command_runner(
    ctx: BackendContext, handle: ClusterHandle, node: NodeInfo
) -> CommandRunner:
    support = _support(ctx, handle)
    root = os.path.dirname(node.home)
    layer = _layer(ctx, root, node.rank, own_network=False) if support.sandboxed else None
    return LocalNodeRunner(node, layer, support, run_as=run_as_user(ctx))


def _chown(path: str, user: str) -> None:
    import pwd

    entry = pwd.getpwnam(user)
    os.chown(path, entry.pw_uid, entry.pw_gid)
