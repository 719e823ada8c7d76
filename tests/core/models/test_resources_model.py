"""Resources: normalisation, immutability, copy, fits() against offers, YAML form."""

from __future__ import annotations

import attrs
import pytest

from skyhop_core.exceptions import TaskValidationError
from skyhop_core.models import Offer, Resources


def offer(**kw: object) -> Offer:
    base: dict[str, object] = dict(
        backend="aws", instance_type="p5.48xlarge", cpus=192.0, memory_gb=2048.0,
        accelerators={"H100": 8}, price=98.0, spot_price=30.0, region="us-east-1",
        zone="us-east-1a",
    )
    base.update(kw)
    return Offer(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("infra", "canonical", "backend", "region", "zone"),
    [
        (None, None, None, None, None),
        ("*", None, None, None, None),
        ("local", "local", "local", None, None),
        ("ssh/gpu-pool", "ssh/gpu-pool", "ssh", "gpu-pool", None),
        ("aws", "aws", "aws", None, None),
        ("AWS/us-east-1", "aws/us-east-1", "aws", "us-east-1", None),
        ("aws/us-east-1/us-east-1a", "aws/us-east-1/us-east-1a", "aws", "us-east-1", "us-east-1a"),
        ("aws/*/us-east-1a", "aws/*/us-east-1a", "aws", None, "us-east-1a"),
        ("aws/*", "aws", "aws", None, None),
        ("k8s", "kubernetes", "kubernetes", None, None),
        ("k8s/arn:aws:eks:x/cluster/a", "kubernetes/arn:aws:eks:x/cluster/a", "kubernetes",
         "arn:aws:eks:x/cluster/a", None),
        ("kubernetes/ctx", "kubernetes/ctx", "kubernetes", "ctx", None),
        ("gcp/us-central1", "gcp/us-central1", "gcp", "us-central1", None),
    ],
)
def test_infra_forms(infra, canonical, backend, region, zone) -> None:
    r = Resources(infra=infra)
    assert (r.infra, r.backend, r.region, r.zone) == (canonical, backend, region, zone)


def test_legacy_cloud_region_zone_map_to_infra() -> None:
    r = Resources(cloud="aws", region="us-east-1", zone="us-east-1a")
    assert r.infra == "aws/us-east-1/us-east-1a"
    assert Resources(cloud="k8s").infra == "kubernetes"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"infra": "aws", "cloud": "gcp"},
        {"infra": "aws", "region": "us-east-1"},
        {"region": "us-east-1"},
        {"infra": "aws/a/b/c"},
        {"infra": "bad name"},
        {"infra": 3},
        {"cloud": "k8s", "zone": "z"},
    ],
)
def test_location_conflicts_are_errors(kwargs) -> None:
    with pytest.raises(TaskValidationError):
        Resources(**kwargs)


@pytest.mark.parametrize(
    ("value", "canonical", "requirement"),
    [(4, "4", (4.0, False)), ("4", "4", (4.0, False)), ("4+", "4+", (4.0, True)),
     (0.5, "0.5", (0.5, False)), (" 2.5 + ", "2.5+", (2.5, True)), (8.0, "8", (8.0, False))],
)
def test_cpus_forms(value, canonical, requirement) -> None:
    r = Resources(cpus=value)
    assert r.cpus == canonical
    assert r.cpus_requirement() == requirement


@pytest.mark.parametrize(
    ("value", "canonical"),
    [(32, "32"), ("32+", "32+"), ("64GB", "64"), ("1024MB", "1"), ("1TB+", "1024+"),
     ("512mb", "0.5")],
)
def test_memory_forms(value, canonical) -> None:
    assert Resources(memory=value).memory == canonical


@pytest.mark.parametrize("bad", [0, -1, "abc", "4++", True, [4], "4GB", float("nan"), "inf"])
def test_bad_cpus(bad) -> None:
    with pytest.raises(TaskValidationError) as info:
        Resources(cpus=bad)
    assert info.value.field == "cpus"
    assert "cpus" in str(info.value)


@pytest.mark.parametrize(
    ("value", "canonical"),
    [("H100:8", {"H100": 8}), ("H100", {"H100": 1}), ({"A100": 1}, {"A100": 1}),
     ({"A100:2": None}, {"A100": 2}), (["T4"], {"T4": 1}), ({}, None)],
)
def test_accelerator_forms(value, canonical) -> None:
    assert Resources(accelerators=value).accelerators == canonical


@pytest.mark.parametrize("bad", ["H100:0", "H100:x", ":8", {"A": 1, "B": 2}, ["A", "B"], 5,
                                 "H100:0.0001", "H100:-0.5", {"A100": True}])
def test_bad_accelerators(bad) -> None:
    with pytest.raises(TaskValidationError):
        Resources(accelerators=bad)


def test_ports_normalised() -> None:
    r = Resources(ports=[8080, "10000-10010", "8080", "22-22"])
    assert r.ports == ("8080", "10000-10010", "22")
    assert Resources(ports=8080).ports == ("8080",)
    assert Resources(ports="7000-7002").port_numbers() == (7000, 7001, 7002)
    for bad in (0, 70000, "5-3", "x", [True], 1.5):
        with pytest.raises(TaskValidationError):
            Resources(ports=bad)


@pytest.mark.parametrize(
    ("value", "config"),
    [(True, (5, False)), (10, (10, False)), ("2h", (120, False)), ("1d", (1440, False)),
     ({"idle_minutes": 10, "down": True}, (10, True)), ({"down": True}, (5, True)),
     (False, (None, False)), (None, (None, False))],
)
def test_autostop_forms(value, config) -> None:
    assert Resources(autostop=value).autostop_config() == config


def test_other_fields() -> None:
    r = Resources(
        disk_size="1TB", disk_tier="HIGH", network_tier="best", use_spot=True,
        labels={"team": "ml", "tier": 2}, image_id={"us-east-1": "ami-1"},
        job_recovery="failover", instance_type="p3.2xlarge",
    )
    assert r.disk_size == 1024 and r.disk_tier == "high" and r.use_spot
    assert r.labels == {"team": "ml", "tier": "2"}
    assert r.job_recovery == "FAILOVER"
    for kwargs in ({"disk_tier": "fast"}, {"use_spot": "yes"}, {"disk_size": 0},
                   {"job_recovery": {"strategy": "x"}}, {"labels": ["a"]}, {"image_id": ""}):
        with pytest.raises(TaskValidationError):
            Resources(**kwargs)


def test_immutable_and_copy() -> None:
    r = Resources(infra="aws/us-east-1", cpus="4+", accelerators="H100:8")
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        r.cpus = "8"  # type: ignore[misc]
    c = r.copy(cpus=8)
    assert c.cpus == "8" and r.cpus == "4+" and c.accelerators == {"H100": 8}
    assert r.copy() == r and hash(r.copy()) == hash(r)
    assert r.copy(zone="us-east-1b").infra == "aws/us-east-1/us-east-1b"
    assert r.copy(region="us-west-2").infra == "aws/us-west-2"
    assert r.copy(cloud="gcp").infra == "gcp"
    assert r.copy(infra="local").infra == "local"
    with pytest.raises(TaskValidationError) as info:
        r.copy(cpu=4)
    assert info.value.suggestion == "cpus"
    with pytest.raises(TaskValidationError):
        r.copy(cpus="lots")


def test_usable_in_sets() -> None:
    a, b = Resources(accelerators="A100"), Resources(accelerators="A100:1")
    assert a == b and len({a, b, Resources(accelerators="V100")}) == 2


@pytest.mark.parametrize(
    ("resources", "fits"),
    [
        (Resources(), True),
        (Resources(infra="aws"), True),
        (Resources(infra="gcp"), False),
        (Resources(infra="aws/us-east-1/us-east-1a"), True),
        (Resources(infra="aws/us-west-2"), False),
        (Resources(infra="aws/*/us-east-1b"), False),
        (Resources(cpus="192"), True),
        (Resources(cpus="100+"), True),
        (Resources(cpus="100"), False),
        (Resources(cpus="200+"), False),
        (Resources(memory="2048"), True),
        (Resources(memory="4096+"), False),
        (Resources(accelerators="h100:8"), True),
        (Resources(accelerators="H100:4"), False),
        (Resources(accelerators="A100:8"), False),
        (Resources(instance_type="p5.48xlarge"), True),
        (Resources(instance_type="p4d.24xlarge"), False),
        (Resources(use_spot=True), True),
    ],
)
def test_fits(resources: Resources, fits: bool) -> None:
    assert resources.fits(offer()) is fits


def test_spot_needs_spot_price() -> None:
    assert not Resources(use_spot=True).fits(offer(spot_price=None))


def test_yaml_config_round_trip_and_str() -> None:
    r = Resources(infra="k8s", cpus="4+", accelerators="H100:8", ports=[8080],
                  autostop={"idle_minutes": 10, "down": True}, use_spot=False)
    config = r.to_yaml_config()
    assert config == {"infra": "kubernetes", "cpus": "4+", "accelerators": "H100:8",
                      "ports": [8080], "autostop": {"idle_minutes": 10, "down": True}}
    assert Resources.from_yaml_config(config) == r
    assert Resources().to_yaml_config() == {}
    assert str(Resources(cpus="4+", accelerators="H100:8", infra="local")) == "4+ CPUs, H100:8, local"
    with pytest.raises(TaskValidationError):
        Resources.from_yaml_config({"any_of": [{"infra": "aws"}, {"infra": "gcp"}]})
