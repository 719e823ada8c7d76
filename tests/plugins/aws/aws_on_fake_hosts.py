"""EC2 instances on moto mapped onto real sshd hosts, so the node agent can run.

moto's instances are records, not machines: nothing answers SSH at their addresses. These
helpers point each node of a handle the AWS backend built at a fake host from
``tests/plugins/ssh/ssh_netns.py`` (loaded by path: one copy of the namespace code): the
node's address, SSH user and key, and its home and runtime directory (the namespaces share
one filesystem, so every host needs directories of its own). Importable as
``aws_on_fake_hosts`` from the AWS tests.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import attrs
import trio

from skyhop_aws import runtime
from skyhop_aws.plugin import AwsPlugin
from skyhop_aws.runner import make_runner
from skyhop_core.agentjobs import agent_call
from skyhop_core.context import BackendContext
from skyhop_core.exceptions import CommandError
from skyhop_core.hookspecs import hookimpl
from skyhop_core.models.records import ClusterHandle, ProvisionRequest


def load_ssh_netns() -> ModuleType:
    """The ssh tests' fake-host module, by path."""
    if "ssh_netns" in sys.modules:  # the ssh tests' conftest already imported it
        return sys.modules["ssh_netns"]
    path = Path(__file__).resolve().parents[1] / "ssh" / "ssh_netns.py"
    spec = importlib.util.spec_from_file_location("ssh_netns", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["ssh_netns"] = module
    spec.loader.exec_module(module)
    return module


def on_fake_hosts(handle: ClusterHandle, hosts: Any) -> ClusterHandle:
    """``handle`` with node ``i`` rewritten to fake host ``i``; the launchers of ranks > 0
    are rebuilt for the new addresses by the backend's own code."""
    spec = hosts.pool()
    nodes = []
    for node, host in zip(handle.nodes, spec["hosts"], strict=False):
        extra = {**node.extra, "ssh_user": spec["user"], "ssh_port": "22",
                 "ssh_identity_file": spec["identity_file"], "private_ip": host["ip"]}  # fmt: skip
        nodes.append(attrs.evolve(node, ip=host["ip"], home=host["home"],
                                  runtime_dir=host["runtime_dir"], extra=extra))  # fmt: skip
    assert len(nodes) == len(handle.nodes), "more nodes than fake hosts"
    return runtime.with_launchers(attrs.evolve(handle, nodes=tuple(nodes)))


async def stop_agents(ctx: BackendContext, handle: ClusterHandle, wipe: bool = False) -> None:
    """What stopping (``wipe``: terminating) the VMs does to the agent: stop it, remove the
    runtime directories when wiping; and close this process's SSH master connections."""
    with trio.CancelScope(shield=True), trio.move_on_after(30):
        try:
            await agent_call(make_runner(ctx, handle.head), "stop")
        except CommandError as exc:
            print(f"stopping the agent on {handle.head.ip} failed: {exc}")
        for node in handle.nodes:
            runner = make_runner(ctx, node)
            if wipe:
                await runner.run(["rm", "-rf", node.runtime_dir])
            await runner.close()


class FakeHostsAwsPlugin(AwsPlugin):
    """The AWS plugin whose handles point at fake hosts (EC2 itself is moto's).

    Only the addresses and paths change: provisioning, the node agent's installation and
    the jobs are the real plugin's code. Stop and down also stop the agent on the hosts,
    as stopping or terminating the instances would.
    """

    def __init__(self, hosts: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.hosts = hosts

    @hookimpl
    async def skyhop_provision(
        self, ctx: BackendContext, request: ProvisionRequest
    ) -> ClusterHandle:
        return on_fake_hosts(await super().skyhop_provision(ctx, request), self.hosts)

    @hookimpl
    async def skyhop_start(self, ctx: BackendContext, handle: ClusterHandle) -> ClusterHandle:
        return on_fake_hosts(await super().skyhop_start(ctx, handle), self.hosts)

    @hookimpl
    async def skyhop_stop(self, ctx: BackendContext, handle: ClusterHandle) -> None:
        await stop_agents(ctx, handle)
        await super().skyhop_stop(ctx, handle)

    @hookimpl
    async def skyhop_down(self, ctx: BackendContext, handle: ClusterHandle) -> None:
        if handle.nodes:  # a node-less handle: no agent was ever reachable through it
            await stop_agents(ctx, handle, wipe=True)
        await super().skyhop_down(ctx, handle)
