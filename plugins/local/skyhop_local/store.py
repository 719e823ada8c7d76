"""The ``local`` store: a bucket is a directory on the API server's machine.

Buckets live in ``<persistent path>/stores/local/<name>/``. COPY sends a bucket's files
to the nodes like any file mount; MOUNT binds the bucket directory into each node of a
``local`` cluster (:func:`bind_into_nodes`), so what a job writes there lands in the
bucket. ``local://<name>`` names a bucket as a URI. The store is registered through the
``local`` backend's plugin module.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import trio

from skyhop_core.context import BackendContext
from skyhop_core.exceptions import StorageError
from skyhop_core.hookspecs import hookimpl
from skyhop_core.storage.records import Bucket, MountPlan, StoreInfo

NAME = "local"
_BUCKET_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,254}$")


def bucket_dir(ctx: BackendContext, bucket: Bucket) -> str:
    if not _BUCKET_NAME.match(bucket.name) or bucket.name in (".", ".."):
        raise StorageError(
            f"{bucket.name!r} is not a valid local bucket name: use letters, digits, '.', "
            "'_' and '-', starting with a letter or digit."
        )
    path = os.path.join(ctx.state_dir, bucket.name)
    if not bucket.prefix:
        return path
    inside = os.path.normpath(os.path.join(path, bucket.prefix))
    if not inside.startswith(path + os.sep):  # local://mine/../someone-elses
        raise StorageError(f"{bucket.uri}: the path inside the bucket leaves the bucket.")
    return inside


@hookimpl
def skyhop_store_info() -> StoreInfo:
    return StoreInfo(name=NAME, display_name="local", schemes=("local",))


@hookimpl
async def skyhop_store_create(ctx: BackendContext, bucket: Bucket) -> None:
    path = bucket_dir(ctx, bucket)
    await trio.to_thread.run_sync(lambda: os.makedirs(path, mode=0o755, exist_ok=True))


def _copy_into(source: str, dest: str) -> None:
    os.makedirs(dest, exist_ok=True)
    if os.path.isdir(source):
        shutil.copytree(source, dest, symlinks=True, dirs_exist_ok=True)
    else:
        shutil.copy2(source, os.path.join(dest, os.path.basename(source)))


@hookimpl
async def skyhop_store_upload(ctx: BackendContext, bucket: Bucket, source: str) -> None:
    path = bucket_dir(ctx, bucket)
    await trio.to_thread.run_sync(_copy_into, source, path)


@hookimpl
async def skyhop_store_download(ctx: BackendContext, bucket: Bucket, dest: str) -> None:
    path = bucket_dir(ctx, bucket)
    if os.path.isfile(path) and not os.path.islink(path):  # a URI naming one file
        await trio.to_thread.run_sync(_replace_with_file, path, dest)
        return
    if not os.path.isdir(path):
        raise StorageError(f"The local bucket {bucket.uri} does not exist.")
    await trio.to_thread.run_sync(_copy_into, path, dest)


def _replace_with_file(source: str, dest: str) -> None:
    os.rmdir(dest)  # empty: the hook's contract
    shutil.copy2(source, dest)


@hookimpl
async def skyhop_store_delete(ctx: BackendContext, bucket: Bucket) -> None:
    path = bucket_dir(ctx, Bucket(bucket.store, bucket.name))
    await trio.to_thread.run_sync(lambda: shutil.rmtree(path, ignore_errors=True))


@hookimpl
async def skyhop_store_exists(ctx: BackendContext, bucket: Bucket) -> bool:
    path = bucket_dir(ctx, Bucket(bucket.store, bucket.name))
    return await trio.to_thread.run_sync(os.path.isdir, path)


@hookimpl
async def skyhop_store_list(ctx: BackendContext) -> list[str]:
    root = ctx.state_dir
    return sorted(os.listdir(root)) if os.path.isdir(root) else []


@hookimpl
def skyhop_store_mount_plan(
    ctx: BackendContext, bucket: Bucket, mount_path: str, cached: bool
) -> MountPlan:
    # A directory on this machine is already "cached": MOUNT_CACHED is the same bind.
    return MountPlan(host_path=bucket_dir(ctx, bucket))


def bind_into_node(holder_pid: int | None, root: str, host_path: str, target: str) -> None:
    """Bind ``host_path`` at the node path ``target`` (blocking).

    A sandboxed node (``holder_pid`` set): in the node's mount namespace, whose top level
    still sees the host's directories, the bind goes onto ``root + target``. A plain node
    directory: a symlink, which writes go through just the same.
    """
    if holder_pid is None:
        if os.path.islink(target) and os.readlink(target) == host_path:
            return
        if os.path.exists(target) and (not os.path.isdir(target) or os.listdir(target)):
            raise StorageError(f"Cannot mount a bucket at {target}: it exists and is not empty.")
        if os.path.isdir(target):
            os.rmdir(target)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        os.symlink(host_path, target)
        return
    script = (
        'mkdir -p "$2" || exit 1\n'
        'if mountpoint -q "$2"; then exit 0; fi\n'
        'if [ -n "$(ls -A "$2")" ]; then echo "$3 on the node is not empty, and the bucket '
        'would hide its files; mount at another path, or remove them first" >&2; exit 1; fi\n'
        'mount --bind "$1" "$2"'
    )
    done = subprocess.run(
        ["nsenter", f"--target={holder_pid}", "--mount", "--", "sh", "-c", script, "sh",
         host_path, root.rstrip("/") + target, target],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    if done.returncode != 0:
        raise StorageError(
            f"Binding the bucket into the node at {target} failed: "
            f"{(done.stderr or done.stdout).strip() or done.returncode}"
        )
