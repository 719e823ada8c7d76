"""Launching (and relaunching) a managed job's cluster, by its recovery strategy.

- First launch: a precheck plans the task once; what can never launch (infeasible
  resources, a backend without credentials, a bad name) is FAILED_PRECHECKS. So is a
  task whose files cannot be put on the cluster it got, on any launch: a bucket or
  upload gone since submission, a mount the backend refuses.
- Then ``provision_with_failover`` as ``launch`` does. When every candidate fails the
  controller backs off (``SKYHOP_JOBS_RETRY_BASE`` × ``SKYHOP_JOBS_RETRY_FACTOR`` ^ n,
  capped at ``SKYHOP_JOBS_RETRY_CAP`` seconds) and tries again, up to
  ``SKYHOP_JOBS_LAUNCH_RETRIES`` rounds, then the job is FAILED_NO_RESOURCE.
- Recovering, EAGER_NEXT_REGION (the default) first avoids the region it was preempted
  in, unless the user pinned a region in the *requested* resources; FAILOVER first
  tries the same region again. Either then tries anywhere.
"""

from __future__ import annotations

import copy
import os
import time
from typing import TYPE_CHECKING, Any

import attrs
import trio

from skyhop_core.exceptions import (
    CredentialsError,
    InvalidClusterNameError,
    NotSupportedError,
    ResourcesMismatchError,
    ResourcesUnavailableError,
    SkyhopError,
    StorageError,
    TaskValidationError,
    UnknownBackendError,
    UploadNotFoundError,
    innermost,
    reason_of,
)
from skyhop_core.failover import Failover
from skyhop_core.jobs import pipeline
from skyhop_core.jobs import state as js
from skyhop_core.models.records import ClusterHandle
from skyhop_core.models.status import ManagedJobStatus, OptimizeTarget
from skyhop_core.state import clusters as cl

if TYPE_CHECKING:
    from skyhop_core.jobs.controller import Controller

S = ManagedJobStatus

_PRECHECK_ERRORS = (
    CredentialsError,
    InvalidClusterNameError,
    NotSupportedError,
    ResourcesMismatchError,
    ResourcesUnavailableError,
    TaskValidationError,
    UnknownBackendError,
    ValueError,
)


async def current_handle(ctl: Controller) -> ClusterHandle | None:
    """The job's cluster handle if the state knows the cluster as UP."""
    from skyhop_core.models.status import ClusterStatus

    record = await ctl.service.services.store.run(cl.get, ctl.cluster_name)
    if record is None or record.status is not ClusterStatus.UP or record.handle is None:
        return None
    return record.handle


def _pinned_region(task: Any) -> bool:
    return any(r.region is not None for r in task.resources)


def _first_try(task: Any, row: Any, strategy: str) -> tuple[Any, frozenset[Any], str] | None:
    """The recovery's first, restricted attempt: (task, avoid, what), or None."""
    if S(row.status) is not S.RECOVERING or not row.region or not row.infra:
        return None
    backend = row.infra.split("/", 1)[0]
    if strategy == "FAILOVER":
        same = copy.copy(task)
        same.set_resources(
            tuple(r.copy(infra=row.infra) for r in task.resources),
            ordered=task.resources_ordered,
        )
        return same, frozenset(), f"the same region ({row.infra})"
    if strategy == "EAGER_NEXT_REGION" and not _pinned_region(task):
        return task, frozenset({(backend, row.region, None)}), f"another region than {row.infra}"
    return None


async def _precheck(ctl: Controller, task: Any) -> list[Any]:
    """What can never launch is FAILED_PRECHECKS; returns the plan (the candidates), which
    the first provisioning round uses: a launch plans once."""
    from skyhop_core.ops.common import validate_cluster_name
    from skyhop_core.ops.provisioning import plan

    try:
        validate_cluster_name(ctl.cluster_name)
        existing = await ctl.service.services.store.run(cl.get, ctl.cluster_name)
        if existing is not None:
            raise InvalidClusterNameError(
                f"A cluster named {ctl.cluster_name!r} already exists (not this job's); "
                "the job would take it over. Rename the job (-n NAME) or down that cluster."
            )
        return await plan(ctl.ctx, task, OptimizeTarget.COST)
    except _PRECHECK_ERRORS as exc:
        from skyhop_core.jobs.controller import Finished

        raise Finished(
            S.FAILED_PRECHECKS, f"{type(exc).__name__}: {exc}", teardown=False
        ) from None


async def _provision(
    ctl: Controller, task: Any, avoid: frozenset[Any], failover: Failover,
    planned: list[Any] | None = None,
) -> ClusterHandle:
    from skyhop_core.ops.locking import cluster_lock
    from skyhop_core.ops.provisioning import provision_with_failover

    async with cluster_lock(ctl.ctx, ctl.cluster_name):
        return await provision_with_failover(
            ctl.ctx, ctl.cluster_name, task, target=OptimizeTarget.COST,
            retry_until_up=False, previous=None, avoid=avoid, failover=failover,
            planned=planned,
        )


async def launch(ctl: Controller, parsed: tuple[Any, Any], row: Any) -> ClusterHandle:
    """Bring the job's cluster up and submit the task; the row says RUNNING after."""
    from skyhop_core.jobs.controller import Finished

    task, _ = parsed
    settings = ctl.service.settings
    store = ctl.service.services.store
    planned = None
    if S(row.status) is S.STARTING and row.launch_attempts == 0:
        planned = await _precheck(ctl, task)
    first = _first_try(task, row, row.strategy)
    rounds = 0
    while True:
        await store.run(
            lambda c: js.update(c, ctl.job_id, launch_attempts=js.mj.c.launch_attempts + 1)
        )
        # One round, one failover: a place that refused in the restricted first try is
        # not asked again when trying anywhere (the next round, after a backoff, is).
        failover = Failover()
        try:
            if first is not None:
                try_task, avoid, what = first
                ctl.log(f"Relaunching ({row.strategy}): trying {what} first.")
                first = None
                try:
                    handle = await _provision(ctl, try_task, avoid, failover)
                    break
                except ResourcesUnavailableError as exc:
                    ctl.log(f"Could not relaunch in {what}: {exc}; trying anywhere.")
                    await ctl._teardown()
            ctl.log(f"Launching cluster {ctl.cluster_name!r}.")
            fresh_plan, planned = planned, None  # a later round (after a backoff) plans anew
            handle = await _provision(ctl, task, frozenset(), failover, fresh_plan)
            break
        except ResourcesUnavailableError as exc:
            rounds += 1
            await ctl._teardown()
            if rounds >= settings.launch_retries:
                raise Finished(
                    S.FAILED_NO_RESOURCE,
                    f"No resources after {rounds} launch round(s): {exc}",
                ) from None
            delay = min(settings.retry_base * settings.retry_factor ** (rounds - 1),
                        settings.retry_cap)
            ctl.log(f"Launch failed ({exc}); retrying in {delay:g}s.")
            await trio.sleep(delay)
        except _PRECHECK_ERRORS as exc:
            raise Finished(S.FAILED_PRECHECKS, f"{type(exc).__name__}: {exc}") from None
    try:
        await _submit(ctl, parsed, handle)
    except Exception as exc:
        # What the task names cannot be put on any cluster (a bucket or upload gone
        # since submission, a mount the backend refuses): no relaunch would help.
        if isinstance(innermost(exc), (*_PRECHECK_ERRORS, StorageError, UploadNotFoundError)):
            raise Finished(S.FAILED_PRECHECKS, reason_of(exc)) from None
        raise
    return handle


async def _submit(ctl: Controller, parsed: tuple[Any, Any], handle: ClusterHandle) -> None:
    from skyhop_core.ops.common import backend_ctx, build_job_spec, sync_files
    from skyhop_core.ops.provisioning import matching_resources

    task, per_rank = parsed
    ctx = ctl.ctx
    services = ctl.service.services
    bctx = backend_ctx(ctx, handle.backend)
    await sync_files(ctx, bctx, handle, task, mounts=True)
    from skyhop_core.storage.mounting import apply_storage_mounts

    await apply_storage_mounts(ctx, bctx, handle, task, handle.cluster_name)
    resources = matching_resources(task, handle)
    spec = build_job_spec(ctx, task, per_rank, resources, with_setup=True)
    spec = attrs.evolve(spec, envs={**_task_id_envs(await ctl.row()), **spec.envs})
    agent_job_id = await services.backends.call(
        handle.backend, "skyhop_submit_job", ctx=bctx, handle=handle, job=spec
    )
    path = ctl.service.hub.path(f"{ctl.job_id}.output")
    offset = os.path.getsize(path) if path.exists() else 0
    infra = handle.backend + (f"/{handle.region}" if handle.region else "")
    row = await ctl.row()
    now = time.time()
    await services.store.run(lambda c: js.stop_recovering(c, ctl.job_id))
    if row.tasks is not None:
        await services.store.run(
            lambda c: pipeline.mark_started(c, ctl.job_id, row.current_task, now)
        )
    await ctl.set_status(
        S.RUNNING,
        agent_job_id=int(agent_job_id),
        start_at=row.start_at or now,
        region=handle.region,
        infra=infra,
        output_offset=offset,
        schedule_state=js.ALIVE,
    )
    ctl.service.wake()  # the launch slot is free
    ctl.log(f"Job submitted to {ctl.cluster_name!r} ({infra}) as job {agent_job_id}: RUNNING.")


def _task_id_envs(row: Any) -> dict[str, str]:
    """SkyPilot's names for the task's ID, which stays the same across recoveries (the
    agent sets SKYHOP_TASK_ID), and a pipeline's list of its tasks' IDs."""
    envs = {"SKYPILOT_TASK_ID": row.task_id}
    if row.tasks is not None:
        ids = "\n".join(str(e["task_id"]) for e in row.tasks)
        envs.update(SKYHOP_TASK_IDS=ids, SKYPILOT_TASK_IDS=ids)
    return envs


__all__ = ["SkyhopError", "current_handle", "launch"]
