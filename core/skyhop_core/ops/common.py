"""Helpers shared by the operations: lookups, ownership, names, tasks, file sync."""

from __future__ import annotations

import functools
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
    PermissionDeniedError,
    TaskValidationError,
)
from skyhop_core.models.records import ClusterHandle, ClusterRecord, JobSpec
from skyhop_core.models.status import ClusterStatus
from skyhop_core.models.storage import bucket_uri_store
from skyhop_core.requests.context import RequestContext
from skyhop_core.state import clusters as cl
from skyhop_core.storage import manifest as mf
from skyhop_core.storage.uploads import UploadStore

CLUSTER_NAME_RE = re.compile(r"^[a-zA-Z]([-_.a-zA-Z0-9]*[a-zA-Z0-9])?$")
MAX_CLUSTER_NAME = 63
REMOTE_WORKDIR = "~/sky_workdir"
DEFAULT_JOB_CPUS = 0.5


def validate_cluster_name(name: str) -> None:
    if not isinstance(name, str) or len(name) > MAX_CLUSTER_NAME or not CLUSTER_NAME_RE.fullmatch(name):
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
    """The cluster ``name``, checked to be the caller's (unless ``owned=False``)."""
    validate_cluster_name(name)
    record = await find_cluster(ctx, name)
    if record is None:
        raise _not_found(name)
    if owned:
        check_owner(ctx, record)
    return record


def _not_found(name: str) -> ClusterDoesNotExist:
    return ClusterDoesNotExist(
        f"Cluster {name!r} does not exist. Run `skyhop status` to list clusters."
    )


def check_owner(ctx: RequestContext, record: ClusterRecord) -> None:
    """Refuse acting on another user's cluster (an admin may act on everyone's).

    On a deployed server someone else's cluster is reported exactly like a missing one
    (ClusterDoesNotExist), so neither its existence nor its owner leaks. A local server
    serves one person whose identity headers prove nothing, so it names the owner.
    """
    if record.user_hash == ctx.user.hash or ctx.user.is_admin:
        return
    if ctx.services.deploy:
        raise _not_found(record.name)
    raise ClusterOwnerIdentityMismatchError(
        f"Cluster {record.name!r} belongs to {record.user_name} ({record.user_hash}); "
        f"you are {ctx.user.name} ({ctx.user.hash})."
    )


def check_name_free(ctx: RequestContext, record: ClusterRecord) -> None:
    """``launch -c NAME`` where NAME is another user's cluster: cluster names are shared
    by everyone on a server, so the name is taken — but say nothing about by whom."""
    if record.user_hash == ctx.user.hash or ctx.user.is_admin or not ctx.services.deploy:
        check_owner(ctx, record)
        return
    raise ClusterOwnerIdentityMismatchError(
        f"The cluster name {record.name!r} is taken on this API server; choose another "
        "name (-c NAME)."
    )


def may_act_for_all(ctx: RequestContext) -> bool:
    """Whether the caller may see or act on every user's objects (``all_users``/``-u``):
    an admin, or anyone on a local server."""
    return ctx.user.is_admin or not ctx.services.deploy


def require_all_users_allowed(ctx: RequestContext, what: str) -> None:
    """Refuse ``all_users`` for a non-admin on a deployed server, saying why."""
    if not may_act_for_all(ctx):
        raise PermissionDeniedError(
            f"Only an administrator can {what} other users' (-u / all_users) on this "
            "deployed API server; your token's role is 'user'. Leave out -u to see yours."
        )


def require_up(record: ClusterRecord) -> ClusterHandle:
    if record.status is not ClusterStatus.UP or record.handle is None:
        from skyhop_core.ops.health import reason_of

        reason = reason_of(record)
        hint = reason or (
            f"Run `skyhop start {record.name}` (or `skyhop launch -c {record.name}`) first."
        )
        raise ClusterNotUpError(
            f"Cluster {record.name!r} is {record.status.value}, not UP: {hint}",
            cluster_status=record.status.value,
        )
    return record.handle


def require_nodes(record: ClusterRecord) -> ClusterHandle:
    """The handle of a cluster whose nodes may still hold jobs: UP, or INIT with a handle.

    Reading (and cancelling) jobs works on an INIT cluster too — one whose agent died, or
    whose launch was interrupted — so ``queue`` shows what became of them.
    """
    if record.status is ClusterStatus.INIT and record.handle is not None:
        return record.handle
    return require_up(record)


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
        gpus={k: v for k, v in accelerators.items()},  # a share (0.5) stays fractional
        username=ctx.user.name,
        user_hash=ctx.user.hash,
        task_id=ctx.request_id,
    )


def _sources(
    task: Any, *, mounts: bool, uploads_only: bool = False
) -> list[tuple[str, str, str]]:
    """``(field, source, remote)`` for the workdir and (``mounts``) the file mounts;
    ``uploads_only`` leaves out bucket URIs."""
    sources: list[tuple[str, str, str]] = []
    if isinstance(task.workdir, str) and task.workdir:  # a git workdir is cloned instead
        sources.append(("workdir", task.workdir, REMOTE_WORKDIR))
    if mounts:
        for remote, source in (task.file_mounts or {}).items():
            if uploads_only and bucket_uri_store(str(source)):
                continue
            sources.append((f"file_mounts[{remote!r}]", str(source), str(remote)))
    return sources


def check_no_client_paths(task: Any) -> None:
    """Refuse a task whose workdir or file mounts name paths instead of uploads.

    The server never reads a path from a request: those live on the client's machine,
    and the client uploads them first (``skyhop-upload://<id>``, see docs/http-api.md).
    """
    for field, source, _ in _sources(task, mounts=True):
        if mf.parse_upload_ref(source) is not None or bucket_uri_store(source):
            continue  # a bucket URI is the store's to fetch (refused by check_runnable)
        raise TaskValidationError(
            f"{field}: {source!r} is a path on the client's machine, which the API server "
            "never reads. The skyhop SDK and CLI upload it before submitting; a direct HTTP "
            f"caller uploads it (POST /api/uploads) and sends {mf.UPLOAD_SCHEME}<upload_id>.",
            source="<request>", field=field, value=source,
        )  # fmt: skip


async def check_sources(ctx: RequestContext, task: Any) -> None:
    """Fail before provisioning anything if an upload the task names is not the
    caller's, not complete, or gone, or a bucket its storage mounts name is not there."""
    from skyhop_core.storage.mounting import check_bucket_sources

    check_no_client_paths(task)
    store = UploadStore(ctx.services.persistent_path)
    for _, source, _ in _sources(task, mounts=True, uploads_only=True):
        await store.run(store.resolve, ctx.user.hash, mf.parse_upload_ref(source) or "")
    await check_bucket_sources(ctx, task)


async def sync_files(
    ctx: RequestContext, bctx: BackendContext, handle: ClusterHandle, task: Any, *, mounts: bool
) -> None:
    """Sync the workdir (and, on launch, the file mounts) to every node, from the
    caller's uploads (materialised under the persistent path); a git workdir is cloned
    by the server and synced the same way."""
    if isinstance(task.workdir, dict):
        from skyhop_core.ops.gitworkdir import sync_git_workdir

        await sync_git_workdir(ctx, bctx, handle, task, REMOTE_WORKDIR)
    sources = _sources(task, mounts=mounts, uploads_only=True)
    if not sources:
        return
    check_no_client_paths(task)
    store = UploadStore(ctx.services.persistent_path)
    resolved: list[tuple[str, str]] = []
    for field, source, remote in sources:
        upload = mf.parse_upload_ref(source) or ""
        local = await store.run(store.resolve, ctx.user.hash, upload)
        info = await store.run(store.info, ctx.user.hash, upload)
        ctx.log(
            f"{field}: upload {upload[:12]} ({info['files']} file(s), "
            f"{mf.human_bytes(info['bytes'])}; {info['new_blobs']} sent) -> {remote}"
        )
        resolved.append((str(local), remote))
    runners = [ctx.services.runner(bctx, handle, node) for node in handle.nodes]
    for source_path, remote in resolved:
        try:
            async with trio.open_nursery() as nursery:
                for runner in runners:
                    # The client applied .skyignore/.gitignore already: nothing to exclude.
                    nursery.start_soon(
                        functools.partial(runner.upload, source_path, remote, excludes=())
                    )
        except ExceptionGroup as group:
            # Every node refuses a bad target the same way: show the user one error.
            raise _first_leaf(group) from None


def _first_leaf(group: BaseExceptionGroup) -> BaseException:
    first: BaseException = group
    while isinstance(first, BaseExceptionGroup):
        first = first.exceptions[0]
    return first
