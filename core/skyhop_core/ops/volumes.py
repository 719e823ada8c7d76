"""Volumes: ``volumes apply`` / ``ls`` / ``delete``, and mounting a task's ``volumes:``.

A ``local`` volume is a directory on the API server's machine
(``<persistent path>/volumes/<name>``), bound into every node of a ``local`` cluster at
the task's mount path. Volumes are recorded per user in the storage table (store
``volume``): another user neither sees nor mounts yours.
"""

from __future__ import annotations

import functools
import os
import shutil
from typing import Any

import trio

from skyhop_core.exceptions import NotSupportedError, StorageError
from skyhop_core.ops import params as P
from skyhop_core.requests.context import RequestContext
from skyhop_core.state import buckets as bk

STORE = "volume"


def volume_dir(ctx: RequestContext, name: str) -> str:
    return str(ctx.services.persistent_path / "volumes" / name)


def _record(row: dict[str, Any]) -> dict[str, Any]:
    return {"name": row["name"], "type": row["source"] or "local", "user_name": row["user_name"],
            "created_at": row["created_at"], "last_use": row["last_use"]}  # fmt: skip


async def volumes_apply(ctx: RequestContext, p: P.VolumeApplyParams) -> dict[str, Any]:
    """Create the volume (an existing one of yours is kept); returns its record."""
    user = ctx.user

    def claim(conn: Any) -> dict[str, Any]:
        row = bk.get(conn, STORE, p.name)
        if row is not None and row["user_hash"] != user.hash:
            raise StorageError(f"The volume name {p.name!r} is taken; choose another name.")
        return row or bk.record(conn, store=STORE, name=p.name, user_name=user.name,
                                user_hash=user.hash, persistent=True, cluster_name=None,
                                source=p.type, managed=True)  # fmt: skip

    row = await ctx.services.store.run(claim)
    path = volume_dir(ctx, p.name)
    await trio.to_thread.run_sync(lambda: os.makedirs(path, mode=0o755, exist_ok=True))
    ctx.log(f"Volume {p.name!r} ({p.type}) is ready.")
    return _record(row)


async def volumes_ls(ctx: RequestContext, p: P.NoParams) -> list[dict[str, Any]]:
    rows = await ctx.services.store.run(bk.list_for, ctx.user.hash)
    return [_record(r) for r in rows if r["store"] == STORE]


async def volumes_delete(ctx: RequestContext, p: P.VolumeDeleteParams) -> list[str]:
    """Delete your volumes by name (or all); unknown names are an error first."""
    if not p.all and not p.names:
        raise StorageError("Name the volumes to delete, or pass all (-a).")
    mine = {r["name"]: r for r in await ctx.services.store.run(bk.list_for, ctx.user.hash)
            if r["store"] == STORE}  # fmt: skip
    names = list(mine) if p.all else list(dict.fromkeys(p.names or []))
    missing = [n for n in names if n not in mine]
    if missing:
        raise StorageError(f"No volume named {', '.join(map(repr, missing))} of yours.")
    for name in names:
        await trio.to_thread.run_sync(
            functools.partial(shutil.rmtree, volume_dir(ctx, name), ignore_errors=True)
        )
        await ctx.services.store.run(bk.delete, STORE, name)
        ctx.log(f"Deleted volume {name!r}.")
    return names


async def mount_volumes(
    ctx: RequestContext, bctx: Any, handle: Any, task: Any
) -> dict[str, str]:
    """Bind each of the task's ``volumes: {path: name}`` into every node; returns
    ``{path: host directory}`` of what it bound (to bind again after ``start``)."""
    bound: dict[str, str] = {}
    for path, volume in (task.volumes or {}).items():
        if not isinstance(volume, str):
            raise NotSupportedError(
                f"volumes[{path!r}]: ephemeral volumes (a mapping of settings) are not "
                "supported yet; create a volume (`skyhop volumes apply NAME`) and name it."
            )
        row = await ctx.services.store.run(bk.get, STORE, volume)
        if row is None or row["user_hash"] != ctx.user.hash:
            raise StorageError(
                f"volumes[{path!r}]: no volume named {volume!r} of yours; create it with "
                f"`skyhop volumes apply {volume}`."
            )
        if not ctx.services.backends.implements(handle.backend, "skyhop_mount_host_path"):
            raise NotSupportedError(
                f"volumes[{path!r}]: local volumes mount only on the local backend."
            )
        await ctx.services.backends.call(handle.backend, "skyhop_mount_host_path", ctx=bctx,
                                         handle=handle, host_path=volume_dir(ctx, volume),
                                         mount_path=path)  # fmt: skip
        bound[path] = volume_dir(ctx, volume)
        ctx.log(f"volumes[{path!r}]: volume {volume!r}")
    return bound
