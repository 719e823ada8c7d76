"""Parameters of every operation, as the HTTP API accepts them (see docs/http-api.md).

Each class is structured strictly from the request body (:mod:`skyhop_core.wire`) and its
field validators run then, at submission: a bad value is a 400 naming the field before
any request exists. The bounds live in each field's ``metadata`` (``minimum``,
``maximum``, ``maxLength``, ``pattern``, ``maxItems``), which the validators enforce and
:mod:`skyhop_core.server.openapi` publishes, so the document and the server agree.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import attrs

from skyhop_core.exceptions import InvalidClusterNameError
from skyhop_core.models.status import (
    OptimizeTarget,
    ServiceComponent,
    StatusRefreshMode,
    UpdateMode,
)
from skyhop_core.models.task_schema import _SPACE, TASK, TASK_WITH_UPLOADS
from skyhop_core.ops.common import MAX_CLUSTER_NAME, validate_cluster_name

#: Largest integer a parameter may take: JSON numbers above 2**53 lose precision.
MAX_INT = 2**53
#: Most items a list parameter may hold.
MAX_ITEMS = 1000
#: Longest free-form string parameter (filters, request IDs).
MAX_STRING = 256
#: The longest autostop delay: ten years, in minutes.
MAX_IDLE_MINUTES = 10 * 366 * 24 * 60
#: The published pattern of a cluster name (validate_cluster_name is the check).
CLUSTER_NAME_PATTERN = r"^[a-zA-Z]([-_.a-zA-Z0-9]*[a-zA-Z0-9])?\Z"

Validator = Callable[[Any, Any, Any], None]


def _bounds(lo: int, hi: int) -> Validator:
    def check(_inst: Any, attribute: Any, value: Any) -> None:
        if value is not None and not lo <= value <= hi:
            raise ValueError(f"{attribute.name}: {value} is out of range: use {lo} to {hi}.")

    return check


def integer(lo: int, hi: int = MAX_INT, **kwargs: Any) -> Any:
    """An int field bounded to ``lo..hi``."""
    return attrs.field(
        validator=_bounds(lo, hi), metadata={"minimum": lo, "maximum": hi}, **kwargs
    )


def _cluster_name(_inst: Any, attribute: Any, value: Any) -> None:
    if value is None:
        return
    try:
        validate_cluster_name(value)
    except InvalidClusterNameError as exc:
        raise InvalidClusterNameError(f"{attribute.name}: {exc.message}") from None


_NAME_META = {"pattern": CLUSTER_NAME_PATTERN, "maxLength": MAX_CLUSTER_NAME}


def cluster_name(**kwargs: Any) -> Any:
    """A cluster name field, checked by :func:`validate_cluster_name`."""
    return attrs.field(validator=_cluster_name, metadata=_NAME_META, **kwargs)


def _each(check: Validator, max_items: int) -> Validator:
    def validate(inst: Any, attribute: Any, value: Any) -> None:
        if value is None:
            return
        if len(value) > max_items:
            raise ValueError(f"{attribute.name}: at most {max_items} items, got {len(value)}.")
        for item in value:
            check(inst, attribute, item)

    return validate


def names_list(**kwargs: Any) -> Any:
    """A list of cluster names."""
    return attrs.field(
        validator=_each(_cluster_name, MAX_ITEMS),
        metadata={"maxItems": MAX_ITEMS, "items": _NAME_META},
        **kwargs,
    )


def job_ids(**kwargs: Any) -> Any:
    """A list of job IDs (each 1..2**53)."""
    return attrs.field(
        default=None,
        validator=_each(_bounds(1, MAX_INT), MAX_ITEMS),
        metadata={"maxItems": MAX_ITEMS, "items": {"minimum": 1, "maximum": MAX_INT}},
        **kwargs,
    )


def _short(_inst: Any, attribute: Any, value: Any) -> None:
    if value is not None and len(value) > MAX_STRING:
        raise ValueError(f"{attribute.name}: at most {MAX_STRING} characters.")


def short_string(**kwargs: Any) -> Any:
    return attrs.field(validator=_short, metadata={"maxLength": MAX_STRING}, **kwargs)


@attrs.frozen
class LaunchParams:
    task: dict[str, Any] = attrs.field(metadata={"schema": TASK_WITH_UPLOADS})
    cluster_name: str | None = cluster_name(default=None)
    retry_until_up: bool = False
    idle_minutes_to_autostop: int | None = integer(0, MAX_IDLE_MINUTES, default=None)
    dryrun: bool = False
    down: bool = False
    optimize_target: OptimizeTarget = OptimizeTarget.COST
    no_setup: bool = False
    fast: bool = False


@attrs.frozen
class ExecParams:
    task: dict[str, Any] = attrs.field(metadata={"schema": TASK_WITH_UPLOADS})
    cluster_name: str = cluster_name()
    dryrun: bool = False
    down: bool = False


@attrs.frozen
class ClusterParams:
    """stop and down. ``from_autostop``: the server's autostop loop asks (the cluster is
    AUTOSTOPPING while its autostop hook runs, and the request does nothing if the
    cluster is no longer UP by then)."""

    cluster_name: str = cluster_name()
    purge: bool = False
    from_autostop: bool = False


#: ``autostop --wait-for``: what counts as activity (SkyPilot's choices).
AUTOSTOP_WAIT_FOR = ("jobs_and_ssh", "jobs", "none")


def _wait_for(_inst: Any, attribute: Any, value: Any) -> None:
    if value is not None and value not in AUTOSTOP_WAIT_FOR:
        raise ValueError(f"{attribute.name}: one of {', '.join(AUTOSTOP_WAIT_FOR)}, not {value!r}.")


@attrs.frozen
class StartParams:
    cluster_name: str = cluster_name()
    idle_minutes_to_autostop: int | None = integer(0, MAX_IDLE_MINUTES, default=None)
    retry_until_up: bool = False
    down: bool = False
    force: bool = False

    #: down=True needs idle_minutes_to_autostop.
    schema_extra: ClassVar[dict[str, Any]] = {"anyOf": [
        {"properties": {"down": {"const": False}}},
        {"not": {"required": ["down"]}},
        {"required": ["idle_minutes_to_autostop"],
         "properties": {"idle_minutes_to_autostop": {"type": "integer"}}},
    ]}  # fmt: skip

    def __attrs_post_init__(self) -> None:
        if self.down and self.idle_minutes_to_autostop is None:
            raise ValueError("down=True needs idle_minutes_to_autostop (-i MINUTES).")


@attrs.frozen
class StatusParams:
    cluster_names: list[str] | None = names_list(default=None)
    refresh: StatusRefreshMode = StatusRefreshMode.NONE
    all_users: bool = False
    #: Also list the clusters of running managed jobs (left out by default).
    include_managed_jobs: bool = False


@attrs.frozen
class CostReportParams:
    """``days``: torn-down clusters terminated in the last ``days`` days (existing ones
    are always listed). ``all_users``: everyone's (admins on a deployed server)."""

    days: int = integer(0, 36500, default=30)
    all_users: bool = False


@attrs.frozen
class AutostopParams:
    """``idle_minutes`` -1 cancels autostop."""

    cluster_name: str = cluster_name()
    idle_minutes: int = integer(-1, MAX_IDLE_MINUTES)
    down: bool = False
    wait_for: str | None = attrs.field(
        default=None,
        validator=_wait_for,
        metadata={"schema": {"anyOf": [{"enum": list(AUTOSTOP_WAIT_FOR)}, {"type": "null"}]}},
    )


@attrs.frozen
class QueueParams:
    cluster_name: str = cluster_name()
    skip_finished: bool = False
    all_users: bool = False


@attrs.frozen
class JobStatusParams:
    cluster_name: str = cluster_name()
    job_ids: list[int] | None = job_ids()


@attrs.frozen
class CancelParams:
    cluster_name: str = cluster_name()
    all: bool = False
    all_users: bool = False
    job_ids: list[int] | None = job_ids()

    #: Either all=True or at least one job ID.
    schema_extra: ClassVar[dict[str, Any]] = {"anyOf": [
        {"required": ["all"], "properties": {"all": {"const": True}}},
        {"required": ["job_ids"], "properties": {"job_ids": {"type": "array", "minItems": 1}}},
    ]}  # fmt: skip

    def __attrs_post_init__(self) -> None:
        if not self.all and not self.job_ids:
            raise ValueError("Name the job IDs to cancel, or pass all=True (--all).")


@attrs.frozen
class LogsParams:
    cluster_name: str = cluster_name()
    job_id: int | None = integer(1, default=None)
    follow: bool = True
    tail: int = integer(0, default=0)


@attrs.frozen
class DownloadLogsParams:
    cluster_name: str = cluster_name()
    job_ids: list[int] | None = job_ids()


@attrs.frozen
class OptimizeParams:
    task: dict[str, Any] = attrs.field(metadata={"schema": TASK})
    cluster_name: str | None = cluster_name(default=None)
    optimize_target: OptimizeTarget = OptimizeTarget.COST


@attrs.frozen
class ShowGpusParams:
    """show-gpus: ``name`` filters by accelerator; ``infra`` limits to a backend/region."""

    name: str | None = short_string(default=None)
    infra: str | None = short_string(default=None)


@attrs.frozen
class NoParams:
    pass


@attrs.frozen
class CancelRequestsParams:
    """The body of ``POST /api/cancel`` (which acts at once) and of the ``api_cancel``
    operation (``sky.api_cancel``: a request whose result is the cancelled IDs)."""

    request_ids: list[str] = attrs.field(
        factory=list,
        validator=_each(_short, MAX_ITEMS),
        metadata={"maxItems": MAX_ITEMS, "items": {"maxLength": MAX_STRING}},
    )
    all: bool = False
    all_users: bool = False


# --- managed jobs (``skyhop jobs``) -----------------------------------------------------


#: At most this many tasks in a pipeline (each runs on its own cluster, in order).
MAX_PIPELINE_TASKS = 32


@attrs.frozen
class JobsLaunchParams:
    """``task`` is the task-YAML mapping, or ``tasks`` a pipeline's (run in order, each
    on its own cluster); ``name`` overrides the task's (the pipeline's) name."""

    task: dict[str, Any] | None = attrs.field(
        default=None, metadata={"schema": {"anyOf": [TASK_WITH_UPLOADS, {"type": "null"}]}}
    )
    #: The job's cluster is ``<name>-<job_id>``, so the name follows cluster-name rules.
    name: str | None = attrs.field(
        default=None,
        validator=_cluster_name,
        metadata={**_NAME_META, "maxLength": MAX_CLUSTER_NAME - 10},
    )
    tasks: list[dict[str, Any]] | None = attrs.field(
        default=None,
        metadata={"schema": {"anyOf": [
            {"type": "array", "items": TASK_WITH_UPLOADS, "minItems": 1,
             "maxItems": MAX_PIPELINE_TASKS},
            {"type": "null"},
        ]}},
    )  # fmt: skip

    #: Exactly one of task and tasks.
    schema_extra: ClassVar[dict[str, Any]] = {"oneOf": [
        {"required": ["task"], "properties": {"task": {"type": "object"}}},
        {"required": ["tasks"], "properties": {"tasks": {"type": "array"}}},
    ]}  # fmt: skip

    def __attrs_post_init__(self) -> None:
        if (self.task is None) == (self.tasks is None):
            raise ValueError("jobs_launch takes a task or a pipeline's tasks: exactly one.")
        if self.tasks is not None and not 1 <= len(self.tasks) <= MAX_PIPELINE_TASKS:
            raise ValueError(
                f"tasks: a pipeline has 1 to {MAX_PIPELINE_TASKS} tasks, got {len(self.tasks)}."
            )


@attrs.frozen
class JobsQueueParams:
    refresh: bool = False
    skip_finished: bool = False
    all_users: bool = False
    job_ids: list[int] | None = job_ids()


@attrs.frozen
class JobsCancelParams:
    name: str | None = short_string(default=None)
    job_ids: list[int] | None = job_ids()
    all: bool = False
    all_users: bool = False


@attrs.frozen
class JobsLogsParams:
    """``controller`` streams what the controller did instead of the job's output."""

    name: str | None = short_string(default=None)
    job_id: int | None = integer(1, 2**53, default=None)
    follow: bool = True
    controller: bool = False


#: A storage bucket's name as ``storage delete`` takes it.
STORAGE_NAME_META = {"pattern": f"^[^/{_SPACE}]{{1,255}}\\Z", "maxLength": 255}


def _storage_name(_inst: Any, attribute: Any, value: Any) -> None:
    import re

    if not isinstance(value, str) or not re.match(str(STORAGE_NAME_META["pattern"]), value):
        raise ValueError(f"{attribute.name}: {value!r} is not a storage name.")


@attrs.frozen
class StorageLsParams:
    """``all_users``: every user's buckets (admins on a deployed server)."""

    all_users: bool = False


@attrs.frozen
class StorageDeleteParams:
    """Delete the caller's buckets ``names`` (or all of them with ``all``)."""

    names: list[str] | None = attrs.field(
        default=None,
        validator=_each(_storage_name, MAX_ITEMS),
        metadata={"maxItems": MAX_ITEMS, "items": STORAGE_NAME_META},
    )
    all: bool = False


@attrs.frozen
class VolumeApplyParams:
    """Create a volume (``type: local``: a directory on the server's machine)."""

    name: str = attrs.field(validator=_storage_name, metadata=STORAGE_NAME_META)
    type: str = attrs.field(default="local", metadata={"schema": {"enum": ["local"]}},
                            validator=attrs.validators.in_(["local"]))  # fmt: skip
    size: str | None = short_string(default=None)


@attrs.frozen
class VolumeDeleteParams:
    names: list[str] | None = attrs.field(
        default=None,
        validator=_each(_storage_name, MAX_ITEMS),
        metadata={"maxItems": MAX_ITEMS, "items": STORAGE_NAME_META},
    )
    all: bool = False
# --- services (``skyhop serve``) ----------------------------------------------------------

#: A service's replicas are clusters ``<service>-<id>``: room for the ID.
MAX_SERVICE_NAME = MAX_CLUSTER_NAME - 10
_SERVICE_NAME_META = {**_NAME_META, "maxLength": MAX_SERVICE_NAME}


def _service_name(inst: Any, attribute: Any, value: Any) -> None:
    if value is not None and len(value) > MAX_SERVICE_NAME:
        raise InvalidClusterNameError(
            f"{attribute.name}: {value!r} is too long: use up to {MAX_SERVICE_NAME} "
            "characters (replicas are clusters named <service>-<id>)."
        )
    _cluster_name(inst, attribute, value)


def service_name(**kwargs: Any) -> Any:
    """A service name: cluster-name rules, with room for ``-<replica id>``."""
    return attrs.field(validator=_service_name, metadata=_SERVICE_NAME_META, **kwargs)


@attrs.frozen
class ServeUpParams:
    """``task`` is the task-YAML mapping with a ``service:`` section."""

    task: dict[str, Any] = attrs.field(metadata={"schema": TASK_WITH_UPLOADS})
    service_name: str | None = service_name(default=None)


@attrs.frozen
class ServeUpdateParams:
    task: dict[str, Any] = attrs.field(metadata={"schema": TASK_WITH_UPLOADS})
    service_name: str = service_name()
    mode: UpdateMode = UpdateMode.ROLLING


@attrs.frozen
class ServeDownParams:
    service_names: list[str] | None = attrs.field(
        default=None,
        validator=_each(_service_name, MAX_ITEMS),
        metadata={"maxItems": MAX_ITEMS, "items": _SERVICE_NAME_META},
    )
    all: bool = False
    purge: bool = False


@attrs.frozen
class ServeTerminateReplicaParams:
    service_name: str = service_name()
    replica_id: int = integer(1)
    purge: bool = False


@attrs.frozen
class ServeStatusParams:
    service_names: list[str] | None = attrs.field(
        default=None,
        validator=_each(_service_name, MAX_ITEMS),
        metadata={"maxItems": MAX_ITEMS, "items": _SERVICE_NAME_META},
    )


@attrs.frozen
class ServeLogsParams:
    """``target`` REPLICA needs ``replica_id`` (which the other targets ignore)."""

    service_name: str = service_name()
    target: ServiceComponent = ServiceComponent.CONTROLLER
    replica_id: int | None = integer(1, default=None)
    follow: bool = True

    schema_extra: ClassVar[dict[str, Any]] = {"anyOf": [
        {"properties": {"target": {"enum": ["controller", "load_balancer"]}}},
        {"required": ["target", "replica_id"],
         "properties": {"target": {"const": "replica"}, "replica_id": {"type": "integer"}}},
    ]}  # fmt: skip

    def __attrs_post_init__(self) -> None:
        if self.target is ServiceComponent.REPLICA and self.replica_id is None:
            raise ValueError("replica_id: name the replica when target is 'replica'.")
