"""The models users and plugins share: Task, Resources, statuses and records.

Import from here (``from skyhop_core.models import Task, Resources``) or from the
submodules; both are stable.
"""

from skyhop_core.models.records import (
    BackendInfo,
    CheckResult,
    ClusterHandle,
    ClusterRecord,
    Feature,
    JobRecord,
    JobSpec,
    NodeInfo,
    NodeState,
    NodeStatus,
    Offer,
    ProvisionRequest,
    RequestRecord,
)
from skyhop_core.models.resources import Resources
from skyhop_core.models.status import (
    ClusterStatus,
    JobExitCode,
    JobStatus,
    OptimizeTarget,
    RequestStatus,
    StatusRefreshMode,
)
from skyhop_core.models.task import Task

__all__ = [
    "BackendInfo",
    "CheckResult",
    "ClusterHandle",
    "ClusterRecord",
    "ClusterStatus",
    "Feature",
    "JobExitCode",
    "JobRecord",
    "JobSpec",
    "JobStatus",
    "NodeInfo",
    "NodeState",
    "NodeStatus",
    "Offer",
    "OptimizeTarget",
    "ProvisionRequest",
    "RequestRecord",
    "RequestStatus",
    "Resources",
    "StatusRefreshMode",
    "Task",
]
