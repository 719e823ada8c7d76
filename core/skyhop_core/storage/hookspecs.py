"""The store plugin contract: buckets a task mounts or copies (``file_mounts`` storage).

A store is provided by a plugin registered under the entry point group
``skyhop.plugins``, like a backend (a backend's plugin may provide a store too:
``local`` -> ``local``, ``aws`` -> ``s3``). It implements ``skyhop_store_info`` and the
bucket hooks below; the core calls each hook only on the plugin whose
``skyhop_store_info`` names the store involved.

How hooks are called:

1. Hooks marked *async* return an awaitable; the core awaits it in the request's cancel
   scope. Blocking SDKs (boto3) run in ``trio.to_thread.run_sync``.
2. Hooks are idempotent: creating a bucket that exists succeeds and keeps its content;
   deleting one that is gone succeeds.
3. The core records which user owns which bucket; a store never decides visibility.
4. Errors are typed: :class:`~skyhop_core.exceptions.CredentialsError`,
   :class:`~skyhop_core.exceptions.NotSupportedError`,
   :class:`~skyhop_core.exceptions.StorageError`.
5. ``ctx`` is a :class:`~skyhop_core.context.BackendContext` whose ``state_dir`` belongs
   to the store (``<persistent path>/stores/<name>``).

The reference page for plugin authors is ``docs/plugin_hooks.md``.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TYPE_CHECKING

from skyhop_core.hookspecs import hookspec

if TYPE_CHECKING:
    from skyhop_core.context import BackendContext
    from skyhop_core.storage.records import Bucket, MountPlan, StoreInfo


@hookspec
def skyhop_store_info() -> StoreInfo:
    """Declare the store this plugin provides: its name and the URI schemes it serves.

    Called on every plugin when the plugin manager is built; must be cheap and must not
    import the store's SDK.

    .. versionadded:: 0.2
    """


@hookspec
def skyhop_store_create(ctx: BackendContext, bucket: Bucket) -> Awaitable[None]:
    """*Async.* Create ``bucket`` if it does not exist (an existing one is kept as is).

    Fires at launch for every storage mount, before the bucket is filled or mounted.

    .. versionadded:: 0.2
    """


@hookspec
def skyhop_store_upload(ctx: BackendContext, bucket: Bucket, source: str) -> Awaitable[None]:
    """*Async.* Copy the local directory (or file) ``source`` into ``bucket``.

    Fires at launch for a storage mount whose ``source`` is a local path (the client's
    upload, materialised on the server). Existing objects of the same name are replaced.

    .. versionadded:: 0.2
    """


@hookspec
def skyhop_store_download(ctx: BackendContext, bucket: Bucket, dest: str) -> Awaitable[None]:
    """*Async.* Copy the contents of ``bucket`` (under its prefix) into the local
    directory ``dest``, which exists and is empty. Where the prefix names one object
    (``s3://bucket/ckpt.pt``) rather than a directory, replace ``dest`` by that file.

    Fires at launch for a COPY mount: the core then sends ``dest`` (its contents, or the
    one file) to every node.

    .. versionadded:: 0.2
    """


@hookspec
def skyhop_store_delete(ctx: BackendContext, bucket: Bucket) -> Awaitable[None]:
    """*Async.* Delete ``bucket`` and everything in it.

    Fires on ``skyhop storage delete`` and when the cluster of a ``persistent: false``
    bucket is torn down.

    .. versionadded:: 0.2
    """


@hookspec
def skyhop_store_list(ctx: BackendContext) -> Awaitable[list[str]]:
    """*Async.* The names of the buckets the store holds (that these credentials see).

    Fires on ``skyhop storage ls`` to mark recorded buckets that no longer exist.

    .. versionadded:: 0.2
    """


@hookspec
def skyhop_store_exists(ctx: BackendContext, bucket: Bucket) -> Awaitable[bool]:
    """*Async.* Whether the store has a bucket named ``bucket.name`` (one these
    credentials may not read still exists; its prefix is not checked).

    Fires before anything is provisioned for a storage mount whose ``source`` is a bucket
    URI (a bucket skyhop does not create), and again when it is mounted or copied: a
    bucket that is not there is refused with the file mount's path instead of mounting an
    empty directory. Optional: without it, a missing bucket shows when it is used.

    .. versionadded:: 0.2
    """


@hookspec
def skyhop_store_mount_plan(
    ctx: BackendContext, bucket: Bucket, mount_path: str, cached: bool
) -> MountPlan:
    """How a node mounts ``bucket`` at ``mount_path`` (MOUNT, or MOUNT_CACHED when
    ``cached``): a host directory the backend binds in, or a command for the node.

    Fires at launch for every MOUNT/MOUNT_CACHED storage mount.

    .. versionadded:: 0.2
    """
