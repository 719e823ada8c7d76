"""The local backend and the default agent hooks, called the way the core calls them."""

from __future__ import annotations

import functools
import json
import os
import socket
import time
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

import pytest
import trio

import skyhop_local.plugin
from skyhop_core.agent.procs import pid_alive
from skyhop_core.context import BackendContext
from skyhop_core.models.records import (
    ClusterHandle,
    JobSpec,
    NodeInfo,
    NodeState,
    Offer,
    ProvisionRequest,
)
from skyhop_core.models.resources import Resources
from skyhop_core.models.status import JobStatus
from skyhop_core.plugins import Backends, load_backends


def trio_test(fn: Callable[..., Coroutine[Any, Any, None]]) -> Callable[..., None]:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        trio.run(functools.partial(fn, *args, **kwargs))

    return wrapper


def processes_under(path: Path) -> list[int]:
    """Live processes whose command line or working directory is under ``path``."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            cwd = os.readlink(f"/proc/{entry}/cwd")
        except OSError:
            continue
        if (str(path) in cmdline or cwd.startswith(str(path))) and pid_alive(int(entry)):
            found.append(int(entry))
    return found


class Local:
    """The local backend through the plugin facade, with a runner factory like the core's."""

    def __init__(self, state: Path) -> None:
        self.backends: Backends = load_backends([skyhop_local.plugin], entry_points=False)
        self.state = state
        self.lines: list[str] = []

        def runner_factory(handle: ClusterHandle, node: NodeInfo) -> Any:
            return self.backends.call(
                "local", "skyhop_command_runner", ctx=self.ctx, handle=handle, node=node
            )

        self.ctx = BackendContext(
            state_dir=str(state / "backends" / "local"),
            persistent_path=str(state),
            log=self.lines.append,
            runner_factory=runner_factory,
        )

    def call(self, hook: str, **kwargs: Any) -> Any:
        return self.backends.call("local", hook, ctx=self.ctx, **kwargs)

    async def provision(self, name: str, nodes: int, ports: tuple[int, ...] = ()) -> ClusterHandle:
        offer = Offer(backend="local", instance_type="local", cpus=2, memory_gb=1)
        request = ProvisionRequest(
            cluster_name=name, num_nodes=nodes, resources=None, offer=offer, ports=ports
        )
        return await self.call("skyhop_provision", request=request)

    async def tail(self, handle: ClusterHandle, job_id: int | None) -> tuple[JobStatus | None, str]:
        chunks: list[bytes] = []

        async def on_output(data: bytes) -> None:
            chunks.append(data)

        status = await self.call(
            "skyhop_tail_logs",
            handle=handle,
            job_id=job_id,
            follow=True,
            tail=0,
            on_output=on_output,
        )
        return status, b"".join(chunks).decode()

    async def states(self, handle: ClusterHandle) -> list[NodeState]:
        return [s.state for s in await self.call("skyhop_query", handle=handle)]


@pytest.fixture
def local(tmp_path: Path) -> Iterator[Local]:
    backend = Local(tmp_path / "state")
    yield backend
    leftovers = processes_under(tmp_path)
    for pid in leftovers:
        os.kill(pid, 9)
    assert not leftovers, f"processes outlived the test: {leftovers}"


@trio_test
async def test_offers_describe_this_machine(local: Local) -> None:
    [offer] = await local.call("skyhop_offers", resources=Resources(infra="local"))
    assert offer.backend == "local" and offer.cpus == os.cpu_count() and offer.price == 0
    assert offer.memory_gb > 0 and offer.region is None
    # The machine is a pool: part of it fits, more than it has does not.
    assert await local.call("skyhop_offers", resources=Resources(cpus=1))
    too_many = Resources(cpus=(os.cpu_count() or 1) + 1)
    assert await local.call("skyhop_offers", resources=too_many) == []
    assert (await local.call("skyhop_check")).enabled


@trio_test
async def test_two_node_cluster_lifecycle(local: Local) -> None:
    handle = await local.provision("pair", 2)
    assert [n.instance_id for n in handle.nodes] == ["pair-0", "pair-1"]
    assert all(os.path.isdir(n.runtime_dir) for n in handle.nodes)
    again = await local.provision("pair", 2)
    assert again.nodes == handle.nodes
    assert await local.states(handle) == [NodeState.RUNNING] * 2
    await local.call("skyhop_setup_runtime", handle=handle)

    job = JobSpec(name="hello", run="echo hello from $SKYHOP_NODE_RANK", num_nodes=2)
    job_id = await local.call("skyhop_submit_job", handle=handle, job=job)
    status, text = await local.tail(handle, job_id)
    assert status is JobStatus.SUCCEEDED
    assert "(rank 0) hello from 0" in text and "(rank 1) hello from 1" in text
    [record] = await local.call("skyhop_queue", handle=handle, skip_finished=False)
    assert record.job_id == job_id and record.status is JobStatus.SUCCEEDED
    assert await local.call("skyhop_queue", handle=handle, skip_finished=True) == []

    failing = await local.call(
        "skyhop_submit_job", handle=handle, job=JobSpec(name="f", run="exit 1", setup="exit 2")
    )
    assert (await local.tail(handle, failing))[0] is JobStatus.FAILED_SETUP
    assert (await local.tail(handle, 12345))[0] is None

    sleeper = await local.call(
        "skyhop_submit_job", handle=handle, job=JobSpec(name="s", run="sleep 300")
    )
    with trio.fail_after(10):
        while (await local.call("skyhop_idle_seconds", handle=handle)) != 0:
            await trio.sleep(0.05)
    assert await local.call(
        "skyhop_cancel_jobs", handle=handle, job_ids=[sleeper], user_hash=None
    ) == [sleeper]
    assert (await local.tail(handle, sleeper))[0] is JobStatus.CANCELLED
    assert await local.call("skyhop_cancel_jobs", handle=handle, job_ids=None, user_hash=None) == []

    await local.call("skyhop_submit_job", handle=handle, job=JobSpec(name="s", run="sleep 300"))
    await local.call("skyhop_stop", handle=handle)
    assert await local.states(handle) == [NodeState.STOPPED] * 2
    assert processes_under(Path(local.ctx.state_dir)) == []

    started = await local.call("skyhop_start", handle=handle)
    assert await local.states(started) == [NodeState.RUNNING] * 2
    await local.call("skyhop_setup_runtime", handle=started)
    back = await local.call(
        "skyhop_submit_job", handle=started, job=JobSpec(name="b", run="echo back")
    )
    assert await local.tail(started, back) == (JobStatus.SUCCEEDED, "back\n")

    await local.call("skyhop_down", handle=started)
    assert not os.path.exists(os.path.dirname(handle.head.home))
    assert await local.states(started) == [NodeState.TERMINATED] * 2
    await local.call("skyhop_down", handle=started)  # idempotent
    assert processes_under(Path(local.ctx.state_dir)) == []


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@trio_test
async def test_declared_ports_are_mapped_and_relayed(local: Local) -> None:
    declared = _free_port()
    handle = await local.provision("web", 1, ports=(declared,))
    host, _, mapped = handle.ports[declared].partition(":")
    assert host == "127.0.0.1" and int(mapped) != declared
    assert any(handle.ports[declared] in line for line in local.lines)
    await local.call("skyhop_setup_runtime", handle=handle)
    serve = f"python3 -c \"import http.server as h; h.HTTPServer(('127.0.0.1', {declared}), h.SimpleHTTPRequestHandler).serve_forever()\""
    await local.call("skyhop_submit_job", handle=handle, job=JobSpec(name="web", run=serve))
    (Path(handle.head.home) / "index.html").write_text("relayed")
    body = b""
    deadline = time.monotonic() + 10
    while b"relayed" not in body and time.monotonic() < deadline:
        try:
            stream = await trio.open_tcp_stream("127.0.0.1", int(mapped))
            async with stream:
                await stream.send_all(b"GET /index.html HTTP/1.0\r\n\r\n")
                body = b""
                while chunk := await stream.receive_some():
                    body += chunk
        except (OSError, trio.BrokenResourceError):
            await trio.sleep(0.1)
    assert b"relayed" in body
    opened = await local.call("skyhop_open_ports", handle=handle, ports=[declared, 9])
    assert opened.ports[declared] == handle.ports[declared] and 9 in opened.ports
    description = json.loads((Path(handle.head.runtime_dir) / "cluster.json").read_text())
    assert {"listen": opened.ports[9], "target": "127.0.0.1:9"} in description["forwards"]
    await local.call("skyhop_down", handle=handle)
