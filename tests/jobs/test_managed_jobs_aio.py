"""skyhop.aio.jobs against a real server, under asyncio and trio."""

from __future__ import annotations

import asyncio
import io

import pytest
import trio

import skyhop as sky
from skyhop import aio, exceptions

pytestmark = pytest.mark.timeout(120)


async def three_jobs_then_cancel() -> None:
    tasks = [
        sky.Task(name=f"aio{i}", run=f"echo out-{i}", resources=sky.Resources(infra="local"))
        for i in range(3)
    ]
    submitted = [await aio.jobs.launch(t, output_stream=io.StringIO()) for t in tasks]
    ids = [s["job_id"] for s in submitted]
    assert len(set(ids)) == 3
    for i, job_id in enumerate(ids):
        out = io.StringIO()
        assert await aio.jobs.tail_logs(job_id=job_id, output_stream=out) == 0
        assert f"out-{i}" in out.getvalue()
    records = await aio.jobs.queue(job_ids=ids)
    assert {r["status"] for r in records} == {sky.ManagedJobStatus.SUCCEEDED}
    assert sorted(r["job_id"] for r in records) == sorted(ids)

    sleeper = await aio.jobs.launch(
        {"name": "aiosleep", "run": "sleep 600", "resources": {"infra": "local"}},
        stream_logs=False,
    )
    assert await aio.jobs.cancel(name="aiosleep", stream_logs=False) == [sleeper["job_id"]]
    (row,) = await aio.jobs.queue(job_ids=[sleeper["job_id"]])
    assert row["status"] is sky.ManagedJobStatus.CANCELLED
    with pytest.raises(exceptions.JobNotFoundError):
        await aio.jobs.tail_logs(job_id=99999, output_stream=io.StringIO())


def test_managed_jobs_under_asyncio(server):
    asyncio.run(three_jobs_then_cancel())


def test_managed_jobs_under_trio(server):
    trio.run(three_jobs_then_cancel)
