"""skyhop: run AI and batch workloads on any infrastructure through one API server.

::

    import skyhop as sky

    task = sky.Task(run="echo hello", resources=sky.Resources(infra="local"))
    request_id = sky.launch(task, cluster_name="dev")    # every call returns a request ID
    result = sky.stream_and_get(request_id)              # stream its log, get its result
    sky.tail_logs("dev", result["job_id"], follow=True)  # synchronous; the exit code

Names are loaded on first use (module ``__getattr__``), so ``import skyhop`` stays cheap
and the CLI starts fast.
"""

from __future__ import annotations

import importlib as _importlib
from typing import TYPE_CHECKING as _TYPE_CHECKING
from typing import Any as _Any

__version__ = "0.1.0"

_SDK_FUNCTIONS = (
    "api_cancel",
    "api_info",
    "api_start",
    "api_status",
    "api_stop",
    "autostop",
    "cancel",
    "check",
    "down",
    "download_logs",
    "exec",
    "get",
    "job_status",
    "launch",
    "optimize",
    "queue",
    "show_gpus",
    "start",
    "status",
    "stop",
    "stream_and_get",
    "tail_logs",
)

#: public name -> (module, attribute); attribute None means the module itself.
_LAZY: dict[str, tuple[str, str | None]] = {
    **{name: ("skyhop.sdk", name) for name in _SDK_FUNCTIONS},
    "Task": ("skyhop_core.models", "Task"),
    "Dag": ("skyhop.dag", "Dag"),
    "Resources": ("skyhop_core.models", "Resources"),
    "ClusterStatus": ("skyhop_core.models.status", "ClusterStatus"),
    "JobStatus": ("skyhop_core.models.status", "JobStatus"),
    "JobExitCode": ("skyhop_core.models.status", "JobExitCode"),
    "RequestStatus": ("skyhop_core.models.status", "RequestStatus"),
    "OptimizeTarget": ("skyhop_core.models.status", "OptimizeTarget"),
    "StatusRefreshMode": ("skyhop_core.models.status", "StatusRefreshMode"),
    "exceptions": ("skyhop_core.exceptions", None),
    "aio": ("skyhop.aio", None),
    "jobs": ("skyhop.jobs", None),
    "ManagedJobStatus": ("skyhop_core.models.status", "ManagedJobStatus"),
}

#: Literal, so linters and type checkers see the public names (the same as ``_LAZY``).
__all__ = [
    "ClusterStatus",
    "Dag",
    "JobExitCode",
    "JobStatus",
    "ManagedJobStatus",
    "OptimizeTarget",
    "RequestStatus",
    "Resources",
    "StatusRefreshMode",
    "Task",
    "aio",
    "api_cancel",
    "api_info",
    "api_start",
    "api_status",
    "api_stop",
    "autostop",
    "cancel",
    "check",
    "down",
    "download_logs",
    "exceptions",
    "exec",
    "get",
    "job_status",
    "jobs",
    "launch",
    "optimize",
    "queue",
    "show_gpus",
    "start",
    "status",
    "stop",
    "stream_and_get",
    "tail_logs",
]

if _TYPE_CHECKING:
    from skyhop import aio as aio
    from skyhop import jobs as jobs
    from skyhop.dag import Dag
    from skyhop.sdk import (
        api_cancel,
        api_info,
        api_start,
        api_status,
        api_stop,
        autostop,
        cancel,
        check,
        down,
        download_logs,
        exec,
        get,
        job_status,
        launch,
        optimize,
        queue,
        show_gpus,
        start,
        status,
        stop,
        stream_and_get,
        tail_logs,
    )
    from skyhop_core import exceptions
    from skyhop_core.models import Resources, Task
    from skyhop_core.models.status import (
        ClusterStatus,
        JobExitCode,
        JobStatus,
        ManagedJobStatus,
        OptimizeTarget,
        RequestStatus,
        StatusRefreshMode,
    )


def __getattr__(name: str) -> _Any:
    try:
        module_name, attribute = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'skyhop' has no attribute {name!r}") from None
    module = _importlib.import_module(module_name)
    value = module if attribute is None else getattr(module, attribute)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    """The public names and the module's dunders; no helpers or imports."""
    dunders = {n for n in globals() if n.startswith("__") and n.endswith("__")}
    return sorted(dunders | set(__all__))
