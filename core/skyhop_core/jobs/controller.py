"""The controller of one managed job: a trio task in the API server that owns the job.

It launches the job's cluster ``<name>-<job_id>`` through the same optimizer and
failover as ``launch``, submits the task, watches the cluster (the backend's
``skyhop_query``) and the job (the agent's queue), copies the job's output under the
persistent path as it runs, recovers after a preemption or (within
``max_restarts_on_errors``) a failure, and tears the cluster down however the job ends,
with the task's ``persistent: false`` buckets (a recovery keeps them for the new cluster).

Preemption vs user failure: the cluster is preempted when a node is not RUNNING (or
gone), or the agent cannot be reached on a cluster the backend still reports up for
several polls; the job failed when the agent says FAILED and the cluster is still healthy
``SKYHOP_JOBS_FAILURE_GRACE_SECONDS`` (5) later (a dying machine may kill the job before
its node goes).
Preemptions always recover and never count against restarts.

Every decision is written to the job's row before it is acted on, so a restarted server
resumes the job by these rules (:meth:`Controller.resume_point`):

- RUNNING with a submitted job: keep watching the same cluster.
- STARTING / RECOVERING: terminate whatever may be half-made, then launch again.
- CANCELLING: clean up again (down the cluster), then CANCELLED.
"""

from __future__ import annotations

import contextlib
import os
import time
from typing import TYPE_CHECKING, Any

import trio

from skyhop_core.exceptions import (
    ClusterDoesNotExist,
    SkyhopError,
    reason_of,
)
from skyhop_core.jobs import launching, pipeline
from skyhop_core.jobs import state as js
from skyhop_core.jobs.output import ControllerLogWriter
from skyhop_core.models.records import NodeState
from skyhop_core.models.status import JobStatus, ManagedJobStatus
from skyhop_core.requests.context import RequestContext, User

if TYPE_CHECKING:
    from skyhop_core.jobs.service import JobsService

S = ManagedJobStatus

#: Consecutive failed agent calls on a cluster the backend reports up that count as a
#: preemption (the head is unreachable).
AGENT_FAILURES_AS_PREEMPTION = 3


class Finished(Exception):
    """The job reached a terminal status (raised out of the controller's main loop)."""

    def __init__(
        self, status: ManagedJobStatus, reason: str | None = None, *, teardown: bool = True
    ) -> None:
        super().__init__(reason or status.value)
        self.status = status
        self.reason = reason
        #: False when nothing of this job's was made (a failed precheck): a cluster with
        #: the job's name is then someone else's.
        self.teardown = teardown


def _wrapped_finish(exc: Exception) -> Finished | None:
    """The Finished a nursery wrapped into an exception group, if that is all it holds."""
    if isinstance(exc, ExceptionGroup) and len(exc.exceptions) == 1:
        inner = exc.exceptions[0]
        if isinstance(inner, Finished):
            return inner
    return None


class Controller:
    """Drives one job; started by :class:`~skyhop_core.jobs.service.JobsService`."""

    def __init__(self, service: JobsService, row: Any) -> None:
        self.service = service
        self.job_id: int = row.job_id
        self.cluster_name: str = row.cluster_name
        self.scope = trio.CancelScope()
        #: Set when the user cancels (not when the server shuts down).
        self.cancelled = False
        #: Set by the scheduler when this job may use a launch slot to recover.
        self.slot_granted = trio.Event()
        #: The exit codes of the watched job's failed ranks, as its agent last said.
        self.exit_codes: list[int] = []
        services = service.services
        self.writer = ControllerLogWriter(
            service.hub, f"{self.job_id}.controller", getattr(service, "log_flusher", None)
        )
        self.ctx = RequestContext(
            request_id=row.task_id,
            name="jobs_controller",
            user=User(row.user_name, row.user_hash),
            services=services,
            writer=self.writer,
        )

    # --- helpers --------------------------------------------------------------------

    def log(self, message: str) -> None:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime())
        self.ctx.log(f"{stamp} [job {self.job_id}] {message}")

    async def row(self) -> Any:
        return await self.service.services.store.run(js.get, self.job_id)

    async def update(self, **values: Any) -> None:
        await self.service.services.store.run(lambda c: js.update(c, self.job_id, **values))

    async def set_status(self, status: ManagedJobStatus, **values: Any) -> None:
        await self.service.services.store.run(
            lambda c: js.set_status(c, self.job_id, status, **values)
        )

    # --- the task ---------------------------------------------------------------------

    async def run(self) -> None:
        """The controller's whole life: main loop, then cleanup (shielded)."""
        final: Finished | None = None
        try:
            with self.scope:
                await self._main()
        except Finished as done:
            final = done
        except Exception as exc:
            final = _wrapped_finish(exc)
            if final is None:
                reason = reason_of(exc)
                self.log(f"Controller error: {reason}")
                final = Finished(S.FAILED_CONTROLLER, reason)
        finally:
            with trio.CancelScope(shield=True):
                await self._finish(final)

    async def _finish(self, final: Finished | None) -> None:
        row = await self.row()
        user_cancel = self.cancelled or (row is not None and row.cancel_requested)
        if final is None and not user_cancel:
            # The server is shutting down: leave the row (and the cluster) as they are
            # for the next server to resume.
            self.writer.close()
            self.service.forget(self.job_id)
            return
        if user_cancel and (final is None or final.status is not S.SUCCEEDED):
            final = Finished(S.CANCELLED, None)
        assert final is not None
        try:
            if final.teardown:
                await self._teardown(ended=True)
        except Exception as exc:
            self.log(f"Teardown of {self.cluster_name!r} failed: {exc}")
        values: dict[str, Any] = {}
        if final.reason is not None:
            values["failure_reason"] = final.reason
        await self.service.services.store.run(lambda c: js.stop_recovering(c, self.job_id))
        self.log(f"Job is {final.status.value}" + (f": {final.reason}" if final.reason else "."))
        # The whole log is on disk before the row says the job ended.
        await self.writer.flush()
        await self.set_status(final.status, **values)
        self.service.output_writer(self.job_id).close()
        self.writer.close()
        self.service.forget(self.job_id)
        self.service.wake()

    async def _teardown(self, cluster_name: str | None = None, *, ended: bool = False) -> None:
        """Tear the (current, or named) cluster down. ``ended``: its task is over, so its
        ``persistent: false`` buckets go too (a recovery keeps them for the next
        cluster); they are deleted even when the cluster is already gone."""
        from skyhop_core.ops import clusters as ops_clusters
        from skyhop_core.ops import params as P

        name = cluster_name or self.cluster_name
        with contextlib.suppress(ClusterDoesNotExist):
            await ops_clusters.down(self.ctx, P.ClusterParams(name, purge=True),
                                    delete_buckets=False)  # fmt: skip
            self.log(f"Cluster {name!r} is torn down.")
        if ended:
            from skyhop_core.storage.mounting import delete_cluster_buckets

            await delete_cluster_buckets(self.ctx, name)

    async def _main(self) -> None:
        row = await self.row()
        status = S(row.status)
        task = self.service.load_task(row)
        if status is S.CANCELLING or row.cancel_requested:
            self.cancelled = True
            raise Finished(S.CANCELLED)
        previous = pipeline.previous_cluster(row)
        if previous is not None:
            # The pipeline's last task may have ended just before a restart, its
            # cluster not yet gone (idempotent: usually there is nothing to do).
            with trio.CancelScope(shield=True):
                await self._teardown(previous, ended=True)
        need_launch = True
        handle = None
        if status is S.RUNNING and row.agent_job_id is not None:
            handle = await launching.current_handle(self)
            if handle is not None:
                self.log(f"Resuming: watching job {row.agent_job_id} on {self.cluster_name!r}.")
                need_launch = False
        elif row.launch_attempts > 0 or status is S.RECOVERING:
            # A launch (or recovery) was under way: what it made may be half-made.
            self.log("Resuming: terminating whatever the interrupted launch left behind.")
            await self._teardown()
        if need_launch and status is S.RUNNING:
            await self._start_recovery(restart=False, reason="the cluster is gone")
        while True:
            row = await self.row()
            if need_launch:
                # A recovery, or a pipeline's next task, asks for a launch slot first.
                if S(row.status) is S.RECOVERING or row.schedule_state in (
                    js.ALIVE, js.ALIVE_WAITING
                ):
                    await self._wait_for_launch_slot()
                handle = await launching.launch(self, task, row)
                need_launch = False
                row = await self.row()
            assert handle is not None
            outcome = await self._watch(handle, row.agent_job_id, row.output_offset)
            row = await self.row()
            if outcome is None:
                await self._start_recovery(restart=False, reason="the cluster was preempted")
                need_launch = True
                continue
            if outcome is JobStatus.SUCCEEDED:
                if row.tasks is not None and row.current_task + 1 < len(row.tasks):
                    task = await self._next_task(row)
                    need_launch = True
                    continue
                raise Finished(S.SUCCEEDED)
            if outcome is JobStatus.CANCELLED:
                raise Finished(S.CANCELLED, "The job was cancelled on its cluster.")
            failed = S.FAILED_SETUP if outcome is JobStatus.FAILED_SETUP else S.FAILED
            what = "setup" if failed is S.FAILED_SETUP else "run"
            matched = sorted(set(self.exit_codes) & set(row.recover_on_exit_codes or []))
            if matched:
                # SkyPilot's rule: a listed exit code always recovers, and does not
                # count against max_restarts_on_errors.
                await self._start_recovery(
                    restart=False,
                    reason=f"the job's {what} exited with code {matched[0]}, which is in "
                    "recover_on_exit_codes",
                )
                need_launch = True
                continue
            if row.restart_count < row.max_restarts_on_errors:
                await self._start_recovery(
                    restart=True,
                    reason=f"the job's {what} failed (restart {row.restart_count + 1} of "
                    f"{row.max_restarts_on_errors})",
                )
                need_launch = True
                continue
            raise Finished(failed, f"The job's {what} failed ({outcome.value}).")

    async def _next_task(self, row: Any) -> tuple[Any, Any]:
        """The pipeline's current task succeeded: make the next one current (one
        statement), tear the finished task's cluster down, and return the next task."""
        finished = self.cluster_name
        new = await self.service.services.store.run(pipeline.advance, self.job_id)
        if new is None:  # cancelled meanwhile: the cancel scope ends the job
            raise Finished(S.CANCELLED)
        self.log(
            f"Task {row.current_task} ({row.tasks[row.current_task]['name']}) SUCCEEDED; "
            f"next: task {new.current_task} ({new.tasks[new.current_task]['name']})."
        )
        with trio.CancelScope(shield=True):
            await self._teardown(finished, ended=True)
        self.cluster_name = new.cluster_name
        self.ctx.request_id = new.task_id  # the task's SKYHOP_TASK_ID
        return self.service.load_task(new)

    async def _start_recovery(self, *, restart: bool, reason: str) -> None:
        self.log(f"Recovering: {reason}.")
        await self.service.services.store.run(
            lambda c: js.start_recovering(c, self.job_id, restart=restart)
        )
        await self._teardown()

    async def _wait_for_launch_slot(self) -> None:
        # The event first: a grant that lands after the row says ALIVE_WAITING sets it.
        self.slot_granted = trio.Event()
        store = self.service.services.store
        if await store.run(js.want_launch_slot, self.job_id):
            return
        self.service.wake()
        self.log("Waiting for a launch slot to recover.")
        await self.slot_granted.wait()

    # --- watching ---------------------------------------------------------------------

    async def _watch(self, handle: Any, agent_job_id: int, output_offset: int) -> JobStatus | None:
        """Watch until the job ends (its status) or the cluster is lost (None)."""
        poll = self.service.settings.poll_seconds
        tail_done = trio.Event()
        # One backend context per attempt, not one per poll (10,000 jobs poll).
        bctx = self.service.services.backend_ctx(handle.backend, self.ctx)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._copy_output, handle, agent_job_id, output_offset, tail_done)
            failures = missing = 0
            outcome: JobStatus | None = None
            while True:
                if tail_done.is_set():
                    await trio.sleep(poll)
                else:
                    # The copy of the job's log ends when the job does: look at once.
                    with trio.move_on_after(poll):
                        await tail_done.wait()
                # No row read per poll: a cancel arrives through the cancel scope (from
                # this replica, or from another one through the lease loop).
                if not await self._healthy(handle, bctx):
                    self.log(f"Cluster {self.cluster_name!r} is not UP (preempted?).")
                    break
                try:
                    status = await self._agent_status(handle, agent_job_id, bctx)
                except Exception as exc:
                    failures += 1
                    self.log(f"The cluster's agent did not answer ({exc}).")
                    if failures >= AGENT_FAILURES_AS_PREEMPTION:
                        break
                    continue
                failures = 0
                # An agent that answers but no longer knows the job: its node was wiped
                # and made again (a reset machine, a replaced node), so the job is lost.
                missing = missing + 1 if status is None else 0
                if missing >= AGENT_FAILURES_AS_PREEMPTION:
                    self.log(f"The cluster's agent no longer knows job {agent_job_id}.")
                    break
                if status is not None and status.is_terminal():
                    seen = trio.current_time()
                    with trio.move_on_after(max(5.0, 10 * poll)):
                        await tail_done.wait()
                    # A machine dies over time: its job's processes may die (and the
                    # agent say FAILED) before the backend sees the node go. A failure
                    # is the job's only if the cluster is still up a grace period on.
                    if status.is_failed():
                        await trio.sleep_until(seen + self.service.settings.failure_grace)
                    if status.is_failed() and not await self._healthy(handle, bctx):
                        self.log(
                            f"Cluster {self.cluster_name!r} is not UP after the job "
                            f"ended {status.value} (preempted?)."
                        )
                        break
                    outcome = status
                    break
            nursery.cancel_scope.cancel()
        return outcome

    async def _healthy(self, handle: Any, bctx: Any) -> bool:
        # Only the backend is asked (no database read per poll): a cluster torn down
        # behind the controller's back has no nodes left either.
        services = self.service.services
        try:
            nodes = await services.backends.call(
                handle.backend, "skyhop_query", ctx=bctx, handle=handle
            )
        except SkyhopError:
            return True  # a backend that cannot tell: trust the agent's answers
        return len(nodes) == len(handle.nodes) and all(n.state is NodeState.RUNNING for n in nodes)

    async def _agent_status(self, handle: Any, agent_job_id: int, bctx: Any) -> JobStatus | None:
        services = self.service.services
        with trio.fail_after(max(30.0, 5 * self.service.settings.poll_seconds)):
            jobs = await services.backends.call(
                handle.backend, "skyhop_queue", ctx=bctx, handle=handle, skip_finished=False
            )
        for job in jobs:
            if job.job_id == agent_job_id:
                self.exit_codes = list(getattr(job, "exit_codes", None) or [])
                return job.status  # type: ignore[no-any-return]
        return None

    async def _copy_output(
        self, handle: Any, agent_job_id: int, output_offset: int, done: trio.Event
    ) -> None:
        """Copy the job's log into its output file under the persistent path as it
        grows (from the start of this attempt, so a resumed controller rewrites the
        attempt's part instead of repeating it)."""
        services = self.service.services
        writer = self.service.output_writer(self.job_id)
        path = self.service.hub.path(f"{self.job_id}.output")
        with contextlib.suppress(FileNotFoundError):
            if os.path.getsize(path) > output_offset:
                writer.reopen_at(output_offset)
        bctx = services.backend_ctx(handle.backend, self.ctx)

        async def on_output(data: bytes) -> None:
            writer.write(data)

        try:
            await services.backends.call(
                handle.backend, "skyhop_tail_logs", ctx=bctx, handle=handle,
                job_id=agent_job_id, follow=True, tail=0, on_output=on_output,
            )
        except Exception as exc:  # the cluster went away mid-stream
            self.log(f"Copying the job's output stopped: {exc}")
        finally:
            done.set()
