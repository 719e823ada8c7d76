"""Provisioning, querying and downing clusters made of pool hosts."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import trio

from skyhop_core.agentjobs import agent_call
from skyhop_core.context import BackendContext
from skyhop_core.exceptions import CapacityError, CommandError, SkyhopError
from skyhop_core.models.records import (
    ClusterHandle,
    NodeInfo,
    NodeState,
    NodeStatus,
    Offer,
    ProvisionRequest,
)
from skyhop_ssh import install
from skyhop_ssh.hosts import HostState
from skyhop_ssh.pools import Host, load_pools
from skyhop_ssh.sshcmd import SSHCommandRunner, Target

NAME = "ssh"
QUERY_TIMEOUT = 15.0
DOWN_TIMEOUT = 30.0


def known_hosts(ctx: BackendContext) -> str:
    return f"{ctx.ensure_state_dir()}/known_hosts"


def host_node(host: Host, rank: int, facts: dict[str, Any] | None = None) -> NodeInfo:
    """A NodeInfo for ``host`` (facts unknown yet: zeros and the configured paths)."""
    facts = facts or {}
    extra = {
        "pool": host.pool,
        "ssh_user": host.user,
        "ssh_port": str(host.port),
        "ssh_identity_file": host.identity_file or "",
        "ssh_proxy_jump": host.proxy_jump or "",
        "rsync": "true" if facts.get("rsync", True) else "false",
    }
    return NodeInfo(
        rank=rank,
        ip=host.ip,
        instance_id=host.key,
        cpus=float(facts.get("cpus", 0)),
        memory_gb=float(facts.get("memory_gb", 0)),
        runtime_dir=str(facts.get("runtime_dir", host.runtime_dir)),
        home=str(facts.get("home", host.home or "~")),
        gpus={str(k): int(v) for k, v in (facts.get("gpus") or {}).items()},
        extra=extra,
    )


def host_offer(pool: str, facts: dict[str, Any]) -> Offer:
    gpus = {str(k): int(v) for k, v in (facts.get("gpus") or {}).items()}
    shape = f"{int(facts['cpus'])}cpu-{float(facts['memory_gb']):g}gb"
    shape += "".join(f"-{k}x{v}" for k, v in sorted(gpus.items()))
    return Offer(backend=NAME, instance_type=f"{pool}-{shape}", cpus=float(facts["cpus"]),
                 memory_gb=float(facts["memory_gb"]), accelerators=gpus, region=pool)  # fmt: skip


def runner_for(ctx: BackendContext, node: NodeInfo) -> SSHCommandRunner:
    return SSHCommandRunner(node, known_hosts(ctx), log=ctx.log)


async def probe(ctx: BackendContext, host: Host, timeout: float = 20.0) -> dict[str, Any]:
    """Connect to ``host`` and return its facts (cached in the state); raises CommandError."""
    runner = runner_for(ctx, host_node(host, 0))
    with trio.fail_after(timeout):
        facts = await install.install(runner, host.runtime_dir, host.home, None)
    HostState(ctx.ensure_state_dir()).record_facts(host.key, facts)
    return facts


def _choose(
    ctx: BackendContext, request: ProvisionRequest, hosts: list[Host]
) -> tuple[list[Host], list[str]]:
    """Reserve ``num_nodes`` hosts for the cluster: (hosts in rank order, newly taken keys)."""
    name, wanted, pool = request.cluster_name, request.num_nodes, hosts[0].pool
    by_key = {h.key: h for h in hosts}
    with HostState(ctx.ensure_state_dir()).locked() as data:
        held = sorted(
            (int(v["rank"]), k) for k, v in data["hosts"].items()
            if v.get("cluster") == name and k in by_key
        )  # fmt: skip
        chosen = [by_key[k] for _, k in held][:wanted]
        taken: list[str] = []
        for host in hosts:
            if len(chosen) >= wanted:
                break
            if host.key in data["hosts"]:
                continue
            facts = data["facts"].get(host.key)
            if facts and not request.resources.fits(host_offer(pool, facts), pooled=True):
                continue
            chosen.append(host)
            taken.append(host.key)
        if len(chosen) < wanted:
            busy = sum(1 for h in hosts if h.key in data["hosts"])
            raise CapacityError(
                f"SSH pool {pool!r} has {len(chosen)} free host(s) that fit, {wanted} needed "
                f"({len(hosts)} hosts, {busy} in use by other clusters). Run `skyhop down` on "
                "a cluster, or add hosts to the pool.",
                backend=NAME, region=pool,
            )  # fmt: skip
        for key in list(data["hosts"]):  # a relaunch with fewer nodes gives the rest back
            if data["hosts"][key].get("cluster") == name and key not in {h.key for h in chosen}:
                del data["hosts"][key]
        for rank, host in enumerate(chosen):
            data["hosts"][host.key] = {"cluster": name, "rank": rank, "pool": pool}
    return chosen, taken


async def provision(ctx: BackendContext, request: ProvisionRequest) -> ClusterHandle:
    """Take free hosts of the pool, install the agent on each, return the handle."""
    pools = load_pools(ctx.persistent_path, ctx.config)
    pool = request.offer.region or request.resources.region
    if pool not in pools:
        raise SkyhopError(f"No SSH node pool named {pool!r} (pools: {sorted(pools) or 'none'}).")
    chosen, taken = _choose(ctx, request, pools[pool])
    state = HostState(ctx.state_dir)
    try:
        ctx.log(f"Installing the skyhop agent on {', '.join(h.label for h in chosen)}.")
        head = chosen[0]
        errors: list[CommandError] = []
        try:
            head_runtime = (await probe(ctx, head))["runtime_dir"]
        except CommandError as exc:
            raise _unusable(pool, [exc]) from exc
        keys = {
            install.key_name(_target(h)): h.identity_file for h in chosen[1:] if h.identity_file
        }
        bundles = {True: install.bundle(keys), False: install.bundle({})}
        facts: dict[str, dict[str, Any]] = {}

        async def one(host: Host, is_head: bool) -> None:
            runner = runner_for(ctx, host_node(host, 0))
            try:
                facts[host.key] = await install.install(
                    runner, host.runtime_dir, host.home, bundles[is_head]
                )
            except CommandError as exc:
                errors.append(exc)

        async with trio.open_nursery() as nursery:
            for i, host in enumerate(chosen):
                nursery.start_soon(one, host, i == 0)
        if errors:
            raise _unusable(pool, errors)
    except BaseException:
        with trio.CancelScope(shield=True):
            state.release(request.cluster_name, taken)
        raise
    nodes = []
    for rank, host in enumerate(chosen):
        state.record_facts(host.key, facts[host.key])
        node = host_node(host, rank, facts[host.key])
        if rank > 0:
            launcher = install.launcher(head_runtime, _target(host))
            node = _with_extra(node, agent_launcher=json.dumps(launcher))
        nodes.append(node)
    ports = dict(request.previous.ports) if request.previous else {}
    ports.update({p: f"{head.ip}:{p}" for p in request.ports})
    return ClusterHandle(cluster_name=request.cluster_name, backend=NAME, nodes=tuple(nodes),
                         instance_type=request.offer.instance_type, region=pool, ports=ports)  # fmt: skip


def _unusable(pool: str, errors: list[CommandError]) -> CapacityError:
    reasons = "; ".join(str(e).rstrip(".") for e in errors)
    return CapacityError(
        f"SSH pool {pool!r}: {reasons}. Fix the host or remove it from the pool.",
        backend=NAME, region=pool,
    )  # fmt: skip


def _target(host: Host) -> Target:
    return Target(host.ip, host.port, host.user, host.identity_file, host.proxy_jump)


def _with_extra(node: NodeInfo, **extra: str) -> NodeInfo:
    import attrs

    return attrs.evolve(node, extra={**node.extra, **extra})


async def query(ctx: BackendContext, handle: ClusterHandle) -> list[NodeStatus]:
    """RUNNING for a held host that answers, UNKNOWN for one that does not."""
    held = HostState(ctx.ensure_state_dir()).cluster_hosts(handle.cluster_name)
    if not held:
        return []
    statuses: dict[int, NodeStatus] = {}

    async def one(node: NodeInfo) -> None:
        if node.instance_id not in held:
            statuses[node.rank] = NodeStatus(node.rank, NodeState.TERMINATED)
            return
        detail = f"{node.ip} did not answer within {QUERY_TIMEOUT:g}s"
        with trio.move_on_after(QUERY_TIMEOUT):
            done = await runner_for(ctx, node).run(["test", "-d", node.runtime_dir])
            if done.returncode == 0:
                statuses[node.rank] = NodeStatus(node.rank, NodeState.RUNNING)
                return
            detail = done.stderr.decode(errors="replace").strip() or f"{node.runtime_dir} is gone"
        statuses[node.rank] = NodeStatus(node.rank, NodeState.UNKNOWN, detail=detail)

    async with trio.open_nursery() as nursery:
        for node in handle.nodes:
            nursery.start_soon(one, node)
    return [statuses[n.rank] for n in handle.nodes]


async def down(ctx: BackendContext, handle: ClusterHandle) -> None:
    """Stop the agent and every job, remove the runtime directories, release the hosts."""
    state = HostState(ctx.ensure_state_dir())
    held = state.cluster_hosts(handle.cluster_name)
    nodes: Sequence[NodeInfo] = [n for n in handle.nodes if n.instance_id in held]
    if nodes and handle.head.instance_id in held:
        with trio.move_on_after(DOWN_TIMEOUT):
            try:
                await agent_call(runner_for(ctx, handle.head), "stop")
            except CommandError as exc:
                ctx.log(f"Could not stop the agent on {handle.head.ip}: {exc}")

    async def clean(node: NodeInfo) -> None:
        runner = runner_for(ctx, node)
        if node.runtime_dir.rstrip("/") not in ("", node.home.rstrip("/")):
            with trio.move_on_after(DOWN_TIMEOUT):
                done = await runner.run(["rm", "-rf", node.runtime_dir])
                if done.returncode != 0:
                    ctx.log(f"Could not clean {node.ip}: {done.stderr.decode(errors='replace')}")
        await runner.close()

    async with trio.open_nursery() as nursery:
        for node in nodes:
            nursery.start_soon(clean, node)
    state.release(handle.cluster_name)
