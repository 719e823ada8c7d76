"""The ``ssh`` backend plugin: clusters made of machines listed in SSH node pools.

Pools are defined in ``ssh_node_pools.yaml`` (see :mod:`skyhop_ssh.pools`); ``infra:
ssh/<pool>`` picks one. Provisioning takes free hosts of the pool (a host belongs to one
cluster at a time, :mod:`skyhop_ssh.hosts`), installs the stdlib-only node agent over
SSH and records each host's CPUs, memory and GPUs (:mod:`skyhop_ssh.install`). Jobs run
through the core's default agent hooks: the head's agent starts the other ranks over SSH
with a launcher that also kills the remote side on cancel. Commands use multiplexed
OpenSSH (:mod:`skyhop_ssh.sshcmd`), files go with rsync (:mod:`skyhop_ssh.sync`).

Machines cannot be stopped: ``stop`` raises :class:`NotSupportedError`; ``down`` stops
the agent and jobs, removes the runtime directory and releases the hosts.
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs
import trio

from skyhop_core.context import BackendContext
from skyhop_core.exceptions import CommandError, NotSupportedError
from skyhop_core.hookspecs import hookimpl
from skyhop_core.models.records import (
    BackendInfo,
    CheckResult,
    ClusterHandle,
    Feature,
    NodeInfo,
    NodeStatus,
    Offer,
    ProvisionRequest,
)
from skyhop_core.models.resources import Resources
from skyhop_core.runner import CommandRunner
from skyhop_ssh import cluster
from skyhop_ssh.hosts import HostState
from skyhop_ssh.pools import POOLS_FILE, Host, PoolConfigError, load_pools

NAME = cluster.NAME
CHECK_TIMEOUT = 15.0


@hookimpl
def skyhop_backend_info() -> BackendInfo:
    return BackendInfo(
        name=NAME,
        display_name="SSH",
        features=frozenset({Feature.MULTI_NODE, Feature.OPEN_PORTS}),
        description="Machines you list in named SSH node pools.",
    )


async def _probe_all(
    ctx: BackendContext, hosts: Sequence[Host]
) -> dict[str, dict[str, object] | str]:
    """Facts of every host (key -> facts), or the reason it cannot be used (a str)."""
    results: dict[str, dict[str, object] | str] = {}

    async def one(host: Host) -> None:
        try:
            results[host.key] = await cluster.probe(ctx, host, CHECK_TIMEOUT)
        except CommandError as exc:
            results[host.key] = str(exc)
        except trio.TooSlowError:
            results[host.key] = f"no answer within {CHECK_TIMEOUT:g}s"

    async with trio.open_nursery() as nursery:
        for host in hosts:
            nursery.start_soon(one, host)
    return results


@hookimpl
async def skyhop_check(ctx: BackendContext) -> CheckResult:
    try:
        pools = load_pools(ctx.persistent_path, ctx.config)
    except PoolConfigError as exc:
        return CheckResult(backend=NAME, enabled=False, reason=str(exc), fix="Fix the file.")
    if not pools:
        return CheckResult(
            backend=NAME,
            enabled=False,
            reason="No SSH node pools are defined.",
            fix=f"List your machines in {ctx.persistent_path}/{POOLS_FILE} "
            "(pool: {user, identity_file, hosts: [...]}).",
        )
    everyone = [h for hosts in pools.values() for h in hosts]
    facts = await _probe_all(ctx, everyone)
    in_use = HostState(ctx.ensure_state_dir()).snapshot()["hosts"]
    details: dict[str, str] = {}
    for pool, hosts in pools.items():
        reachable = [h for h in hosts if not isinstance(facts[h.key], str)]
        busy = [h for h in hosts if h.key in in_use]
        details[pool] = (
            f"{len(hosts)} host(s): {len(reachable)} reachable, {len(busy)} in use, "
            f"{len([h for h in reachable if h.key not in in_use])} free"
        )
        for host in hosts:
            if isinstance(facts[host.key], str):
                details[f"{pool}/{host.label}"] = f"unreachable: {facts[host.key]}"
    enabled = any(not isinstance(f, str) for f in facts.values())
    reason = "" if enabled else "No host of any SSH node pool is reachable."
    return CheckResult(backend=NAME, enabled=enabled, reason=reason, details=details,
                       fix="" if enabled else "Check the hosts, keys and users in the pools.")  # fmt: skip


@hookimpl
async def skyhop_offers(ctx: BackendContext, resources: Resources) -> list[Offer]:
    pools = load_pools(ctx.persistent_path, ctx.config)
    state = HostState(ctx.ensure_state_dir()).snapshot()
    wanted = [h for p, hosts in pools.items() if resources.region in (None, p) for h in hosts]
    free = [h for h in wanted if h.key not in state["hosts"]]
    unknown = [h for h in free if h.key not in state["facts"]]
    probed = await _probe_all(ctx, unknown) if unknown else {}
    offers: dict[str, Offer] = {}
    for host in free:
        facts = state["facts"].get(host.key) or probed.get(host.key)
        if isinstance(facts, dict):
            offer = cluster.host_offer(host.pool, facts)
            if resources.fits(offer, pooled=True):
                offers.setdefault(offer.instance_type, offer)
    return list(offers.values())


@hookimpl
async def skyhop_provision(ctx: BackendContext, request: ProvisionRequest) -> ClusterHandle:
    return await cluster.provision(ctx, request)


@hookimpl
async def skyhop_query(ctx: BackendContext, handle: ClusterHandle) -> list[NodeStatus]:
    return await cluster.query(ctx, handle)


@hookimpl
async def skyhop_down(ctx: BackendContext, handle: ClusterHandle) -> None:
    await cluster.down(ctx, handle)


@hookimpl
async def skyhop_stop(ctx: BackendContext, handle: ClusterHandle) -> None:
    raise NotSupportedError(
        f"Cluster {handle.cluster_name!r} runs on SSH pool machines, which skyhop cannot stop "
        "or start. Use `skyhop down` to release the hosts (the machines keep running)."
    )


@hookimpl
async def skyhop_open_ports(
    ctx: BackendContext, handle: ClusterHandle, ports: Sequence[int]
) -> ClusterHandle:
    """Pool machines are reachable directly: a port is the head's address and that port."""
    mapped = dict(handle.ports)
    for port in ports:
        mapped.setdefault(port, f"{handle.head.ip}:{port}")
    return attrs.evolve(handle, ports=mapped)


@hookimpl
def skyhop_command_runner(
    ctx: BackendContext, handle: ClusterHandle, node: NodeInfo
) -> CommandRunner:
    return cluster.runner_for(ctx, node)
