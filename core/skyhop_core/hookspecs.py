"""The backend plugin contract: every hook a backend can implement, documented.

A backend is a pluggy plugin (a module or an object) registered under the entry point
group ``skyhop.plugins``. It implements ``skyhop_backend_info`` and the lifecycle hooks it
supports; the job hooks (``skyhop_submit_job`` … ``skyhop_cancel_jobs``) and
``skyhop_setup_runtime`` have default implementations that drive the node agent through
the backend's command runner, so most backends only provide a runner.

How hooks are called:

1. ``skyhop_backend_info`` is called on every plugin; every other hook is called only on
   the plugin that owns the backend involved (the one whose info ``name`` matches), never
   broadcast. A plugin that owns several backends is not supported: register one plugin
   object per backend.
2. Hooks marked *async* must return an awaitable (write them as ``async def``). The core
   awaits it in the request's trio cancel scope: when the user cancels, the awaitable is
   cancelled at its next checkpoint. Clean up in ``finally`` blocks under
   ``trio.CancelScope(shield=True)`` and leave nothing half-created that the returned
   handle (or the previous one) does not describe.
3. Blocking SDKs (boto3, …) must run in ``trio.to_thread.run_sync`` with a limiter.
4. Hooks must be idempotent: provisioning a cluster that already exists returns its
   handle; downing a cluster that is gone succeeds.
5. Errors are typed: raise :class:`~skyhop_core.exceptions.CapacityError` or
   :class:`~skyhop_core.exceptions.QuotaError` (with ``backend``/``region``/``zone``) so
   the optimizer can fail over, :class:`~skyhop_core.exceptions.CredentialsError`,
   :class:`~skyhop_core.exceptions.NotSupportedError`,
   :class:`~skyhop_core.exceptions.CommandError`.
6. Every hook gets ``ctx``, a :class:`~skyhop_core.context.BackendContext`: the
   backend's state directory under the persistent path, the request's log, its config.

The reference page for plugin authors is ``docs/plugin_hooks.md``; a test fails when a
hook here is missing from it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Sequence
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from skyhop_core.context import BackendContext
    from skyhop_core.models.records import (
        BackendInfo,
        CheckResult,
        ClusterHandle,
        JobRecord,
        JobSpec,
        NodeInfo,
        NodeStatus,
        Offer,
        ProvisionRequest,
        RuntimeHealth,
    )
    from skyhop_core.models.resources import Resources
    from skyhop_core.models.status import JobStatus
    from skyhop_core.runner import CommandRunner, OutputCallback

PROJECT = "skyhop"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


# --- Declaring a backend -------------------------------------------------------------


@hookspec
def skyhop_backend_info() -> BackendInfo:
    """Declare the backend this plugin provides: its name and features.

    Called on every plugin when the plugin manager is built. ``name`` is what users write
    as the first part of ``infra`` (``local``, ``ssh``, ``aws``); ``features`` lists the
    optional operations the backend supports (stop/start, autostop, spot, multi-node,
    ports, custom jobs). Must be cheap and must not import the backend's SDK.

    .. versionadded:: 0.1
    """


@hookspec
def skyhop_check(ctx: BackendContext) -> Awaitable[CheckResult]:
    """*async* — Check that the backend can be used now (SDK installed, credentials work).

    Fires for ``skyhop check`` and before the optimizer asks for offers. Return
    ``CheckResult(enabled=False, reason=..., fix=...)`` rather than raising; ``fix`` says
    what the user should do (``pip install 'skyhop[aws]'``).

    .. versionadded:: 0.1
    """


@hookspec
def skyhop_offers(ctx: BackendContext, resources: Resources) -> Awaitable[list[Offer]]:
    """*async* — List the offers that could satisfy ``resources``.

    Fires during optimisation, for every enabled backend that the request's ``infra``
    allows. Return every instance type/region/zone that fits (filtering by cpus, memory,
    accelerators, region and zone); the optimizer sorts and chooses. An empty list means
    this backend cannot run it.

    .. versionadded:: 0.1
    """


# --- Cluster lifecycle ---------------------------------------------------------------


@hookspec
def skyhop_provision(ctx: BackendContext, request: ProvisionRequest) -> Awaitable[ClusterHandle]:
    """*async* — Bring up ``request.num_nodes`` nodes for ``request.offer``; return the handle.

    Fires on ``launch`` of a new cluster or of one that is INIT. When
    ``request.previous`` is set, reuse those nodes where possible. Raise
    ``CapacityError`` (blocks its zone, or region without ``zone``) or ``QuotaError``
    (blocks its region) naming the place: the launch tries the next candidate and never
    asks for that place again; it then downs a node-less handle for it. On failure or
    cancellation remove whatever was created, or leave it findable by the cluster's name
    for ``skyhop_down`` (a create call cancelled in flight included).

    .. versionadded:: 0.1
    """


@hookspec
def skyhop_stop(ctx: BackendContext, handle: ClusterHandle) -> Awaitable[None]:
    """*async* — Stop the cluster's nodes, keeping their disks. Only for backends with
    ``Feature.STOP``; the core raises ``NotSupportedError`` otherwise.

    .. versionadded:: 0.1
    """


@hookspec
def skyhop_start(ctx: BackendContext, handle: ClusterHandle) -> Awaitable[ClusterHandle]:
    """*async* — Start a stopped cluster in the same place; return the (updated) handle.

    .. versionadded:: 0.1
    """


@hookspec
def skyhop_down(ctx: BackendContext, handle: ClusterHandle) -> Awaitable[None]:
    """*async* — Tear the cluster down completely and release everything it held.

    Must succeed when the cluster is already partly or wholly gone. ``handle.nodes`` is
    empty when a launch was cancelled, refused or its server died before
    ``skyhop_provision`` returned: remove whatever was created for ``handle.cluster_name`` (in
    ``handle.region``/``handle.zone`` when the offer had them).

    .. versionadded:: 0.1
    """


@hookspec
def skyhop_query(ctx: BackendContext, handle: ClusterHandle) -> Awaitable[list[NodeStatus]]:
    """*async* — Report each node's real state (for ``status --refresh`` and to detect
    preemption). Return one entry per node in the handle.

    .. versionadded:: 0.1
    """


@hookspec
def skyhop_open_ports(
    ctx: BackendContext, handle: ClusterHandle, ports: Sequence[int]
) -> Awaitable[ClusterHandle]:
    """*async* — Make ``ports`` reachable; return the handle with ``ports`` filled in
    (declared port -> ``host:port``). Only for backends with ``Feature.OPEN_PORTS``.

    .. versionadded:: 0.1
    """


@hookspec
def skyhop_command_runner(ctx: BackendContext, handle: ClusterHandle, node: NodeInfo) -> CommandRunner:
    """Return a :class:`~skyhop_core.runner.CommandRunner` for one node of the cluster.

    Synchronous and cheap: it must not connect (connect lazily on first use).

    .. versionadded:: 0.1
    """


# --- Runtime and jobs (default implementations drive the node agent) ----------------


@hookspec
def skyhop_setup_runtime(ctx: BackendContext, handle: ClusterHandle) -> Awaitable[None]:
    """*async* — Install and start the node agent on the head (and whatever the nodes need).

    Fires after ``provision`` and ``start``. The default implementation writes the cluster
    description to the head's runtime directory and starts the agent daemon through the
    command runner.

    .. versionadded:: 0.1
    """


@hookspec
def skyhop_submit_job(ctx: BackendContext, handle: ClusterHandle, job: JobSpec) -> Awaitable[int]:
    """*async* — Queue ``job`` on the cluster; return its job ID.

    The default implementation hands the spec to the agent, which waits for free CPUs and
    GPUs, then runs setup and run on every node (gang launch). Backends with
    ``Feature.CUSTOM_JOBS`` replace this and the other job hooks.

    .. versionadded:: 0.1
    """


@hookspec
def skyhop_queue(
    ctx: BackendContext, handle: ClusterHandle, skip_finished: bool
) -> Awaitable[list[JobRecord]]:
    """*async* — The cluster's job queue, newest first.

    .. versionadded:: 0.1
    """


@hookspec
def skyhop_tail_logs(
    ctx: BackendContext,
    handle: ClusterHandle,
    job_id: int | None,
    follow: bool,
    tail: int,
    on_output: OutputCallback,
) -> Awaitable[JobStatus | None]:
    """*async* — Send a job's log to ``on_output`` (``job_id=None``: the latest job).

    With ``follow`` keep sending until the job ends; ``tail > 0`` starts with the last
    ``tail`` lines. Returns the job's status when the stream ended (``None``: no such job).
    Cancelling stops the stream, not the job.

    .. versionadded:: 0.1
    """


@hookspec
def skyhop_cancel_jobs(
    ctx: BackendContext, handle: ClusterHandle, job_ids: Sequence[int] | None, user_hash: str | None
) -> Awaitable[list[int]]:
    """*async* — Cancel jobs (``job_ids=None``: every unfinished job, of ``user_hash`` only
    when given); kill their whole process trees. Return the IDs that were cancelled.

    .. versionadded:: 0.1
    """


@hookspec
def skyhop_idle_seconds(
    ctx: BackendContext, handle: ClusterHandle, wait_for: str
) -> Awaitable[float]:
    """*async* — How long the cluster has been idle (0 when busy).

    ``wait_for`` is the cluster's ``autostop --wait-for``: ``"jobs"`` (no pending or
    running job), or ``"jobs_and_ssh"`` (and no interactive SSH session open on the
    head node: SkyPilot's default). The server's autostop loop compares the answer with
    the cluster's autostop setting (``"none"`` never asks).

    .. versionadded:: 0.1
    .. versionchanged:: 0.2 ``wait_for``; an implementation without it is still called.
    """


@hookspec
def skyhop_runtime_health(ctx: BackendContext, handle: ClusterHandle) -> Awaitable[RuntimeHealth]:
    """*async* — Whether the cluster's job runtime (the node agent) is alive and working.

    Fires from the server's health watcher for every UP cluster (every
    ``SKYHOP_HEALTH_INTERVAL`` seconds) and for ``skyhop status --refresh`` on clusters
    whose nodes all run. Jobs whose driver died must be marked FAILED_DRIVER by this call
    (and their processes stopped). Returns a
    :class:`~skyhop_core.models.records.RuntimeHealth`; an unhealthy result makes the
    cluster INIT with the reason shown by ``skyhop status``. The default implementation
    asks the agent (``agent health``): unhealthy when its daemon is gone, when its
    heartbeat is older than ``SKYHOP_AGENT_STALE_SECONDS``, or when the head does not
    answer.

    .. versionadded:: 0.2
    """


@hookspec
def skyhop_mount_host_path(
    ctx: BackendContext, handle: ClusterHandle, host_path: str, mount_path: str
) -> Awaitable[None]:
    """*async* — Make the directory ``host_path`` on the API server's machine appear at
    ``mount_path`` on every node of the cluster, so that writes land in it.

    Fires at launch for a MOUNT storage mount whose store keeps buckets on the server's
    machine (the ``local`` store). Only a backend whose nodes share this machine can do
    it (``local``: a bind mount into each node's sandbox); others leave it out and the
    core says to use ``mode: COPY``.

    .. versionadded:: 0.2
    """
