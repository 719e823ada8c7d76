"""The ``s3`` store on moto's S3 server: the store conformance check, and storage mounts
of a local cluster through a real API server whose AWS environment points at moto: COPY,
and MOUNT / MOUNT_CACHED through a real ``rclone mount`` in sandboxed nodes."""

from __future__ import annotations

import io
import os
import shutil
import textwrap
from pathlib import Path
from typing import Any

import pytest
import trio

import skyhop as sky
from skyhop import exceptions
from skyhop_core.context import BackendContext
from skyhop_core.plugins import load_backends
from skyhop_core.storage.stores import Stores
from skyhop_core.testing.stores import check_store


def s3(aws_env: str) -> Any:
    import boto3

    return boto3.session.Session().client("s3", region_name="us-east-1", endpoint_url=aws_env)


def test_s3_store_conformance(aws_env: str, tmp_path: Path) -> None:
    stores = Stores(load_backends().pm)
    ctx = BackendContext(state_dir=str(tmp_path / "s3"), persistent_path=str(tmp_path))
    assert stores.implements("s3", "skyhop_store_exists")  # optional: ours have it
    bucket = trio.run(check_store, stores, "s3", ctx, tmp_path)
    names = [b["Name"] for b in s3(aws_env).list_buckets()["Buckets"]]
    assert bucket.name not in names


@pytest.fixture
def aws_server(aws_env: str, make_server: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    srv = make_server(env={k: os.environ[k] for k in (
        "AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION",
        "AWS_SHARED_CREDENTIALS_FILE")})  # fmt: skip
    for key in ("SKYHOP_PERSISTENT_PATH", "SKYHOP_API_SERVER_ENDPOINT", "SKYHOP_CONFIG"):
        monkeypatch.setenv(key, srv.env[key])
    return srv


def output(task: sky.Task, cluster: str) -> str:
    job_id, _ = sky.stream_and_get(sky.launch(task, cluster_name=cluster),
                                   output_stream=io.StringIO())  # fmt: skip
    logs = io.StringIO()
    assert sky.tail_logs(cluster, job_id, follow=True, output_stream=logs) == 0, logs.getvalue()
    return logs.getvalue()


def test_copy_from_s3_onto_local_nodes_and_temporary_buckets(aws_server, aws_env, tmp_path,
                                                             monkeypatch) -> None:  # fmt: skip
    client = s3(aws_env)
    client.create_bucket(Bucket="public-data")
    client.put_object(Bucket="public-data", Key="shard/0.txt", Body=b"shard zero\n")
    (tmp_path / "ckpt").mkdir()
    (tmp_path / "ckpt" / "w.bin").write_text("weights\n")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "task.yaml").write_text(textwrap.dedent("""\
        resources: {infra: local}
        file_mounts:
          /shard: s3://public-data/shard
          /one.txt: s3://public-data/shard/0.txt
          /ckpt:
            name: sh-ckpt-test
            source: ./ckpt
            store: s3
            mode: COPY
            persistent: false
        run: cat /shard/0.txt /ckpt/w.bin && test -f /one.txt && cat /one.txt
    """))
    text = output(sky.Task.from_yaml("task.yaml"), "s3c")
    assert text.count("shard zero") == 2 and "weights" in text
    assert client.get_object(Bucket="sh-ckpt-test", Key="w.bin")["Body"].read() == b"weights\n"
    assert [r["name"] for r in sky.get(sky.storage_ls())] == ["sh-ckpt-test"]  # not borrowed
    sky.get(sky.down("s3c"))
    names = [b["Name"] for b in client.list_buckets()["Buckets"]]
    assert "sh-ckpt-test" not in names and "public-data" in names
    assert sky.get(sky.storage_ls()) == []


def test_a_missing_s3_bucket_is_refused_before_the_cluster_is_made(aws_server) -> None:
    """HeadBucket says 404: the launch fails naming the mount; no cluster, no bucket."""
    task = sky.Task(run="ls /data", resources=sky.Resources(infra="local"))
    task.set_storage_mounts({"/data": sky.Storage(source="s3://sh-no-such-bucket/sub")})
    with pytest.raises(exceptions.StorageError) as caught:
        sky.stream_and_get(sky.launch(task, cluster_name="s3m"), output_stream=io.StringIO())
    message = str(caught.value)
    assert "file_mounts['/data']" in message and "Amazon S3 bucket 'sh-no-such-bucket'" in message
    assert sky.get(sky.status(["s3m"])) == []


def test_a_mount_on_a_node_without_rclone_or_fuse_says_so(tmp_path: Path) -> None:
    """The mount plan's command names what the node lacks (run here with a PATH that has
    no rclone, then with rclone but no fusermount)."""
    import subprocess

    from skyhop_aws.s3store import skyhop_store_mount_plan
    from skyhop_core.storage.records import Bucket

    ctx = BackendContext(state_dir=str(tmp_path), persistent_path=str(tmp_path))
    plan = skyhop_store_mount_plan(ctx=ctx, bucket=Bucket("s3", "b", "p"), mount_path="~/m",
                                   cached=True)  # fmt: skip
    assert plan.command and ":b/p" in plan.command and "--vfs-cache-mode" in plan.command
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("bash", "mkdir"):
        (bin_dir / tool).symlink_to(shutil.which(tool))  # type: ignore[arg-type]
    env = {"PATH": str(bin_dir), "HOME": str(tmp_path)}
    done = subprocess.run(["bash", "-c", plan.command], env=env, capture_output=True, text=True)
    assert done.returncode == 1 and "needs rclone on the node" in done.stderr
    (bin_dir / "rclone").write_text("#!/bin/sh\nexit 0\n")
    (bin_dir / "rclone").chmod(0o755)
    done = subprocess.run(["bash", "-c", plan.command], env=env, capture_output=True, text=True)
    assert done.returncode == 1 and "needs FUSE" in done.stderr
    assert not (tmp_path / "m").exists()  # nothing made before the checks pass


#: A secret only the server has: a job must never find it (moto takes any key).
SECRET = "skyhop-test-secret-3f9a7c"


@pytest.fixture(scope="module")
def moto_tls(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """moto's S3 server behind TLS with a certificate of its own (made by openssl for
    127.0.0.1): ``(endpoint, CA bundle)``. Killed by PID at the end of the module."""
    import signal
    import ssl
    import subprocess
    import sys
    import time

    import httpx
    from serverproc import free_port

    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make the TLS endpoint's certificate")
    where = tmp_path_factory.mktemp("moto-tls")
    cert, key = where / "cert.pem", where / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    port = free_port()
    with open(where / "moto.log", "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p",
                                 str(port), "-c", str(cert), "-k", str(key)],
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    endpoint = f"https://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, "moto_server (TLS) exited"
            try:
                httpx.get(endpoint + "/moto-api/", timeout=1,
                          verify=ssl.create_default_context(cafile=str(cert)))
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline, "moto_server (TLS) did not start"
                time.sleep(0.1)
        yield endpoint, str(cert)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)


@pytest.fixture
def mount_server(aws_env: str, moto_tls: Any, make_server: Any,
                 monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Any:  # fmt: skip
    """A server whose jobs run as ``nobody`` in sandboxed local nodes, with AWS
    credentials of its own (SECRET) for moto behind TLS (its CA bundle in
    AWS_CA_BUNDLE, as the server's boto3 reads it; rclone must get it as --ca-cert)."""
    if shutil.which("rclone") is None or not os.path.exists("/dev/fuse"):
        pytest.skip("rclone and FUSE (/dev/fuse) are needed for MOUNT")
    endpoint, bundle = moto_tls
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    monkeypatch.setenv("AWS_CA_BUNDLE", bundle)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    root = tmp_path / "mounts"
    root.mkdir()
    (root / "config.yaml").write_text("backends:\n  local:\n    run_as: nobody\n")
    srv = make_server(root, env={k: os.environ[k] for k in (
        "AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION",
        "AWS_SHARED_CREDENTIALS_FILE", "AWS_CA_BUNDLE")})  # fmt: skip
    for key in ("SKYHOP_PERSISTENT_PATH", "SKYHOP_API_SERVER_ENDPOINT", "SKYHOP_CONFIG"):
        monkeypatch.setenv(key, srv.env[key])
    return srv


def wait_for_key(client: Any, bucket: str, key: str, timeout: float = 20) -> bytes:
    import time

    from botocore.exceptions import ClientError

    deadline = time.monotonic() + timeout
    while True:
        try:
            return bytes(client.get_object(Bucket=bucket, Key=key)["Body"].read())
        except ClientError:
            assert time.monotonic() < deadline, f"s3://{bucket}/{key} never appeared"
            time.sleep(0.2)


def rclone_processes(root: Path) -> list[int]:
    from serverproc import processes_under

    return [pid for pid in processes_under(root)
            if b"rclone" in Path(f"/proc/{pid}/cmdline").read_bytes()]  # fmt: skip


def test_mount_and_mount_cached_through_rclone_and_again_after_start(
    mount_server: Any, moto_tls: Any
) -> None:
    """Over a TLS endpoint: a job reads a MOUNTed bucket and writes to it (the file lands
    in S3); MOUNT_CACHED likewise; the job's user (nobody) finds the server's
    credentials nowhere; after stop/start the COPY is still there and both mounts are
    live again; a second launch keeps a live mount; down deletes the `persistent:
    false` bucket and leaves no rclone behind."""
    client = s3(moto_tls[0])
    client.create_bucket(Bucket="mnt-data")
    client.put_object(Bucket="mnt-data", Key="in.txt", Body=b"from the bucket\n")
    task = sky.Task.from_yaml_str(textwrap.dedent(f"""\
        resources: {{infra: local}}
        file_mounts:
          /data: {{source: s3://mnt-data, mode: MOUNT}}
          ~/cached: {{name: sh-cached, store: s3, mode: MOUNT_CACHED, persistent: false}}
          /copied: s3://mnt-data
        run: |
          whoami
          cat /data/in.txt /copied/in.txt
          echo written by the job > /data/out.txt
          echo cached write > ~/cached/c.txt
          found=$(cat /proc/[0-9]*/environ 2>/dev/null | tr '\\0' '\\n' | grep -c {SECRET})
          echo "secret visible in $found process environments"
          grep -rls {SECRET} ~ /tmp /var/tmp /data 2>/dev/null | sed 's/^/secret in /'
          head -c 8000000 /dev/zero > ~/cached/big.bin
    """))
    text = output(task, "s3m")
    assert "nobody" in text and text.count("from the bucket") == 2, text
    assert "secret visible in 0 process environments" in text and "secret in" not in text, text
    assert wait_for_key(client, "mnt-data", "out.txt") == b"written by the job\n"

    # Stopping right away: the stop waits until MOUNT_CACHED wrote back its cache.
    sky.get(sky.stop("s3m"))
    assert client.get_object(Bucket="sh-cached", Key="c.txt")["Body"].read() == b"cached write\n"
    assert client.head_object(Bucket="sh-cached", Key="big.bin")["ContentLength"] == 8000000
    assert rclone_processes(mount_server.root) == []  # stopping ended the mounts
    sky.get(sky.start("s3m"))
    again = sky.Task(run="cat /data/out.txt ~/cached/c.txt /copied/in.txt && "
                         "echo after start > /data/again.txt")  # fmt: skip
    job_id, _ = sky.get(sky.exec(again, cluster_name="s3m"))
    logs = io.StringIO()
    assert sky.tail_logs("s3m", job_id, follow=True, output_stream=logs) == 0, logs.getvalue()
    for line in ("written by the job", "cached write", "from the bucket"):
        assert line in logs.getvalue(), logs.getvalue()
    assert wait_for_key(client, "mnt-data", "again.txt") == b"after start\n"
    # Launching again with the same mounts keeps them (no second rclone per mount).
    mounts_before = sorted(rclone_processes(mount_server.root))
    relaunch = sky.Task(run="cat /data/again.txt").set_storage_mounts(
        {"/data": sky.Storage(source="s3://mnt-data", mode=sky.StorageMode.MOUNT)})
    assert "after start" in output(relaunch, "s3m")
    assert sorted(rclone_processes(mount_server.root)) == mounts_before

    sky.get(sky.down("s3m"))
    assert rclone_processes(mount_server.root) == []
    names = [b["Name"] for b in client.list_buckets()["Buckets"]]
    assert "sh-cached" not in names and "mnt-data" in names


def test_a_mount_on_the_host_itself_is_refused(aws_env: str, make_server: Any,
                                               monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    """A local node without a sandbox is a directory on the host: an rclone mount at
    /data would cover the host's own /data, so launch refuses it, naming the path."""
    from skyhop import exceptions

    srv = make_server(env={"SKYHOP_LOCAL_SANDBOX": "off", **{k: os.environ[k] for k in (
        "AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION",
        "AWS_SHARED_CREDENTIALS_FILE")}})  # fmt: skip
    for key in ("SKYHOP_PERSISTENT_PATH", "SKYHOP_API_SERVER_ENDPOINT", "SKYHOP_CONFIG"):
        monkeypatch.setenv(key, srv.env[key])
    s3(aws_env).create_bucket(Bucket="host-guard")
    task = sky.Task(run="true", resources=sky.Resources(infra="local")).set_storage_mounts(
        {"/data": sky.Storage(source="s3://host-guard", mode=sky.StorageMode.MOUNT)})
    with pytest.raises(exceptions.NotSupportedError, match="the host's own /data"):
        sky.stream_and_get(sky.launch(task, cluster_name="s3h"), output_stream=io.StringIO())
    sky.get(sky.down("s3h"))
    assert not os.path.ismount("/data")
