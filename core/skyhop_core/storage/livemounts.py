"""What a cluster has mounted, kept for its next ``stop``, ``start`` and ``down``.

:func:`~skyhop_core.storage.mounting.apply_storage_mounts` records every MOUNT /
MOUNT_CACHED bucket and volume it made in the cluster's ``metadata["live_mounts"]``
(``{mount path: {store, name, prefix, mode}}`` or ``{mount path: {host_path}}``); a COPY
is not recorded: it stays on the nodes' disks.

- Before ``stop`` and ``down`` (and so before a managed job's cluster goes),
  :func:`flush` runs each bucket's ``MountPlan.flush_command`` on the nodes: what rclone
  cached is written to the bucket before the mount's process ends (it does not write
  back on SIGTERM).
- After ``start``, :func:`remount` mounts everything again, without uploading sources
  again.
"""

from __future__ import annotations

from typing import Any

import trio

from skyhop_core.models.records import ClusterHandle
from skyhop_core.models.storage import StorageMode
from skyhop_core.storage.records import Bucket

#: How long ``stop``/``down`` wait, at most, for mounts to write back what they cached.
FLUSH_TIMEOUT_SECONDS = 600.0


def remember(conn: Any, cluster_name: str, live: dict[str, dict[str, str]]) -> None:
    """Add ``live`` (by mount path) to the cluster's ``metadata["live_mounts"]``."""
    from skyhop_core.state import clusters as cl

    record = cl.get(conn, cluster_name)
    if record is not None:
        merged = {**(record.metadata.get("live_mounts") or {}), **live}
        cl.update(conn, cluster_name, metadata={**record.metadata, "live_mounts": merged})


def _buckets(record: Any) -> list[tuple[str, Bucket, StorageMode]]:
    found = []
    for remote, entry in (record.metadata.get("live_mounts") or {}).items():
        if "host_path" not in entry:
            bucket = Bucket(entry["store"], entry["name"], entry.get("prefix") or "")
            found.append((remote, bucket, StorageMode(entry["mode"])))
    return found


async def remount(ctx: Any, bctx: Any, handle: ClusterHandle, record: Any) -> None:
    """After ``start``: mount again what the cluster's launches mounted. A mount that
    fails now (its bucket was deleted meanwhile) is reported and skipped: the cluster
    starts."""
    from skyhop_core.storage.mounting import mount_bucket

    services = ctx.services
    for remote, entry in (record.metadata.get("live_mounts") or {}).items():
        try:
            if "host_path" in entry:
                await services.backends.call(handle.backend, "skyhop_mount_host_path", ctx=bctx,
                                             handle=handle, host_path=entry["host_path"],
                                             mount_path=remote)  # fmt: skip
                continue
            bucket = Bucket(entry["store"], entry["name"], entry.get("prefix") or "")
            sctx = services.store_ctx(bucket.store, ctx)
            await mount_bucket(ctx, bctx, handle, sctx, bucket, remote, StorageMode(entry["mode"]))
            ctx.log(f"file_mounts[{remote!r}]: {bucket.uri} ({entry['mode']}) mounted again")
        except Exception as exc:  # noqa: BLE001 - the start itself succeeded
            ctx.log(f"Warning: could not mount {remote!r} again: {exc}")


async def flush(ctx: Any, bctx: Any, record: Any) -> None:
    """Before ``stop``/``down``: wait (up to FLUSH_TIMEOUT_SECONDS) until every bucket
    mount has written back what it cached. Never fails the stop: a node that cannot be
    reached, or a mount that does not finish, is reported."""
    from skyhop_core.storage.mounting import run_on_nodes

    handle = record.handle
    if handle is None or not handle.nodes:
        return
    services = ctx.services
    with trio.move_on_after(FLUSH_TIMEOUT_SECONDS) as scope:
        for remote, bucket, mode in _buckets(record):
            try:
                plan = services.stores.call(bucket.store, "skyhop_store_mount_plan",
                                            ctx=services.store_ctx(bucket.store, ctx),
                                            bucket=bucket, mount_path=remote,
                                            cached=mode is StorageMode.MOUNT_CACHED)  # fmt: skip
                if not plan.flush_command:
                    continue
                failures = await run_on_nodes(ctx, bctx, handle, plan.flush_command, {})
            except Exception as exc:  # noqa: BLE001 - stopping goes on regardless
                failures = {-1: str(exc)}
            for rank, detail in failures.items():
                ctx.log(f"Warning: file_mounts[{remote!r}]: {bucket.uri} may not have "
                        f"written back everything (node {rank}): {detail}")  # fmt: skip
    if scope.cancelled_caught:
        ctx.log(f"Warning: mounts were still writing back after {FLUSH_TIMEOUT_SECONDS:.0f} s; "
                "stopping anyway.")
