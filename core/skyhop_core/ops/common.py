"""Helpers shared by the operations: lookups, ownership, names, tasks, file sync."""

from __future__ import annotations

import os
import re
import secrets as _secrets
from typing import Any

import trio

from skyhop_core.context import BackendContext
from skyhop_core.exceptions import (
    ClusterDoesNotExist,
    ClusterNotUpError,
    ClusterOwnerIdentityMismatchError,
    InvalidClusterNameError,
    NotSupportedError,
)
from skyhop_core.models.records import ClusterHandle, ClusterRecord, JobSpec
from skyhop_core.models.status import ClusterStatus
from skyhop_core.requests.context import RequestContext
from skyhop_core.state import clusters as cl

CLUSTER_NAME_RE = re.compile(r"^[a-zA-Z]([-_.a-zA-Z0-9]*[a-zA-Z0-9])?$")
MAX_CLUSTER_NAME = 63
REMOTE_WORKDIR = "~/sky_workdir"
DEFAULT_JOB_CPUS = 0.5


def validate_cluster_name(name: str) -> None:
    if not isinstance(name, str) or len(name) > MAX_CLUSTER_NAME or not CLUSTER_NAME_RE.match(name):
        raise InvalidClusterNameError(
            f"Cluster name {name!r} is invalid: use up to {MAX_CLUSTER_NAME} letters, digits, "
            "'-', '_' or '.', starting with a letter and ending with a letter or digit."
        )


def generate_cluster_name(user_name: str) -> str:
    user = re.sub(r"[^a-z0-9]", "", user_name.lower())[:16] or "user"
    return f"skyhop-{_secrets.token_hex(2)}-{user}"


async def find_cluster(ctx: RequestContext, name: str) -> ClusterRecord | None:
    return await ctx.services.store.run(cl.get, name)


async def get_cluster(ctx: RequestContext, name: str, *, owned: bool = True) -> ClusterRecord:
    validate_cluster_name(name)
    record = await find_cluster(ctx, name)
    if record is None:
        raise ClusterDoesNotExist(
            f"Cluster {name!r} does not exist. Run `skyhop status` to list clusters."
        )
    if owned:
        check_owner(ctx, record)
    return record


def check_owner(ctx: RequestContext, record: ClusterRecord) -> None:
    if record.user_hash != ctx.user.hash:
        raise ClusterOwnerIdentityMismatchError(
            f"Cluster {record.name!r} belongs to {record.user_name} ({record.user_hash}); "
            f"you are {ctx.user.name} ({ctx.user.hash})."
        )


def require_up(record: ClusterRecord) -> ClusterHandle:
    if record.status is not ClusterStatus.UP or record.handle is None:
        raise ClusterNotUpError(
            f"Cluster {record.name!r} is {record.status.value}, not UP. "
            f"Run `skyhop start {record.name}` (or `skyhop launch -c {record.name}`) first.",
            cluster_status=record.status.value,
        )
    return record.handle


def backend_ctx(ctx: RequestContext, backend: str) -> BackendContext:
    return ctx.services.backend_ctx(backend, ctx)


def require_feature(ctx: RequestContext, backend: str, feature: Any, what: str) -> None:
    info = ctx.services.backends.info(backend)
    if not info.supports(feature):
        raise NotSupportedError(f"The {info.display_name} backend does not support {what}.")


def parse_task(config: dict[str, Any]) -> tuple[Any, list[str | None] | None]:
    """A Task from its wire mapping; a per-rank ``run`` list is split off and returned."""
    from skyhop_core.models.task import Task

    config = dict(config)
    per_rank = None
    if isinstance(config.get("run"), list):
        per_rank = [None if c is None else str(c) for c in config.pop("run")]
    return Task.from_yaml_config(config, source="<request>"), per_rank


def job_cpus(resources: Any) -> float:
    cpus = resources.cpus_requirement()[0] if resources is not None else None
    return float(cpus) if cpus else DEFAULT_JOB_CPUS


def build_job_spec(
    ctx: RequestContext,
    task: Any,
    per_rank_run: list[str | None] | None,
    resources: Any,
    *,
    with_setup: bool,
) -> JobSpec:
    accelerators = dict(getattr(resources, "accelerators", None) or {})
    return JobSpec(
        name=task.name or "",
        run=per_rank_run if per_rank_run is not None else task.run,
        setup=task.setup if with_setup else None,
        envs={k: str(v) for k, v in (task.envs or {}).items()},
        secrets={k: str(v) for k, v in (getattr(task, "secrets", None) or {}).items()},
        workdir=REMOTE_WORKDIR if task.workdir else None,
        num_nodes=task.num_nodes or 1,
        cpus=job_cpus(resources),
        gpus={k: int(v) for k, v in accelerators.items()},
        username=ctx.user.name,
        user_hash=ctx.user.hash,
        task_id=ctx.request_id,
    )


async def sync_files(
    ctx: RequestContext, bctx: BackendContext, handle: ClusterHandle, task: Any, *, mounts: bool
) -> None:
    """Upload the workdir (and, on launch, the file mounts) to every node."""
    uploads: list[tuple[str, str]] = []
    if task.workdir:
        uploads.append((os.path.expanduser(task.workdir), REMOTE_WORKDIR))
    if mounts:
        for remote, local in (task.file_mounts or {}).items():
            if "://" in str(local):
                raise NotSupportedError(
                    f"file_mounts: {remote}: {local} — cloud storage sources are not supported "
                    "yet; use a local path."
                )
            uploads.append((os.path.expanduser(str(local)), str(remote)))
    if not uploads:
        return
    for local, _ in uploads:
        if not os.path.exists(local):
            raise FileNotFoundError(f"Local path {local} (workdir or file_mounts) does not exist.")
    runners = [ctx.services.runner(bctx, handle, node) for node in handle.nodes]
    for local, remote in uploads:
        ctx.log(f"Syncing {local} -> {remote} on {len(runners)} node(s).")
        try:
            async with trio.open_nursery() as nursery:
                for runner in runners:
                    nursery.start_soon(_upload, runner, local, remote)
        except ExceptionGroup as group:
            # Every node refuses a bad target the same way: show the user one error.
            raise _first_leaf(group) from None


def _first_leaf(group: BaseExceptionGroup) -> BaseException:
    first: BaseException = group
    while isinstance(first, BaseExceptionGroup):
        first = first.exceptions[0]
    return first


async def _upload(runner: Any, local: str, remote: str) -> None:
    excludes: list[str] = []
    for name in (".skyhopignore", ".gitignore"):
        path = os.path.join(local, name)
        if os.path.isfile(path):
            with open(path) as f:
                excludes = [ln.strip() for ln in f if ln.strip() and not ln.startswith("#")]
            break
    await runner.upload(local, remote, excludes=excludes)
