"""The SDK end to end on the local backend, through a real API server on loopback."""

from __future__ import annotations

import io
import os
import textwrap
import time

import pytest

import skyhop as sky
from skyhop import exceptions


def wait_for_job(cluster: str, job_id: int, statuses: set, timeout: float = 30) -> sky.JobStatus:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = sky.get(sky.job_status(cluster, [job_id]))[str(job_id)]
        if status in statuses:
            return status
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} never reached {statuses}; last {status}")


def test_docs_example_launch_stream_tail(server):
    task = sky.Task(run="echo hello from sdk", resources=sky.Resources(infra="local"))
    request_id = sky.launch(task, cluster_name="dev")
    assert isinstance(request_id, str)
    out = io.StringIO()
    job_id, handle = sky.stream_and_get(request_id, output_stream=out)  # as the docs unpack it
    assert job_id == 1
    assert handle.cluster_name == "dev"
    logs = io.StringIO()
    assert sky.tail_logs("dev", job_id, follow=True, output_stream=logs) == 0
    assert "hello from sdk" in logs.getvalue()
    records = sky.get(sky.status())
    assert [r["name"] for r in records] == ["dev"]
    assert records[0]["status"] == sky.ClusterStatus.UP
    sky.get(sky.down("dev"))
    assert sky.get(sky.status()) == []


def test_exec_queue_cancel_stop_start_down(server):
    sky.get(sky.launch(sky.Task(resources=sky.Resources(infra="local")), cluster_name="c1"))
    long_job = sky.get(sky.exec(sky.Task(run="sleep 300"), cluster_name="c1"))["job_id"]
    wait_for_job("c1", long_job, {sky.JobStatus.RUNNING})
    queue = sky.get(sky.queue("c1"))
    assert [j["job_id"] for j in queue] == [long_job]
    assert sky.get(sky.cancel("c1", job_ids=[long_job])) == [long_job]
    wait_for_job("c1", long_job, {sky.JobStatus.CANCELLED})
    assert sky.tail_logs("c1", long_job, follow=False, output_stream=io.StringIO()) == 103
    failing = sky.get(sky.exec(sky.Task(run="exit 3"), cluster_name="c1"))["job_id"]
    assert sky.tail_logs("c1", failing, follow=True, output_stream=io.StringIO()) == 100
    sky.get(sky.stop("c1"))
    assert sky.get(sky.status(["c1"]))[0]["status"] == sky.ClusterStatus.STOPPED
    with pytest.raises(exceptions.ClusterNotUpError):
        sky.get(sky.exec(sky.Task(run="true"), cluster_name="c1"))
    sky.get(sky.start("c1"))
    again = sky.get(sky.exec(sky.Task(run="echo back"), cluster_name="c1"))["job_id"]
    out = io.StringIO()
    assert sky.tail_logs("c1", again, follow=True, output_stream=out) == 0
    assert "back" in out.getvalue()
    sky.get(sky.down("c1"))
    with pytest.raises(exceptions.ClusterDoesNotExist):
        sky.get(sky.queue("c1"))


def test_two_node_yaml_prints_both_ranks(server, tmp_path):
    yaml_path = tmp_path / "task.yaml"
    yaml_path.write_text(
        textwrap.dedent(
            """\
            name: ranks
            num_nodes: 2
            resources:
              infra: local
            envs:
              GREETING: hi
            setup: echo "setup on $SKYHOP_NODE_RANK"
            run: echo "$GREETING from rank $SKYHOP_NODE_RANK of $SKYHOP_NUM_NODES"
            """
        )
    )
    task = sky.Task.from_yaml(str(yaml_path))
    result = sky.get(sky.launch(task, cluster_name="pair"))
    out = io.StringIO()
    assert sky.tail_logs("pair", result["job_id"], follow=True, output_stream=out) == 0
    text = out.getvalue()
    assert "hi from rank 0 of 2" in text
    assert "hi from rank 1 of 2" in text
    assert "setup on 1" in text
    assert len(result["handle"].nodes) == 2
    sky.get(sky.down("pair"))


def test_callable_run_gets_rank_and_ips(server):
    task = sky.Task(
        run=lambda rank, ips: f"echo rank={rank} nodes={len(ips)}" if rank == 1 else None,
        num_nodes=2,
        resources=sky.Resources(infra="local"),
    )
    result = sky.get(sky.launch(task, cluster_name="lam"))
    out = io.StringIO()
    assert sky.tail_logs("lam", result["job_id"], follow=True, output_stream=out) == 0
    assert "rank=1 nodes=2" in out.getvalue()
    assert "rank=0" not in out.getvalue()
    sky.get(sky.down("lam"))


def test_job_queue_accounts_cpus(server):
    cpus = os.cpu_count() or 1
    # Asking for part of this machine fits the local backend.
    one_cpu = sky.Resources(infra="local", cpus=1)
    sky.get(sky.launch(sky.Task(resources=one_cpu), cluster_name="q"))
    task = sky.Task(run="sleep 300", resources=sky.Resources(cpus=cpus))
    first = sky.get(sky.exec(task, cluster_name="q"))["job_id"]
    second = sky.get(sky.exec(task, cluster_name="q"))["job_id"]
    wait_for_job("q", first, {sky.JobStatus.RUNNING})
    time.sleep(0.5)
    assert sky.get(sky.job_status("q", [second]))[str(second)] == sky.JobStatus.PENDING
    sky.get(sky.cancel("q", all=True))
    wait_for_job("q", second, {sky.JobStatus.CANCELLED})
    sky.get(sky.down("q"))


def test_autodown_after_idle(server):
    sky.get(
        sky.launch(
            sky.Task(run="echo done", resources=sky.Resources(infra="local")),
            cluster_name="auto",
            idle_minutes_to_autostop=0,
            down=True,
        )
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and sky.get(sky.status(["auto"])):
        time.sleep(0.3)
    assert sky.get(sky.status(["auto"])) == []


def test_request_errors_keep_their_types(server):
    with pytest.raises(exceptions.ClusterDoesNotExist):
        sky.get(sky.stop("nope"))
    with pytest.raises(exceptions.InvalidClusterNameError):
        sky.get(sky.launch(sky.Task(run="true"), cluster_name="-bad-"))
    with pytest.raises(exceptions.ResourcesUnavailableError):
        sky.get(
            sky.launch(
                sky.Task(run="true", resources=sky.Resources(infra="local", cpus="100000+")),
                cluster_name="huge",
            )
        )
    assert sky.get(sky.status(["huge"])) == []
