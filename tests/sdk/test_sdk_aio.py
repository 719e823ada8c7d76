"""skyhop.aio against the fake server (httpx.MockTransport), under asyncio and trio alike."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import httpx
import pytest
import trio

import skyhop as sky
from skyhop import aio, sdk
from skyhop.client import RequestInterrupted
from skyhop_core import exceptions

ENDPOINT = "http://127.0.0.1:46590"  # the fake server's (tests/sdk/conftest.py)
TASK = {"run": "echo hi", "envs": {"A": "1"}}
LAUNCHED = {"job_id": 1, "handle": None}


class Runner:
    """Runs ``await fn()`` under one backend, with an AsyncApiClient on ``fake`` installed."""

    def __init__(self, backend: str, fake: Any) -> None:
        self.backend = backend
        self.fake = fake

    def __call__(self, fn: Callable[[], Awaitable[Any]], handler: Any = None) -> Any:
        transport = httpx.MockTransport(handler or self.fake.handler)

        async def main() -> Any:
            async with aio.AsyncApiClient(ENDPOINT, transport=transport) as client:
                with aio.using(client):
                    return await fn()

        if self.backend == "trio":
            return trio.run(main)
        return asyncio.run(main())


@pytest.fixture(params=["asyncio", "trio"])
def run(request: pytest.FixtureRequest, fake: Any, monkeypatch) -> Runner:
    monkeypatch.setenv("SKYHOP_API_SERVER_ENDPOINT", ENDPOINT)
    return Runner(request.param, fake)


# --- the same requests as the sync SDK ---------------------------------------------

CALLS = [
    ("launch", (TASK, "dev"), {}),
    (
        "launch",
        (TASK, "c", True, 5, True, True, sky.OptimizeTarget.TIME, True, True),
        {},
    ),
    ("exec", (TASK, "dev"), {"down": True}),
    ("stop", ("dev",), {"purge": True}),
    ("down", ("dev",), {}),
    ("start", ("dev", 10), {"down": True, "force": True}),
    ("status", (("a", "b"), sky.StatusRefreshMode.FORCE, True), {}),
    ("status", (), {}),
    ("autostop", ("dev", 5), {"down": True}),
    ("optimize", (TASK,), {"cluster_name": "dev"}),
    ("check", (), {}),
    ("queue", ("dev", True, True), {}),
    ("job_status", ("dev", [1, 2]), {}),
    ("cancel", ("dev",), {"job_ids": [3]}),
    ("download_logs", ("dev", [1]), {}),
]
RESULTS = {
    "launch": LAUNCHED,
    "exec": LAUNCHED,
    "status": [],
    "queue": [],
    "optimize": [],
    "check": [],
    "cancel": [],
    "job_status": {},
    "download_logs": {},
    "logs": 0,
}


@pytest.mark.parametrize(("name", "args", "kwargs"), CALLS)
def test_sends_the_same_bodies_as_the_sync_sdk(run, fake, client, name, args, kwargs):
    for operation, result in RESULTS.items():
        fake.on(operation, result)
    request_id = getattr(sky, name)(*args, **kwargs)
    if name != "download_logs":  # the one sync function that waits itself
        sdk.get(request_id)
    sync_sent = list(fake.submitted)
    fake.submitted.clear()
    run(lambda: getattr(aio, name)(*args, stream_logs=False, **kwargs))
    assert fake.submitted == sync_sent
    assert "/api/stream" not in fake.paths()


def test_tail_logs_sends_the_sync_body_streams_and_returns_the_exit_code(run, fake, client):
    fake.on("logs", 100, log="step 1\nboom\n")
    sky.tail_logs("dev", 3, follow=False, tail=5, output_stream=io.StringIO())
    sync_sent = list(fake.submitted)
    fake.submitted.clear()
    out = io.StringIO()
    assert run(lambda: aio.tail_logs("dev", 3, follow=False, tail=5, output_stream=out)) == 100
    assert fake.submitted == sync_sent
    assert out.getvalue() == "step 1\nboom\n"


# --- streaming and results ---------------------------------------------------------


def test_launch_streams_its_log_and_returns_the_result(run, fake, records):
    fake.on("launch", {"job_id": 1, "handle": records.handle("dev")}, log="provisioning...\n")
    out = io.StringIO()
    result = run(lambda: aio.launch(TASK, cluster_name="dev", output_stream=out))
    assert result["job_id"] == 1
    assert result["handle"].cluster_name == "dev"
    assert out.getvalue() == "provisioning...\n"
    assert fake.paths()[-2:] == ["/api/stream", "/api/get"]


def test_streams_to_stdout_by_default(run, fake, capsys):
    fake.on("stop", None, log="Cluster 'a' is STOPPED.\n")
    assert run(lambda: aio.stop("a")) is None
    assert capsys.readouterr().out == "Cluster 'a' is STOPPED.\n"


def test_stream_logs_false_only_awaits_the_result(run, fake, records, capsys):
    fake.on("status", [records.cluster("dev")], log="refreshing\n")
    clusters = run(lambda: aio.status(stream_logs=False))
    assert [c["name"] for c in clusters] == ["dev"]
    assert clusters[0]["status"] == sky.ClusterStatus.UP
    assert "/api/stream" not in fake.paths()
    assert capsys.readouterr().out == ""


def test_heartbeats_are_dropped_from_the_stream(run, fake):
    fake.on("cancel", [3], log="Cancel\0led job(s): 3.\n")
    out = io.StringIO()
    assert run(lambda: aio.cancel("dev", job_ids=[3], output_stream=out)) == [3]
    assert out.getvalue() == "Cancelled job(s): 3.\n"


def test_errors_keep_their_types(run, fake):
    fake.on("stop", error=exceptions.ClusterDoesNotExist("Cluster 'x' does not exist."))
    with pytest.raises(exceptions.ClusterDoesNotExist, match="'x'"):
        run(lambda: aio.stop("x", stream_logs=False))


def test_bad_arguments_raise_before_anything_is_sent(run, fake):
    with pytest.raises(ValueError, match="idle_minutes_to_autostop"):
        run(lambda: aio.start("dev", down=True))
    assert fake.submitted == []


def test_version_mismatch_is_refused(run, fake):
    fake.api_version = "2.0"
    with pytest.raises(exceptions.ApiVersionMismatchError):
        run(lambda: aio.status())
    assert fake.submitted == []


def test_get_and_stream_and_get_take_a_request_id(run, fake, tmp_path):
    fake.on("cancel", [3], log="log line\n")
    out = io.StringIO()
    log_file = tmp_path / "x.log"
    log_file.write_text("a\nb\nc\n")

    async def main() -> Any:
        async with aio.client.session() as c:
            request_id = await c.submit("cancel", {"cluster_name": "dev"})
        got = await aio.get(request_id[:8])
        streamed = await aio.stream_and_get(request_id, output_stream=out)
        local = await aio.stream_and_get(log_path=str(log_file), tail=2, output_stream=out)
        return got, streamed, local

    assert run(main) == ([3], [3], None)
    assert out.getvalue() == "log line\nb\nc\n"


def test_api_functions(run, fake):
    async def main() -> Any:
        return (
            await aio.api_cancel("abc"),
            await aio.api_status(all_status=True),
            await aio.api_info(),
        )

    cancelled, requests, info = run(main)
    assert cancelled == ["abc"]
    assert requests == []
    assert info["endpoint"] == ENDPOINT and info["user"]["name"]
    # The version is checked once per client; api_info asks for the health document.
    assert fake.paths() == ["/api/health", "/api/cancel", "/api/status", "/api/health"]
    with pytest.raises(ValueError):
        run(lambda: aio.api_cancel())


def test_calls_run_concurrently(run, fake, records):
    fake.on("status", [records.cluster("dev")])
    results: list[Any] = []

    async def main() -> None:
        async def one() -> None:
            results.append(await aio.status(stream_logs=False))

        async with anyio.create_task_group() as tg:
            for _ in range(3):
                tg.start_soon(one)

    run(main)
    assert len(results) == 3 and len(fake.bodies("status")) == 3


# --- callable run ------------------------------------------------------------------


def _by_rank(rank, ips):
    return f"echo {rank} of {len(ips)} at {ips[rank]}" if rank else None


def _task(run_fn, setup=None):
    return sky.Task(run=run_fn, setup=setup, num_nodes=2, resources=sky.Resources(infra="local"))


def test_callable_run_launches_then_execs_one_command_per_rank(run, fake, records):
    fake.on("launch", {"job_id": 1, "handle": records.handle("lam", nodes=2)}, log="up\n")
    fake.on("job_status", {"1": sky.JobStatus.SUCCEEDED})
    fake.on("exec", {"job_id": 2, "handle": records.handle("lam", nodes=2)}, log="exec\n")
    out = io.StringIO()
    task = _task(_by_rank, setup="pip install x")
    result = run(
        lambda: aio.launch(task, "lam", idle_minutes_to_autostop=5, down=True, output_stream=out)
    )
    assert result["job_id"] == 2
    assert "run" not in fake.bodies("launch")[0]["task"]
    assert fake.bodies("launch")[0]["down"] is False
    (exec_body,) = fake.bodies("exec")
    assert exec_body["task"]["run"] == [None, "echo 1 of 2 at 10.0.0.2"]
    assert "setup" not in exec_body["task"]
    assert fake.bodies("autostop") == [{"cluster_name": "lam", "idle_minutes": 5, "down": True}]
    assert [op for op, _ in fake.submitted] == ["launch", "job_status", "exec", "autostop"]
    assert out.getvalue() == "up\nexec\n"


def test_callable_run_on_exec_uses_the_clusters_node_ips(run, fake, records):
    fake.on("status", [records.cluster("lam")])
    fake.on("exec", LAUNCHED)
    run(lambda: aio.exec(_task(lambda rank, ips: f"echo {ips}"), "lam", stream_logs=False))
    assert fake.bodies("exec")[0]["task"]["run"] == ["echo ['10.0.0.1']"]


def test_callable_run_on_exec_needs_an_up_cluster(run, fake):
    fake.on("status", [])
    with pytest.raises(exceptions.ClusterNotUpError):
        run(lambda: aio.exec(_task(_by_rank), "lam"))


# --- cancellation and interrupts ---------------------------------------------------


def test_cancelling_the_caller_leaves_the_request_running(run, fake):
    async def hanging(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/get":
            await anyio.sleep_forever()
        return fake.handler(request)

    notes: list[str] = []

    async def main() -> bool:
        with anyio.move_on_after(0.2) as scope:
            try:
                await aio.launch(TASK, "dev", stream_logs=False)
            except anyio.get_cancelled_exc_class() as exc:
                notes.extend(getattr(exc, "__notes__", []))
                raise
        return scope.cancelled_caught

    assert run(main, handler=hanging) is True
    (request_id,) = fake.requests
    assert "/api/cancel" not in fake.paths()
    assert len(notes) == 1 and request_id in notes[0] and "keeps running" in notes[0]


def test_asyncio_task_cancel_propagates(fake, monkeypatch):
    monkeypatch.setenv("SKYHOP_API_SERVER_ENDPOINT", ENDPOINT)

    async def hanging(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/stream":
            await anyio.sleep_forever()
        return fake.handler(request)

    async def main() -> None:
        transport = httpx.MockTransport(hanging)
        async with aio.AsyncApiClient(ENDPOINT, transport=transport) as c:
            with aio.using(c):
                task = asyncio.create_task(aio.down("dev"))
                await asyncio.sleep(0.1)
                task.cancel()
                await task

    with pytest.raises(asyncio.CancelledError):
        asyncio.run(main())
    assert [op for op, _ in fake.submitted] == ["down"]


def test_keyboard_interrupt_becomes_request_interrupted_under_trio(fake, monkeypatch):
    monkeypatch.setenv("SKYHOP_API_SERVER_ENDPOINT", ENDPOINT)
    fake.interrupt_on.add("/api/get")
    with pytest.raises(RequestInterrupted) as info:
        Runner("trio", fake)(lambda: aio.down("dev", stream_logs=False))
    assert info.value.request_id in fake.requests


def test_skyhop_aio_is_a_lazy_attribute():
    import skyhop.aio

    assert sky.aio is skyhop.aio
    assert set(skyhop.aio.__all__) >= {"launch", "status", "get", "stream_and_get", "tail_logs"}
