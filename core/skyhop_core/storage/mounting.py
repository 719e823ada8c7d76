"""Storage mounts at launch: find or create each bucket, fill it, and put it on the nodes.

For every ``Task.storage_mounts`` entry, in order:

1. The bucket: its store is the entry's ``store``, else the store its URI names, else
   the cluster's backend's own (``aws`` -> ``s3``) or ``local``. Its name is the
   entry's ``name``, else the URI's bucket, else one made from the user and mount path.
   A bucket recorded for another user is refused (names are global in a store; buckets
   are private to their owner).
2. A bucket skyhop creates is recorded with its owner (``persistent: false`` ones with
   the cluster, to be deleted by ``down``); a local ``source`` (the client's upload) is
   uploaded into it.
3. COPY: the server downloads the bucket and sends it to every node before setup.
   MOUNT/MOUNT_CACHED: the store's mount plan, either a host directory the backend binds
   into the nodes, or a command each node runs (rclone), which says so when the node has
   no FUSE.
4. What was mounted (MOUNT buckets and volumes, not COPYs: those stay on the nodes'
   disks) is kept in the cluster's ``metadata["live_mounts"]``;
   :mod:`~skyhop_core.storage.livemounts` writes it back before ``stop``/``down`` and
   mounts it again after ``start``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from typing import Any

import trio

from skyhop_core.exceptions import NotSupportedError, StorageError
from skyhop_core.models.records import ClusterHandle
from skyhop_core.models.storage import Storage, StorageMode, bucket_uri_store
from skyhop_core.state import buckets as bk
from skyhop_core.storage import manifest as mf
from skyhop_core.storage.records import Bucket

#: The store of a backend's own object storage; other backends use ``local``.
BACKEND_STORES = {"aws": "s3", "gcp": "gcs"}
#: Backends whose nodes are on the API server's machine (they may get ``server_env``).
SERVER_MACHINE_BACKENDS = frozenset({"local"})


def resolve_bucket(storage: Storage, remote: str, backend: str, user_hash: str) -> tuple[Bucket, bool]:
    """The bucket a storage mount names, and whether skyhop manages (creates) it."""
    uri_store = storage.source_store
    store = storage.stores[0] if storage.stores else uri_store
    store = store or BACKEND_STORES.get(backend, "local")
    if uri_store is not None:
        assert isinstance(storage.source, str)
        name, _, prefix = storage.source.partition("://")[2].partition("/")
        if uri_store != store:
            raise StorageError(
                f"file_mounts[{remote!r}]: source {storage.source} is a {uri_store} bucket "
                f"but store is {store!r}; drop `store:` or use a {store} bucket URI."
            )
        if storage.name is not None and storage.name != name:
            raise StorageError(
                f"file_mounts[{remote!r}]: name {storage.name!r} differs from the bucket of "
                f"source {storage.source}; give one of them."
            )
        return Bucket(store, name, prefix.strip("/")), False
    name = storage.name or "skyhop-" + hashlib.sha256(
        f"{user_hash}:{remote}".encode()
    ).hexdigest()[:16]
    return Bucket(store, name), True


def storage_mounts(task: Any) -> dict[str, Storage]:
    """Every storage mount of ``task`` by mount path: its ``storage_mounts``, and each
    bucket URI given as a plain file mount (a COPY)."""
    mounts = dict(task.storage_mounts or {})
    for remote, source in (task.file_mounts or {}).items():
        if bucket_uri_store(str(source)):
            mounts[remote] = Storage(source=str(source), mode=StorageMode.COPY)
    return mounts


async def check_bucket_sources(ctx: Any, task: Any) -> None:
    """Before anything is provisioned: every bucket a storage mount's ``source`` URI
    names (skyhop does not create those) exists, and its store is installed."""
    for remote, storage in storage_mounts(task).items():
        if storage.source_store is not None:
            bucket, _ = resolve_bucket(storage, remote, "", ctx.user.hash)
            ctx.services.stores.info(bucket.store)
            await _check_exists(ctx, bucket, storage, remote)


async def _check_exists(ctx: Any, bucket: Bucket, storage: Storage, remote: str) -> None:
    """Refuse a source bucket its store says is not there (stores without
    ``skyhop_store_exists`` are not asked)."""
    stores = ctx.services.stores
    if not stores.implements(bucket.store, "skyhop_store_exists"):
        return
    sctx = ctx.services.store_ctx(bucket.store, ctx)
    if await stores.call(bucket.store, "skyhop_store_exists", ctx=sctx, bucket=bucket):
        return
    where = stores.info(bucket.store).display_name or bucket.store
    raise StorageError(
        f"file_mounts[{remote!r}]: source {storage.source} names the {where} bucket "
        f"{bucket.name!r}, which does not exist. Check the name (and the store's "
        f"credentials and endpoint), create it, or give `name: {bucket.name}` without a "
        "bucket `source:` to have skyhop create it."
    )


async def apply_storage_mounts(
    ctx: Any, bctx: Any, handle: ClusterHandle, task: Any, cluster_name: str
) -> None:
    """Create, fill and mount (or copy) every storage mount of ``task`` on the cluster."""
    services = ctx.services
    mounts = storage_mounts(task)
    live: dict[str, dict[str, str]] = {}  # what a `start` must mount again
    if task.volumes:
        from skyhop_core.ops.volumes import mount_volumes

        bound = await mount_volumes(ctx, bctx, handle, task)
        live.update({path: {"host_path": host} for path, host in bound.items()})
    for remote, storage in mounts.items():
        bucket, managed = resolve_bucket(storage, remote, handle.backend, ctx.user.hash)
        sctx = services.store_ctx(bucket.store, ctx)
        services.stores.info(bucket.store)  # a precise error for a store not installed
        if not managed:  # gone since the launch was checked (a recovery, days later)
            await _check_exists(ctx, bucket, storage, remote)
        recorded = await _claim(ctx, bucket, storage, managed, cluster_name)
        if managed:
            try:
                await services.stores.call(bucket.store, "skyhop_store_create", ctx=sctx,
                                           bucket=bucket)  # fmt: skip
            except BaseException:
                if recorded:  # the store refused it (a bad name): no record of a non-bucket
                    with trio.CancelScope(shield=True):
                        await services.store.run(bk.delete, bucket.store, bucket.name)
                raise
        if storage.source is not None and bucket_uri_store(str(storage.source)) is None:
            for source in _sources(storage):
                path = await _upload_path(ctx, source)
                ctx.log(f"file_mounts[{remote!r}]: uploading to {bucket.uri}")
                await services.stores.call(
                    bucket.store, "skyhop_store_upload", ctx=sctx, bucket=bucket, source=path
                )
        if storage.mode is StorageMode.COPY:
            await _copy(ctx, bctx, handle, sctx, bucket, remote)
        else:
            await mount_bucket(ctx, bctx, handle, sctx, bucket, remote, storage.mode)
            live[remote] = {"store": bucket.store, "name": bucket.name,
                            "prefix": bucket.prefix, "mode": storage.mode.value}  # fmt: skip
        ctx.log(f"file_mounts[{remote!r}]: {bucket.uri} ({storage.mode.value})")
    if live:
        from skyhop_core.storage.livemounts import remember

        await services.store.run(remember, cluster_name, live)


def _sources(storage: Storage) -> list[str]:
    return [storage.source] if isinstance(storage.source, str) else list(storage.source or ())


async def _upload_path(ctx: Any, source: str) -> str:
    """The server-side directory of a client's upload (``skyhop-upload://<id>``)."""
    from skyhop_core.storage.uploads import UploadStore

    upload = mf.parse_upload_ref(source)
    if upload is None:
        raise StorageError(
            f"storage source {source!r} is a path on the client's machine, which the API "
            "server never reads; the skyhop SDK and CLI upload it before submitting."
        )
    store = UploadStore(ctx.services.persistent_path)
    return str(await store.run(store.resolve, ctx.user.hash, upload))


async def _claim(ctx: Any, bucket: Bucket, storage: Storage, managed: bool, cluster: str) -> bool:
    """Record the bucket for this user, or refuse one that another user owns; whether
    this call made the record."""
    user = ctx.user
    made = False

    def claim(conn: Any) -> dict[str, Any] | None:
        nonlocal made
        row = bk.get(conn, bucket.store, bucket.name)
        if row is not None and row["user_hash"] != user.hash:
            return row
        if row is None and managed:
            made = True
            bk.record(
                conn, store=bucket.store, name=bucket.name, user_name=user.name,
                user_hash=user.hash, persistent=storage.persistent, cluster_name=cluster,
                source=None if storage.source is None else str(storage.source)[:1000],
                managed=True,
            )  # fmt: skip
        elif row is not None:
            bk.touch(conn, bucket.store, bucket.name, f"launch {cluster}")
        return None

    if await ctx.services.store.run(claim) is not None:
        raise StorageError(
            f"The {bucket.store} bucket name {bucket.name!r} is taken (bucket names are "
            "shared by every user of a store); choose another `name:`."
        )
    return made


async def _copy(ctx: Any, bctx: Any, handle: ClusterHandle, sctx: Any, bucket: Bucket,
                remote: str) -> None:  # fmt: skip
    """COPY: download the bucket here once, then send it to every node."""
    services = ctx.services
    tmp_root = services.persistent_path / "tmp"
    tmp_root.mkdir(parents=True, exist_ok=True)
    dest = await trio.to_thread.run_sync(lambda: tempfile.mkdtemp(dir=tmp_root))
    try:
        await services.stores.call(bucket.store, "skyhop_store_download", ctx=sctx,
                                   bucket=bucket, dest=dest)  # fmt: skip
        async with trio.open_nursery() as nursery:
            for node in handle.nodes:
                runner = services.runner(bctx, handle, node)
                nursery.start_soon(runner.upload, dest, remote)
    finally:
        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(_remove, dest)


def _remove(path: str) -> None:
    """Remove the download: a directory, or the one file a URI named."""
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


async def mount_bucket(ctx: Any, bctx: Any, handle: ClusterHandle, sctx: Any, bucket: Bucket,
                       remote: str, mode: StorageMode) -> None:  # fmt: skip
    """MOUNT/MOUNT_CACHED one bucket on every node of ``handle`` (idempotent)."""
    services = ctx.services
    plan = services.stores.call(bucket.store, "skyhop_store_mount_plan", ctx=sctx,
                                bucket=bucket, mount_path=remote,
                                cached=mode is StorageMode.MOUNT_CACHED)  # fmt: skip
    if plan.host_path is not None:
        if not services.backends.implements(handle.backend, "skyhop_mount_host_path"):
            raise NotSupportedError(
                f"file_mounts[{remote!r}]: a {bucket.store} bucket lives on the API server's "
                f"machine and the {handle.backend} backend's nodes cannot mount it; use "
                "`mode: COPY`, or a cloud store (s3)."
            )
        await services.backends.call(handle.backend, "skyhop_mount_host_path", ctx=bctx,
                                     handle=handle, host_path=plan.host_path,
                                     mount_path=remote)  # fmt: skip
        return
    env = plan.server_env if handle.backend in SERVER_MACHINE_BACKENDS else {}
    for node in handle.nodes:
        # A runner that knows where a node path is on the host (a local node without a
        # sandbox) refuses a mount that would land on the host's own file system.
        host_path = getattr(services.runner(bctx, handle, node), "host_path", None)
        if callable(host_path):
            host_path(remote)
    failures = await run_on_nodes(ctx, bctx, handle, plan.command or "true", env)
    for rank, detail in failures.items():
        raise StorageError(
            f"file_mounts[{remote!r}]: mounting {bucket.uri} ({mode.value}) on node "
            f"{rank} failed: {detail}"
        )


async def run_on_nodes(ctx: Any, bctx: Any, handle: ClusterHandle, command: str,
                       env: dict[str, str]) -> dict[int, str]:  # fmt: skip
    """Run a store's ``command`` on every node (as its mount launcher says), ``env`` on
    its stdin; returns ``{rank: what went wrong}`` for the nodes where it failed."""
    services = ctx.services
    failures: dict[int, str] = {}
    for node in handle.nodes:
        runner = services.runner(bctx, handle, node)
        # Where jobs enter their node through a launcher (a local node's sandbox), the
        # mount must be made in there too, not on the machine the runner runs on; a
        # backend's mount launcher runs it with more rights than jobs have (as root, so
        # that the credentials rclone holds are not the jobs' to read).
        launcher = node.extra.get("mount_launcher") or node.extra.get("job_launcher")
        prefix = json.loads(launcher) if isinstance(launcher, str) else ["bash", "-c"]
        # The first stdin lines are NAME=VALUE pairs to export (secrets stay off argv).
        script = 'while IFS= read -r _kv && [ -n "$_kv" ]; do export "$_kv"; done\n' + command
        lines = "".join(f"{k}={v}\n" for k, v in env.items() if "\n" not in f"{k}{v}") + "\n"
        done = await runner.run([*prefix, script], input=lines.encode())
        if done.returncode != 0:
            detail = (done.stderr or done.stdout).decode(errors="replace").strip()[-500:]
            failures[node.rank] = detail or f"exit code {done.returncode}"
    return failures


async def delete_cluster_buckets(ctx: Any, cluster_name: str) -> None:
    """Delete the ``persistent: false`` buckets made for ``cluster_name`` (at ``down``)."""
    services = ctx.services
    rows = await services.store.run(bk.of_cluster, cluster_name)
    for row in rows:
        await delete_bucket(ctx, row)


async def delete_bucket(ctx: Any, row: dict[str, Any]) -> None:
    """Delete one recorded bucket from its store, then its record."""
    services = ctx.services
    bucket = Bucket(row["store"], row["name"])
    if row["managed"]:
        await services.stores.call(bucket.store, "skyhop_store_delete",
                                   ctx=services.store_ctx(bucket.store, ctx), bucket=bucket)
    await services.store.run(bk.delete, bucket.store, bucket.name)
    ctx.log(f"Deleted storage {bucket.name!r} ({bucket.store}).")
