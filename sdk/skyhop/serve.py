"""Services: ``skyhop.serve.up / update / down / terminate_replica / status / tail_logs``.

A service is replicas (ordinary clusters ``<service>-<id>``) running the task, behind
one load-balanced endpoint on the API server's host, probed for readiness and scaled by
the task's ``service:`` section::

    import skyhop as sky

    task = sky.Task.from_yaml("service.yaml")     # has a service: section
    name, endpoint = sky.get(sky.serve.up(task, service_name="web"))
    sky.get(sky.serve.status(["web"]))            # records with replica_info
    sky.serve.tail_logs("web", target="controller", follow=False)
    sky.get(sky.serve.down("web"))

As in the rest of the SDK, every function but :func:`tail_logs` returns a request ID.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TextIO

from skyhop import sdk as _sdk
from skyhop_core.models.status import ReplicaStatus, ServiceComponent, ServiceStatus, UpdateMode

if TYPE_CHECKING:
    from skyhop_core.models import Task


def _checked_task(task: Task | dict[str, Any]) -> dict[str, Any]:
    """The task's mapping, its ``service:`` section checked here (precise errors before
    anything is uploaded)."""
    from skyhop_core.models.service_spec import check_task_service

    if _sdk._has_callable_run(task):
        from skyhop_core.exceptions import TaskValidationError

        raise TaskValidationError(
            "A service's run must be a command string.", source="<task>", field="run",
            value=repr(getattr(task, "run", None)),
        )
    if isinstance(task, dict):
        from skyhop_core.models import Task as _Task

        check_task_service(task, "<task>")
        task = _Task.from_yaml_config(task)  # the canonical wire form
    config = _sdk._task_mapping(task)
    check_task_service(config, "<task>")
    return config


def up(task: Task | dict[str, Any], service_name: str | None = None,
       _need_confirmation: bool = False) -> str:
    """Start a service.

    Returns the request ID; its result is ``(service_name, endpoint)``.

    Request raises:
        TaskValidationError: the task or its ``service:`` section is invalid.
        ValueError: a service of that name exists.
    """
    del _need_confirmation
    return _sdk._submit("serve_up", {"task": _checked_task(task), "service_name": service_name})


def update(task: Task | dict[str, Any], service_name: str,
           mode: UpdateMode | str = UpdateMode.ROLLING, _need_confirmation: bool = False) -> str:
    """Update a service to a new version of its task: ``rolling`` (traffic may mix while
    new replicas come up) or ``blue_green`` (traffic switches once the new version has
    ``min_replicas`` READY). Only ``service:`` changed: the replicas are relabelled."""
    del _need_confirmation
    body = {"task": _checked_task(task), "service_name": service_name,
            "mode": UpdateMode(_sdk._enum_value(mode)).value}
    return _sdk._submit("serve_update", body)


def down(service_names: str | list[str] | None = None, all: bool = False,  # noqa: A002
         purge: bool = False) -> str:
    """Tear services down (their replicas, load balancer and records). ``purge``:
    forget them even if a teardown fails."""
    if isinstance(service_names, str):
        service_names = [service_names]
    if not all and not service_names:
        raise ValueError("Name the services to take down, or pass all=True.")
    return _sdk._submit("serve_down", {"service_names": service_names or None, "all": all,
                                       "purge": purge})


def terminate_replica(service_name: str, replica_id: int, purge: bool = False) -> str:
    """Drain one replica, then tear it down; a failed replica needs ``purge``."""
    return _sdk._submit("serve_terminate_replica", {
        "service_name": service_name, "replica_id": replica_id, "purge": purge})


def status(service_names: str | list[str] | None = None) -> str:
    """Service records (all of yours when ``service_names`` is None).

    The result is a list of dicts with SkyPilot's fields: ``name, active_versions,
    controller_job_id`` (None: no controller VM), ``uptime, status`` (ServiceStatus),
    ``controller_port, load_balancer_port, endpoint, policy, requested_resources_str,
    load_balancing_policy, replica_info`` (dicts: ``replica_id, name, status``
    (ReplicaStatus), ``version, launched_at, handle, endpoint``).
    """
    if isinstance(service_names, str):
        service_names = [service_names]
    return _sdk._submit("serve_status", {"service_names": service_names})


def submit_logs(service_name: str, target: ServiceComponent | str,
                replica_id: int | None = None, follow: bool = True) -> str:
    """Submit the ``serve_logs`` request behind :func:`tail_logs`; returns its ID."""
    component = ServiceComponent(_sdk._enum_value(target))
    if component is ServiceComponent.REPLICA and replica_id is None:
        raise ValueError("target=REPLICA needs replica_id.")
    return _sdk._submit("serve_logs", {
        "service_name": service_name, "target": component.value,
        "replica_id": replica_id if component is ServiceComponent.REPLICA else None,
        "follow": follow})


def tail_logs(service_name: str, target: ServiceComponent | str,
              replica_id: int | None = None, follow: bool = True,
              output_stream: TextIO | None = None) -> None:
    """Print the controller's or load balancer's log, or a replica's job log
    (``target`` a ServiceComponent or its lower-case name). Synchronous."""
    _sdk.stream_and_get(submit_logs(service_name, target, replica_id, follow),
                        output_stream=output_stream)


__all__ = [
    "ReplicaStatus", "ServiceComponent", "ServiceStatus", "UpdateMode", "down", "status",
    "submit_logs", "tail_logs", "terminate_replica", "up", "update",
]
