"""Storage operations: ``storage ls`` and ``storage delete`` (the caller's buckets)."""

from __future__ import annotations

from typing import Any

from skyhop_core.exceptions import StorageError
from skyhop_core.ops import params as P
from skyhop_core.ops.common import require_all_users_allowed
from skyhop_core.requests.context import RequestContext
from skyhop_core.state import buckets as bk


def _record(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": row["name"],
        "store": row["store"],
        "persistent": bool(row["persistent"]),
        "cluster_name": row["cluster_name"],
        "source": row["source"],
        "created_at": row["created_at"],
        "last_use": row["last_use"],
        "user_name": row["user_name"],
    }


async def storage_ls(ctx: RequestContext, p: P.StorageLsParams) -> list[dict[str, Any]]:
    """The caller's buckets (every user's with ``all_users``), oldest first."""
    if p.all_users:
        require_all_users_allowed(ctx, "list the storage of")
    rows = await ctx.services.store.run(bk.list_for, None if p.all_users else ctx.user.hash)
    return [_record(r) for r in rows if r["store"] != "volume"]  # volumes: `volumes ls`


async def storage_delete(ctx: RequestContext, p: P.StorageDeleteParams) -> list[str]:
    """Delete the caller's buckets by name (or all of them); returns the names deleted.

    A name the caller has no bucket of (another user's included) is an error, before
    anything is deleted.
    """
    from skyhop_core.storage.mounting import delete_bucket

    if not p.all and not p.names:
        raise StorageError("Name the storage to delete, or pass all (-a).")
    mine = [r for r in await ctx.services.store.run(bk.list_for, ctx.user.hash)
            if r["store"] != "volume"]  # fmt: skip
    if p.all:
        chosen = mine
    else:
        by_name = {r["name"]: r for r in mine}
        missing = [n for n in p.names or [] if n not in by_name]
        if missing:
            raise StorageError(
                f"No storage named {', '.join(map(repr, missing))} of yours "
                "(see `skyhop storage ls`)."
            )
        chosen = [by_name[n] for n in dict.fromkeys(p.names or [])]
    for row in chosen:
        await delete_bucket(ctx, row)
    return [r["name"] for r in chosen]
