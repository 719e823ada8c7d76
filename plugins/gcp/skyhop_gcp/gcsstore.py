"""The ``gcs`` store: buckets in Google Cloud Storage (``gs://bucket/prefix``).

It comes with the GCP backend and uses its credentials (google-auth, see
:mod:`skyhop_gcp.auth`) and our own JSON API client (:mod:`skyhop_gcp.gcsapi`). The
store's config section is ``stores: {gcs: {project_id, credentials_file, location,
endpoint}}``; without it the standard Google environment is used
(``GOOGLE_APPLICATION_CREDENTIALS``, ``GOOGLE_CLOUD_PROJECT``). COPY goes through the
API server (download, then sent to the nodes); MOUNT/MOUNT_CACHED run ``rclone mount``
with rclone's ``gcs`` backend on each node, which needs rclone and FUSE there and says
so when either is missing.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import trio

from skyhop_core.context import BackendContext
from skyhop_core.exceptions import CredentialsError, StorageError
from skyhop_core.hookspecs import hookimpl
from skyhop_core.storage import rclone
from skyhop_core.storage.records import Bucket, MountPlan, StoreInfo

NAME = "gcs"
#: At most this many objects move at once in one upload or download.
PARALLEL = 8
NAME_RULES = (
    "GCS bucket names are 3-63 characters of lowercase letters, digits, '-', '_' and '.', "
    "start and end with a letter or digit, and may not start with 'goog'"
)


class GcsStore:
    """The store's hooks; credentials (which hold the access token) are kept per config,
    so a valid token is reused across hook calls."""

    def __init__(self) -> None:
        self._credentials: dict[tuple[Any, ...], tuple[Any, str]] = {}

    @asynccontextmanager
    async def gcs(self, ctx: BackendContext) -> AsyncIterator[Any]:
        try:
            from skyhop_gcp import auth
        except ImportError:
            raise StorageError("The gcs store needs google-auth: pip install 'skyhop[gcp]'.") from None
        from skyhop_gcp.gcsapi import open_gcs

        path = auth.credentials_path(ctx.config)
        key = (path, os.path.getmtime(path) if path and os.path.exists(path) else None,
               ctx.config.get("project_id"), bool(ctx.config.get("use_metadata_server")))  # fmt: skip
        if key not in self._credentials:
            self._credentials[key] = auth.load(ctx.config)
        credentials, project = self._credentials[key]
        async with open_gcs(ctx.config, credentials, project) as gcs:
            yield gcs

    @asynccontextmanager
    async def call(self, ctx: BackendContext, bucket: Bucket | None = None) -> AsyncIterator[Any]:
        """The client, with API errors turned into typed skyhop errors about ``bucket``."""
        from skyhop_gcp.compute import GcpApiError

        try:
            async with self.gcs(ctx) as gcs:
                yield gcs
        except GcpApiError as exc:
            raise _translate(exc, bucket) from exc

    @hookimpl
    def skyhop_store_info(self) -> StoreInfo:
        return StoreInfo(name=NAME, display_name="Google Cloud Storage", schemes=("gs",))

    @hookimpl
    async def skyhop_store_create(self, ctx: BackendContext, bucket: Bucket) -> None:
        location = ctx.config.get("location")
        async with self.call(ctx, bucket) as gcs:
            if await gcs.create_bucket(bucket.name, str(location) if location else None):
                ctx.log(f"Created {bucket.uri}.")

    @hookimpl
    async def skyhop_store_upload(self, ctx: BackendContext, bucket: Bucket, source: str) -> None:
        files = await trio.to_thread.run_sync(_files, source)  # a big tree takes a while
        async with self.call(ctx, bucket) as gcs:
            await _each(files, lambda item: gcs.upload_file(bucket.name, _key(bucket, item[1]),
                                                            item[0]))  # fmt: skip

    @hookimpl
    async def skyhop_store_download(self, ctx: BackendContext, bucket: Bucket, dest: str) -> None:
        prefix = f"{bucket.prefix}/" if bucket.prefix else ""
        root = os.path.realpath(dest)
        async with self.call(ctx, bucket) as gcs:
            wanted = []
            for obj in await gcs.list_objects(bucket.name, prefix):
                relative = str(obj["name"])[len(prefix):]
                path = os.path.realpath(os.path.join(root, relative))
                if not relative or relative.endswith("/") or not path.startswith(root + os.sep):
                    continue  # folder placeholders, and names that would escape dest
                wanted.append((str(obj["name"]), path))
            await trio.to_thread.run_sync(_make_parents, [path for _, path in wanted])
            await _each(wanted, lambda item: gcs.download_file(bucket.name, *item))

    @hookimpl
    async def skyhop_store_delete(self, ctx: BackendContext, bucket: Bucket) -> None:
        from skyhop_gcp.compute import GcpApiError

        async with self.call(ctx, bucket) as gcs:
            try:
                objects = await gcs.list_objects(bucket.name)
            except GcpApiError as exc:
                if exc.status == 404:
                    return  # gone already
                raise
            await _each(objects, lambda obj: gcs.delete_object(bucket.name, str(obj["name"])))
            try:
                await gcs.delete_bucket(bucket.name)
            except GcpApiError as exc:
                if exc.status != 404:
                    raise

    @hookimpl
    async def skyhop_store_exists(self, ctx: BackendContext, bucket: Bucket) -> bool:
        from skyhop_gcp.compute import GcpApiError

        async with self.call(ctx, bucket) as gcs:
            try:
                return bool(await gcs.bucket_exists(bucket.name))
            except GcpApiError as exc:
                if exc.status == 403:  # another project's bucket: there, if not ours to read
                    return True
                raise

    @hookimpl
    async def skyhop_store_list(self, ctx: BackendContext) -> list[str]:
        async with self.call(ctx) as gcs:
            return sorted(await gcs.list_buckets())

    @hookimpl
    def skyhop_store_mount_plan(
        self, ctx: BackendContext, bucket: Bucket, mount_path: str, cached: bool
    ) -> MountPlan:
        from skyhop_gcp.gcsapi import endpoint

        return mount_plan(bucket, mount_path, cached, endpoint(ctx.config),
                          _credentials_env(ctx))  # fmt: skip


def mount_plan(bucket: Bucket, mount_path: str, cached: bool, root: str,
               server_env: dict[str, str]) -> MountPlan:  # fmt: skip
    """``rclone mount`` of ``bucket`` with rclone's ``gcs`` backend at ``mount_path``."""
    from skyhop_gcp.gcsapi import DEFAULT_ENDPOINT

    remote = f"{bucket.name}/{bucket.prefix}" if bucket.prefix else bucket.name
    options = "bucket_policy_only=true"
    if root != DEFAULT_ENDPOINT:  # rclone wants the JSON API's base, not the root
        options += f',endpoint="{root}storage/v1/"'  # quoted: the URL has colons
    # Credentials: the server's key (local nodes), else the node's key file, else the VM's
    # service account (rclone's env_auth).
    setup = """if [ -z "${RCLONE_GCS_SERVICE_ACCOUNT_CREDENTIALS:-}" ] && [ -n "${GOOGLE_APPLICATION_CREDENTIALS:-}" ]; then
  export RCLONE_GCS_SERVICE_ACCOUNT_FILE="$GOOGLE_APPLICATION_CREDENTIALS"
fi
if [ -z "${RCLONE_GCS_SERVICE_ACCOUNT_CREDENTIALS:-}${RCLONE_GCS_SERVICE_ACCOUNT_FILE:-}" ]; then
  export RCLONE_GCS_ENV_AUTH=true
fi"""
    script = rclone.mount_script(bucket.uri, f":gcs,{options}:{remote}", mount_path, cached, setup)
    return MountPlan(command=script, server_env=server_env, flush_command=rclone.FLUSH_SCRIPT)


def _credentials_env(ctx: BackendContext) -> dict[str, str]:
    """The server's service-account key, as rclone reads it from its environment (one
    line of JSON); empty for other credentials (the node's own are used)."""
    import json

    try:
        from skyhop_gcp import auth

        path = auth.credentials_path(ctx.config)
        if not path:
            return {}
        with open(path) as f:
            info = json.load(f)
    except (ImportError, OSError, ValueError):
        return {}
    if not isinstance(info, dict) or info.get("type") != "service_account":
        return {}
    return {"RCLONE_GCS_SERVICE_ACCOUNT_CREDENTIALS": json.dumps(info, separators=(",", ":"))}


def _files(source: str) -> list[tuple[str, str]]:
    """(path, object name relative to ``source``) of every file to upload."""
    if os.path.isfile(source):
        return [(source, os.path.basename(source))]
    return [(os.path.join(top, name),
             os.path.relpath(os.path.join(top, name), source).replace(os.sep, "/"))
            for top, _dirs, names in os.walk(source) for name in names]  # fmt: skip


def _make_parents(paths: list[str]) -> None:
    for path in paths:
        os.makedirs(os.path.dirname(path), exist_ok=True)


def _key(bucket: Bucket, relative: str) -> str:
    return f"{bucket.prefix}/{relative}" if bucket.prefix else relative


async def _each(items: list[Any], step: Any) -> None:
    """``await step(item)`` for every item, :data:`PARALLEL` at a time; the first failure
    is raised as itself (not an ExceptionGroup) once the others have stopped."""
    limiter = trio.CapacityLimiter(PARALLEL)
    failures: list[BaseException] = []

    async def one(item: Any, cancel: trio.CancelScope) -> None:
        async with limiter:
            try:
                await step(item)
            except Exception as exc:
                failures.append(exc)
                cancel.cancel()

    async with trio.open_nursery() as nursery:
        for item in items:
            nursery.start_soon(one, item, nursery.cancel_scope)
    if failures:
        raise failures[0]


def _translate(exc: Any, bucket: Bucket | None) -> Exception:
    """A typed error, naming the bucket and saying what to do, for a GCS API error."""
    from skyhop_gcp import errors

    where = f" ({bucket.uri})" if bucket else ""
    if exc.status == 401 or exc.code in errors.CREDENTIALS_CODES:
        from skyhop_gcp.auth import CREDENTIALS_FIX

        return CredentialsError(f"GCS refused the request{where}: {exc.message}. {CREDENTIALS_FIX}")
    if bucket is not None and exc.status == 400 and "bucket name" in exc.message.lower():
        return StorageError(f"GCS refused the bucket name {bucket.name!r}: {exc.message}. "
                            f"{NAME_RULES}; choose another `name:`.")  # fmt: skip
    if bucket is not None and exc.status == 404 and "bucket" in exc.message.lower():
        return StorageError(f"The GCS bucket {bucket.name!r} does not exist{where}, or these "
                            "credentials cannot see it; create it first or fix the gs:// URI.")
    if bucket is not None and exc.status == 409:
        return StorageError(f"The GCS bucket name {bucket.name!r} is taken by another project "
                            f"(bucket names are global): {exc.message}; choose another `name:`.")
    return StorageError(f"GCS{where}: {exc}")


_DEFAULT = GcsStore()
# The GCP plugin module re-exports these: pluggy finds the store's hooks there.
skyhop_store_info = _DEFAULT.skyhop_store_info
skyhop_store_create = _DEFAULT.skyhop_store_create
skyhop_store_upload = _DEFAULT.skyhop_store_upload
skyhop_store_download = _DEFAULT.skyhop_store_download
skyhop_store_delete = _DEFAULT.skyhop_store_delete
skyhop_store_exists = _DEFAULT.skyhop_store_exists
skyhop_store_list = _DEFAULT.skyhop_store_list
skyhop_store_mount_plan = _DEFAULT.skyhop_store_mount_plan
