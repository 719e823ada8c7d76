"""The ``s3`` store: buckets in Amazon S3 (or anything that speaks its API), via boto3.

boto3 comes with the ``aws`` extra and is imported only inside these hooks. The client
honours the standard AWS environment (``AWS_ENDPOINT_URL`` points it at an S3-compatible
server, such as moto's in the tests) and the store's config section
(``stores: {s3: {region: ..., endpoint_url: ...}}``). COPY goes through the API server
(download, then sent to the nodes); MOUNT/MOUNT_CACHED run ``rclone mount`` on each node,
which needs rclone and FUSE there and says so when either is missing.
"""

from __future__ import annotations

import os
from typing import Any

import trio

from skyhop_aws.aws import limiter
from skyhop_core.context import BackendContext
from skyhop_core.exceptions import CredentialsError, StorageError
from skyhop_core.hookspecs import hookimpl
from skyhop_core.storage import rclone
from skyhop_core.storage.records import Bucket, MountPlan, StoreInfo

NAME = "s3"
DEFAULT_REGION = "us-east-1"


def _region(ctx: BackendContext) -> str:
    return str(ctx.config.get("region") or os.environ.get("AWS_DEFAULT_REGION") or DEFAULT_REGION)


def _endpoint(ctx: BackendContext) -> str | None:
    value = ctx.config.get("endpoint_url") or os.environ.get("AWS_ENDPOINT_URL_S3") or \
        os.environ.get("AWS_ENDPOINT_URL")
    return str(value) if value else None


def _client(ctx: BackendContext) -> Any:
    try:
        import boto3
    except ImportError:
        raise StorageError("The s3 store needs boto3: pip install 'skyhop[aws]'.") from None
    return boto3.session.Session().client("s3", region_name=_region(ctx),  # type: ignore[call-overload]
                                          endpoint_url=_endpoint(ctx))  # fmt: skip


async def _call(ctx: BackendContext, fn: Any, *args: Any) -> Any:
    """Run ``fn(client, *args)`` in a worker thread; boto3 errors become StorageError."""

    def work() -> Any:
        from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

        try:
            return fn(_client(ctx), *args)
        except NoCredentialsError:
            raise CredentialsError("No AWS credentials for the s3 store (see `skyhop check`).") from None
        except ClientError as exc:
            error = exc.response.get("Error", {})
            raise StorageError(f"S3: {error.get('Code')}: {error.get('Message')}") from None
        except BotoCoreError as exc:
            raise StorageError(f"S3: {exc}") from None

    return await trio.to_thread.run_sync(work, limiter=limiter())


@hookimpl
def skyhop_store_info() -> StoreInfo:
    return StoreInfo(name=NAME, display_name="Amazon S3", schemes=("s3",))


def _create(client: Any, name: str, region: str) -> None:
    from botocore.exceptions import ClientError

    kwargs: dict[str, Any] = {"Bucket": name}
    if region != "us-east-1":
        kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
    try:
        client.create_bucket(**kwargs)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "BucketAlreadyOwnedByYou":
            raise


@hookimpl
async def skyhop_store_create(ctx: BackendContext, bucket: Bucket) -> None:
    await _call(ctx, _create, bucket.name, _region(ctx))


def _key(bucket: Bucket, relative: str) -> str:
    return f"{bucket.prefix}/{relative}" if bucket.prefix else relative


def _upload(client: Any, bucket: Bucket, source: str) -> None:
    if os.path.isfile(source):
        client.upload_file(source, bucket.name, _key(bucket, os.path.basename(source)))
        return
    for top, _dirs, files in os.walk(source):
        for name in files:
            path = os.path.join(top, name)
            relative = os.path.relpath(path, source).replace(os.sep, "/")
            client.upload_file(path, bucket.name, _key(bucket, relative))


@hookimpl
async def skyhop_store_upload(ctx: BackendContext, bucket: Bucket, source: str) -> None:
    await _call(ctx, _upload, bucket, source)


def _objects(client: Any, bucket: Bucket) -> list[str]:
    prefix = f"{bucket.prefix}/" if bucket.prefix else ""
    keys: list[str] = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket.name, Prefix=prefix):
        keys.extend(obj["Key"] for obj in page.get("Contents", []))
    return keys


def _download(client: Any, bucket: Bucket, dest: str) -> None:
    prefix = f"{bucket.prefix}/" if bucket.prefix else ""
    root = os.path.realpath(dest)
    keys = _objects(client, bucket)
    if not keys and bucket.prefix and _exists(client, bucket.name, bucket.prefix):
        os.rmdir(root)  # the URI names one object: ``dest`` becomes that file
        client.download_file(bucket.name, bucket.prefix, root)
        return
    for key in keys:
        relative = key[len(prefix):]
        path = os.path.realpath(os.path.join(root, relative))
        if not relative or key.endswith("/") or not path.startswith(root + os.sep):
            continue  # directory markers, and keys that would escape dest
        os.makedirs(os.path.dirname(path), exist_ok=True)
        client.download_file(bucket.name, key, path)


def _exists(client: Any, name: str, key: str) -> bool:
    from botocore.exceptions import ClientError

    try:
        client.head_object(Bucket=name, Key=key)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
            return False
        raise
    return True


@hookimpl
async def skyhop_store_download(ctx: BackendContext, bucket: Bucket, dest: str) -> None:
    await _call(ctx, _download, bucket, dest)


def _delete(client: Any, name: str) -> None:
    from botocore.exceptions import ClientError

    try:
        keys = _objects(client, Bucket(NAME, name))
        for start in range(0, len(keys), 1000):
            client.delete_objects(Bucket=name, Delete={
                "Objects": [{"Key": k} for k in keys[start:start + 1000]], "Quiet": True})
        client.delete_bucket(Bucket=name)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "NoSuchBucket":
            raise


@hookimpl
async def skyhop_store_delete(ctx: BackendContext, bucket: Bucket) -> None:
    await _call(ctx, _delete, bucket.name)


def _bucket_exists(client: Any, name: str) -> bool:
    from botocore.exceptions import ClientError

    try:
        client.head_bucket(Bucket=name)
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code"))
        if code in ("404", "NoSuchBucket", "NotFound"):
            return False
        if code in ("403", "AccessDenied"):
            return True  # S3 answers 403 only for a bucket that exists
        raise
    return True


@hookimpl
async def skyhop_store_exists(ctx: BackendContext, bucket: Bucket) -> bool:
    return bool(await _call(ctx, _bucket_exists, bucket.name))


@hookimpl
async def skyhop_store_list(ctx: BackendContext) -> list[str]:
    answer = await _call(ctx, lambda client: client.list_buckets())
    return sorted(b["Name"] for b in answer.get("Buckets", []))


@hookimpl
def skyhop_store_mount_plan(
    ctx: BackendContext, bucket: Bucket, mount_path: str, cached: bool
) -> MountPlan:
    remote = f"{bucket.name}/{bucket.prefix}" if bucket.prefix else bucket.name
    endpoint = _endpoint(ctx)
    # An S3-compatible server (an endpoint URL) is "Other" to rclone: its AWS provider
    # would address buckets as <bucket>.<host> (virtual-hosted style), which a server on
    # an address such as 127.0.0.1 cannot answer.
    options = f"provider={'Other' if endpoint else 'AWS'},env_auth=true,region={_region(ctx)}"
    if endpoint:
        # Quoted with ' inside the connection string: the URL holds ':' (rclone's syntax).
        options += f",endpoint='{endpoint}'"
    # rclone takes a custom CA bundle as a flag (its AWS SDK fails on AWS_CA_BUNDLE): the
    # server's (its content: the server's path need not exist here), else the node's own.
    setup = """if [ -n "${SKYHOP_S3_CA_B64:-}" ]; then
  ca="$cache_dir/ca-$(printf %s "$SKYHOP_S3_CA_B64" | cksum | cut -d' ' -f1).pem"
  printf %s "$SKYHOP_S3_CA_B64" | base64 -d > "$ca.$$" && mv "$ca.$$" "$ca"
  set -- "$@" --ca-cert "$ca"
elif [ -n "${AWS_CA_BUNDLE:-}" ]; then
  set -- "$@" --ca-cert "$AWS_CA_BUNDLE"
fi
unset AWS_CA_BUNDLE SKYHOP_S3_CA_B64"""
    script = rclone.mount_script(bucket.uri, f":s3,{options}:{remote}", mount_path, cached, setup)
    return MountPlan(command=script, server_env=_server_env(endpoint),
                     flush_command=rclone.FLUSH_SCRIPT)  # fmt: skip


def _server_env(endpoint: str | None) -> dict[str, str]:
    """What rclone on a node of the server's machine needs from the server: its AWS
    credentials as env_auth reads them, and for a TLS endpoint the content of its CA
    bundle (base64: one line), which the node writes where rclone reads it."""
    import base64

    env = _credentials_env()
    bundle = os.environ.get("AWS_CA_BUNDLE")
    if bundle and endpoint and endpoint.startswith("https:"):
        try:
            with open(bundle, "rb") as f:
                env["SKYHOP_S3_CA_B64"] = base64.b64encode(f.read()).decode()
        except OSError as exc:
            raise StorageError(f"AWS_CA_BUNDLE {bundle}: cannot read it ({exc}).") from None
    return env


def _credentials_env() -> dict[str, str]:
    """The server's AWS credentials as rclone's env_auth reads them (empty without)."""
    try:
        import boto3

        credentials = boto3.session.Session().get_credentials()
    except Exception:  # no SDK or no credentials: the node's own are used
        return {}
    if credentials is None:
        return {}
    frozen = credentials.get_frozen_credentials()
    env = {"AWS_ACCESS_KEY_ID": frozen.access_key, "AWS_SECRET_ACCESS_KEY": frozen.secret_key}
    if frozen.token:
        env["AWS_SESSION_TOKEN"] = frozen.token
    return env
