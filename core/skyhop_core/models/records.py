"""Records that cross the plugin boundary and the wire: offers, handles, jobs, requests.

All are frozen attrs classes; :mod:`skyhop_core.wire` turns them into JSON and back.
"""

from __future__ import annotations

import enum
from typing import Any, NamedTuple

import attrs

from skyhop_core.models.status import ClusterStatus, JobStatus, RequestStatus


class Feature(enum.Enum):
    """Optional capabilities a backend declares in :class:`BackendInfo`."""

    STOP = "stop"  #: clusters can be stopped and started again
    AUTOSTOP = "autostop"  #: idle clusters can be stopped automatically
    SPOT = "spot"  #: spot/preemptible capacity
    MULTI_NODE = "multi_node"  #: clusters of more than one node
    OPEN_PORTS = "open_ports"  #: the ``ports`` of a task can be exposed
    CUSTOM_JOBS = "custom_jobs"  #: the backend runs jobs itself instead of the node agent


@attrs.frozen
class BackendInfo:
    """What a backend plugin is: its name (the first part of ``infra``) and features.

    ``max_nodes`` is the most nodes one cluster of this backend may have (``None``: the
    backend sets no fixed limit). A launch asking for more fails before anything is
    created. Users can change it in the backend's config section
    (``backends: {<name>: {max_nodes: N}}``).
    """

    name: str
    display_name: str
    features: frozenset[Feature] = frozenset()
    description: str = ""
    max_nodes: int | None = None

    def supports(self, feature: Feature) -> bool:
        return feature in self.features


@attrs.frozen
class CheckResult:
    """Whether a backend can be used now, and if not why and how to fix it."""

    backend: str
    enabled: bool
    reason: str = ""
    fix: str = ""
    #: Per-part details, e.g. each ssh pool or region: name -> message.
    details: dict[str, str] = attrs.field(factory=dict)


@attrs.frozen
class Offer:
    """A launchable kind of node in one place, with its hourly price."""

    backend: str
    instance_type: str
    cpus: float
    memory_gb: float
    accelerators: dict[str, int] = attrs.field(factory=dict)
    price: float = 0.0
    spot_price: float | None = None
    region: str | None = None
    zone: str | None = None

    def hourly_cost(self, use_spot: bool = False) -> float:
        if use_spot and self.spot_price is not None:
            return self.spot_price
        return self.price


@attrs.frozen
class NodeInfo:
    """One provisioned node of a cluster.

    ``runtime_dir`` is where the node agent and job files live on the node; ``home`` is the
    directory that ``~`` in file mounts and the workdir resolve to on that node.
    """

    rank: int
    ip: str
    instance_id: str
    cpus: float
    memory_gb: float
    runtime_dir: str
    home: str
    gpus: dict[str, int] = attrs.field(factory=dict)
    #: Backend-specific strings (ssh user, port, key path, ...).
    extra: dict[str, str] = attrs.field(factory=dict)


@attrs.frozen
class ClusterHandle:
    """Everything skyhop needs to reach a provisioned cluster; stored with its record.

    Node 0 is the head: it runs the node agent.
    """

    cluster_name: str
    backend: str
    nodes: tuple[NodeInfo, ...]
    instance_type: str = ""
    region: str | None = None
    zone: str | None = None
    use_spot: bool = False
    #: Declared port -> where it is reachable (``host:port``).
    ports: dict[int, str] = attrs.field(factory=dict)
    #: Backend-specific strings (security group id, pool name, ...).
    extra: dict[str, str] = attrs.field(factory=dict)

    @property
    def head(self) -> NodeInfo:
        return self.nodes[0]

    @property
    def node_ips(self) -> list[str]:
        return [n.ip for n in self.nodes]

    @property
    def head_ip(self) -> str | None:
        """The head node's IP (SkyPilot's ``handle.head_ip``); None without nodes."""
        return self.nodes[0].ip if self.nodes else None

    @property
    def launched_nodes(self) -> int:
        """How many nodes the cluster has (SkyPilot's ``handle.launched_nodes``)."""
        return len(self.nodes)

    @property
    def launched_resources(self) -> Any:
        """What one node is, as a :class:`~skyhop_core.models.Resources`: the backend,
        place, instance type, vCPUs, memory, accelerators and spot-ness it was launched
        with (SkyPilot's ``handle.launched_resources``)."""
        from skyhop_core.models.resources import Resources

        head = self.nodes[0] if self.nodes else None
        place = "/".join(p for p in (self.backend, self.region, self.zone) if p)
        return Resources(
            infra=place,
            instance_type=self.instance_type or None,
            cpus=head.cpus if head is not None else None,
            memory=head.memory_gb if head is not None else None,
            accelerators=dict(head.gpus) if head is not None and head.gpus else None,
            use_spot=self.use_spot,
            ports=[str(p) for p in sorted(self.ports)] or None,
        )


class NodeState(enum.Enum):
    """A node's state as the backend sees it (``skyhop_query``)."""

    PENDING = "PENDING"
    RUNNING = "RUNNING"
    STOPPING = "STOPPING"
    STOPPED = "STOPPED"
    TERMINATED = "TERMINATED"
    UNKNOWN = "UNKNOWN"


@attrs.frozen
class NodeStatus:
    rank: int
    state: NodeState
    detail: str = ""


@attrs.frozen
class RuntimeHealth:
    """What ``skyhop_runtime_health`` found on a cluster whose nodes are up.

    ``healthy`` is False when the runtime that drives jobs (the node agent) is dead,
    hung or unreachable; ``reason`` then says what is wrong, for ``skyhop status``.
    ``failed_jobs`` are the jobs this check found without a driver and marked
    FAILED_DRIVER.
    """

    healthy: bool
    reason: str = ""
    failed_jobs: tuple[int, ...] = ()


@attrs.frozen
class JobSpec:
    """A job as submitted to a cluster's agent.

    ``run`` is one command for every node, or a list with one entry per rank (``None``
    runs nothing on that rank). ``workdir`` is the directory on the node the job runs in.
    """

    name: str
    run: str | list[str | None] | None
    setup: str | None = None
    envs: dict[str, str] = attrs.field(factory=dict)
    secrets: dict[str, str] = attrs.field(factory=dict)
    workdir: str | None = None
    num_nodes: int = 1
    cpus: float = 0.5
    #: Accelerators per node; a float is a share of one device (``{"T4": 0.5}``).
    gpus: dict[str, float] = attrs.field(factory=dict)
    username: str = ""
    user_hash: str = ""
    task_id: str = ""


@attrs.frozen
class JobRecord:
    """A row of a cluster's job queue."""

    job_id: int
    job_name: str
    username: str
    user_hash: str
    submitted_at: float
    start_at: float | None
    end_at: float | None
    resources: str
    status: JobStatus
    log_path: str
    #: The failing exit code(s) of a FAILED / FAILED_SETUP job, when the agent knows them.
    exit_codes: list[int] | None = None


@attrs.frozen
class ClusterRecord:
    """A cluster as the state store knows it (the fields ``status`` returns)."""

    name: str
    status: ClusterStatus
    backend: str
    launched_at: float | None
    last_use: str
    autostop: int
    to_down: bool
    user_hash: str
    user_name: str
    resources_str: str
    handle: ClusterHandle | None = None
    metadata: dict[str, Any] = attrs.field(factory=dict)
    #: The task's ``resources.labels``.
    labels: dict[str, str] = attrs.field(factory=dict)
    #: Dollars spent so far: the offer's hourly price (all nodes) times the time UP.
    cost: float = 0.0


@attrs.frozen
class RequestRecord:
    """An API request as ``api status`` lists it."""

    request_id: str
    name: str
    user_name: str
    user_hash: str
    status: RequestStatus
    created_at: float
    cluster_name: str | None = None
    started_at: float | None = None
    finished_at: float | None = None
    schedule_type: str = "short"
    error: str | None = None


class JobSubmission(NamedTuple):
    """What ``launch`` and ``exec`` return: ``job_id, handle = sky.get(request_id)``.

    Also readable by key (``result["job_id"]``), as the SkyPilot docs' dict form.
    """

    job_id: int | None
    handle: ClusterHandle | None

    def __getitem__(self, key: Any) -> Any:  # type: ignore[override]
        if isinstance(key, str):
            if key not in self._fields:
                raise KeyError(key)
            return getattr(self, key)
        return tuple.__getitem__(self, key)

    def keys(self) -> tuple[str, ...]:
        return self._fields

    def get(self, key: str, default: Any = None) -> Any:
        return getattr(self, key, default) if key in self._fields else default


@attrs.frozen
class ProvisionRequest:
    """What ``skyhop_provision`` is asked to bring up.

    ``offer`` is the optimizer's choice (instance type, region, zone, price) for this
    backend; ``resources`` the user's request it satisfies (``Resources``);
    ``previous`` the handle of an existing INIT/STOPPED cluster of the same name, so a
    relaunch reuses what exists instead of leaking it.
    """

    cluster_name: str
    num_nodes: int
    resources: Any
    offer: Offer
    ports: tuple[int, ...] = ()
    use_spot: bool = False
    previous: ClusterHandle | None = None
