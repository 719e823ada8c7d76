"""A benchmark-only backend whose clusters and jobs are in-memory timers.

Loaded into a bench server with ``SKYHOP_PLUGINS=bench.memory_backend`` (the repository
root on PYTHONPATH). Provisioning returns at once, a job is RUNNING for
``MEMORY_JOB_SECONDS`` (default 600) and then SUCCEEDED, and nothing runs anywhere, so
what a managed-jobs figure measures on it is the server's own cost: the controllers,
the scheduler and the state store.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Sequence

import trio

from skyhop_core.context import BackendContext
from skyhop_core.hookspecs import hookimpl
from skyhop_core.models.records import (
    BackendInfo,
    CheckResult,
    ClusterHandle,
    Feature,
    JobRecord,
    JobSpec,
    NodeInfo,
    NodeState,
    NodeStatus,
    Offer,
    ProvisionRequest,
)
from skyhop_core.models.status import JobStatus

NAME = "memory"
JOB_SECONDS = float(os.environ.get("MEMORY_JOB_SECONDS", "600"))

#: cluster name -> {job_id: (submitted_at, ends_at, cancelled)}
_CLUSTERS: dict[str, dict[int, list[float]]] = {}


@hookimpl
def skyhop_backend_info() -> BackendInfo:
    return BackendInfo(NAME, "Memory (benchmark)", frozenset({Feature.CUSTOM_JOBS}))


@hookimpl
async def skyhop_check(ctx: BackendContext) -> CheckResult:
    return CheckResult(NAME, True)


@hookimpl
async def skyhop_offers(ctx: BackendContext, resources: object) -> list[Offer]:
    return [Offer(NAME, "mem-1", 4, 16, price=0.01)]


@hookimpl
async def skyhop_provision(ctx: BackendContext, request: ProvisionRequest) -> ClusterHandle:
    _CLUSTERS.setdefault(request.cluster_name, {})
    nodes = tuple(
        NodeInfo(rank, "127.0.0.1", f"{request.cluster_name}-{rank}", 4, 16, "/nonexistent",
                 "/nonexistent")
        for rank in range(request.num_nodes)
    )
    return ClusterHandle(request.cluster_name, NAME, nodes)


@hookimpl
async def skyhop_setup_runtime(ctx: BackendContext, handle: ClusterHandle) -> None:
    return None


@hookimpl
async def skyhop_query(ctx: BackendContext, handle: ClusterHandle) -> list[NodeStatus]:
    if _PROFILE:
        _profile_step()
    state = NodeState.RUNNING if handle.cluster_name in _CLUSTERS else NodeState.TERMINATED
    return [NodeStatus(n.rank, state) for n in handle.nodes]


@hookimpl
async def skyhop_down(ctx: BackendContext, handle: ClusterHandle) -> None:
    _CLUSTERS.pop(handle.cluster_name, None)


@hookimpl
async def skyhop_submit_job(ctx: BackendContext, handle: ClusterHandle, job: JobSpec) -> int:
    jobs = _CLUSTERS.setdefault(handle.cluster_name, {})
    job_id = len(jobs) + 1
    now = time.time()
    jobs[job_id] = [now, now + JOB_SECONDS, 0.0]
    return job_id


def _status(entry: list[float]) -> JobStatus:
    if entry[2]:
        return JobStatus.CANCELLED
    return JobStatus.SUCCEEDED if time.time() >= entry[1] else JobStatus.RUNNING


@hookimpl
async def skyhop_queue(
    ctx: BackendContext, handle: ClusterHandle, skip_finished: bool
) -> list[JobRecord]:
    jobs = _CLUSTERS.get(handle.cluster_name, {})
    return [
        JobRecord(job_id, "bench", "bench", "bench", entry[0], entry[0], None, "mem-1",
                  _status(entry), "")
        for job_id, entry in sorted(jobs.items(), reverse=True)
    ]


@hookimpl
async def skyhop_tail_logs(
    ctx: BackendContext, handle: ClusterHandle, job_id: int | None, follow: bool, tail: int,
    on_output: object,
) -> JobStatus | None:
    jobs = _CLUSTERS.get(handle.cluster_name, {})
    entry = jobs.get(job_id or max(jobs, default=0))
    if entry is None:
        return None
    while follow and _status(entry) is JobStatus.RUNNING:
        await trio.sleep(max(0.0, min(60.0, entry[1] - time.time())))
    return _status(entry)


@hookimpl
async def skyhop_cancel_jobs(
    ctx: BackendContext, handle: ClusterHandle, job_ids: Sequence[int] | None,
    user_hash: str | None,
) -> list[int]:
    jobs = _CLUSTERS.get(handle.cluster_name, {})
    cancelled = []
    for job_id, entry in jobs.items():
        if (job_ids is None or job_id in job_ids) and _status(entry) is JobStatus.RUNNING:
            entry[2] = 1.0
            cancelled.append(job_id)
    return cancelled


@hookimpl
async def skyhop_idle_seconds(ctx: BackendContext, handle: ClusterHandle) -> float:
    return 0.0


def _trace_allocations(path: str) -> None:
    """Profiling aid (``MEMORY_TRACEMALLOC=<file>``): trace allocations; when
    ``<file>.go`` appears, write the top allocation sites to ``<file>``."""
    import threading
    import tracemalloc

    tracemalloc.start(8)

    def wait() -> None:
        while not os.path.exists(path + ".go"):
            time.sleep(0.5)
        snapshot = tracemalloc.take_snapshot()
        with open(path, "w") as f:
            for stat in snapshot.statistics("traceback")[:25]:
                f.write(f"{stat.size / 1e6:.1f} MB in {stat.count} blocks\n")
                f.write("\n".join(stat.traceback.format()) + "\n\n")

    threading.Thread(target=wait, daemon=True).start()


_PROFILE = os.environ.get("MEMORY_PROFILE", "")
_profiler: list[object] = []


def _profile_step() -> None:
    """Profiling aid (``MEMORY_PROFILE=<file>``): cProfile the event loop's thread from
    when ``<file>.start`` appears until ``<file>.stop`` does, then write the stats to
    ``<file>`` (checked at each ``skyhop_query``, which runs on the event loop)."""
    import cProfile

    if not _profiler and os.path.exists(_PROFILE + ".start"):
        prof = cProfile.Profile()
        prof.enable()
        _profiler.append(prof)
    elif len(_profiler) == 1 and os.path.exists(_PROFILE + ".stop"):
        prof = _profiler[0]
        assert isinstance(prof, cProfile.Profile)
        prof.disable()
        prof.dump_stats(_PROFILE)
        _profiler.append(None)


class _SlowSteps(trio.abc.Instrument):
    """Profiling aid (``MEMORY_SLOW_STEPS=<file>``): a trio instrument that appends one
    line per event-loop task step longer than ``MEMORY_SLOW_STEP_MS`` (default 10) to
    ``<file>``: its length, the task, where it resumed and where it stopped."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.threshold = float(os.environ.get("MEMORY_SLOW_STEP_MS", "10")) / 1000
        self.started = 0.0
        self.resumed = ""

    @staticmethod
    def _where(task: trio.lowlevel.Task) -> str:
        coro: object = task.coro
        frame = None
        while coro is not None:
            frame = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None) or frame
            coro = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None)
        if frame is None:
            return "?"
        return f"{frame.f_code.co_filename.rsplit('/', 2)[-1]}:{frame.f_lineno}"

    def before_task_step(self, task: trio.lowlevel.Task) -> None:
        self.started = time.perf_counter()
        self.resumed = self._where(task)

    def after_task_step(self, task: trio.lowlevel.Task) -> None:
        took = time.perf_counter() - self.started
        if took >= self.threshold:
            with open(self.path, "a") as f:
                f.write(f"{time.time():.3f} {took * 1000:.1f} ms {task.name} "
                        f"{self.resumed} -> {self._where(task)}\n")


if os.environ.get("MEMORY_SLOW_STEPS"):
    # The server loads its plugins inside trio.run; imported outside it, there is
    # nothing to instrument.
    with contextlib.suppress(RuntimeError):
        trio.lowlevel.add_instrument(_SlowSteps(os.environ["MEMORY_SLOW_STEPS"]))

if os.environ.get("MEMORY_TRACEMALLOC"):
    _trace_allocations(os.environ["MEMORY_TRACEMALLOC"])
