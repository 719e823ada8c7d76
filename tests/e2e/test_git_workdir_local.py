"""A git workdir ({url, ref}) from a local bare repository: cloned at the ref and synced
to the nodes; a bad ref fails at launch naming it."""

from __future__ import annotations

import io
import subprocess
from pathlib import Path

import pytest

import skyhop as sky
from skyhop import exceptions


def git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid", *args],
                   cwd=cwd, check=True, capture_output=True)  # fmt: skip


@pytest.fixture
def bare_repo(tmp_path: Path) -> Path:
    work, bare = tmp_path / "work", tmp_path / "repo.git"
    work.mkdir()
    git(work, "init", "-q", "-b", "main")
    (work / "version.txt").write_text("one\n")
    git(work, "add", ".")
    git(work, "commit", "-q", "-m", "one")
    git(work, "tag", "v1")
    (work / "version.txt").write_text("two\n")
    git(work, "commit", "-q", "-am", "two")
    git(tmp_path, "clone", "-q", "--bare", str(work), str(bare))
    return bare


def output(request_id: str, cluster: str) -> str:
    job_id, _ = sky.stream_and_get(request_id, output_stream=io.StringIO())
    logs = io.StringIO()
    assert sky.tail_logs(cluster, job_id, follow=True, output_stream=logs) == 0, logs.getvalue()
    return logs.getvalue()


def test_a_git_workdir_is_cloned_at_its_ref_on_the_nodes(server, bare_repo: Path) -> None:
    task = sky.Task(run="cat version.txt; pwd", num_nodes=2, resources=sky.Resources(infra="local"),
                    workdir={"url": str(bare_repo), "ref": "v1"})  # fmt: skip
    text = output(sky.launch(task, cluster_name="gw"), "gw")
    lines = text.splitlines()
    assert "(rank 0) one" in lines and "(rank 1) one" in lines and "sky_workdir" in text
    head = sky.Task(run="cat version.txt", workdir={"url": f"file://{bare_repo}"})
    assert output(sky.exec(head, cluster_name="gw"), "gw").splitlines()[0] == "two"  # no ref: the default branch
    bad = sky.Task(run="true", workdir={"url": str(bare_repo), "ref": "no-such-tag"})
    with pytest.raises(exceptions.TaskValidationError, match="no-such-tag"):
        sky.stream_and_get(sky.exec(bad, cluster_name="gw"), output_stream=io.StringIO())
    sky.get(sky.down("gw"))
