"""Fractional GPUs on a local cluster whose GPU inventory is declared in the config
(``backends.local.gpus``): two T4:0.5 jobs share the one T4, a third waits."""

from __future__ import annotations

import io
import time
from pathlib import Path

import skyhop as sky


def wait_for(cluster: str, job_id: int, statuses: set, timeout: float = 30) -> sky.JobStatus:
    deadline = time.monotonic() + timeout
    status = None
    while time.monotonic() < deadline:
        status = sky.get(sky.job_status(cluster, [job_id]))[str(job_id)]
        if status in statuses:
            return status
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} never reached {statuses}; last {status}")


def test_two_halves_share_one_declared_gpu(make_server, monkeypatch, tmp_path: Path) -> None:
    root = tmp_path / "gpu-state"
    root.mkdir()
    (root / "config.yaml").write_text("backends:\n  local:\n    gpus: {T4: 1}\n")
    srv = make_server(root)
    for key in ("SKYHOP_PERSISTENT_PATH", "SKYHOP_API_SERVER_ENDPOINT", "SKYHOP_CONFIG"):
        monkeypatch.setenv(key, srv.env[key])
    half = sky.Resources(infra="local", accelerators="T4:0.5", cpus=0.5)
    first, _ = sky.stream_and_get(sky.launch(sky.Task(run="sleep 60", resources=half),
                                             cluster_name="g"), output_stream=io.StringIO())  # fmt: skip
    second = sky.get(sky.exec(sky.Task(run="sleep 60", resources=half), cluster_name="g"))
    third = sky.get(sky.exec(sky.Task(run="echo gpus=$SKYPILOT_NUM_GPUS_PER_NODE",
                                      resources=half), cluster_name="g"))  # fmt: skip
    wait_for("g", first, {sky.JobStatus.RUNNING})
    wait_for("g", second["job_id"], {sky.JobStatus.RUNNING})
    time.sleep(1)
    assert sky.get(sky.job_status("g", [third["job_id"]]))[str(third["job_id"])] == (
        sky.JobStatus.PENDING)
    sky.get(sky.cancel("g", job_ids=[first]))
    logs = io.StringIO()
    assert sky.tail_logs("g", third["job_id"], follow=True, output_stream=logs) == 0
    assert "gpus=1" in logs.getvalue()
    sky.get(sky.down("g"))
