"""Drives one backend through its hooks for the conformance suite, checking each answer.

:class:`BackendHarness` wraps :class:`~skyhop_core.plugins.Backends` and a
:class:`~skyhop_core.context.BackendContext` and calls hooks the way the core does: on
the plugin that owns the backend, awaited under a deadline. Every helper checks what the
hook returned against the contract in :mod:`skyhop_core.hookspecs` and raises
:class:`ConformanceError` with a message addressed to the backend's author: which hook,
what it returned, what it should have returned.

Clusters the harness provisions are remembered until they are downed, so
:meth:`BackendHarness.cleanup` tears down whatever a failing test left behind.
"""

from __future__ import annotations

import inspect
import secrets
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from typing import Any

import attrs
import trio

from skyhop_core.context import BackendContext
from skyhop_core.models.records import (
    BackendInfo,
    CheckResult,
    ClusterHandle,
    JobRecord,
    JobSpec,
    NodeInfo,
    NodeState,
    NodeStatus,
    Offer,
    ProvisionRequest,
)
from skyhop_core.models.status import JobStatus
from skyhop_core.plugins import Backends
from skyhop_core.runner import CommandRunner

#: The job every lifecycle test runs; each node prints its own rank.
ECHO_RUN = "echo conformance-$SKYHOP_NODE_RANK"
#: A job that runs until it is cancelled.
SLEEP_RUN = "sleep 600"
POLL_INTERVAL = 0.2


class ConformanceError(AssertionError):
    """A backend broke the plugin contract; the message says how, for its author."""


@attrs.frozen
class Timeouts:
    """Deadlines, in seconds, for the kinds of hook call (cloud backends need longer)."""

    call: float = 60.0  #: check, offers, query, queue, cancel, a runner command
    provision: float = 300.0  #: provision, start, setup_runtime
    teardown: float = 300.0  #: stop, down
    job: float = 120.0  #: a job reaching a status; a followed log ending


def make_context(
    backends: Backends,
    backend: str,
    persistent_path: str,
    *,
    config: dict[str, Any] | None = None,
    log: Any = None,
) -> BackendContext:
    """The context the core would hand ``backend``: its state dir under ``persistent_path``.

    Fills in ``runner_factory`` (when :class:`BackendContext` has that field) the way the
    server does, through ``skyhop_command_runner`` on the owning plugin.
    """
    ctx: BackendContext

    def runner_factory(handle: ClusterHandle, node: NodeInfo) -> CommandRunner:
        return backends.call(backend, "skyhop_command_runner", ctx=ctx, handle=handle, node=node)

    kwargs: dict[str, Any] = {
        "state_dir": f"{persistent_path.rstrip('/')}/backends/{backend}",
        "persistent_path": persistent_path,
        "config": config or {},
        "user_name": "conformance",
        "user_hash": "c0nf0rm4",
    }
    if log is not None:
        kwargs["log"] = log
    if "runner_factory" in attrs.fields_dict(BackendContext):
        kwargs["runner_factory"] = runner_factory
    ctx = BackendContext(**kwargs)
    return ctx


class BackendHarness:
    """Calls one backend's hooks like the core does, and checks what comes back."""

    def __init__(
        self,
        backends: Backends,
        backend: str,
        ctx: BackendContext,
        resources: Any,
        timeouts: Timeouts = Timeouts(),
    ) -> None:
        self.backends = backends
        self.backend = backend
        self.ctx = ctx
        self.resources = resources
        self.timeouts = timeouts
        #: Clusters provisioned and not yet downed: name -> latest handle.
        self.live: dict[str, ClusterHandle] = {}

    @property
    def info(self) -> BackendInfo:
        return self.backends.info(self.backend)

    def fail(self, hook: str, message: str) -> ConformanceError:
        return ConformanceError(f"[backend {self.backend!r}] {hook}: {message}")

    # --- calling hooks -------------------------------------------------------------

    async def call(self, hook: str, timeout: float | None = None, **kwargs: Any) -> Any:
        """Await ``hook`` on the backend's plugin, failing if it is not async or too slow."""
        result = self.backends.call(self.backend, hook, ctx=self.ctx, **kwargs)
        if not inspect.isawaitable(result):
            raise self.fail(
                hook,
                f"returned {result!r} instead of an awaitable. Async hooks must be written "
                "as `async def` (see docs/plugin_hooks.md, calling rules).",
            )
        limit = timeout or self.timeouts.call
        with trio.move_on_after(limit):
            return await result
        raise self.fail(hook, f"did not return within {limit:.0f} s.")

    async def check(self) -> CheckResult:
        result = await self.call("skyhop_check")
        if not isinstance(result, CheckResult):
            raise self.fail("skyhop_check", f"returned {result!r}, expected a CheckResult.")
        if result.backend != self.backend:
            raise self.fail(
                "skyhop_check",
                f"CheckResult.backend is {result.backend!r}, expected {self.backend!r}.",
            )
        return result

    async def offers(self, resources: Any | None = None) -> list[Offer]:
        resources = self.resources if resources is None else resources
        offers = await self.call("skyhop_offers", resources=resources)
        if not isinstance(offers, list) or not all(isinstance(o, Offer) for o in offers):
            raise self.fail("skyhop_offers", f"returned {offers!r}, expected a list of Offer.")
        return offers

    async def best_offer(self) -> Offer:
        offers = [o for o in await self.offers() if self.resources.fits(o, pooled=True)]
        if not offers:
            raise self.fail(
                "skyhop_offers",
                f"no offer fits {self.resources}; the conformance suite cannot provision. "
                "Return offers that fit, or override the `conformance_resources` fixture.",
            )
        return min(offers, key=lambda o: (o.price, o.cpus))

    # --- cluster lifecycle ---------------------------------------------------------

    def cluster_name(self, tag: str) -> str:
        """A fresh, valid cluster name (lowercase, short enough for any backend)."""
        return f"conf-{tag}-{secrets.token_hex(3)}"

    async def provision(
        self, name: str, num_nodes: int = 1, ports: Sequence[int] = ()
    ) -> ClusterHandle:
        offer = await self.best_offer()
        request = ProvisionRequest(
            cluster_name=name,
            num_nodes=num_nodes,
            resources=self.resources,
            offer=offer,
            ports=tuple(ports),
            previous=self.live.get(name),
        )
        handle = await self.call("skyhop_provision", self.timeouts.provision, request=request)
        self.check_handle("skyhop_provision", handle, name, num_nodes)
        self.live[name] = handle
        return handle

    async def provision_offer(
        self, name: str, offer: Offer, num_nodes: int = 1,
        previous: ClusterHandle | None = None,
    ) -> ClusterHandle:  # fmt: skip
        """Provision ``name`` on exactly ``offer`` (as one failover attempt does)."""
        request = ProvisionRequest(
            cluster_name=name, num_nodes=num_nodes, resources=self.resources, offer=offer,
            previous=previous,
        )  # fmt: skip
        handle = await self.call("skyhop_provision", self.timeouts.provision, request=request)
        self.check_handle("skyhop_provision", handle, name, num_nodes)
        self.live[name] = handle
        return handle

    def node_less_handle(self, name: str, offer: Offer) -> ClusterHandle:
        """The handle the core downs a cluster with when no provision returned one: no
        nodes, the cluster's name and the place it was being made in."""
        return ClusterHandle(
            cluster_name=name, backend=self.backend, nodes=(), region=offer.region,
            zone=offer.zone,
        )  # fmt: skip

    def expect(self, name: str, offer: Offer) -> None:
        """Remember ``name`` for :meth:`cleanup` before provisioning it, so that a
        provision that fails or is cancelled is still torn down (with a node-less handle)."""
        self.live.setdefault(name, self.node_less_handle(name, offer))

    def check_handle(self, hook: str, handle: Any, name: str, num_nodes: int) -> None:
        """The handle describes ``num_nodes`` nodes of cluster ``name`` on this backend."""
        if not isinstance(handle, ClusterHandle):
            raise self.fail(hook, f"returned {handle!r}, expected a ClusterHandle.")
        if handle.cluster_name != name:
            raise self.fail(
                hook, f"handle.cluster_name is {handle.cluster_name!r}, expected {name!r}."
            )
        if handle.backend != self.backend:
            raise self.fail(
                hook, f"handle.backend is {handle.backend!r}, expected {self.backend!r}."
            )
        ranks = [node.rank for node in handle.nodes]
        if ranks != list(range(num_nodes)):
            raise self.fail(
                hook,
                f"node ranks are {ranks}, expected {list(range(num_nodes))}: one NodeInfo per "
                "node, in rank order, node 0 being the head.",
            )
        ids = [node.instance_id for node in handle.nodes]
        if len(set(ids)) != len(ids) or not all(ids):
            raise self.fail(hook, f"instance IDs {ids} must be non-empty and distinct.")
        for node in handle.nodes:
            if not (node.ip and node.runtime_dir and node.home and node.cpus > 0):
                raise self.fail(
                    hook,
                    f"node {node.rank} is incomplete ({node!r}): ip, runtime_dir and home must "
                    "be set and cpus positive.",
                )

    async def setup_runtime(self, handle: ClusterHandle) -> None:
        await self.call("skyhop_setup_runtime", self.timeouts.provision, handle=handle)

    async def query(self, handle: ClusterHandle) -> list[NodeStatus]:
        statuses = await self.call("skyhop_query", handle=handle)
        if not isinstance(statuses, list) or not all(isinstance(s, NodeStatus) for s in statuses):
            raise self.fail(
                "skyhop_query", f"returned {statuses!r}, expected a list of NodeStatus."
            )
        return statuses

    async def wait_for_nodes(
        self, handle: ClusterHandle, wanted: NodeState, *, gone_ok: bool = False
    ) -> list[NodeStatus]:
        """Poll ``skyhop_query`` until every node is ``wanted`` (or, with ``gone_ok``, none
        is reported)."""
        statuses: list[NodeStatus] = []
        with trio.move_on_after(self.timeouts.teardown):
            while True:
                statuses = await self.query(handle)
                if gone_ok and not statuses:
                    return statuses
                states = {s.rank: s.state for s in statuses}
                if sorted(states) == [n.rank for n in handle.nodes] and set(states.values()) == {
                    wanted
                }:
                    return statuses
                await trio.sleep(POLL_INTERVAL * 5)
        seen = ", ".join(f"rank {s.rank}: {s.state.value}" for s in statuses) or "no nodes"
        raise self.fail(
            "skyhop_query",
            f"expected every node of {handle.cluster_name!r} to be {wanted.value} "
            f"(one NodeStatus per node), got {seen} after {self.timeouts.teardown:.0f} s.",
        )

    async def stop(self, handle: ClusterHandle) -> None:
        await self.call("skyhop_stop", self.timeouts.teardown, handle=handle)

    async def start(self, handle: ClusterHandle) -> ClusterHandle:
        started = await self.call("skyhop_start", self.timeouts.provision, handle=handle)
        self.check_handle("skyhop_start", started, handle.cluster_name, len(handle.nodes))
        self.live[handle.cluster_name] = started
        return started

    async def down(self, handle: ClusterHandle) -> None:
        await self.call("skyhop_down", self.timeouts.teardown, handle=handle)
        self.live.pop(handle.cluster_name, None)

    async def open_ports(self, handle: ClusterHandle, ports: Sequence[int]) -> ClusterHandle:
        opened = await self.call(
            "skyhop_open_ports", self.timeouts.provision, handle=handle, ports=ports
        )
        self.check_handle("skyhop_open_ports", opened, handle.cluster_name, len(handle.nodes))
        self.live[handle.cluster_name] = opened
        return opened

    def runner(self, handle: ClusterHandle, node: NodeInfo) -> CommandRunner:
        runner = self.backends.call(
            self.backend, "skyhop_command_runner", ctx=self.ctx, handle=handle, node=node
        )
        if not isinstance(runner, CommandRunner):
            raise self.fail(
                "skyhop_command_runner",
                f"returned {runner!r}, expected a skyhop_core.runner.CommandRunner (it is "
                "synchronous: return the runner, do not connect).",
            )
        return runner

    @asynccontextmanager
    async def cleanup(self) -> AsyncIterator[BackendHarness]:
        """Down every cluster still live when the block exits, even when it failed.

        A teardown failure fails the test only when the block itself passed; otherwise it
        is printed, and the block's own error is the one reported.
        """
        try:
            yield self
        except BaseException:
            with trio.CancelScope(shield=True):
                leaks = await self._down_leftovers()
            if leaks:
                print(f"[backend {self.backend!r}] teardown after the failure: {leaks}")
            raise
        with trio.CancelScope(shield=True):
            leaks = await self._down_leftovers()
        if leaks:
            raise self.fail(
                "skyhop_down",
                f"could not tear down clusters the suite provisioned (they may have leaked): "
                f"{leaks}",
            )

    async def _down_leftovers(self) -> str:
        """Down every live cluster; describe the ones that failed ('' when none did)."""
        failures: list[str] = []
        for name, handle in list(self.live.items()):
            try:
                await self.down(handle)
            except Exception as exc:  # report every leak, not just the first
                failures.append(f"{name}: {type(exc).__name__}: {exc}")
        return "; ".join(failures)

    # --- jobs ------------------------------------------------------------------------

    async def submit(self, handle: ClusterHandle, run: str, num_nodes: int = 1) -> int:
        spec = JobSpec(
            name="conformance",
            run=run,
            num_nodes=num_nodes,
            username=self.ctx.user_name,
            user_hash=self.ctx.user_hash,
        )
        job_id = await self.call("skyhop_submit_job", handle=handle, job=spec)
        if not isinstance(job_id, int) or isinstance(job_id, bool):
            raise self.fail("skyhop_submit_job", f"returned {job_id!r}, expected the job ID (int).")
        return job_id

    async def queue(self, handle: ClusterHandle, skip_finished: bool = False) -> list[JobRecord]:
        jobs = await self.call("skyhop_queue", handle=handle, skip_finished=skip_finished)
        if not isinstance(jobs, list) or not all(isinstance(j, JobRecord) for j in jobs):
            raise self.fail("skyhop_queue", f"returned {jobs!r}, expected a list of JobRecord.")
        return jobs

    async def job(self, handle: ClusterHandle, job_id: int) -> JobRecord:
        for record in await self.queue(handle):
            if record.job_id == job_id:
                return record
        raise self.fail("skyhop_queue", f"job {job_id} is missing from the queue.")

    async def wait_for_job(
        self, handle: ClusterHandle, job_id: int, wanted: Iterable[JobStatus]
    ) -> JobRecord:
        wanted = set(wanted)
        record: JobRecord | None = None
        with trio.move_on_after(self.timeouts.job):
            while True:
                record = await self.job(handle, job_id)
                if record.status in wanted:
                    return record
                await trio.sleep(POLL_INTERVAL)
        names = sorted(s.value for s in wanted)
        last = record.status.value if record is not None else "unknown"
        raise self.fail(
            "skyhop_queue",
            f"job {job_id} did not reach {names} within {self.timeouts.job:.0f} s; "
            f"its last status was {last}.",
        )

    async def tail(
        self, handle: ClusterHandle, job_id: int | None, *, follow: bool = True, tail: int = 0
    ) -> tuple[JobStatus | None, str]:
        """Run ``skyhop_tail_logs``; return the status it ended with and the text it sent."""
        chunks: list[bytes] = []

        async def on_output(chunk: bytes) -> None:
            if not isinstance(chunk, bytes):
                raise self.fail("skyhop_tail_logs", f"on_output was given {chunk!r}; send bytes.")
            chunks.append(chunk)

        timeout = self.timeouts.job if follow else self.timeouts.call
        status = await self.call(
            "skyhop_tail_logs",
            timeout,
            handle=handle,
            job_id=job_id,
            follow=follow,
            tail=tail,
            on_output=on_output,
        )
        if status is not None and not isinstance(status, JobStatus):
            raise self.fail(
                "skyhop_tail_logs", f"returned {status!r}, expected a JobStatus or None."
            )
        return status, b"".join(chunks).decode(errors="replace")

    async def cancel(self, handle: ClusterHandle, job_ids: Sequence[int] | None) -> list[int]:
        cancelled = await self.call(
            "skyhop_cancel_jobs", handle=handle, job_ids=job_ids, user_hash=None
        )
        if not isinstance(cancelled, list):
            raise self.fail(
                "skyhop_cancel_jobs", f"returned {cancelled!r}, expected a list of IDs."
            )
        return cancelled

    async def runtime_health(self, handle: ClusterHandle) -> Any:
        from skyhop_core.models.records import RuntimeHealth

        health = await self.call("skyhop_runtime_health", handle=handle)
        if not isinstance(health, RuntimeHealth):
            raise self.fail("skyhop_runtime_health", f"returned {health!r}, not a RuntimeHealth.")
        return health

    async def idle_seconds(self, handle: ClusterHandle) -> float:
        idle = await self.call("skyhop_idle_seconds", handle=handle, wait_for="jobs_and_ssh")
        if not isinstance(idle, int | float) or idle < 0:
            raise self.fail("skyhop_idle_seconds", f"returned {idle!r}, expected seconds >= 0.")
        return float(idle)

    async def run_echo_job(self, handle: ClusterHandle, num_nodes: int = 1) -> str:
        """Submit the echo job, follow its log to the end; return the log text."""
        job_id = await self.submit(handle, ECHO_RUN, num_nodes)
        status, text = await self.tail(handle, job_id, follow=True)
        if status is not JobStatus.SUCCEEDED:
            record = await self.job(handle, job_id)
            raise self.fail(
                "skyhop_tail_logs",
                f"following job {job_id} ({ECHO_RUN!r}) ended with {status}, expected "
                f"SUCCEEDED (queue says {record.status.value}). Its log:\n{text}",
            )
        for rank in range(num_nodes):
            if f"conformance-{rank}" not in text:
                raise self.fail(
                    "skyhop_tail_logs",
                    f"the log of job {job_id} lacks 'conformance-{rank}' (the output of "
                    f"rank {rank}; SKYHOP_NODE_RANK must be set on every node). Log:\n{text}",
                )
        return text
