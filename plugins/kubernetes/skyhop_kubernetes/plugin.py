"""The ``kubernetes`` backend plugin (``infra: k8s`` / ``kubernetes``, ``k8s/<context>``).

A cluster is one pod per node in a kubeconfig context (a region); commands, the node
agent and file sync go through the API server's exec, so the image needs only
``python3``. lightkube is imported inside the hooks only, so loading the plugin stays
cheap and works without the ``kubernetes`` extra.

Config (``kubernetes:`` in the config file): ``kubeconfig`` (path), ``allowed_contexts``
(list; the regions, in failover order; default the current context), ``namespace``,
``image`` (default ``python:3.12-slim``; a task's ``image_id`` wins), ``tolerations``
(list), ``pod_overrides`` (merged into every pod manifest), ``ports`` (``NodePort`` or
``LoadBalancer``), ``home`` (the image user's home, default ``/root``),
``provision_timeout``, ``unschedulable_timeout`` (seconds an unschedulable pod may wait
for an autoscaler before failover; default 30), ``exec_timeout``, ``request_timeout``.
"""

from __future__ import annotations

from collections.abc import Sequence

from skyhop_core.context import BackendContext
from skyhop_core.exceptions import CredentialsError
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
from skyhop_core.sdkcheck import missing_sdk_result

NAME = "kubernetes"
#: Importable modules the backend needs, each with the distribution that provides it.
SDK_MODULES = {"lightkube": "lightkube"}
FIX = ("Point `kubernetes: kubeconfig:` (or KUBECONFIG) at a kubeconfig whose contexts "
       "reach your clusters, and list them in `kubernetes: allowed_contexts:`.")  # fmt: skip


@hookimpl
def skyhop_backend_info() -> BackendInfo:
    return BackendInfo(
        name=NAME,
        display_name="Kubernetes",
        # AUTOSTOP without STOP: autodown only (pods cannot be stopped).
        features=frozenset({Feature.MULTI_NODE, Feature.OPEN_PORTS, Feature.AUTOSTOP}),
        description="Pods on Kubernetes clusters (one kubeconfig context per region).",
    )


@hookimpl
async def skyhop_check(ctx: BackendContext) -> CheckResult:
    """Enabled when at least one allowed context answers; ``details`` has each context."""
    missing = missing_sdk_result(NAME, SDK_MODULES, NAME)
    if missing is not None:
        return missing
    from skyhop_kubernetes import kube, provisioner
    from skyhop_kubernetes.errors import typed

    try:
        contexts = kube.contexts(ctx.config)
    except CredentialsError as exc:
        return CheckResult(NAME, False, reason=str(exc), fix=FIX)
    details: dict[str, str] = {}
    for context in contexts:
        try:
            async with kube.client_for(ctx, context) as client:
                with typed(context):
                    nodes = await provisioner.list_nodes(client)
            ns = kube.namespace(ctx.config, context)
            details[context] = f"ok: {len(nodes)} node(s), namespace {ns}"
        except Exception as exc:
            details[context] = f"unusable: {exc}"
    usable = [c for c, d in details.items() if d.startswith("ok")]
    if not usable:
        return CheckResult(NAME, False, reason="No allowed Kubernetes context answers: "
                           + "; ".join(f"{c}: {d}" for c, d in details.items()),
                           fix=FIX, details=details)  # fmt: skip
    return CheckResult(NAME, True, details=details)


@hookimpl
async def skyhop_offers(ctx: BackendContext, resources: Resources) -> list[Offer]:
    from skyhop_kubernetes import provisioner

    return await provisioner.offers(ctx, resources)


@hookimpl
async def skyhop_provision(ctx: BackendContext, request: ProvisionRequest) -> ClusterHandle:
    from skyhop_kubernetes import provisioner

    return await provisioner.provision(ctx, request)


@hookimpl
async def skyhop_setup_runtime(ctx: BackendContext, handle: ClusterHandle) -> None:
    """Install the node agent (and the relay) in every pod, then start the agent."""
    from skyhop_kubernetes import runtime

    await runtime.setup_runtime(ctx, handle)


@hookimpl
async def skyhop_down(ctx: BackendContext, handle: ClusterHandle) -> None:
    from skyhop_kubernetes import provisioner

    await provisioner.down(ctx, handle)


@hookimpl
async def skyhop_query(ctx: BackendContext, handle: ClusterHandle) -> list[NodeStatus]:
    from skyhop_kubernetes import provisioner

    return await provisioner.query(ctx, handle)


@hookimpl
async def skyhop_open_ports(
    ctx: BackendContext, handle: ClusterHandle, ports: Sequence[int]
) -> ClusterHandle:
    from skyhop_kubernetes import provisioner

    return await provisioner.open_ports(ctx, handle, ports)


@hookimpl
def skyhop_command_runner(
    ctx: BackendContext, handle: ClusterHandle, node: NodeInfo
) -> CommandRunner:
    from skyhop_kubernetes.runner import KubernetesCommandRunner

    return KubernetesCommandRunner(ctx, node)
