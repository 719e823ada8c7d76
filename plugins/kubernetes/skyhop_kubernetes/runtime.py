"""Putting the node agent into a cluster's pods through exec, and starting it.

Every pod gets, in one exec with a tar on stdin, the stdlib-only agent package
(``<runtime_dir>/pkg/skyhop_core/agent``), the relay (``pkg/skyhop_k8s_relay.py``) and
the cluster's relay token; worker pods then start their relay (see
:mod:`skyhop_kubernetes.relay_node`), which the head's agent uses as their launcher.
Last, the core's default hook writes ``cluster.json`` on the head and starts the agent.
Idempotent: a second call re-installs the same files and leaves a running relay alone.
"""

from __future__ import annotations

import io
import os
import tarfile

import trio

from skyhop_core import agentjobs
from skyhop_core.context import BackendContext
from skyhop_core.exceptions import CommandError
from skyhop_core.models.records import ClusterHandle, NodeInfo
from skyhop_kubernetes import relay
from skyhop_kubernetes.runner import KubernetesCommandRunner
from skyhop_kubernetes.sync import UNTAR

INSTALL_TIMEOUT = 300.0


def _add(tar: tarfile.TarFile, data: bytes, arcname: str, mode: int = 0o644) -> None:
    info = tarfile.TarInfo(arcname)
    info.size, info.mode = len(data), mode
    tar.addfile(info, io.BytesIO(data))


def bundle(token: str) -> bytes:
    """The tar unpacked into ``runtime_dir``: agent package, relay, relay token."""
    agent_dir = agentjobs.agent_package_dir()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        with open(os.path.join(os.path.dirname(agent_dir), "__init__.py"), "rb") as f:
            _add(tar, f.read(), "pkg/skyhop_core/__init__.py")
        for name in sorted(os.listdir(agent_dir)):
            if name.endswith(".py"):
                with open(os.path.join(agent_dir, name), "rb") as f:
                    _add(tar, f.read(), f"pkg/skyhop_core/agent/{name}")
        with open(relay.source_path(), "rb") as f:
            _add(tar, f.read(), f"pkg/{relay.FILE_NAME}")
        _add(tar, token.encode(), relay.TOKEN_FILE, mode=0o600)
    return buffer.getvalue()


async def _install(ctx: BackendContext, node: NodeInfo, data: bytes) -> None:
    runner = KubernetesCommandRunner(ctx, node)
    with trio.fail_after(INSTALL_TIMEOUT):
        done = await runner.run(["sh", "-c", 'mkdir -p "$1" && exec python3 -c "$2" "$3"',
                                 "sh", node.home, UNTAR, node.runtime_dir], input=data)  # fmt: skip
        if done.returncode == 0 and node.rank > 0:
            done = await runner.run(["sh", "-c", relay.serve_command(node.runtime_dir)])
    if done.returncode != 0:
        detail = done.stderr.decode(errors="replace").strip()
        reason = (
            "the image has no python3 (skyhop needs python3 in the container image)"
            if done.returncode == 127
            else detail or f"exit code {done.returncode}"
        )
        raise CommandError(
            f"Installing the skyhop agent in pod {runner.pod} failed: {reason}",
            returncode=done.returncode,
            command="install",
            detail=detail,
        )


async def setup_runtime(ctx: BackendContext, handle: ClusterHandle) -> None:
    token = handle.extra.get("relay_token", "")
    if not token:
        raise CommandError(f"The handle of {handle.cluster_name!r} has no relay token; "
                           "down the cluster and launch it again.")  # fmt: skip
    ctx.log(f"Installing the skyhop agent in {len(handle.nodes)} pod(s).")
    data = bundle(token)
    errors: list[CommandError] = []

    async def one(node: NodeInfo) -> None:
        try:
            await _install(ctx, node, data)
        except CommandError as exc:
            errors.append(exc)

    async with trio.open_nursery() as nursery:
        for node in handle.nodes:
            nursery.start_soon(one, node)
    if errors:
        raise CommandError("; ".join(str(e) for e in errors))
    await agentjobs.skyhop_setup_runtime(ctx, handle)
