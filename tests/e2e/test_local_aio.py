"""skyhop.aio end to end on the local backend, through a real API server, under both loops."""

from __future__ import annotations

import asyncio
import io

import pytest
import trio

import skyhop as sky
from skyhop import aio, exceptions


async def launch_status_down(cluster: str) -> None:
    task = sky.Task(run="echo hello-aio", resources=sky.Resources(infra="local"))
    launch_log = io.StringIO()
    result = await aio.launch(task, cluster_name=cluster, output_stream=launch_log)
    job_id, handle = result["job_id"], result["handle"]
    assert job_id == 1
    assert handle.cluster_name == cluster
    assert launch_log.getvalue()  # the launch request's log was streamed

    job_log = io.StringIO()
    assert await aio.tail_logs(cluster, job_id, output_stream=job_log) == 0
    assert "hello-aio" in job_log.getvalue()

    records = await aio.status(stream_logs=False)
    assert [r["name"] for r in records] == [cluster]
    assert records[0]["status"] == sky.ClusterStatus.UP

    with pytest.raises(exceptions.ClusterDoesNotExist):
        await aio.stop("no-such-cluster", stream_logs=False)

    await aio.down(cluster, output_stream=io.StringIO())
    assert await aio.status([cluster], stream_logs=False) == []


def test_launch_status_down_under_asyncio(server):
    asyncio.run(launch_status_down("aio-asyncio"))


def test_launch_status_down_under_trio(server):
    trio.run(launch_status_down, "aio-trio")


def test_callable_run_two_steps_under_trio(server):
    async def main() -> None:
        task = sky.Task(
            run=lambda rank, ips: f"echo rank={rank} nodes={len(ips)}" if rank == 1 else None,
            num_nodes=2,
            resources=sky.Resources(infra="local"),
        )
        result = await aio.launch(task, cluster_name="aio-lam", stream_logs=False)
        out = io.StringIO()
        assert await aio.tail_logs("aio-lam", result["job_id"], output_stream=out) == 0
        assert "rank=1 nodes=2" in out.getvalue() and "rank=0" not in out.getvalue()
        await aio.down("aio-lam", stream_logs=False)

    trio.run(main)
