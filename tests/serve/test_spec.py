"""The ``service:`` section: SkyPilot's fields and defaults, precise errors."""

from __future__ import annotations

from typing import Any

import pytest

from skyhop_core.exceptions import TaskValidationError
from skyhop_core.models.service_spec import check_task_service, parse_service


def test_a_path_probe_gets_skypilots_defaults() -> None:
    spec = parse_service({"readiness_probe": "/health"})
    assert spec.readiness_probe.path == "/health"
    assert spec.readiness_probe.initial_delay_seconds == 1200
    assert spec.readiness_probe.timeout_seconds == 15
    assert spec.replica_policy.min_replicas == 1
    assert not spec.replica_policy.autoscaling
    assert spec.replica_policy.upscale_delay_seconds == 300
    assert spec.replica_policy.downscale_delay_seconds == 1200
    assert spec.load_balancing_policy == "least_load"
    assert spec.ports is None and spec.tls is None


def test_every_field_is_read() -> None:
    spec = parse_service({
        "readiness_probe": {"path": "/v1/models", "post_data": {"model": "m"},
                            "initial_delay_seconds": 30, "timeout_seconds": 2,
                            "headers": {"Authorization": "Bearer x"}},
        "replica_policy": {"min_replicas": 0, "max_replicas": 5, "target_qps_per_replica": 2.5,
                           "num_overprovision": 1, "upscale_delay_seconds": 10,
                           "downscale_delay_seconds": 20, "base_ondemand_fallback_replicas": 1,
                           "dynamic_ondemand_fallback": True},
        "ports": 8080, "load_balancing_policy": "round_robin",
        "tls": {"keyfile": "k.pem", "certfile": "c.pem"},
    })
    assert spec.readiness_probe.post_data == {"model": "m"}
    assert spec.readiness_probe.headers == {"Authorization": "Bearer x"}
    policy = spec.replica_policy
    assert (policy.min_replicas, policy.max_replicas, policy.target_qps_per_replica) == (0, 5, 2.5)
    assert policy.autoscaling and policy.dynamic_ondemand_fallback
    assert "Autoscaling from 0 to 5" in policy.describe()
    assert spec.ports == 8080 and spec.load_balancing_policy == "round_robin"
    assert spec.tls is not None and spec.tls.certfile == "c.pem"


@pytest.mark.parametrize(
    ("service", "field", "shown"),
    [
        ({}, "service.readiness_probe", "None"),
        ({"readiness_probe": "health"}, "service.readiness_probe", "'health'"),
        ({"readiness_probe": "/", "replicas": -1}, "service.replicas", "-1"),
        ({"readiness_probe": "/", "replicas": 2, "replica_policy": {}}, "service.replicas", "2"),
        ({"readiness_probe": "/", "replica_policy": {"min_replicas": 3, "max_replicas": 2}},
         "service.replica_policy.max_replicas", "2"),
        ({"readiness_probe": "/", "replica_policy": {"min_replicas": 1, "max_replicas": 3}},
         "service.replica_policy.target_qps_per_replica", "None"),
        ({"readiness_probe": "/", "load_balancing_policy": "random"},
         "service.load_balancing_policy", "'random'"),
        ({"readiness_probe": "/", "ports": 70000}, "service.ports", "70000"),
        ({"readiness_probe": {"path": "/", "timout_seconds": 3}},
         "service.readiness_probe.timout_seconds", "3"),
        ({"readiness_probe": "/", "replicaz": 1}, "service.replicaz", "1"),
        ({"readiness_probe": {"path": "/", "initial_delay_seconds": "soon"}},
         "service.readiness_probe.initial_delay_seconds", "'soon'"),
    ],
)
def test_bad_sections_name_the_file_field_and_value(
    service: dict[str, Any], field: str, shown: str
) -> None:
    with pytest.raises(TaskValidationError) as info:
        check_task_service({"service": service, "run": "x"}, "svc.yaml")
    assert info.value.field == field
    assert info.value.value == shown
    assert str(info.value).startswith("svc.yaml: ")
    assert field in str(info.value)


def test_a_typo_gets_a_suggestion() -> None:
    with pytest.raises(TaskValidationError) as info:
        check_task_service({"service": {"readiness_probe": "/", "replica": 2}}, "svc.yaml")
    assert info.value.suggestion == "replicas"


def test_a_task_without_a_service_section_is_refused() -> None:
    with pytest.raises(TaskValidationError, match="needs a 'service:' section"):
        check_task_service({"run": "python -m http.server"}, "svc.yaml")
