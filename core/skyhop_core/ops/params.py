"""Parameters of every operation, as the HTTP API accepts them (see docs/http-api.md)."""

from __future__ import annotations

from typing import Any

import attrs

from skyhop_core.models.status import OptimizeTarget, StatusRefreshMode


@attrs.frozen
class LaunchParams:
    task: dict[str, Any]
    cluster_name: str | None = None
    retry_until_up: bool = False
    idle_minutes_to_autostop: int | None = None
    dryrun: bool = False
    down: bool = False
    optimize_target: OptimizeTarget = OptimizeTarget.COST
    no_setup: bool = False
    fast: bool = False


@attrs.frozen
class ExecParams:
    task: dict[str, Any]
    cluster_name: str
    dryrun: bool = False
    down: bool = False


@attrs.frozen
class ClusterParams:
    """stop and down."""

    cluster_name: str
    purge: bool = False


@attrs.frozen
class StartParams:
    cluster_name: str
    idle_minutes_to_autostop: int | None = None
    retry_until_up: bool = False
    down: bool = False
    force: bool = False


@attrs.frozen
class StatusParams:
    cluster_names: list[str] | None = None
    refresh: StatusRefreshMode = StatusRefreshMode.NONE
    all_users: bool = False


@attrs.frozen
class AutostopParams:
    cluster_name: str
    idle_minutes: int
    down: bool = False


@attrs.frozen
class QueueParams:
    cluster_name: str
    skip_finished: bool = False
    all_users: bool = False


@attrs.frozen
class JobStatusParams:
    cluster_name: str
    job_ids: list[int] | None = None


@attrs.frozen
class CancelParams:
    cluster_name: str
    all: bool = False
    all_users: bool = False
    job_ids: list[int] | None = None


@attrs.frozen
class LogsParams:
    cluster_name: str
    job_id: int | None = None
    follow: bool = True
    tail: int = 0


@attrs.frozen
class DownloadLogsParams:
    cluster_name: str
    job_ids: list[int] | None = None


@attrs.frozen
class OptimizeParams:
    task: dict[str, Any]
    cluster_name: str | None = None
    optimize_target: OptimizeTarget = OptimizeTarget.COST


@attrs.frozen
class ShowGpusParams:
    """show-gpus: ``name`` filters by accelerator; ``infra`` limits to a backend/region."""

    name: str | None = None
    infra: str | None = None


@attrs.frozen
class NoParams:
    pass


@attrs.frozen
class CancelRequestsParams:
    """The body of ``POST /api/cancel`` (not an operation: it acts at once)."""

    request_ids: list[str] = attrs.field(factory=list)
    all: bool = False
    all_users: bool = False


# --- managed jobs (``skyhop jobs``) -----------------------------------------------------


@attrs.frozen
class JobsLaunchParams:
    """``task`` is the task-YAML mapping; ``name`` overrides the task's name."""

    task: dict[str, Any]
    name: str | None = None


@attrs.frozen
class JobsQueueParams:
    refresh: bool = False
    skip_finished: bool = False
    all_users: bool = False
    job_ids: list[int] | None = None


@attrs.frozen
class JobsCancelParams:
    name: str | None = None
    job_ids: list[int] | None = None
    all: bool = False
    all_users: bool = False


@attrs.frozen
class JobsLogsParams:
    """``controller`` streams what the controller did instead of the job's output."""

    name: str | None = None
    job_id: int | None = None
    follow: bool = True
    controller: bool = False
