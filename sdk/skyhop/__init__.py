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
    "cost_report",
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
    "storage_delete",
    "storage_ls",
    "tail_logs",
    "volumes_apply",
    "volumes_delete",
    "volumes_ls",
)

#: public name -> (module, attribute); attribute None means the module itself.
_LAZY: dict[str, tuple[str, str | None]] = {
    **{name: ("skyhop.sdk", name) for name in _SDK_FUNCTIONS},
    "Task": ("skyhop_core.models", "Task"),
    "Dag": ("skyhop.dag", "Dag"),
    "Resources": ("skyhop_core.models", "Resources"),
    "Storage": ("skyhop_core.models.storage", "Storage"),
    **{name: ("skyhop_core.models.clouds", name) for name in (
        "AWS", "GCP", "Kubernetes", "SSH", "Local", "Azure", "Lambda", "OCI", "IBM", "RunPod",
        "Nebius", "Fluidstack", "Paperspace", "Cudo", "Vast", "SCP", "DO")},
    "Cloud": ("skyhop_core.models.clouds", "Cloud"),
    "StorageMode": ("skyhop_core.models.storage", "StorageMode"),
    "ClusterStatus": ("skyhop_core.models.status", "ClusterStatus"),
    "JobStatus": ("skyhop_core.models.status", "JobStatus"),
    "JobExitCode": ("skyhop_core.models.status", "JobExitCode"),
    "RequestStatus": ("skyhop_core.models.status", "RequestStatus"),
    "OptimizeTarget": ("skyhop_core.models.status", "OptimizeTarget"),
    "StatusRefreshMode": ("skyhop_core.models.status", "StatusRefreshMode"),
    "exceptions": ("skyhop_core.exceptions", None),
    "aio": ("skyhop.aio", None),
    "jobs": ("skyhop.jobs", None),
    "serve": ("skyhop.serve", None),
    "ManagedJobStatus": ("skyhop_core.models.status", "ManagedJobStatus"),
    "ServiceStatus": ("skyhop_core.models.status", "ServiceStatus"),
    "ReplicaStatus": ("skyhop_core.models.status", "ReplicaStatus"),
}

#: Literal, so linters and type checkers see the public names (the same as ``_LAZY``).
__all__ = [
    "AWS",
    "Azure",
    "Cloud",
    "Cudo",
    "DO",
    "Fluidstack",
    "GCP",
    "IBM",
    "Kubernetes",
    "Lambda",
    "Local",
    "Nebius",
    "OCI",
    "Paperspace",
    "RunPod",
    "SCP",
    "SSH",
    "Vast",
    "ClusterStatus",
    "Dag",
    "JobExitCode",
    "JobStatus",
    "ManagedJobStatus",
    "OptimizeTarget",
    "ReplicaStatus",
    "RequestStatus",
    "Resources",
    "ServiceStatus",
    "StatusRefreshMode",
    "Storage",
    "StorageMode",
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
    "cost_report",
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
    "serve",
    "show_gpus",
    "start",
    "status",
    "stop",
    "storage_delete",
    "storage_ls",
    "stream_and_get",
    "tail_logs",
    "volumes_apply",
    "volumes_delete",
    "volumes_ls",
]

if _TYPE_CHECKING:
    from skyhop import aio as aio
    from skyhop import jobs as jobs
    from skyhop import serve as serve
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
        cost_report,
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
        storage_delete,
        storage_ls,
        stream_and_get,
        tail_logs,
        volumes_apply,
        volumes_delete,
        volumes_ls,
    )
    from skyhop_core import exceptions
    from skyhop_core.models import Resources, Task
    from skyhop_core.models.clouds import (
        AWS,
        DO,
        GCP,
        IBM,
        OCI,
        SCP,
        SSH,
        Azure,
        Cloud,
        Cudo,
        Fluidstack,
        Kubernetes,
        Lambda,
        Local,
        Nebius,
        Paperspace,
        RunPod,
        Vast,
    )
    from skyhop_core.models.status import (
        ClusterStatus,
        JobExitCode,
        JobStatus,
        ManagedJobStatus,
        OptimizeTarget,
        ReplicaStatus,
        RequestStatus,
        ServiceStatus,
        StatusRefreshMode,
    )
    from skyhop_core.models.storage import Storage, StorageMode


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
