"""The ``gcs`` store against the fake Cloud Storage JSON API: the fake itself (through
google-auth's own ``AuthorizedSession``), the store conformance check, resumable uploads,
and the errors a user sees for a bucket name GCS refuses or a bucket that is missing."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import trio
from test_fakegce import session

from skyhop_core.context import BackendContext
from skyhop_core.exceptions import StorageError
from skyhop_core.plugins import load_backends
from skyhop_core.storage.records import Bucket
from skyhop_core.storage.stores import Stores
from skyhop_core.testing.stores import check_store


def test_the_fake_speaks_the_storage_json_api(gcp_env: Any) -> None:
    fake = gcp_env
    s = session(fake.credentials)  # one token for the whole test

    def api(fake: Any, verb: str, path: str, expect: int = 200, **kw: Any) -> Any:
        response = s.request(verb, f"{fake.base}/storage/v1/{path}", **kw)
        assert response.status_code == expect, (verb, path, response.status_code, response.text)
        return response.json() if response.content else None

    project = {"project": fake.project}
    api(fake, "POST", "b", params=project, json={"name": "fk-data", "location": "us"})
    assert api(fake, "POST", "b", 409, params=project, json={"name": "fk-data"})
    err = api(fake, "POST", "b", 400, params=project, json={"name": "fk", "colour": "red"})
    assert err["error"]["message"] == ('Invalid JSON payload received. Unknown name "colour" '
                                       "at 'resource': Cannot find field.")  # fmt: skip
    assert api(fake, "GET", "b", 400, params={**project, "flavour": "x"})  # unknown parameter
    for bad in ("Upper", "a", "goog-x", "-dash", "192.168.1.1", "x" * 64):
        err = api(fake, "POST", "b", 400, params=project, json={"name": bad})
        assert err["error"]["message"] == f"Invalid bucket name: '{bad}'"
    fake.control("gcs/put", {"bucket": "fk-data", "objects": {
        "a/1.txt": "one", "a/2.txt": "two", "a/sub/3.txt": "three", "b.txt": "bee"}})  # fmt: skip
    page = api(fake, "GET", "b/fk-data/o", params={"prefix": "a/", "delimiter": "/"})
    assert [o["name"] for o in page["items"]] == ["a/1.txt", "a/2.txt"]
    assert page["prefixes"] == ["a/sub/"]
    names, params = [], {"maxResults": "3"}
    while True:
        page = api(fake, "GET", "b/fk-data/o", params=params)
        names += [o["name"] for o in page["items"]]
        if "nextPageToken" not in page:
            break
        params["pageToken"] = page["nextPageToken"]
    assert names == ["a/1.txt", "a/2.txt", "a/sub/3.txt", "b.txt"]
    meta = api(fake, "GET", "b/fk-data/o/a%2Fsub%2F3.txt")
    assert meta["size"] == "5"
    assert s.get(meta["mediaLink"]).content == b"three"
    ranged = s.get(meta["mediaLink"], headers={"Range": "bytes=1-2"})
    assert ranged.status_code == 206 and ranged.content == b"hr"
    assert api(fake, "DELETE", "b/fk-data", 409)["error"]["message"].endswith("not empty.")
    assert api(fake, "GET", "b/nope/o", 404)["error"]["message"] == (
        "The specified bucket does not exist.")  # fmt: skip
    # Google's token endpoint rules hold here too: no token, no data.
    import httpx

    assert httpx.get(f"{fake.base}/storage/v1/b/fk-data/o").status_code == 401


def store_ctx(tmp_path: Path, **config: Any) -> BackendContext:
    return BackendContext(state_dir=str(tmp_path / "gcs"), persistent_path=str(tmp_path),
                          config=config)  # fmt: skip


def test_gcs_store_conformance_and_resumable_uploads(gcp_env: Any, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    from skyhop_gcp import gcsapi

    stores = Stores(load_backends().pm)
    ctx = store_ctx(tmp_path)
    assert stores.implements("gcs", "skyhop_store_exists")  # optional: ours have it
    bucket = trio.run(check_store, stores, "gcs", ctx, tmp_path)
    state = gcp_env.control("gcs/state")
    assert bucket.name not in state["buckets"] and "multipart" in state["uploads"]
    # A file at the threshold goes up as a resumable session, in chunks.
    monkeypatch.setattr(gcsapi, "RESUMABLE_THRESHOLD", 256 * 1024)
    monkeypatch.setattr(gcsapi, "CHUNK", 256 * 1024)
    big = tmp_path / "big" / "weights.bin"
    big.parent.mkdir()
    big.write_bytes(os.urandom(600 * 1024))
    target = Bucket("gcs", "fk-big", "ckpt")

    async def roundtrip() -> None:
        await stores.call("gcs", "skyhop_store_create", ctx=ctx, bucket=target)
        await stores.call("gcs", "skyhop_store_upload", ctx=ctx, bucket=target,
                          source=str(big.parent))  # fmt: skip
        (tmp_path / "back").mkdir()
        await stores.call("gcs", "skyhop_store_download", ctx=ctx, bucket=target,
                          dest=str(tmp_path / "back"))  # fmt: skip

    trio.run(roundtrip)
    assert (tmp_path / "back" / "weights.bin").read_bytes() == big.read_bytes()
    state = gcp_env.control("gcs/state")
    assert "ckpt/weights.bin" in state["buckets"]["fk-big"] and state["uploads"][-1] == "resumable"
    # An object whose name climbs out of the destination is not written there.
    gcp_env.control("gcs/put", {"bucket": "fk-big", "objects": {"ckpt/../../escape.txt": "x"}})
    (tmp_path / "again").mkdir()
    trio.run(lambda: stores.call("gcs", "skyhop_store_download", ctx=ctx, bucket=target,
                                 dest=str(tmp_path / "again")))  # fmt: skip
    assert sorted(os.listdir(tmp_path / "again")) == ["weights.bin"]
    assert not (tmp_path / "escape.txt").exists()


def test_a_refused_bucket_name_and_a_missing_bucket_say_what_to_do(gcp_env: Any,
                                                                  tmp_path: Path) -> None:  # fmt: skip
    stores = Stores(load_backends().pm)
    ctx = store_ctx(tmp_path)
    with pytest.raises(StorageError) as refused:
        trio.run(lambda: stores.call("gcs", "skyhop_store_create", ctx=ctx,
                                     bucket=Bucket("gcs", "My_Data")))  # fmt: skip
    assert "GCS refused the bucket name 'My_Data'" in str(refused.value)
    assert "lowercase letters" in str(refused.value) and "`name:`" in str(refused.value)
    (tmp_path / "d").mkdir()
    with pytest.raises(StorageError) as missing:
        trio.run(lambda: stores.call("gcs", "skyhop_store_download", ctx=ctx,
                                     bucket=Bucket("gcs", "no-such-data", "x"),
                                     dest=str(tmp_path / "d")))  # fmt: skip
    assert str(missing.value).startswith(
        "The GCS bucket 'no-such-data' does not exist (gs://no-such-data/x)")
    # Deleting a bucket that is gone is fine (idempotent), listing still works.
    trio.run(lambda: stores.call("gcs", "skyhop_store_delete", ctx=ctx,
                                 bucket=Bucket("gcs", "no-such-data")))  # fmt: skip
    assert trio.run(lambda: stores.call("gcs", "skyhop_store_list", ctx=ctx)) == []


def test_the_mount_command_uses_rclone_gcs_with_the_endpoint(gcp_env: Any, tmp_path: Path) -> None:
    from skyhop_gcp.gcsstore import skyhop_store_mount_plan

    plan = skyhop_store_mount_plan(ctx=store_ctx(tmp_path), bucket=Bucket("gcs", "b", "p"),
                                   mount_path="~/m", cached=True)  # fmt: skip
    assert plan.command is not None
    assert f':gcs,bucket_policy_only=true,endpoint="{gcp_env.base}/storage/v1/":b/p' in plan.command
    assert "--vfs-cache-mode full" in plan.command
    key = plan.server_env["RCLONE_GCS_SERVICE_ACCOUNT_CREDENTIALS"]
    assert "\n" not in key and '"type":"service_account"' in key
    # On a node without rclone it says so, and makes nothing.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("bash", "mkdir"):
        (bin_dir / tool).symlink_to(subprocess.check_output(["which", tool], text=True).strip())
    done = subprocess.run(["bash", "-c", plan.command], capture_output=True, text=True,
                          env={"PATH": str(bin_dir), "HOME": str(tmp_path)})  # fmt: skip
    assert done.returncode == 1 and "MOUNT of gs://b/p needs rclone" in done.stderr
    assert not (tmp_path / "m").exists()
