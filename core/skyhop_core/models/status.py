"""Status enums shared by the server, the SDK and the node agent."""

from __future__ import annotations

import enum


class ClusterStatus(enum.Enum):
    """A cluster's status as recorded in the state store (``status --refresh`` updates it).

    INIT: provisioning started but has not finished, or the cluster is unhealthy.
    UP: provisioning and runtime setup succeeded; the cluster is live.
    STOPPED: the nodes are stopped; their disks are kept.
    AUTOSTOPPING: autostop is stopping (or tearing down) the cluster: its hook runs, then
    the nodes stop. Other lifecycle requests wait for it (or, ``stop``/``down``, take over).
    """

    INIT = "INIT"
    UP = "UP"
    STOPPED = "STOPPED"
    AUTOSTOPPING = "AUTOSTOPPING"


class JobStatus(enum.Enum):
    """A cluster job's status, as the node agent reports it."""

    INIT = "INIT"
    PENDING = "PENDING"
    SETTING_UP = "SETTING_UP"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    FAILED_SETUP = "FAILED_SETUP"
    FAILED_DRIVER = "FAILED_DRIVER"
    CANCELLED = "CANCELLED"

    def is_terminal(self) -> bool:
        return self in _TERMINAL_JOB_STATUSES

    def is_failed(self) -> bool:
        return self.value.startswith("FAILED")


_TERMINAL_JOB_STATUSES = frozenset(
    {
        JobStatus.SUCCEEDED,
        JobStatus.FAILED,
        JobStatus.FAILED_SETUP,
        JobStatus.FAILED_DRIVER,
        JobStatus.CANCELLED,
    }
)


class JobExitCode(enum.IntEnum):
    """Exit codes of ``skyhop logs`` and of ``tail_logs``."""

    SUCCEEDED = 0
    FAILED = 100
    NOT_FINISHED = 101
    NOT_FOUND = 102
    CANCELLED = 103

    @classmethod
    def from_job_status(cls, status: JobStatus | None) -> JobExitCode:
        if status is None:
            return cls.NOT_FOUND
        if status is JobStatus.SUCCEEDED:
            return cls.SUCCEEDED
        if status is JobStatus.CANCELLED:
            return cls.CANCELLED
        if status.is_terminal():
            return cls.FAILED
        return cls.NOT_FINISHED


class RequestStatus(enum.Enum):
    """An API request's status."""

    PENDING = "PENDING"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"

    def is_terminal(self) -> bool:
        return self in (RequestStatus.SUCCEEDED, RequestStatus.FAILED, RequestStatus.CANCELLED)


class OptimizeTarget(enum.Enum):
    """What the optimizer minimises: hourly cost, or time (the most compute)."""

    COST = "COST"
    TIME = "TIME"


class StatusRefreshMode(enum.Enum):
    """Whether ``status`` asks the backends for the clusters' real state."""

    NONE = "NONE"
    AUTO = "AUTO"
    FORCE = "FORCE"


class ManagedJobStatus(enum.Enum):
    """A managed job's status (SkyPilot's names and transitions).

    PENDING → STARTING → RUNNING → SUCCEEDED; RUNNING → RECOVERING → RUNNING after a
    preemption (or a restart on error); any non-terminal → CANCELLING → CANCELLED. The
    FAILED_* statuses say why a job failed: its run (FAILED), its setup (FAILED_SETUP),
    what can never launch (FAILED_PRECHECKS), a spent launch-retry budget
    (FAILED_NO_RESOURCE), or the controller itself (FAILED_CONTROLLER).
    """

    PENDING = "PENDING"
    STARTING = "STARTING"
    RUNNING = "RUNNING"
    RECOVERING = "RECOVERING"
    CANCELLING = "CANCELLING"
    SUCCEEDED = "SUCCEEDED"
    CANCELLED = "CANCELLED"
    FAILED = "FAILED"
    FAILED_SETUP = "FAILED_SETUP"
    FAILED_PRECHECKS = "FAILED_PRECHECKS"
    FAILED_NO_RESOURCE = "FAILED_NO_RESOURCE"
    FAILED_CONTROLLER = "FAILED_CONTROLLER"

    def is_terminal(self) -> bool:
        return self in _TERMINAL_MANAGED

    def is_failed(self) -> bool:
        return self.value.startswith("FAILED")

    def exit_code(self) -> JobExitCode:
        """What ``jobs logs`` exits with once the job is in this status."""
        if self is ManagedJobStatus.SUCCEEDED:
            return JobExitCode.SUCCEEDED
        if self is ManagedJobStatus.CANCELLED:
            return JobExitCode.CANCELLED
        if self.is_failed():
            return JobExitCode.FAILED
        return JobExitCode.NOT_FINISHED

    @classmethod
    def terminal_values(cls) -> list[str]:
        return [s.value for s in _TERMINAL_MANAGED]


_TERMINAL_MANAGED = frozenset(
    {
        ManagedJobStatus.SUCCEEDED,
        ManagedJobStatus.CANCELLED,
        ManagedJobStatus.FAILED,
        ManagedJobStatus.FAILED_SETUP,
        ManagedJobStatus.FAILED_PRECHECKS,
        ManagedJobStatus.FAILED_NO_RESOURCE,
        ManagedJobStatus.FAILED_CONTROLLER,
    }
)


class ServiceStatus(enum.Enum):
    """A service's status (SkyPilot's names), computed from all of its replicas.

    CONTROLLER_INIT: the controller has not looked at the service yet.
    REPLICA_INIT: replicas are being launched or probed; none is READY.
    READY: at least one replica serves traffic.
    NO_REPLICA: no replica exists (min_replicas 0 and no traffic).
    FAILED: the latest version cannot come up (a replica failed its initial delay, or
        launches keep failing); nothing further is launched until ``serve update``.
    SHUTTING_DOWN: ``serve down`` is tearing it down.
    FAILED_CLEANUP: a replica could not be torn down (see ``serve logs --controller``).
    CONTROLLER_FAILED: the controller itself failed.
    """

    CONTROLLER_INIT = "CONTROLLER_INIT"
    REPLICA_INIT = "REPLICA_INIT"
    READY = "READY"
    NO_REPLICA = "NO_REPLICA"
    FAILED = "FAILED"
    SHUTTING_DOWN = "SHUTTING_DOWN"
    FAILED_CLEANUP = "FAILED_CLEANUP"
    CONTROLLER_FAILED = "CONTROLLER_FAILED"


class ReplicaStatus(enum.Enum):
    """A service replica's status (SkyPilot's names).

    PENDING → PROVISIONING (its cluster launches) → STARTING (probed, within the initial
    delay) → READY ⇄ NOT_READY (probes fail; replaced after long enough) → SHUTTING_DOWN.
    Failures: FAILED_INITIAL_DELAY (never ready in time), FAILED_PROBING (was ready,
    failed probes too long), FAILED_PROVISION (its cluster did not launch), FAILED
    (its job ended), FAILED_CLEANUP (teardown failed), PREEMPTED (its cluster is gone).
    """

    PENDING = "PENDING"
    PROVISIONING = "PROVISIONING"
    STARTING = "STARTING"
    READY = "READY"
    NOT_READY = "NOT_READY"
    SHUTTING_DOWN = "SHUTTING_DOWN"
    FAILED = "FAILED"
    FAILED_INITIAL_DELAY = "FAILED_INITIAL_DELAY"
    FAILED_PROBING = "FAILED_PROBING"
    FAILED_PROVISION = "FAILED_PROVISION"
    FAILED_CLEANUP = "FAILED_CLEANUP"
    PREEMPTED = "PREEMPTED"

    def is_failed(self) -> bool:
        return self.value.startswith("FAILED")

    def is_alive(self) -> bool:
        """Counts towards the service's replicas (launching, probed or serving)."""
        return self in (
            ReplicaStatus.PENDING, ReplicaStatus.PROVISIONING, ReplicaStatus.STARTING,
            ReplicaStatus.READY, ReplicaStatus.NOT_READY,
        )


class ServiceComponent(enum.Enum):
    """What ``serve logs`` shows: the controller, the load balancer, or a replica."""

    CONTROLLER = "controller"
    LOAD_BALANCER = "load_balancer"
    REPLICA = "replica"


class UpdateMode(enum.Enum):
    """How ``serve update`` replaces replicas: ``rolling`` (traffic may mix while new
    replicas come up) or ``blue_green`` (traffic switches once the new version is
    ready)."""

    ROLLING = "rolling"
    BLUE_GREEN = "blue_green"
