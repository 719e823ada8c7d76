"""The managed-jobs service of an API server: the scheduler and every job's controller.

One nursery (started from ``server/main.py`` next to the request engine) holds:

- the scheduler, which gives launch slots to waiting jobs. Slots are counted in the
  database (jobs holding a launch slot, jobs alive), so HA replicas share the limits
  ``SKYHOP_JOBS_MAX_LAUNCHES`` and ``SKYHOP_JOBS_MAX_RUNNING``; the waiting job with the
  highest ``resources.priority`` (then the oldest) goes first. It wakes on events — a
  submit, a launch that finished, a job that ended — not on a timer (a slow fallback
  picks up what other replicas freed);
- the lease loop, which renews this replica's hold on its jobs and takes over jobs whose
  owner died (lease expired or replica deregistered), resuming them by the controller's
  written rules;
- one controller task per job this replica owns, each in its own cancel scope.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
import trio

from skyhop_core.jobs import state as js
from skyhop_core.jobs.output import LogFlusher, OutputWriter
from skyhop_core.requests.logs import LogHub

if TYPE_CHECKING:
    from skyhop_core.jobs.controller import Controller
    from skyhop_core.requests.engine import Engine
    from skyhop_core.services import Services


def _env_float(name: str, default: float) -> float:
    return float(os.environ.get(name, default))


@attrs.frozen
class JobsSettings:
    """Tunables; tests shrink the intervals through the environment."""

    max_launching: int = 8
    max_running: int = 10_000
    #: How often a controller looks at its cluster and job (SkyPilot: every 20 s).
    poll_seconds: float = 20.0
    #: How long after the agent says a job failed its cluster is looked at again: a
    #: machine being preempted may kill the job before the cloud reports it gone
    #: (SkyPilot waits 5 s too).
    failure_grace: float = 5.0
    launch_retries: int = 5
    retry_base: float = 10.0
    retry_factor: float = 2.0
    retry_cap: float = 300.0

    @classmethod
    def from_env(cls) -> JobsSettings:
        return cls(
            max_launching=int(_env_float("SKYHOP_JOBS_MAX_LAUNCHES", 8)),
            max_running=int(_env_float("SKYHOP_JOBS_MAX_RUNNING", 10_000)),
            poll_seconds=_env_float("SKYHOP_JOBS_POLL_SECONDS", 20.0),
            failure_grace=_env_float("SKYHOP_JOBS_FAILURE_GRACE_SECONDS", 5.0),
            launch_retries=int(_env_float("SKYHOP_JOBS_LAUNCH_RETRIES", 5)),
            retry_base=_env_float("SKYHOP_JOBS_RETRY_BASE", 10.0),
            retry_factor=_env_float("SKYHOP_JOBS_RETRY_FACTOR", 2.0),
            retry_cap=_env_float("SKYHOP_JOBS_RETRY_CAP", 300.0),
        )


class JobsService:
    """Start with ``await nursery.start(service.serve)`` after the engine is serving."""

    def __init__(self, services: Services, engine: Engine, settings: JobsSettings | None = None):
        self.services = services
        self.engine = engine
        self.settings = settings or JobsSettings.from_env()
        self.directory = services.persistent_path / "managed_jobs"
        self.hub = LogHub(self.directory)
        #: Writes every controller's log lines in batches, off the event loop.
        self.log_flusher = LogFlusher()
        self.controllers: dict[int, Controller] = {}
        self._writers: dict[int, OutputWriter] = {}
        self._wake = trio.Event()
        self._nursery: trio.Nursery | None = None

    @property
    def owner(self) -> str:
        return self.engine.replica.server_id

    @property
    def lease(self) -> float:
        return self.engine.replica.lease

    # --- files --------------------------------------------------------------------------

    def secrets_path(self, job_id: int) -> Path:
        return self.directory / f"{job_id}.secrets.json"

    def save_secrets(self, job_id: int, secrets: dict[str, str] | list[dict[str, str]]) -> None:
        """Secret values live in a 0600 file, never in the job's row or its logs (a
        pipeline's: a list, one mapping per task)."""
        if not secrets or (isinstance(secrets, list) and not any(secrets)):
            return
        path = self.secrets_path(job_id)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(secrets, f)

    def load_task(self, row: Any) -> tuple[Any, Any]:
        """The current task (of a pipeline: the one at ``current_task``), parsed, with
        its secret values."""
        from skyhop_core.ops.common import parse_task

        config = dict(row.task)
        path = self.secrets_path(row.job_id)
        if path.exists():
            saved = json.loads(path.read_text())
            if isinstance(saved, list):
                saved = saved[row.current_task] if row.current_task < len(saved) else {}
            config["secrets"] = {**(config.get("secrets") or {}), **saved}
        return parse_task(config)

    def output_writer(self, job_id: int) -> OutputWriter:
        writer = self._writers.get(job_id)
        if writer is None:
            writer = self._writers[job_id] = OutputWriter(self.hub, f"{job_id}.output")
        return writer

    # --- lifecycle ----------------------------------------------------------------------

    async def serve(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            await nursery.start(self.log_flusher.run)
            await self._take_over()
            nursery.start_soon(self._schedule_loop)
            nursery.start_soon(self._lease_loop)
            task_status.started()
            await trio.sleep_forever()

    def wake(self) -> None:
        """Make the scheduler look at the waiting jobs now."""
        self._wake.set()

    def forget(self, job_id: int) -> None:
        self.controllers.pop(job_id, None)
        self._writers.pop(job_id, None)

    def _start(self, row: Any) -> None:
        assert self._nursery is not None, "jobs service not started"
        if row.job_id in self.controllers:
            return
        # Imported with the first job: the controller's launch/recovery modules are not
        # part of the server's start-up.
        from skyhop_core.jobs.controller import Controller

        controller = Controller(self, row)
        self.controllers[row.job_id] = controller
        self._nursery.start_soon(controller.run)

    def cancel_local(self, job_id: int) -> bool:
        """Cancel a controller this replica runs (its cleanup runs shielded)."""
        controller = self.controllers.get(job_id)
        if controller is None:
            return False
        controller.cancelled = True
        controller.scope.cancel()
        return True

    async def _schedule_loop(self) -> None:
        store = self.services.store
        while True:
            self._wake = trio.Event()  # before claiming, so no wake-up is lost
            claimed = await store.run(
                lambda c: js.claim_next(
                    c,
                    max_launching=self.settings.max_launching,
                    max_alive=self.settings.max_running,
                    owner=self.owner,
                    lease=self.lease,
                )
            )
            for job_id, previous in claimed:
                if previous == js.ALIVE_WAITING:
                    controller = self.controllers.get(job_id)
                    if controller is not None:
                        controller.slot_granted.set()
                else:
                    self._start(await store.run(js.get, job_id))
            # Other replicas' finished jobs wake nobody here: look again after a lease.
            with trio.move_on_after(self.lease):
                await self._wake.wait()

    async def _lease_loop(self) -> None:
        store = self.services.store
        while True:
            await trio.sleep(self.lease / 3)
            for job_id in await store.run(js.renew, self.owner, self.lease):
                self.cancel_local(job_id)  # cancelled through another replica
            await self._take_over()

    async def _take_over(self) -> None:
        rows = await self.services.store.run(js.take_over, self.owner, self.lease)
        for row in rows:
            self._start(row)
        if rows:
            self.wake()
