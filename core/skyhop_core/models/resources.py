"""Resources: what one node of a task needs, and where it may run.

A :class:`Resources` is immutable and always valid: the constructor normalises every
field to one canonical form (see :mod:`skyhop_core.models.resources_fields`) or raises
:class:`~skyhop_core.exceptions.TaskValidationError`. ``copy(**changes)`` makes a new,
validated instance. The optimizer asks each backend for offers and keeps those that
:meth:`Resources.fits`.

The ``resources:`` section of a task YAML may describe several candidates (``any_of``,
``ordered``, or a list/set of accelerators); see :mod:`skyhop_core.models.resources_yaml`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from skyhop_core.models import resources_fields as rf
from skyhop_core.models.records import Offer
from skyhop_core.models.validate import FieldError, closest

#: The fields a Resources stores (its attrs fields, in YAML order).
FIELDS = (
    "infra", "cpus", "memory", "accelerators", "accelerator_args", "instance_type",
    "use_spot", "disk_size", "disk_tier", "network_tier", "ports", "labels", "image_id",
    "job_recovery", "autostop", "priority",
)
#: What ``resources:`` (or an ``any_of``/``ordered`` entry) may contain.
YAML_KEYS = (*FIELDS, "cloud", "region", "zone", "gpus", "spot_recovery")
_ALIASES = {"gpus": "accelerators", "spot_recovery": "job_recovery"}
_LOCATION = ("cloud", "region", "zone")
_DEFAULT_SOURCE = "<Resources>"


def _normalise_all(raw: Mapping[str, Any]) -> dict[str, Any]:
    """Canonical field values from constructor-style keyword values (FieldError if bad)."""
    return {
        "infra": rf.location_to_infra(
            raw.get("cloud"), raw.get("region"), raw.get("zone"), raw.get("infra")
        ),
        "cpus": rf.normalise_cpus(raw.get("cpus")),
        "memory": rf.normalise_memory(raw.get("memory")),
        "accelerators": rf.normalise_accelerators(raw.get("accelerators")),
        "accelerator_args": rf.normalise_accelerator_args(raw.get("accelerator_args")),
        "instance_type": rf.normalise_instance_type(raw.get("instance_type")),
        "use_spot": rf.normalise_bool(raw.get("use_spot"), "use_spot"),
        "disk_size": rf.normalise_disk_size(raw.get("disk_size")),
        "disk_tier": rf.normalise_choice(raw.get("disk_tier"), "disk_tier", rf.DISK_TIERS),
        "network_tier": rf.normalise_choice(
            raw.get("network_tier"), "network_tier", rf.NETWORK_TIERS
        ),
        "ports": rf.normalise_ports(raw.get("ports")),
        "labels": rf.normalise_labels(raw.get("labels")),
        "image_id": rf.normalise_image_id(raw.get("image_id")),
        "job_recovery": rf.normalise_job_recovery(raw.get("job_recovery")),
        "autostop": rf.normalise_autostop(raw.get("autostop")),
        "priority": rf.normalise_priority(raw.get("priority")),
    }


def _unhashed() -> Any:
    # Dict-valued fields take part in equality but not in the hash (dicts are unhashable).
    return attrs.field(default=None, hash=False)


@attrs.frozen(init=False)
class Resources:
    """The requirements of one node: hardware, place, and launch options.

    Every argument is optional; ``Resources()`` means "anything, anywhere". ``infra`` is
    ``'<backend>[/<region>[/<zone>]]'`` (``'local'``, ``'aws/us-east-1'``,
    ``'k8s/<context>'``, ``'ssh/<pool>'``; ``'*'`` or None for anywhere). The legacy
    ``cloud``/``region``/``zone`` map onto ``infra``; giving both styles is an error.
    ``cpus``/``memory`` take ``4``, ``'4'`` (exactly) or ``'4+'`` (at least); memory is
    in GB unless a unit is given. ``accelerators`` takes ``'H100:8'``, ``'H100'`` or
    ``{'H100': 8}``; a fractional count (``'T4:0.5'``) asks for a share of one device.
    ``autostop`` takes ``True``, ``False``, idle minutes, ``'2h'`` or
    ``{'idle_minutes': 10, 'down': True}``.

    Raises:
        TaskValidationError: a field is invalid (the message names field and value).
    """

    infra: str | None = None
    cpus: str | None = None
    memory: str | None = None
    accelerators: dict[str, int | float] | None = _unhashed()
    accelerator_args: dict[str, Any] | None = _unhashed()
    instance_type: str | None = None
    use_spot: bool = False
    disk_size: int | None = None
    disk_tier: str | None = None
    network_tier: str | None = None
    ports: tuple[str, ...] | None = None
    labels: dict[str, str] | None = _unhashed()
    image_id: str | dict[str, str] | None = _unhashed()
    job_recovery: str | dict[str, Any] | None = _unhashed()
    autostop: bool | dict[str, Any] | None = _unhashed()
    #: A managed job's scheduling priority, -1000…1000 (higher starts first).
    priority: int | None = None

    def __init__(
        self,
        *,
        infra: str | None = None,
        cloud: str | None = None,
        region: str | None = None,
        zone: str | None = None,
        cpus: int | float | str | None = None,
        memory: int | float | str | None = None,
        accelerators: str | Mapping[str, int | float] | None = None,
        accelerator_args: Mapping[str, Any] | None = None,
        instance_type: str | None = None,
        use_spot: bool | None = False,
        disk_size: int | str | None = None,
        disk_tier: str | None = None,
        network_tier: str | None = None,
        ports: int | str | list[int | str] | tuple[int | str, ...] | None = None,
        labels: Mapping[str, str] | None = None,
        image_id: str | Mapping[str, str] | None = None,
        job_recovery: str | Mapping[str, Any] | None = None,
        autostop: bool | int | str | Mapping[str, Any] | None = None,
        priority: int | None = None,
    ) -> None:
        raw = dict(locals())
        raw.pop("self")
        try:
            fields = _normalise_all(raw)
        except FieldError as err:
            raise err.to_task_error(_DEFAULT_SOURCE) from None
        self.__attrs_init__(**fields)

    @classmethod
    def _from_raw(cls, raw: Mapping[str, Any]) -> Resources:
        """A Resources from constructor-style values; FieldError (not wrapped) if bad."""
        fields = _normalise_all(raw)
        obj = cls.__new__(cls)
        obj.__attrs_init__(**fields)
        return obj

    # --- Derived views ----------------------------------------------------------------

    @property
    def backend(self) -> str | None:
        """The backend (first part of ``infra``, aliases resolved), or None for any."""
        return rf.split_infra(self.infra)[0]

    @property
    def cloud(self) -> str | None:
        """Alias of :attr:`backend`, for SkyPilot users."""
        return self.backend

    @property
    def region(self) -> str | None:
        """The region (or Kubernetes context, or ssh pool), or None for any."""
        return rf.split_infra(self.infra)[1]

    @property
    def zone(self) -> str | None:
        return rf.split_infra(self.infra)[2]

    def cpus_requirement(self) -> tuple[float | None, bool]:
        """``(vCPUs, at_least)``; ``(None, False)`` when cpus is not set."""
        return rf.parse_requirement(self.cpus)

    def memory_requirement(self) -> tuple[float | None, bool]:
        """``(GB, at_least)``; ``(None, False)`` when memory is not set."""
        return rf.parse_requirement(self.memory)

    def port_numbers(self) -> tuple[int, ...]:
        """Every port to expose, ranges expanded."""
        return rf.expand_ports(self.ports)

    def autostop_config(self) -> tuple[int | None, bool]:
        """``(idle_minutes, down)``; ``(None, False)`` when unset or disabled."""
        if not isinstance(self.autostop, dict):
            return None, False
        return int(self.autostop["idle_minutes"]), bool(self.autostop.get("down", False))

    def fits(self, offer: Offer, *, pooled: bool = False) -> bool:
        """Whether ``offer`` satisfies these requirements.

        cpus/memory: at least the amount with ``+``, exactly otherwise; accelerators:
        the same name (case-insensitive) and count; instance type, backend, region and
        zone must match when set; spot needs an offer with a spot price.

        ``pooled=True`` is for offers that are a pool of capacity rather than a fixed
        machine size (this machine, an existing host): every amount is then "at most what
        the offer has", so ``cpus: 1`` fits a 2-CPU machine.
        """
        backend, region, zone = rf.split_infra(self.infra)
        if backend is not None and offer.backend.lower() != backend:
            return False
        if (region is not None and offer.region != region) or (
            zone is not None and offer.zone != zone
        ):
            return False
        if self.instance_type is not None and offer.instance_type != self.instance_type:
            return False
        if self.use_spot and offer.spot_price is None:
            return False
        cpus, memory = self.cpus_requirement(), self.memory_requirement()
        if pooled:
            cpus, memory = (cpus[0], True), (memory[0], True)
        if not _amount_fits(cpus, offer.cpus) or not _amount_fits(memory, offer.memory_gb):
            return False
        have = {name.lower(): count for name, count in offer.accelerators.items()}
        wanted = (self.accelerators or {}).items()
        if pooled:
            return all(have.get(name.lower(), 0) >= count - 1e-9 for name, count in wanted)
        # A share of a GPU (0.5) runs on a machine with one.
        return all(have.get(name.lower()) == rf.whole_count(count) for name, count in wanted)

    # --- Copies and YAML --------------------------------------------------------------

    def copy(self, **changes: Any) -> Resources:
        """A new, validated Resources with ``changes`` applied.

        Changing ``cloud``/``region``/``zone`` (without ``infra``) edits the current
        place: a new cloud drops the region and zone, a new region drops the zone.
        """
        unknown = [k for k in changes if k not in FIELDS and k not in _LOCATION]
        if unknown:
            hint = closest(unknown[0], (*FIELDS, *_LOCATION))
            raise FieldError(
                unknown[0], changes[unknown[0]], "a Resources field", suggestion=hint,
                unknown=True,
            ).to_task_error(_DEFAULT_SOURCE)
        raw: dict[str, Any] = {name: getattr(self, name) for name in FIELDS}
        if "infra" not in changes and any(k in changes for k in _LOCATION):
            backend, region, zone = rf.split_infra(self.infra)
            new_cloud = "cloud" in changes
            raw["infra"] = None
            raw["cloud"] = changes.pop("cloud", backend)
            raw["region"] = changes.pop("region", None if new_cloud else region)
            moved = new_cloud or "region" in raw and raw["region"] != region
            raw["zone"] = changes.pop("zone", None if moved else zone)
        raw.update(changes)
        try:
            return Resources._from_raw(raw)
        except FieldError as err:
            raise err.to_task_error(_DEFAULT_SOURCE) from None

    def to_yaml_config(self) -> dict[str, Any]:
        """The task-YAML mapping of this Resources: non-default fields, canonical forms."""
        config: dict[str, Any] = {}
        for name in FIELDS:
            value = getattr(self, name)
            if value is None or (name == "use_spot" and value is False):
                continue
            if name == "accelerators":
                ((acc, count),) = value.items()
                value = f"{acc}:{count}"
            elif name == "ports":
                value = [int(p) if p.isdigit() else p for p in value]
            elif name == "autostop" and isinstance(value, dict) and list(value) == ["idle_minutes"]:
                value = value["idle_minutes"]
            elif isinstance(value, dict):
                value = dict(value)
            config[name] = value
        return config

    @classmethod
    def from_yaml_config(cls, config: Any, source: str = "<resources>") -> Resources:
        """One Resources from a ``resources:`` mapping (no ``any_of``/``ordered``).

        Raises:
            TaskValidationError: invalid, or the mapping describes several candidates.
        """
        from skyhop_core.models.resources_yaml import resources_options_from_yaml

        options, _ = resources_options_from_yaml(config, source, prefix="resources")
        if len(options) != 1:
            raise FieldError(
                "resources", config, "a single Resources; several candidates (any_of, ordered, "
                "a list of accelerators) belong in a task",
            ).to_task_error(source)
        return options[0]

    def __str__(self) -> str:
        parts: list[str] = []
        if self.cpus:
            parts.append(f"{self.cpus} CPUs")
        if self.memory:
            parts.append(f"{self.memory} GB")
        for name, count in (self.accelerators or {}).items():
            parts.append(f"{name}:{count}")
        if self.instance_type:
            parts.append(self.instance_type)
        if self.use_spot:
            parts.append("spot")
        parts.append(self.infra or "any infra")
        return ", ".join(parts)


def _amount_fits(requirement: tuple[float | None, bool], available: float) -> bool:
    amount, at_least = requirement
    if amount is None:
        return True
    if at_least:
        return available >= amount - 1e-9
    return abs(available - amount) <= 1e-9 * max(1.0, amount)
