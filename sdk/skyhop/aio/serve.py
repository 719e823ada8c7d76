"""The async serve functions: ``skyhop.aio.serve.up / update / down / terminate_replica /
status / tail_logs``.

Each builds the sync function's request body (:mod:`skyhop.serve`) and awaits its
result, streaming the request's log unless ``stream_logs=False``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TextIO

import skyhop.serve as _serve
from skyhop.aio.sdk import _run
from skyhop_core.models.status import ServiceComponent, UpdateMode

if TYPE_CHECKING:
    from skyhop_core.models import Task


async def up(task: Task | dict[str, Any], service_name: str | None = None, *,
             stream_logs: bool = True, output_stream: TextIO | None = None) -> tuple[str, str]:
    """Start a service; returns ``(service_name, endpoint)``."""
    result: tuple[str, str] = await _run(_serve.up, task, service_name,
                                         stream_logs=stream_logs, output_stream=output_stream)
    return result


async def update(task: Task | dict[str, Any], service_name: str,
                 mode: UpdateMode | str = UpdateMode.ROLLING, *, stream_logs: bool = True,
                 output_stream: TextIO | None = None) -> None:
    """Update a service to a new version (``rolling`` or ``blue_green``)."""
    await _run(_serve.update, task, service_name, mode, stream_logs=stream_logs,
               output_stream=output_stream)


async def down(service_names: str | list[str] | None = None, all: bool = False,  # noqa: A002
               purge: bool = False, *, stream_logs: bool = True,
               output_stream: TextIO | None = None) -> None:
    """Take services down; returns once they are gone."""
    await _run(_serve.down, service_names, all, purge, stream_logs=stream_logs,
               output_stream=output_stream)


async def terminate_replica(service_name: str, replica_id: int, purge: bool = False, *,
                            stream_logs: bool = True,
                            output_stream: TextIO | None = None) -> None:
    """Drain one replica and tear it down (a failed one needs ``purge``)."""
    await _run(_serve.terminate_replica, service_name, replica_id, purge,
               stream_logs=stream_logs, output_stream=output_stream)


async def status(service_names: str | list[str] | None = None, *, stream_logs: bool = False,
                 output_stream: TextIO | None = None) -> list[dict[str, Any]]:
    """Service records (see :func:`skyhop.serve.status`)."""
    records: list[dict[str, Any]] = await _run(
        _serve.status, service_names, stream_logs=stream_logs, output_stream=output_stream)
    return records


async def tail_logs(service_name: str, target: ServiceComponent | str,
                    replica_id: int | None = None, follow: bool = True,
                    output_stream: TextIO | None = None) -> None:
    """Print a service component's log."""
    await _run(_serve.submit_logs, service_name, target, replica_id, follow,
               stream_logs=True, output_stream=output_stream)


__all__ = ["down", "status", "tail_logs", "terminate_replica", "up", "update"]
