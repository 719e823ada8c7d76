"""Putting the node agent on fresh cloud VMs (EC2, Compute Engine): wait for SSH, install, start.

Shared by the cloud backends that reach their instances over OpenSSH (``aws``, ``gcp``); the
backend's config section is ``ctx.config``, so each reads its own ``ssh_wait_seconds``.
A new instance is running long before its sshd answers (boot, cloud-init or the guest
agent installing the key), so :func:`setup_runtime` first retries SSH on every node until
it answers or ``ssh_wait_seconds`` (default 10 minutes) pass. Then it installs the stdlib-only
agent bundle on every node over the same OpenSSH runner and in the same single round trip
as the ssh backend (:func:`skyhop_ssh.install.install`); the head's bundle also carries
the cluster key, which its agent uses to reach the other ranks. Last, the core's default
hook writes ``cluster.json`` on the head and starts the agent.

How the head reaches rank ``r > 0`` is decided when the handle is built
(:func:`with_launchers`): ``NodeInfo.extra["agent_launcher"]``, an ``ssh`` argv prefix to
the node's private address (nodes of a cluster share a VPC or VPC network), with the key under the head's
``runtime_dir/keys``. The hook cannot change the handle, so every path it relies on is
fixed at provision time from the SSH user.
"""

from __future__ import annotations

import json
import os
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING

import attrs
import trio

from skyhop_core import agentjobs
from skyhop_core.context import BackendContext
from skyhop_core.exceptions import CommandError
from skyhop_core.models.records import ClusterHandle, NodeInfo
from skyhop_ssh import install
from skyhop_ssh.sshcmd import Target

if TYPE_CHECKING:
    from skyhop_ssh.sshcmd import SSHCommandRunner

#: How long to wait for SSH on a new instance unless ``ssh_wait_seconds`` says.
DEFAULT_SSH_WAIT = 600.0
#: Seconds between SSH attempts on a node that does not answer yet.
SSH_RETRY_INTERVAL = 2.0
#: Bound on one install round trip (unpacking the bundle, probing the host).
INSTALL_TIMEOUT = 120.0


def known_hosts_file(ctx: BackendContext) -> str:
    """The backend's own known_hosts (never the user's ``~/.ssh``)."""
    return os.path.join(ctx.ensure_state_dir(), "known_hosts")


def make_runner(ctx: BackendContext, node: NodeInfo) -> SSHCommandRunner:
    """An SSH command runner for ``node`` (connects lazily, on first use): the ssh
    backend's multiplexed OpenSSH runner, with the key in ``node.extra["ssh_identity_file"]``."""
    from skyhop_ssh.sshcmd import SSHCommandRunner

    return SSHCommandRunner(node, known_hosts_file(ctx), log=ctx.log)


def ssh_wait_seconds(ctx: BackendContext) -> float:
    """The SSH wait bound from the backend's config (``ssh_wait_seconds``)."""
    return float(ctx.config.get("ssh_wait_seconds", DEFAULT_SSH_WAIT))


def launcher_target(node: NodeInfo) -> Target:
    """How the head connects to ``node``: its private address when it has one."""
    target = Target.from_node(node)
    private = node.extra.get("private_ip")
    return attrs.evolve(target, ip=private) if private else target


def with_launchers(handle: ClusterHandle) -> ClusterHandle:
    """``handle`` with ``extra["agent_launcher"]`` set on every node of rank > 0."""
    if not handle.nodes:
        return handle
    head_runtime = handle.head.runtime_dir
    nodes = [handle.nodes[0]]
    for node in handle.nodes[1:]:
        argv = install.launcher(head_runtime, launcher_target(node))
        nodes.append(attrs.evolve(node, extra={**node.extra, "agent_launcher": json.dumps(argv)}))
    return attrs.evolve(handle, nodes=tuple(nodes))


def head_keys(handle: ClusterHandle) -> dict[str, str]:
    """The keys the head's bundle carries: ``keys/`` file name -> local identity file."""
    keys: dict[str, str] = {}
    for node in handle.nodes[1:]:
        identity = node.extra.get("ssh_identity_file")
        if identity:
            keys[install.key_name(launcher_target(node))] = identity
    return keys


async def wait_for_ssh(ctx: BackendContext, node: NodeInfo, timeout: float) -> None:
    """Retry a no-op over SSH on ``node`` until it succeeds or ``timeout`` seconds pass.

    Cancellable: attempts are cancelled with the caller and the pauses are
    ``trio.sleep``. Raises :class:`CommandError` naming the instance, its address and the
    last SSH error when the node never answered.
    """
    runner = make_runner(ctx, node)
    target = Target.from_node(node)
    deadline = trio.current_time() + timeout
    last = "no attempt finished in time"
    attempts = 0
    while True:
        remaining = deadline - trio.current_time()
        if remaining <= 0:
            break
        with trio.move_on_after(remaining):
            attempts += 1
            result = await runner.run(["true"])
            if result.returncode == 0:
                return
            detail = result.stderr.decode(errors="replace").strip()
            last = detail or f"exit code {result.returncode}"
        remaining = deadline - trio.current_time()
        if remaining <= 0:
            break
        await trio.sleep(min(SSH_RETRY_INTERVAL, remaining))
    raise CommandError(
        f"Instance {node.instance_id} (rank {node.rank}, {target.destination}:{target.port}) "
        f"did not answer SSH within {timeout:g}s ({attempts} attempt(s)); last error: {last}",
        returncode=255, command=f"ssh {target.destination}", detail=last,
    )  # fmt: skip


async def _install_node(ctx: BackendContext, node: NodeInfo, data: bytes) -> None:
    """Install the agent bundle ``data`` on ``node`` (bounded by INSTALL_TIMEOUT)."""
    runner = make_runner(ctx, node)
    try:
        with trio.fail_after(INSTALL_TIMEOUT):
            await install.install(runner, node.runtime_dir, node.home, data)
    except trio.TooSlowError:
        raise CommandError(
            f"Instance {node.instance_id}: installing the agent took over {INSTALL_TIMEOUT:g}s.",
            command=f"install on {node.ip}",
        ) from None


async def _on_every_node(
    nodes: Sequence[NodeInfo], step: Callable[[NodeInfo], Awaitable[None]]
) -> None:
    """Run ``step`` on every node at once; their failures become one CommandError.

    (A nursery would raise an ExceptionGroup; the user should see every node's reason.)
    """
    errors: list[CommandError] = []

    async def one(node: NodeInfo) -> None:
        try:
            await step(node)
        except CommandError as exc:
            errors.append(exc)

    async with trio.open_nursery() as nursery:
        for node in nodes:
            nursery.start_soon(one, node)
    if len(errors) == 1:
        raise errors[0]
    if errors:
        raise CommandError("; ".join(str(e) for e in errors))


async def setup_runtime(ctx: BackendContext, handle: ClusterHandle) -> None:
    """Wait for SSH on every node, install the agent on each, then start it on the head."""
    timeout = ssh_wait_seconds(ctx)
    ctx.log(f"Waiting for SSH on {len(handle.nodes)} instance(s) (up to {timeout:g}s).")
    await _on_every_node(handle.nodes, lambda node: wait_for_ssh(ctx, node, timeout))
    ctx.log("Installing the skyhop agent on the instances.")
    bundles = {True: install.bundle(head_keys(handle)), False: install.bundle({})}
    await _on_every_node(
        handle.nodes, lambda node: _install_node(ctx, node, bundles[node.rank == 0])
    )
    await agentjobs.skyhop_setup_runtime(ctx, handle)
