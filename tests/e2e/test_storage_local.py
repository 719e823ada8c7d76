"""Storage mounts end to end on the local backend and the local store, through a real
API server: COPY before setup, MOUNT where writes land in the bucket, bucket URIs,
`persistent: false` buckets going with the cluster, `storage ls` / `storage delete`."""

from __future__ import annotations

import io
import os
import textwrap
from pathlib import Path

import pytest

import skyhop as sky
from skyhop import exceptions


def bucket_dir(server, name: str) -> Path:
    return Path(server.env["SKYHOP_PERSISTENT_PATH"]) / "stores" / "local" / name


def run(task: sky.Task, cluster: str) -> str:
    job_id, _ = sky.stream_and_get(sky.launch(task, cluster_name=cluster),
                                   output_stream=io.StringIO())  # fmt: skip
    logs = io.StringIO()
    code = sky.tail_logs(cluster, job_id, follow=True, output_stream=logs)
    assert code == 0, logs.getvalue()
    return logs.getvalue()


def test_copy_mount_and_cleanup(server, tmp_path: Path, monkeypatch) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "train.csv").write_text("x,y\n1,2\n")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "task.yaml").write_text(textwrap.dedent("""\
        envs: {RUN: exp1}
        resources: {infra: local}
        file_mounts:
          /copied:
            name: sh-data-$RUN
            source: ./data
            mode: COPY
          ~/out:
            name: sh-out-${RUN}
            mode: MOUNT
          ~/scratch:
            name: sh-tmp
            persistent: false
        setup: test -f /copied/train.csv && echo setup-saw-copy
        run: |
          cat /copied/train.csv
          echo "written by the job" > ~/out/result.txt
          ls ~/scratch
    """))
    text = run(sky.Task.from_yaml("task.yaml"), "st1")
    assert "setup-saw-copy" in text and "1,2" in text
    # MOUNT: the job's write landed in the bucket on the server's machine.
    assert (bucket_dir(server, "sh-out-exp1") / "result.txt").read_text() == "written by the job\n"
    # The local source was uploaded into its bucket.
    assert (bucket_dir(server, "sh-data-exp1") / "train.csv").exists()
    names = {r["name"]: r for r in sky.get(sky.storage_ls())}
    assert set(names) == {"sh-data-exp1", "sh-out-exp1", "sh-tmp"}
    assert names["sh-tmp"]["persistent"] is False and names["sh-tmp"]["cluster_name"] == "st1"
    # A second launch on the same cluster sees the bucket's content through MOUNT too.
    again = sky.Task(run="cat ~/out/result.txt").set_storage_mounts(
        {"~/out": sky.Storage(name="sh-out-exp1")})
    assert "written by the job" in run(again, "st1")
    # down deletes the temporary bucket only.
    sky.get(sky.down("st1"))
    assert not bucket_dir(server, "sh-tmp").exists()
    assert {r["name"] for r in sky.get(sky.storage_ls())} == {"sh-data-exp1", "sh-out-exp1"}
    with pytest.raises(exceptions.StorageError, match="No storage named 'nope'"):
        sky.get(sky.storage_delete("nope"))
    assert sky.get(sky.storage_delete("sh-data-exp1")) == ["sh-data-exp1"]
    assert not bucket_dir(server, "sh-data-exp1").exists()
    assert sky.get(sky.storage_delete(all=True)) == ["sh-out-exp1"]
    assert sky.get(sky.storage_ls()) == []


def test_a_bucket_uri_is_copied_and_mounted(server, tmp_path: Path) -> None:
    bucket = bucket_dir(server, "sh-shared")
    sky.get(sky.launch(sky.Task(resources=sky.Resources(infra="local")).set_storage_mounts(
        {"/seed": sky.Storage(name="sh-shared")}), cluster_name="st2"))
    (bucket / "sub").mkdir(parents=True, exist_ok=True)
    (bucket / "sub" / "f.txt").write_text("from the bucket\n")
    sky.get(sky.volumes_apply("vol-st2"))
    task = sky.Task(run="cat /plain/f.txt /cached/sub/f.txt && test -f /one.txt")
    task.set_file_mounts({"/plain": "local://sh-shared/sub", "/one.txt": "local://sh-shared/sub/f.txt"})
    task.update_storage_mounts(
        {"/cached": sky.Storage(source="local://sh-shared", mode=sky.StorageMode.MOUNT_CACHED)})
    task.set_volumes({"/vol": "vol-st2"})
    assert run(task, "st2").count("from the bucket") == 2
    # stop/start: the COPY is still on the node's disk, the mount and the volume are
    # live again (what the job writes lands on the server's machine).
    sky.get(sky.stop("st2"))
    sky.get(sky.start("st2"))
    again = sky.Task(run="cat /plain/f.txt && echo after-start > /cached/new.txt && "
                         "echo in-volume > /vol/v.txt")  # fmt: skip
    job_id, _ = sky.get(sky.exec(again, cluster_name="st2"))
    logs = io.StringIO()
    assert sky.tail_logs("st2", job_id, follow=True, output_stream=logs) == 0, logs.getvalue()
    assert "from the bucket" in logs.getvalue()
    assert (bucket / "new.txt").read_text() == "after-start\n"
    volume = Path(server.env["SKYHOP_PERSISTENT_PATH"]) / "volumes" / "vol-st2"
    assert (volume / "v.txt").read_text() == "in-volume\n"
    sky.get(sky.down("st2"))
    assert bucket.exists()  # persistent
    sky.get(sky.storage_delete("sh-shared"))
    sky.get(sky.volumes_delete("vol-st2"))


def test_a_missing_bucket_and_an_unknown_store_fail_at_launch(server) -> None:
    task = sky.Task(run="true", resources=sky.Resources(infra="local"))
    # A path that climbs out of your bucket (into another one) is refused.
    mine = sky.Task(run="true", resources=sky.Resources(infra="local"))
    sky.get(sky.launch(mine.set_storage_mounts({"/m": sky.Storage(name="sh-mine")}),
                       cluster_name="st3"))  # fmt: skip
    task.set_file_mounts({"/d": "local://sh-mine/../sh-other"}).set_storage_mounts({})
    with pytest.raises(exceptions.StorageError, match="leaves the bucket"):
        sky.stream_and_get(sky.launch(task, cluster_name="st3"), output_stream=io.StringIO())
    task.set_file_mounts({})
    task.set_storage_mounts({"/d": sky.Storage(source="local://sh-never-made", mode="COPY")})
    with pytest.raises(exceptions.StorageError, match="does not exist"):
        sky.stream_and_get(sky.launch(task, cluster_name="st3"), output_stream=io.StringIO())
    task.set_storage_mounts({"/d": sky.Storage(name="b1", stores="azure")})
    with pytest.raises(exceptions.NotSupportedError, match="store: 'azure' is not available"):
        sky.stream_and_get(sky.launch(task, cluster_name="st3"), output_stream=io.StringIO())
    sky.get(sky.down("st3"))
    assert os.path.isdir(server.env["SKYHOP_PERSISTENT_PATH"])


def test_a_source_bucket_that_is_not_there_is_refused_before_anything_is_made(server) -> None:
    """A typo in a bucket URI would otherwise mount an empty directory (MOUNT is lazy):
    a launch and a managed job (and a service) are refused up front, naming the mount."""
    task = sky.Task(run="ls /data", resources=sky.Resources(infra="local"))
    task.set_storage_mounts({"/data": sky.Storage(source="local://sh-typo", mode="MOUNT")})
    with pytest.raises(exceptions.StorageError) as caught:
        sky.stream_and_get(sky.launch(task, cluster_name="st5"), output_stream=io.StringIO())
    message = str(caught.value)
    assert "file_mounts['/data']" in message and "'sh-typo'" in message, message
    assert "does not exist" in message and "name: sh-typo" in message, message
    assert sky.get(sky.status(["st5"])) == []  # nothing was provisioned
    assert not bucket_dir(server, "sh-typo").exists()  # nor the bucket made
    with pytest.raises(exceptions.StorageError, match="sh-typo"):
        sky.get(sky.jobs.launch(task, name="typo"))
    assert [j for j in sky.get(sky.jobs.queue(refresh=False)) if j["job_name"] == "typo"] == []
    # Once it exists, the same task runs and sees it.
    bucket_dir(server, "sh-typo").mkdir(parents=True)
    (bucket_dir(server, "sh-typo") / "there.txt").write_text("x")
    task.run = "cat /data/there.txt && echo saw-it"
    assert "saw-it" in run(task, "st5")
    sky.get(sky.down("st5"))
    assert (bucket_dir(server, "sh-typo") / "there.txt").exists()  # not skyhop's to delete


def test_a_mount_over_files_on_the_node_is_refused_and_they_are_kept(server) -> None:
    """A MOUNT would hide what is at its path (here a COPY's files from the launch
    before): refused, naming the path; the files are still there."""
    bucket_dir(server, "sh-seed").mkdir(parents=True)
    (bucket_dir(server, "sh-seed") / "seed.txt").write_text("seeded\n")
    first = sky.Task(run="cat /data/seed.txt", resources=sky.Resources(infra="local"))
    first.set_file_mounts({"/data": "local://sh-seed"})
    assert "seeded" in run(first, "st6")
    over = sky.Task(run="true", resources=sky.Resources(infra="local"))
    over.set_storage_mounts({"/data": sky.Storage(name="sh-over")})
    with pytest.raises(exceptions.StorageError, match="/data on the node is not empty"):
        sky.stream_and_get(sky.launch(over, cluster_name="st6"), output_stream=io.StringIO())
    assert "seeded" in run(sky.Task(run="cat /data/seed.txt"), "st6")
    sky.get(sky.down("st6"))
    sky.get(sky.storage_delete("sh-over"))


def test_volumes_are_directories_bound_into_local_nodes(server) -> None:
    assert sky.get(sky.volumes_apply("vol-a"))["name"] == "vol-a"
    assert [v["name"] for v in sky.get(sky.volumes_ls())] == ["vol-a"]
    assert sky.get(sky.storage_ls()) == []  # volumes are not storage buckets
    task = sky.Task(run="echo kept > /mnt/v/f.txt && ls /mnt/v", num_nodes=2,
                    resources=sky.Resources(infra="local"))  # fmt: skip
    task.set_volumes({"/mnt/v": "vol-a"})
    assert "f.txt" in run(task, "vo1")
    host = Path(server.env["SKYHOP_PERSISTENT_PATH"]) / "volumes" / "vol-a" / "f.txt"
    assert host.read_text() == "kept\n"
    sky.get(sky.down("vo1"))
    assert host.exists()  # a volume outlives its clusters
    missing = sky.Task(run="true", resources=sky.Resources(infra="local"))
    missing.set_volumes({"/mnt/x": "vol-none"})
    with pytest.raises(exceptions.StorageError, match="skyhop volumes apply vol-none"):
        sky.stream_and_get(sky.launch(missing, cluster_name="vo2"), output_stream=io.StringIO())
    sky.get(sky.down("vo2"))
    assert sky.get(sky.volumes_delete("vol-a")) == ["vol-a"] and not host.exists()
