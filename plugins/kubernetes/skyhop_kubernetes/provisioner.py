"""The Kubernetes cluster lifecycle: offers, provision, down, query, open ports.

A skyhop cluster is one pod per node plus a headless Service per pod, all labelled
``skyhop.dev/cluster=<name>`` in the context's namespace. Provisioning creates what is
missing and watches the pods until every one runs; a pod the scheduler cannot place is a
:class:`CapacityError` with the scheduler's own message (after
``kubernetes: unschedulable_timeout`` seconds, default 30, for autoscalers to react), so
the optimizer fails over to the next context. Pods cannot be stopped: no stop/start.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Sequence
from typing import Any

import attrs
import trio

from skyhop_core.context import BackendContext
from skyhop_core.exceptions import CapacityError, CommandError, ResourcesUnavailableError
from skyhop_core.models.records import (
    ClusterHandle,
    NodeInfo,
    NodeState,
    NodeStatus,
    Offer,
    ProvisionRequest,
)
from skyhop_core.models.resources import Resources
from skyhop_kubernetes import gpus, kube, manifests, pods, relay
from skyhop_kubernetes.errors import BACKEND, is_conflict, typed

DEFAULT_PROVISION_TIMEOUT = 600.0
DEFAULT_UNSCHEDULABLE_TIMEOUT = 30.0
#: Container states that will not get better by waiting.
FATAL_WAITING = {"ErrImagePull", "ImagePullBackOff", "InvalidImageName",
                 "CreateContainerConfigError", "CreateContainerError", "CrashLoopBackOff"}  # fmt: skip


def _quantity(value: Any) -> float:
    from skyhop_kubernetes.quantity import parse

    return parse(value)


# --- offers ------------------------------------------------------------------------------


def node_offer(context: str, node: dict[str, Any]) -> Offer | None:
    """The offer of one schedulable node: its allocatable CPUs, memory and GPUs."""
    if node.get("spec", {}).get("unschedulable"):
        return None
    alloc = node.get("status", {}).get("allocatable") or {}
    labels = node.get("metadata", {}).get("labels") or {}
    cpus = _quantity(alloc.get("cpu", 0))
    memory = _quantity(alloc.get("memory", 0)) / 2**30
    _, gpu_type, count = gpus.node_gpu(labels, alloc)
    accelerators = {gpu_type: count} if count else {}
    name = f"{cpus:g}CPU--{memory:.0f}GB" + (f"--{gpu_type}:{count}" if count else "")
    return Offer(backend=BACKEND, instance_type=name, cpus=cpus, memory_gb=round(memory, 2),
                 accelerators=accelerators, price=0.0, region=context)  # fmt: skip


async def list_nodes(client: Any) -> list[dict[str, Any]]:
    from lightkube.resources.core_v1 import Node

    return [n.to_dict() async for n in client.list(Node)]


async def offers(ctx: BackendContext, resources: Resources) -> list[Offer]:
    """One offer per distinct node shape in every allowed context the request allows."""
    out: dict[tuple[str, str], Offer] = {}
    for context in kube.contexts(ctx.config):
        if resources.region not in (None, context):
            continue
        try:
            async with kube.client_for(ctx, context) as client:
                with typed(context):
                    nodes = await list_nodes(client)
        except Exception as exc:
            ctx.log(f"Kubernetes context {context!r}: cannot list nodes ({exc}).")
            continue
        for node in nodes:
            offer = node_offer(context, node)
            if offer is not None and resources.fits(offer, pooled=True):
                out.setdefault((context, offer.instance_type), offer)
    return list(out.values())


# --- provisioning --------------------------------------------------------------------------


#: The CPU request of a pod when the task asks for none (``kubernetes: default_cpus``).
DEFAULT_CPUS = 1.0


def _requests(resources: Resources, config: Any = None) -> tuple[float | None, float | None]:
    """(CPUs, GB) each pod requests: what the task asks (the minimum of ``4+``)."""
    cpus, _ = resources.cpus_requirement()
    memory, _ = resources.memory_requirement()
    if cpus is None:
        cpus = float((config or {}).get("default_cpus", DEFAULT_CPUS))
    return cpus, memory


def _image(ctx: BackendContext, resources: Resources, context: str) -> str:
    for source in (resources.image_id, ctx.config.get("image")):
        if isinstance(source, str) and source:
            return source.removeprefix("docker:")
        if isinstance(source, dict) and source.get(context):
            return str(source[context]).removeprefix("docker:")
    return manifests.DEFAULT_IMAGE


def pod_manifests(ctx: BackendContext, request: ProvisionRequest, context: str,
                  nodes: list[dict[str, Any]], ranks: Sequence[int]) -> list[dict[str, Any]]:  # fmt: skip
    """The pods to create for ``ranks``: requests, GPUs, affinity, image, overrides."""
    resources = request.resources
    cpus, memory = _requests(resources, ctx.config)
    wanted = dict(resources.accelerators or {})
    gpu_type, gpu_count = next(iter(wanted.items()), ("", 0))
    gpu_resource, terms = "", []
    if gpu_count:
        matching = []
        for node in nodes:
            labels = node["metadata"].get("labels") or {}
            resource, kind, _ = gpus.node_gpu(labels, node["status"].get("allocatable") or {})
            if resource and kind.lower() == gpu_type.lower():
                matching.append(labels)
                gpu_resource = gpu_resource or resource
        terms = gpus.affinity_terms(matching, gpu_type)
    return [
        manifests.pod(
            request.cluster_name,
            rank,
            user_hash=ctx.user_hash,
            image=_image(ctx, resources, context),
            cpus=cpus,
            memory_gb=memory,
            gpu_resource=gpu_resource,
            gpu_count=int(gpu_count),
            gpu_terms=terms,
            extra_labels=resources.labels,
            tolerations=ctx.config.get("tolerations") or (),
            overrides=ctx.config.get("pod_overrides"),
        )  # fmt: skip
        for rank in ranks
    ]


def _rank(pod: dict[str, Any]) -> int:
    return int((pod["metadata"].get("labels") or {}).get(manifests.LABEL_RANK, -1))


def _problem(pod: dict[str, Any], unschedulable_since: dict[str, float],
             grace: float) -> Exception | None:  # fmt: skip
    """Why ``pod`` will not run (None: keep waiting)."""
    name = pod["metadata"]["name"]
    status = pod.get("status") or {}
    for cond in status.get("conditions") or []:
        if (
            cond.get("type") == "PodScheduled"
            and cond.get("status") == "False"
            and (cond.get("reason") == "Unschedulable")
        ):
            first = unschedulable_since.setdefault(name, trio.current_time())
            if trio.current_time() - first >= grace:
                return CapacityError(f"Pod {name} cannot be scheduled: {cond.get('message')}",
                                     backend=BACKEND, region=None)  # fmt: skip
    for cs in status.get("containerStatuses") or []:
        waiting = (cs.get("state") or {}).get("waiting") or {}
        if waiting.get("reason") in FATAL_WAITING:
            return ResourcesUnavailableError(
                f"Pod {name}: {waiting['reason']}: {waiting.get('message', '')}".strip()
            )
    if status.get("phase") in ("Failed", "Succeeded"):
        return ResourcesUnavailableError(
            f"Pod {name} ended ({status['phase']}) while starting: "
            f"{status.get('message') or status.get('reason') or ''}"
        )
    return None


async def provision(ctx: BackendContext, request: ProvisionRequest) -> ClusterHandle:
    """Create the missing pods and Services of the cluster and wait for them to run."""
    from lightkube.resources.core_v1 import Pod, Service

    context = request.offer.region or kube.contexts(ctx.config)[0]
    previous = request.previous
    if previous is not None and previous.region and previous.region != context:
        await down(ctx, previous)  # moving contexts: leave nothing behind
    name, n = request.cluster_name, request.num_nodes
    timeout = float(ctx.config.get("provision_timeout", DEFAULT_PROVISION_TIMEOUT))
    grace = float(ctx.config.get("unschedulable_timeout", DEFAULT_UNSCHEDULABLE_TIMEOUT))
    namespace = kube.namespace(ctx.config, context)
    created = False
    async with kube.client_for(ctx, context) as client:
        try:
            with typed(context):
                existing, _ = await pods.cluster_pods(client, name)
                live = {}
                for pod_name, pod in existing.items():
                    dead = pod["status"].get("phase") in ("Failed", "Succeeded")
                    if _rank(pod) >= n or dead or pod["metadata"].get("deletionTimestamp"):
                        await pods.delete_quietly(client, Pod, pod_name)
                        await pods.delete_quietly(client, Service, pod_name)
                    else:
                        live[_rank(pod)] = pod
                await _wait_gone(
                    client, name, set(existing) - {p["metadata"]["name"] for p in live.values()}
                )
                missing = [r for r in range(n) if r not in live]
                if missing:
                    nodes = await list_nodes(client)
                    ctx.log(f"Creating {len(missing)} pod(s) of {name!r} in context "
                            f"{context!r}, namespace {namespace!r}.")  # fmt: skip
                    created = not live
                    for manifest in pod_manifests(ctx, request, context, nodes, missing):
                        await _create(client, Pod, manifest)
                for rank in range(n):
                    svc = manifests.headless_service(name, rank, ctx.user_hash)
                    await _create(client, Service, svc)
                ctx.log(f"Waiting for the pods of {name!r} to run.")
                since: dict[str, float] = {}

                def ready(found: dict[str, Any]) -> bool:
                    mine = [p for p in found.values() if 0 <= _rank(p) < n]
                    for pod in mine:
                        problem = _problem(pod, since, grace)
                        if problem is not None:
                            if isinstance(problem, CapacityError):
                                raise CapacityError(str(problem), backend=BACKEND, region=context)
                            raise problem
                    return len(mine) == n and all(
                        p["status"].get("phase") == "Running" and p["status"].get("podIP")
                        for p in mine)  # fmt: skip

                with trio.fail_after(timeout):
                    found = await pods.wait_until(
                        client, name, ready, recheck=min(5.0, max(grace, 0.5))
                    )
        except trio.TooSlowError:
            if created:
                with trio.CancelScope(shield=True):
                    await _delete_cluster(client, name)
            raise CapacityError(f"The pods of {name!r} did not run within {timeout:g}s in "
                                f"context {context!r}.", backend=BACKEND,
                                region=context) from None  # fmt: skip
        except BaseException:
            if created:
                with trio.CancelScope(shield=True):
                    await _delete_cluster(client, name)
            raise
    return build_handle(ctx, request, context, found, previous)


async def _create(client: Any, kind: Any, manifest: dict[str, Any]) -> None:
    try:
        await client.create(kind.from_dict(manifest))
    except Exception as exc:
        if not is_conflict(exc):
            raise


async def _wait_gone(client: Any, name: str, names: set[str]) -> None:
    """Wait until pods being deleted are gone (their names are about to be reused)."""
    if names:
        with trio.fail_after(120):
            await pods.wait_until(client, name, lambda found: not (names & set(found)))


def build_handle(ctx: BackendContext, request: ProvisionRequest, context: str,
                 found: dict[str, Any], previous: ClusterHandle | None) -> ClusterHandle:  # fmt: skip
    name = request.cluster_name
    cpus, memory = _requests(request.resources, ctx.config)
    home = str(ctx.config.get("home", "/root"))
    token = (
        previous.extra.get("relay_token") if previous is not None else None
    ) or secrets.token_hex(16)
    by_rank = sorted(found.values(), key=_rank)
    nodes = []
    for pod in by_rank[: request.num_nodes]:
        rank = _rank(pod)
        extra = {"pod": pod["metadata"]["name"], "context": context,
                 "namespace": pod["metadata"].get("namespace", ""),
                 "node_name": pod["spec"].get("nodeName", "")}  # fmt: skip
        nodes.append(NodeInfo(
            rank=rank, ip=pod["status"]["podIP"], instance_id=pod["metadata"]["name"],
            cpus=cpus or 0.0, memory_gb=memory or request.offer.memory_gb, runtime_dir=f"{home}/.skyhop_runtime",
            home=home, gpus=dict(request.resources.accelerators or {}), extra=extra,
        ))  # fmt: skip
    head_runtime = nodes[0].runtime_dir
    nodes = (
        [nodes[0]]
        + [
            attrs.evolve(
                node,
                extra={
                    **node.extra,
                    "agent_launcher": json.dumps(relay.launcher(head_runtime, node.ip)),
                },
            )  # fmt: skip
            for node in nodes[1:]
        ]
    )
    return ClusterHandle(
        cluster_name=name, backend=BACKEND, nodes=tuple(nodes),
        instance_type=request.offer.instance_type, region=context, zone=None,
        ports=dict(previous.ports) if previous is not None else {},
        extra={"namespace": kube.namespace(ctx.config, context), "relay_token": token},
    )  # fmt: skip


# --- down, query, ports ---------------------------------------------------------------------


async def _delete_cluster(client: Any, name: str) -> None:
    from lightkube.resources.core_v1 import Pod, Service

    selector = {manifests.LABEL_CLUSTER: name}
    async for svc in client.list(Service, labels=selector):
        await pods.delete_quietly(client, Service, svc.metadata.name)
    async for pod in client.list(Pod, labels=selector):
        await pods.delete_quietly(client, Pod, pod.metadata.name)


async def down(ctx: BackendContext, handle: ClusterHandle) -> None:
    """Delete the cluster's pods and Services and wait until the pods are gone."""
    context = handle.region or kube.contexts(ctx.config)[0]
    async with kube.client_for(ctx, context) as client:
        with typed(context):
            await _delete_cluster(client, handle.cluster_name)
            timeout = float(ctx.config.get("down_timeout", 120))
            try:
                with trio.fail_after(timeout):
                    await pods.wait_until(client, handle.cluster_name, lambda found: not found)
            except trio.TooSlowError:
                raise CommandError(
                    f"The pods of {handle.cluster_name!r} in context {context!r} were deleted "
                    f"but still exist after {timeout:g}s (finalizers? a node that is down?); "
                    "run `skyhop down` again later, or check them with kubectl.",
                    command="delete pods",
                ) from None
    ctx.log(f"Deleted the pods of {handle.cluster_name!r} in context {context!r}.")


PHASES = {"Pending": NodeState.PENDING, "Running": NodeState.RUNNING,
          "Succeeded": NodeState.TERMINATED, "Failed": NodeState.TERMINATED}  # fmt: skip


async def query(ctx: BackendContext, handle: ClusterHandle) -> list[NodeStatus]:
    """Each node's pod phase; a deleted (or evicted) pod shows as TERMINATED."""
    context = handle.region or kube.contexts(ctx.config)[0]
    async with kube.client_for(ctx, context) as client:
        with typed(context):
            found, _ = await pods.cluster_pods(client, handle.cluster_name)
    out = []
    for node in handle.nodes:
        pod = found.get(node.instance_id)
        if pod is None:
            out.append(NodeStatus(node.rank, NodeState.TERMINATED, "pod not found"))
            continue
        phase = pod["status"].get("phase", "Unknown")
        state = PHASES.get(phase, NodeState.UNKNOWN)
        if pod["metadata"].get("deletionTimestamp"):
            state, phase = NodeState.STOPPING, f"{phase} (terminating)"
        reason = pod["status"].get("reason") or pod["status"].get("message") or ""
        out.append(NodeStatus(node.rank, state, f"{phase}{': ' + reason if reason else ''}"))
    return out


async def open_ports(ctx: BackendContext, handle: ClusterHandle,
                     ports: Sequence[int]) -> ClusterHandle:  # fmt: skip
    """Expose ``ports`` of the head through a Service (``kubernetes: ports: NodePort`` or
    ``LoadBalancer``); map each port to where it is reachable."""
    from lightkube.resources.core_v1 import Service

    context = handle.region or kube.contexts(ctx.config)[0]
    service_type = str(ctx.config.get("ports", "NodePort"))
    if service_type not in ("NodePort", "LoadBalancer"):
        raise ResourcesUnavailableError(
            f"kubernetes.ports is {service_type!r}; use NodePort or LoadBalancer."
        )
    wanted = sorted(set(handle.ports) | set(ports))
    manifest = manifests.ports_service(handle.cluster_name, ctx.user_hash, wanted, service_type)
    async with kube.client_for(ctx, context) as client:
        with typed(context):
            await pods.delete_quietly(client, Service, manifest["metadata"]["name"])
            svc = (await client.create(Service.from_dict(manifest))).to_dict()
            nodes = await list_nodes(client)
            if service_type == "LoadBalancer":
                with trio.fail_after(float(ctx.config.get("load_balancer_timeout", 300))):
                    while not (svc.get("status", {}).get("loadBalancer") or {}).get("ingress"):
                        await trio.sleep(2)
                        svc = (await client.get(Service, manifest["metadata"]["name"])).to_dict()
    mapped = dict(handle.ports)
    if service_type == "LoadBalancer":
        ingress = svc["status"]["loadBalancer"]["ingress"][0]
        host = ingress.get("ip") or ingress.get("hostname")
        for p in svc["spec"]["ports"]:
            mapped[int(p["port"])] = f"{host}:{p['port']}"
    else:
        node_ip = _node_address(nodes, handle.head.extra.get("node_name", ""))
        for p in svc["spec"]["ports"]:
            mapped[int(p["port"])] = f"{node_ip}:{p['nodePort']}"
    for port in ports:
        ctx.log(f"Port {port} of {handle.cluster_name!r} is reachable at {mapped[port]}.")
    return attrs.evolve(handle, ports=mapped)


def _node_address(nodes: list[dict[str, Any]], preferred: str) -> str:
    """The head's node's address (external first), for a NodePort."""
    ordered = sorted(nodes, key=lambda n: n["metadata"]["name"] != preferred)
    for kind in ("ExternalIP", "InternalIP"):
        for node in ordered:
            for addr in node.get("status", {}).get("addresses") or []:
                if addr.get("type") == kind:
                    return str(addr["address"])
    return "127.0.0.1"
