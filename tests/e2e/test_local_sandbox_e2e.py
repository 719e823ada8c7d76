"""Local nodes are sandboxes, end to end: a task's file mounts and writes to absolute
paths stay in the node, through a real API server and the SDK (its uploads included)."""

from __future__ import annotations

import io
import os
import uuid
from pathlib import Path

import pytest

import skyhop as sky
from skyhop import exceptions
from skyhop_local import sandbox

SUPPORT = sandbox.detect()


def _output(cluster: str, job_id: int) -> str:
    out = io.StringIO()
    assert sky.tail_logs(cluster, job_id, follow=True, output_stream=out) == 0, out.getvalue()
    return out.getvalue()


@pytest.mark.skipif(not SUPPORT.sandboxed, reason=SUPPORT.reason)
def test_file_mounts_and_writes_stay_in_the_node(server, tmp_path: Path) -> None:
    tag = f"skyhop-test-{uuid.uuid4().hex[:12]}"
    source = tmp_path / "conf.txt"
    source.write_text("mounted config\n")
    task = sky.Task(
        run=f"cat /etc/{tag}; mkdir -p /data/{tag} && echo written > /data/{tag}/out",
        file_mounts={f"/etc/{tag}": str(source)},
        resources=sky.Resources(infra="local"),
    )
    job_id, _ = sky.stream_and_get(
        sky.launch(task, cluster_name="box"), output_stream=io.StringIO()
    )
    assert "mounted config" in _output("box", job_id)
    assert not os.path.exists(f"/etc/{tag}") and not os.path.exists(f"/data/{tag}")
    later = sky.get(sky.exec(sky.Task(run=f"cat /data/{tag}/out /etc/{tag}"), cluster_name="box"))
    lines = _output("box", later["job_id"]).splitlines()
    assert lines[-3:-1] == ["written", "mounted config"], lines
    sky.get(sky.down("box"))
    assert not os.path.exists(f"/etc/{tag}") and not os.path.exists(f"/data/{tag}")


def test_without_sandbox_an_absolute_file_mount_is_refused(make_server, monkeypatch, tmp_path):
    srv = make_server(env={sandbox.SANDBOX_ENV: "off"})
    for key in ("SKYHOP_PERSISTENT_PATH", "SKYHOP_API_SERVER_ENDPOINT", "SKYHOP_CONFIG"):
        monkeypatch.setenv(key, srv.env[key])
    target = f"/etc/skyhop-test-{uuid.uuid4().hex[:12]}"
    source = tmp_path / "conf.txt"
    source.write_text("x\n")
    task = sky.Task(run="true", file_mounts={target: str(source)},
                    resources=sky.Resources(infra="local"))  # fmt: skip
    with pytest.raises(exceptions.SkyhopError, match=f"{target}.*written to the host"):
        sky.get(sky.launch(task, cluster_name="plain"))
    assert not os.path.exists(target)
    sky.get(sky.down("plain"))
