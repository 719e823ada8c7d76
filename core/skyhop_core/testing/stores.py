"""The store conformance check: every store hook, against a real store.

``await check_store(stores, name, ctx, scratch)`` runs the bucket lifecycle a launch
and ``storage delete`` drive: ``skyhop_store_info`` (the store is found by name),
``skyhop_store_exists`` (where implemented: false before the create and after the
delete, true between), ``skyhop_store_create`` (twice: idempotent),
``skyhop_store_upload`` of a directory, ``skyhop_store_list``, ``skyhop_store_download``
(the same files come back), ``skyhop_store_mount_plan`` (a host path or a command) and
``skyhop_store_delete`` (twice; the bucket is gone from the list). Store authors call it
from a test against their service (or its emulator); the built-in stores run it in
tests/plugins (``local`` on disk, ``s3`` on moto's S3 server, ``gcs`` on the fake Cloud
Storage JSON API of tests/plugins/gcp).

Backends whose nodes can bind a host directory implement ``skyhop_mount_host_path``;
:func:`check_mount_host_path` checks that a file written on every node lands in it.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

from skyhop_core.storage.records import Bucket


async def check_store(stores: Any, name: str, ctx: Any, scratch: Path) -> Bucket:
    """Run every store hook of store ``name``; returns the (deleted) bucket it used."""
    info = stores.info(name)  # from skyhop_store_info
    assert info.name == name and all(isinstance(s, str) for s in info.schemes)
    bucket = Bucket(name, f"skyhop-conformance-{secrets.token_hex(4)}")
    source = scratch / "source"
    (source / "sub").mkdir(parents=True)
    (source / "a.txt").write_text("alpha\n")
    (source / "sub" / "b.txt").write_text("beta\n")
    exists = stores.implements(name, "skyhop_store_exists")  # optional
    if exists:
        assert not await stores.call(name, "skyhop_store_exists", ctx=ctx, bucket=bucket)
    for _ in range(2):
        await stores.call(name, "skyhop_store_create", ctx=ctx, bucket=bucket)
    if exists:
        assert await stores.call(name, "skyhop_store_exists", ctx=ctx, bucket=bucket)
    await stores.call(name, "skyhop_store_upload", ctx=ctx, bucket=bucket, source=str(source))
    assert bucket.name in await stores.call(name, "skyhop_store_list", ctx=ctx)
    dest = scratch / "dest"
    dest.mkdir()
    await stores.call(name, "skyhop_store_download", ctx=ctx, bucket=bucket, dest=str(dest))
    assert (dest / "a.txt").read_text() == "alpha\n"
    assert (dest / "sub" / "b.txt").read_text() == "beta\n"
    plan = stores.call(name, "skyhop_store_mount_plan", ctx=ctx, bucket=bucket,
                       mount_path="/data", cached=False)  # fmt: skip
    assert (plan.host_path is None) != (plan.command is None), plan
    for _ in range(2):
        await stores.call(name, "skyhop_store_delete", ctx=ctx, bucket=bucket)
    assert bucket.name not in await stores.call(name, "skyhop_store_list", ctx=ctx)
    if exists:
        assert not await stores.call(name, "skyhop_store_exists", ctx=ctx, bucket=bucket)
    return bucket


async def check_mount_host_path(
    backends: Any, bctx: Any, handle: Any, runners: list[Any], host_dir: Path
) -> None:
    """``skyhop_mount_host_path`` binds ``host_dir`` at ``~/bound`` on every node: what a
    node writes there appears in ``host_dir``, and what is there shows on the node."""
    (host_dir / "from-host.txt").write_text("host\n")
    await backends.call(handle.backend, "skyhop_mount_host_path", ctx=bctx, handle=handle,
                        host_path=str(host_dir), mount_path="~/bound")  # fmt: skip
    for runner in runners:
        rank = runner.node.rank
        done = await runner.run(["bash", "-c", f"cat ~/bound/from-host.txt && "
                                               f"echo {rank} > ~/bound/node-{rank}.txt"])
        assert done.returncode == 0 and done.stdout == b"host\n", done
        assert (host_dir / f"node-{rank}.txt").read_text() == f"{rank}\n"
    assert sorted(os.listdir(host_dir))[0] == "from-host.txt"
