"""The async skyhop SDK: the sync SDK's functions, awaited, returning results directly.

::

    import trio  # or asyncio: both work
    import skyhop as sky
    from skyhop import aio

    async def main():
        task = sky.Task(run="echo hello", resources=sky.Resources(infra="local"))
        result = await aio.launch(task, cluster_name="dev")   # streams the launch log
        job_id, handle = result["job_id"], result["handle"]
        clusters = await aio.status(stream_logs=False)         # no streaming
        await aio.tail_logs("dev", job_id)                     # the job's output
        await aio.down("dev")
        job = await aio.jobs.launch(task, name="nightly")     # a managed job
        await aio.jobs.tail_logs(job_id=job["job_id"])
        name, endpoint = await aio.serve.up(service_task, "web")  # a service

    trio.run(main)

Each function submits its request (the body is built by the sync SDK, so both send the
same thing), then — with ``stream_logs=True``, the default — streams the request's log
to stdout (or ``output_stream=``) and returns what sync :func:`skyhop.get` would:
``launch``/``exec`` → ``{"job_id", "handle"}``, ``status``/``queue`` → lists of dicts, and
so on. ``stream_logs=False`` only awaits the result. Errors raise the exception type the
server raised. :func:`tail_logs` is async here too (it returns the job's exit code);
``api_start``/``api_stop`` manage the local server process and stay sync-only.

It runs under trio and asyncio (``httpx.AsyncClient`` through anyio; no asyncio-only
API), so calls can run concurrently in a nursery or with ``asyncio.gather``.

Cancellation: cancelling the awaiting task (a trio cancel scope, ``Task.cancel()``,
``asyncio.wait_for`` timing out) only stops waiting. The request keeps running on the
server, as with Ctrl+C in the sync SDK; cancel it there with :func:`api_cancel`. The
cancellation propagates unchanged, with a note naming the request ID. A
``KeyboardInterrupt`` delivered inside the task (trio) becomes
:class:`~skyhop.client.RequestInterrupted`, as in the sync SDK.

Callable ``run`` tasks take the sync SDK's two steps: the cluster is launched without
``run``, then the callable is evaluated per rank with the node IPs and an ``exec`` with
one command per rank is submitted; the result is that ``exec``'s result.

Clients: each call uses a short-lived client for the configured endpoint (an
``httpx.AsyncClient`` belongs to one event loop), or the one installed with
``with aio.using(aio.AsyncApiClient(...)):`` (tests inject ``transport=`` this way).
"""

from __future__ import annotations

from skyhop.aio import jobs, serve
from skyhop.aio.api import api_cancel, api_info, api_status, get, stream_and_get
from skyhop.aio.client import AsyncApiClient, using
from skyhop.aio.sdk import (
    autostop,
    cancel,
    check,
    down,
    download_logs,
    exec,
    job_status,
    launch,
    optimize,
    queue,
    start,
    status,
    stop,
    tail_logs,
)

__all__ = [
    "AsyncApiClient",
    "api_cancel",
    "api_info",
    "api_status",
    "autostop",
    "cancel",
    "check",
    "down",
    "download_logs",
    "exec",
    "get",
    "job_status",
    "jobs",
    "launch",
    "optimize",
    "queue",
    "serve",
    "start",
    "status",
    "stop",
    "stream_and_get",
    "tail_logs",
    "using",
]
