"""The task YAML's ``service:`` section, field for field with SkyPilot's names and defaults.

::

    service:
      readiness_probe: /health          # or {path, post_data, initial_delay_seconds,
                                        #     timeout_seconds, headers}
      replicas: 2                       # a fixed count; or replica_policy:
      replica_policy:
        min_replicas: 1
        max_replicas: 4
        target_qps_per_replica: 2.5
        num_overprovision: 0
        upscale_delay_seconds: 300
        downscale_delay_seconds: 1200
        base_ondemand_fallback_replicas: 0
        dynamic_ondemand_fallback: false
      ports: 8080                       # the replicas' port (else resources.ports)
      load_balancing_policy: least_load # or round_robin
      tls: {keyfile: key.pem, certfile: cert.pem}

Defaults follow SkyPilot: a 1200 s initial delay, 15 s probe timeout, 300 s upscale and
1200 s downscale delays, one replica, ``least_load``. ``replicas`` and
``replica_policy`` are exclusive; autoscaling (``max_replicas`` > ``min_replicas``)
needs ``target_qps_per_replica``. Problems are :class:`FieldError`\\ s relative to
``service`` (the task parser turns them into the usual TaskValidationError).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import attrs

from skyhop_core.models.validate import FieldError, check_keys, check_mapping, join_path

DEFAULT_INITIAL_DELAY_SECONDS = 1200
DEFAULT_PROBE_TIMEOUT_SECONDS = 15
DEFAULT_UPSCALE_DELAY_SECONDS = 300
DEFAULT_DOWNSCALE_DELAY_SECONDS = 1200
LOAD_BALANCING_POLICIES = ("round_robin", "least_load")
DEFAULT_LOAD_BALANCING_POLICY = "least_load"
#: No service needs more replicas than this (and a typo of 10**6 launches nothing).
MAX_REPLICAS = 1000

SERVICE_KEYS = (
    "readiness_probe", "replicas", "replica_policy", "ports", "load_balancing_policy", "tls",
)
PROBE_KEYS = ("path", "post_data", "initial_delay_seconds", "timeout_seconds", "headers")
POLICY_KEYS = (
    "min_replicas", "max_replicas", "target_qps_per_replica", "num_overprovision",
    "upscale_delay_seconds", "downscale_delay_seconds", "base_ondemand_fallback_replicas",
    "dynamic_ondemand_fallback",
)
TLS_KEYS = ("keyfile", "certfile")


@attrs.frozen
class ReadinessProbe:
    """How a replica is judged ready: ``path`` answers 200 (GET, or POST of
    ``post_data`` as JSON) within ``timeout_seconds``; failures during the first
    ``initial_delay_seconds`` do not count."""

    path: str = "/"
    post_data: Any = None
    initial_delay_seconds: float = DEFAULT_INITIAL_DELAY_SECONDS
    timeout_seconds: float = DEFAULT_PROBE_TIMEOUT_SECONDS
    headers: dict[str, str] = attrs.field(factory=dict)


@attrs.frozen
class ReplicaPolicy:
    """How many replicas: ``min_replicas``..``max_replicas`` (None: fixed at min), scaled
    so each gets about ``target_qps_per_replica`` queries per second."""

    min_replicas: int = 1
    max_replicas: int | None = None
    target_qps_per_replica: float | None = None
    num_overprovision: int = 0
    upscale_delay_seconds: float = DEFAULT_UPSCALE_DELAY_SECONDS
    downscale_delay_seconds: float = DEFAULT_DOWNSCALE_DELAY_SECONDS
    base_ondemand_fallback_replicas: int = 0
    dynamic_ondemand_fallback: bool = False

    @property
    def autoscaling(self) -> bool:
        return self.max_replicas is not None and self.max_replicas > self.min_replicas

    def describe(self) -> str:
        """SkyPilot's ``policy`` string for ``serve status``."""
        if not self.autoscaling:
            text = f"Fixed replicas: {self.min_replicas}"
        else:
            text = (
                f"Autoscaling from {self.min_replicas} to {self.max_replicas} replicas"
                f" (target QPS per replica: {self.target_qps_per_replica:g})"
            )
        if self.num_overprovision:
            text += f", {self.num_overprovision} overprovisioned"
        if self.base_ondemand_fallback_replicas:
            text += f", {self.base_ondemand_fallback_replicas} on-demand base"
        if self.dynamic_ondemand_fallback:
            text += ", dynamic on-demand fallback"
        return text


@attrs.frozen
class TlsConfig:
    keyfile: str
    certfile: str


@attrs.frozen
class ServiceSpec:
    """A parsed ``service:`` section (see the module docstring)."""

    readiness_probe: ReadinessProbe
    replica_policy: ReplicaPolicy
    ports: int | None = None
    load_balancing_policy: str = DEFAULT_LOAD_BALANCING_POLICY
    tls: TlsConfig | None = None


def _number(value: Any, field: str, what: str, *, minimum: float = 0, integer: bool = False,
            maximum: float | None = None) -> Any:
    bad = isinstance(value, bool) or not isinstance(value, int | float)
    if not bad and integer and not float(value).is_integer():
        bad = True
    if not bad and (not math.isfinite(value) or value < minimum):
        bad = True
    if not bad and maximum is not None and value > maximum:
        bad = True
    if bad:
        raise FieldError(field, value, what)
    return int(value) if integer else value


def _count(value: Any, field: str, minimum: int = 0) -> int:
    return int(_number(
        value, field, f"a whole number from {minimum} to {MAX_REPLICAS}",
        minimum=minimum, integer=True, maximum=MAX_REPLICAS,
    ))


def _seconds(value: Any, field: str) -> float:
    return float(_number(value, field, "a number of seconds >= 0"))


def _path(value: Any, field: str) -> str:
    if not isinstance(value, str) or not value.startswith("/") or any(c.isspace() for c in value):
        raise FieldError(field, value, "a URL path starting with '/', e.g. '/health'")
    return value


def _probe(value: Any) -> ReadinessProbe:
    field = "readiness_probe"
    if isinstance(value, str):
        return ReadinessProbe(path=_path(value, field))
    mapping = check_mapping(value, field, "probe settings (path, initial_delay_seconds, ...)"
                            " or a URL path")
    check_keys(mapping, PROBE_KEYS, field)
    if "path" not in mapping:
        raise FieldError(join_path(field, "path"), None, "a URL path starting with '/'")
    headers = mapping.get("headers") or {}
    check_mapping(headers, join_path(field, "headers"), "header names to values")
    for name, item in headers.items():
        if not isinstance(name, str) or not name or not isinstance(item, str | int | float):
            raise FieldError(join_path(join_path(field, "headers"), str(name)), item,
                             "a header name mapped to a string value")
    timeout = mapping.get("timeout_seconds", DEFAULT_PROBE_TIMEOUT_SECONDS)
    return ReadinessProbe(
        path=_path(mapping["path"], join_path(field, "path")),
        post_data=mapping.get("post_data"),
        initial_delay_seconds=_seconds(
            mapping.get("initial_delay_seconds", DEFAULT_INITIAL_DELAY_SECONDS),
            join_path(field, "initial_delay_seconds"),
        ),
        timeout_seconds=float(_number(
            timeout, join_path(field, "timeout_seconds"), "a number of seconds > 0",
            minimum=1e-3,
        )),
        headers={str(k): str(v) for k, v in headers.items()},
    )


def _policy(mapping: Mapping[str, Any]) -> ReplicaPolicy:
    field = "replica_policy"
    check_keys(mapping, POLICY_KEYS, field)

    def at(key: str) -> str:
        return join_path(field, key)

    minimum = _count(mapping.get("min_replicas", 1), at("min_replicas"))
    maximum = mapping.get("max_replicas")
    if maximum is not None:
        maximum = _count(maximum, at("max_replicas"))
        if maximum < minimum:
            raise FieldError(at("max_replicas"), maximum,
                             f"a number >= min_replicas ({minimum})")
    qps = mapping.get("target_qps_per_replica")
    if qps is not None:
        qps = float(_number(qps, at("target_qps_per_replica"), "a number of queries per "
                            "second > 0", minimum=1e-9))
    if maximum is not None and maximum > minimum and qps is None:
        raise FieldError(at("target_qps_per_replica"), None,
                         "a number: autoscaling (max_replicas > min_replicas) scales by it")
    if (maximum is None or maximum == minimum) and qps is not None:
        raise FieldError(at("max_replicas"), maximum,
                         "a number > min_replicas when target_qps_per_replica is set")
    dynamic = mapping.get("dynamic_ondemand_fallback", False)
    if not isinstance(dynamic, bool):
        raise FieldError(at("dynamic_ondemand_fallback"), dynamic, "true or false")
    return ReplicaPolicy(
        min_replicas=minimum,
        max_replicas=maximum,
        target_qps_per_replica=qps,
        num_overprovision=_count(mapping.get("num_overprovision", 0), at("num_overprovision")),
        upscale_delay_seconds=_seconds(
            mapping.get("upscale_delay_seconds", DEFAULT_UPSCALE_DELAY_SECONDS),
            at("upscale_delay_seconds"),
        ),
        downscale_delay_seconds=_seconds(
            mapping.get("downscale_delay_seconds", DEFAULT_DOWNSCALE_DELAY_SECONDS),
            at("downscale_delay_seconds"),
        ),
        base_ondemand_fallback_replicas=_count(
            mapping.get("base_ondemand_fallback_replicas", 0),
            at("base_ondemand_fallback_replicas"),
        ),
        dynamic_ondemand_fallback=dynamic,
    )


def _port(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        raise FieldError("ports", value, "one port number (1-65535) the replicas listen on")
    return value


def parse_service(value: Any) -> ServiceSpec:
    """The :class:`ServiceSpec` of a ``service:`` mapping; FieldErrors name the field
    relative to ``service``."""
    mapping = check_mapping(value, "", "service settings (readiness_probe, replicas, ...)")
    check_keys(mapping, SERVICE_KEYS)
    if "readiness_probe" not in mapping:
        raise FieldError("readiness_probe", None,
                         "a URL path (e.g. '/') or probe settings: every service needs one")
    probe = _probe(mapping["readiness_probe"])
    if "replicas" in mapping and "replica_policy" in mapping:
        raise FieldError("replicas", mapping["replicas"],
                         "no value when replica_policy is given (use one of them)")
    if "replica_policy" in mapping:
        policy = _policy(check_mapping(mapping["replica_policy"], "replica_policy",
                                       "replica policy settings (min_replicas, ...)"))
    else:
        policy = ReplicaPolicy(min_replicas=_count(mapping.get("replicas", 1), "replicas"))
    lb = mapping.get("load_balancing_policy", DEFAULT_LOAD_BALANCING_POLICY)
    if lb not in LOAD_BALANCING_POLICIES:
        raise FieldError("load_balancing_policy", lb,
                         "one of " + ", ".join(repr(p) for p in LOAD_BALANCING_POLICIES))
    tls = None
    if mapping.get("tls") is not None:
        tls_map = check_mapping(mapping["tls"], "tls", "keyfile and certfile paths")
        check_keys(tls_map, TLS_KEYS, "tls")
        for key in TLS_KEYS:
            if not isinstance(tls_map.get(key), str) or not tls_map[key].strip():
                raise FieldError(join_path("tls", key), tls_map.get(key), "a file path")
        tls = TlsConfig(keyfile=tls_map["keyfile"], certfile=tls_map["certfile"])
    return ServiceSpec(
        readiness_probe=probe,
        replica_policy=policy,
        ports=_port(mapping.get("ports")),
        load_balancing_policy=str(lb),
        tls=tls,
    )


def check_task_service(config: Any, source: str) -> ServiceSpec:
    """The ServiceSpec of a task mapping's ``service:`` section, or the usual
    TaskValidationError naming ``source`` and ``service.<field>``.

    The generic task parser keeps ``service:`` as plain data (a ``launch`` ignores it);
    ``serve up`` / ``serve update`` check it with this, on the client and the server."""
    from skyhop_core.exceptions import TaskValidationError

    service = config.get("service") if isinstance(config, Mapping) else None
    if service is None:
        raise TaskValidationError(
            f"{source}: a service needs a 'service:' section (at least "
            "'service: {readiness_probe: /}'); see `skyhop serve up --help`.",
            source=source, field="service", value="None",
        )
    try:
        return parse_service(service)
    except FieldError as err:
        raise err.within("service").to_task_error(source) from None
