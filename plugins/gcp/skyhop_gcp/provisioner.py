"""The GCP cluster lifecycle: provision, stop, start, down, query, open ports.

Each function takes the hook's context and a :class:`Gce` (the Compute client bound to the
offer's region and zone, so an error names its place). Inserts, stops, starts and
deletes return operations that are waited on (:meth:`Compute.wait`); instance states
are then polled with ``trio.sleep`` until they are what the step needs. Every wait is
cancellable; a failed first launch deletes what it created, shielded from cancellation.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import attrs
import trio

from skyhop_core.context import BackendContext
from skyhop_core.exceptions import CapacityError, SkyhopError
from skyhop_core.models.records import (
    ClusterHandle,
    NodeInfo,
    NodeState,
    NodeStatus,
    ProvisionRequest,
)
from skyhop_gcp import catalog, errors, gce
from skyhop_gcp.compute import Compute, GcpApiError
from skyhop_ssh.vmsetup import with_launchers

BACKEND = "gcp"
WAIT_TIMEOUT = 900.0
STATES = {
    "PROVISIONING": NodeState.PENDING,
    "STAGING": NodeState.PENDING,
    "RUNNING": NodeState.RUNNING,
    "STOPPING": NodeState.STOPPING,
    "SUSPENDING": NodeState.STOPPING,
    "SUSPENDED": NodeState.STOPPED,
    "TERMINATED": NodeState.STOPPED,  # GCE's word for a stopped VM
}


@attrs.frozen
class Gce:
    """Compute in one zone: the client and the place errors are attributed to."""

    compute: Compute
    region: str | None
    zone: str

    async def __call__(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        return await self._typed(self.compute.call(method, path, **kwargs))

    async def wait(self, op: dict[str, Any]) -> dict[str, Any]:
        return await self._typed(self.compute.wait(op))

    async def instances(self, cluster: str) -> list[dict[str, Any]]:
        """The cluster's instances in this zone, head first."""
        found = await self._typed(self.compute.list(f"zones/{self.zone}/instances",
                                                    gce.cluster_filter(cluster)))  # fmt: skip
        return sorted(found, key=lambda i: (gce.rank_of(i), i["name"]))

    async def get(self, name: str) -> dict[str, Any] | None:
        try:
            return await self.compute.call("GET", f"zones/{self.zone}/instances/{name}")
        except GcpApiError as exc:
            if exc.status == 404:
                return None
            errors.reraise(exc, region=self.region, zone=self.zone)
            raise

    async def _typed(self, awaitable: Awaitable[Any]) -> Any:
        try:
            return await awaitable
        except GcpApiError as exc:
            errors.reraise(exc, region=self.region, zone=self.zone)
            raise


def poll_interval(ctx: BackendContext) -> float:
    return float(ctx.config.get("poll_interval", 2.0))


def _image(ctx: BackendContext, request: ProvisionRequest) -> str:
    for source in (getattr(request.resources, "image_id", None), ctx.config.get("image_id")):
        if isinstance(source, str) and source:
            return source
        if isinstance(source, dict) and source.get(request.offer.region):
            return str(source[request.offer.region])
    return gce.DEFAULT_IMAGE


async def wait_for(ctx: BackendContext, zone: Gce, names: Sequence[str], status: str,
                   timeout: float = WAIT_TIMEOUT) -> dict[str, dict[str, Any]]:  # fmt: skip
    """Poll until every instance in ``names`` has ``status`` (for TERMINATED: or is gone).

    An instance that vanishes or stops while we wait for RUNNING (a spot VM taken back,
    a VM Google could not start) is a capacity error in its zone.
    """
    with trio.fail_after(timeout):
        while True:
            found = {n: await zone.get(n) for n in names}
            states = {n: (i or {}).get("status") for n, i in found.items()}
            # Stopping: an instance deleted meanwhile is as stopped as it will get.
            if all(s == status or (s is None and status == "TERMINATED")
                   for s in states.values()):  # fmt: skip
                return {n: i for n, i in found.items() if i is not None}
            if status == "RUNNING" and any(s in (None, "TERMINATED") for s in states.values()):
                raise CapacityError(f"An instance stopped or vanished while starting in {zone.zone}.",
                                    backend=BACKEND, region=zone.region, zone=zone.zone)  # fmt: skip
            await trio.sleep(poll_interval(ctx))


async def _all(steps: Sequence[Callable[[], Awaitable[Any]]]) -> None:
    """Run ``steps`` at once; re-raise the first failure (not an ExceptionGroup)."""
    failures: list[BaseException] = []

    async def one(step: Callable[[], Awaitable[Any]]) -> None:
        try:
            await step()
        except Exception as exc:
            failures.append(exc)

    async with trio.open_nursery() as nursery:
        for step in steps:
            nursery.start_soon(one, step)
    if failures:
        raise failures[0]


def build_handle(ctx: BackendContext, cluster: str, instances: Sequence[dict[str, Any]],
                 zone: Gce, *, use_spot: bool, accelerators: dict[str, int],
                 ports: Sequence[int] = ()) -> ClusterHandle:  # fmt: skip
    """The handle of ``instances`` (head first), with the launchers of ranks > 0."""
    user = gce.ssh_user(ctx)
    home = "/root" if user == "root" else f"/home/{user}"
    nodes = []
    for rank, inst in enumerate(instances):
        machine = str(inst["machineType"]).rsplit("/", 1)[-1]
        entry = catalog.entry(machine, zone.region, accelerators) or catalog.entry(machine, None)
        external, internal = gce.ips(inst)
        nodes.append(NodeInfo(
            rank=rank, ip=external or internal, instance_id=str(inst["name"]),
            cpus=entry.cpus if entry else 0.0, memory_gb=entry.memory_gb if entry else 0.0,
            runtime_dir=f"{home}/.skyhop_runtime", home=home,
            gpus=dict(accelerators),
            extra={"ssh_user": user, "ssh_port": "22", "ssh_identity_file": gce.key_path(ctx),
                   "private_ip": internal, "zone": zone.zone, "gce_id": str(inst.get("id", ""))},
        ))  # fmt: skip
    machine = str(instances[0]["machineType"]).rsplit("/", 1)[-1] if instances else ""
    handle = ClusterHandle(
        cluster_name=cluster, backend=BACKEND, nodes=tuple(nodes), instance_type=machine,
        region=zone.region, zone=zone.zone, use_spot=use_spot,
        extra={"project": zone.compute.project, "firewall": gce.network_tag(cluster)},
    )  # fmt: skip
    handle = with_launchers(handle)
    return attrs.evolve(handle, ports={p: f"{handle.head.ip}:{p}" for p in ports} if nodes else {})


async def ensure_firewall(
    zone: Gce, ctx: BackendContext, cluster: str, ports: Sequence[int]
) -> None:
    """The cluster's firewall rule, with SSH and ``ports`` open (created or patched)."""
    name = gce.network_tag(cluster)
    try:
        rule = await zone.compute.call("GET", f"global/firewalls/{name}")
    except GcpApiError as exc:
        if exc.status != 404:
            errors.reraise(exc, region=zone.region, zone=zone.zone)
            raise
        await zone.wait(
            await zone("POST", "global/firewalls", json=gce.firewall_body(ctx, cluster, ports))
        )
        return
    want = {22, *ports}
    if not want <= gce.allowed_ports(rule):
        body = gce.firewall_body(ctx, cluster, gce.allowed_ports(rule) | want)
        await zone.wait(
            await zone("PATCH", f"global/firewalls/{name}", json={"allowed": body["allowed"]})
        )


async def provision(
    ctx: BackendContext, compute: Compute, request: ProvisionRequest
) -> ClusterHandle:
    """Start (or reuse, restart) the cluster's instances in the offer's zone."""
    offer = request.offer
    if not offer.zone:
        raise ValueError("a GCP offer always names its zone")
    zone = Gce(compute, offer.region, offer.zone)
    name = request.cluster_name
    existing = await zone.instances(name)
    try:
        await ensure_firewall(zone, ctx, name, request.ports)
        stopping = [i["name"] for i in existing if i["status"] in ("STOPPING", "SUSPENDING")]
        if stopping:
            await wait_for(ctx, zone, stopping, "TERMINATED")
            existing = await zone.instances(name)
        stopped = [i["name"] for i in existing if i["status"] == "TERMINATED"]
        if stopped:
            ctx.log(f"Starting {len(stopped)} stopped instance(s) in {zone.zone}.")
            await _all([functools.partial(_start_one, zone, n) for n in stopped])
        have = {gce.rank_of(i) for i in existing}
        ranks = [r for r in range(request.num_nodes) if r not in have][
            : request.num_nodes - len(existing)
        ]
        if ranks:
            public_key = gce.ensure_ssh_key(ctx)
            image = _image(ctx, request)
            kind = "spot" if request.use_spot else "on-demand"
            ctx.log(
                f"Creating {len(ranks)} {kind} {offer.instance_type} instance(s) in {zone.zone}."
            )
            accelerators = catalog.guest_accelerators(offer, zone.zone)
            resources = request.resources

            async def insert(rank: int) -> None:
                body = gce.instance_body(
                    ctx, cluster=name, rank=rank, zone=zone.zone, machine_type=offer.instance_type,
                    image=image, public_key=public_key, use_spot=request.use_spot,
                    accelerators=accelerators, has_gpus=bool(offer.accelerators),
                    disk_size=getattr(resources, "disk_size", None),
                    disk_tier=getattr(resources, "disk_tier", None),
                )  # fmt: skip
                await zone.wait(await zone("POST", f"zones/{zone.zone}/instances", json=body))

            await _all([functools.partial(insert, r) for r in ranks])
        names = [gce.instance_name(name, r) for r in sorted(have | set(ranks))]
        ctx.log("Waiting for the instances to be RUNNING.")
        found = await wait_for(ctx, zone, names, "RUNNING")
    except BaseException:
        if not existing:
            with trio.CancelScope(shield=True):
                await _cleanup_failed(ctx, zone, name)
        raise
    instances = sorted(found.values(), key=lambda i: (gce.rank_of(i), i["name"]))
    return build_handle(ctx, name, instances, zone, use_spot=request.use_spot,
                        accelerators=dict(offer.accelerators), ports=request.ports)  # fmt: skip


async def _start_one(zone: Gce, name: str) -> None:
    await zone.wait(await zone("POST", f"zones/{zone.zone}/instances/{name}/start"))


async def _cleanup_failed(ctx: BackendContext, zone: Gce, name: str) -> None:
    """After a failed first launch: delete what was created and the firewall rule."""
    try:
        with trio.move_on_after(300):
            await _delete_all(ctx, zone, name)
    except Exception as exc:  # the launch's own error matters more; down() retries this
        ctx.log(f"Cleaning up {name!r} after the failure failed: {exc}")


async def _delete_all(ctx: BackendContext, zone: Gce, name: str) -> None:
    live = await zone.instances(name)

    async def delete(instance: str) -> None:
        try:
            await zone.wait(await zone("DELETE", f"zones/{zone.zone}/instances/{instance}"))
        except GcpApiError as exc:
            if exc.status != 404:
                raise

    await _all([functools.partial(delete, i["name"]) for i in live])
    try:
        await zone.wait(await zone("DELETE", f"global/firewalls/{gce.network_tag(name)}"))
    except GcpApiError as exc:
        if exc.status != 404:
            raise


def _zone_of(compute: Compute, handle: ClusterHandle) -> Gce:
    if not handle.zone:
        raise ValueError(f"cluster {handle.cluster_name!r} has no zone in its handle")
    return Gce(compute, handle.region, handle.zone)


async def down(ctx: BackendContext, compute: Compute, handle: ClusterHandle) -> None:
    """Delete every instance of the cluster and its firewall rule (idempotent)."""
    zone = _zone_of(compute, handle)
    await _delete_all(ctx, zone, handle.cluster_name)
    ctx.log(f"Deleted cluster {handle.cluster_name!r} in {zone.zone}.")


async def stop(ctx: BackendContext, compute: Compute, handle: ClusterHandle) -> None:
    """Stop every instance; one deleted outside skyhop has nothing left to stop (said in
    the log; ``start`` then refuses with what to do)."""
    zone = _zone_of(compute, handle)
    live = []
    for node in handle.nodes:
        if await zone.get(node.instance_id) is None:
            ctx.log(f"Instance {node.instance_id} (rank {node.rank}) of {handle.cluster_name!r} "
                    f"no longer exists in {zone.zone}; nothing to stop there.")  # fmt: skip
        else:
            live.append(node.instance_id)

    async def stop_one(name: str) -> None:
        try:
            await zone.wait(await zone("POST", f"zones/{zone.zone}/instances/{name}/stop"))
        except GcpApiError as exc:
            if exc.status != 404:  # deleted since we looked: stopped enough
                raise

    await _all([functools.partial(stop_one, n) for n in live])
    await wait_for(ctx, zone, live, "TERMINATED")


def instances_gone(handle: ClusterHandle, zone: str, names: Sequence[str]) -> SkyhopError:
    """The error for starting a cluster some of whose instances no longer exist."""
    gone = ", ".join(f"{n.instance_id} (rank {n.rank})" for n in handle.nodes
                     if n.instance_id in names)  # fmt: skip
    name = handle.cluster_name
    return SkyhopError(
        f"Cannot start cluster {name!r}: its instance(s) {gone} in {zone} no longer exist "
        "(deleted outside skyhop, or preempted), and their disks went with them. Run "
        f"`skyhop down {name}` to remove what is left, then launch the cluster again."
    )


async def start(ctx: BackendContext, compute: Compute, handle: ClusterHandle) -> ClusterHandle:
    """Start the stopped instances; their external IPs change, so the handle is rebuilt.

    An instance deleted behind skyhop's back cannot be started: that is an error naming
    the cluster and the instances, saying to ``down`` and relaunch (not Google's 404).
    """
    zone = _zone_of(compute, handle)
    names = [n.instance_id for n in handle.nodes]
    current = {n: await zone.get(n) for n in names}
    missing = [n for n, i in current.items() if i is None]
    if missing:
        raise instances_gone(handle, zone.zone, missing)
    stopping = [n for n, i in current.items() if i and i["status"] == "STOPPING"]
    if stopping:
        await wait_for(ctx, zone, stopping, "TERMINATED")

    async def start_one(name: str) -> None:
        try:
            await _start_one(zone, name)
        except GcpApiError as exc:
            if exc.status == 404:  # deleted since we looked
                raise instances_gone(handle, zone.zone, [name]) from exc
            raise

    await _all([functools.partial(start_one, n) for n in names])
    found = await wait_for(ctx, zone, names, "RUNNING")
    return build_handle(ctx, handle.cluster_name, [found[n] for n in names], zone,
                        use_spot=handle.use_spot, accelerators=dict(handle.head.gpus),
                        ports=list(handle.ports))  # fmt: skip


async def _preempted(zone: Gce, instance_ids: set[str]) -> set[str]:
    """Which of these instance IDs Google preempted (its ``compute.instances.preempted``)."""
    if not instance_ids:
        return set()
    ops = await zone.compute.list(f"zones/{zone.zone}/operations",
                                  'operationType = "compute.instances.preempted"')  # fmt: skip
    return {str(o.get("targetId")) for o in ops} & instance_ids


async def query(ctx: BackendContext, compute: Compute, handle: ClusterHandle) -> list[NodeStatus]:
    """Each node's state; a preempted (so deleted) spot VM shows as TERMINATED."""
    zone = _zone_of(compute, handle)
    found = {n.instance_id: await zone.get(n.instance_id) for n in handle.nodes}
    out = []
    for node in handle.nodes:
        inst = found[node.instance_id]
        if inst is None:
            gone = f"instance {node.instance_id} not found (deleted outside skyhop)"
            if handle.use_spot and await _preempted(zone, {node.extra.get("gce_id", "")}):
                gone = "preempted (spot VM deleted by Google)"
            out.append(NodeStatus(node.rank, NodeState.TERMINATED, gone))
            continue
        status = str(inst["status"])
        message = str(inst.get("statusMessage") or "")
        state = STATES.get(status, NodeState.UNKNOWN)
        if status == "TERMINATED" and await _preempted(zone, {str(inst["id"])}):
            state, message = NodeState.TERMINATED, message or "preempted"
        out.append(NodeStatus(node.rank, state, f"{status}{': ' + message if message else ''}"))
    return out


async def open_ports(ctx: BackendContext, compute: Compute, handle: ClusterHandle,
                     ports: Sequence[int]) -> ClusterHandle:  # fmt: skip
    """Open ``ports`` in the cluster's firewall rule; map each to ``head-ip:port``."""
    await ensure_firewall(_zone_of(compute, handle), ctx, handle.cluster_name, ports)
    mapped = dict(handle.ports)
    mapped.update({p: f"{handle.head.ip}:{p}" for p in ports})
    return attrs.evolve(handle, ports=mapped)
