"""``gs://`` storage mounts of a ``local`` cluster through a real API server whose Google
environment points at the fake: COPY, MOUNT and MOUNT_CACHED through rclone's ``gcs``
backend (Google's own Go client talking to the fake), a ``persistent: false`` bucket that
``down`` deletes, ``storage ls`` / ``storage delete``, and the errors a launch gives for
a bucket name GCS refuses and for a bucket that does not exist."""

from __future__ import annotations

import io
import shutil
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

import skyhop as sky
from skyhop_core.exceptions import StorageError

ENV_KEYS = ("GOOGLE_APPLICATION_CREDENTIALS", "SKYHOP_GCP_STORAGE_ENDPOINT",
            "SKYHOP_GCP_COMPUTE_ENDPOINT", "CLOUDSDK_CONFIG")  # fmt: skip


@pytest.fixture
def gcs_server(gcp_env: Any, make_server: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    import os

    srv = make_server(env={k: os.environ[k] for k in ENV_KEYS})
    for key in ("SKYHOP_PERSISTENT_PATH", "SKYHOP_API_SERVER_ENDPOINT", "SKYHOP_CONFIG"):
        monkeypatch.setenv(key, srv.env[key])
    return srv


def launch(task: sky.Task, cluster: str) -> str:
    job_id, _ = sky.stream_and_get(sky.launch(task, cluster_name=cluster),
                                   output_stream=io.StringIO())  # fmt: skip
    logs = io.StringIO()
    assert sky.tail_logs(cluster, job_id, follow=True, output_stream=logs) == 0, logs.getvalue()
    return logs.getvalue()


def fuse_missing() -> str | None:
    """Why MOUNT cannot be tested here (the test then checks COPY only), or None."""
    if shutil.which("rclone") is None:
        return "rclone is not installed"
    if not Path("/dev/fuse").exists() or shutil.which("fusermount3") is None:
        return "FUSE (/dev/fuse, fusermount3) is not available"
    return None


def test_gs_buckets_on_local_nodes(gcs_server: Any, gcp_env: Any, tmp_path: Path,
                                   monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    fake = gcp_env
    fake.control("gcs/put", {"bucket": "fk-public", "objects": {
        "shard/0.txt": "shard zero\n", "shard/deep/1.txt": "shard one\n", "other.txt": "no"}})
    (tmp_path / "ckpt").mkdir()
    (tmp_path / "ckpt" / "w.bin").write_text("weights\n")
    monkeypatch.chdir(tmp_path)
    mounts = fuse_missing() is None
    mount_yaml = textwrap.indent(textwrap.dedent("""\
        ~/ro: {source: gs://fk-public/shard, mode: MOUNT_CACHED}
        ~/out: {name: fk-out, store: gcs, mode: MOUNT, persistent: false}
    """), "  ") if mounts else ""
    mount_run = "cat ~/ro/deep/1.txt; echo written > ~/out/w.txt; " if mounts else ""
    (tmp_path / "task.yaml").write_text(
        "resources: {infra: local}\nfile_mounts:\n"
        "  /shard: gs://fk-public/shard\n"
        "  ~/ckpt: {name: fk-ckpt, source: ./ckpt, store: gcs, mode: COPY, persistent: false}\n"
        "  ~/keep: {name: fk-keep, source: ./ckpt, store: gcs, mode: COPY}\n"
        + mount_yaml + f"run: cat /shard/0.txt /shard/deep/1.txt ~/ckpt/w.bin; {mount_run}\n"
    )
    try:
        text = launch(sky.Task.from_yaml("task.yaml"), "gm")
        assert "shard zero\nshard one\nweights\n" in text, text
        state = fake.control("gcs/state")["buckets"]
        assert state["fk-ckpt"] == {"w.bin": "weights\n"} and "fk-keep" in state
        assert sorted(r["name"] for r in sky.get(sky.storage_ls())) == (
            ["fk-ckpt", "fk-keep", "fk-out"] if mounts else ["fk-ckpt", "fk-keep"])  # fmt: skip
        if mounts:
            assert text.count("shard one\n") == 2, text  # through the mount too
        deadline = time.monotonic() + 20  # rclone writes a closed file back after ~5 s

        # A name GCS refuses, and a bucket that does not exist: precise errors.
        bad = sky.Task(run="true", resources=sky.Resources(infra="local"))
        bad.set_storage_mounts({"~/x": sky.Storage(name="Fk_Bad", stores="gcs", mode="COPY")})
        with pytest.raises(StorageError, match=r"GCS refused the bucket name 'Fk_Bad': "
                                               r"Invalid bucket name: 'Fk_Bad'\. GCS bucket "
                                               "names are 3-63 characters"):
            sky.get(sky.launch(bad, cluster_name="gm"))
        missing = sky.Task(run="true", resources=sky.Resources(infra="local"))
        missing.set_file_mounts({"/x": "gs://fk-missing/data"})
        with pytest.raises(StorageError, match=r"file_mounts\['/x'\]: source gs://fk-missing/data "
                                               r"names the Google Cloud Storage bucket 'fk-missing', "
                                               r"which does not exist"):
            sky.get(sky.launch(missing, cluster_name="gm"))
        while mounts and fake.control("gcs/state")["buckets"]["fk-out"] != {"w.txt": "written\n"}:
            assert time.monotonic() < deadline, fake.control("gcs/state")
            time.sleep(0.2)
    finally:
        sky.get(sky.down("gm"))
    state = fake.control("gcs/state")["buckets"]
    assert "fk-ckpt" not in state and "fk-out" not in state  # persistent: false
    assert "fk-keep" in state and "fk-public" in state and "Fk_Bad" not in state
    assert [r["name"] for r in sky.get(sky.storage_ls())] == ["fk-keep"]
    sky.get(sky.storage_delete("fk-keep"))
    assert "fk-keep" not in fake.control("gcs/state")["buckets"]
    assert sky.get(sky.storage_ls()) == []
