"""SkyPilot's cloud objects (sky.AWS(), sky.Kubernetes(), ...) work as Resources(cloud=...);
the clouds skyhop has no backend for are placeholders that say so."""

from __future__ import annotations

import skyhop as sky
from skyhop_core.models.clouds import CLOUDS


def test_cloud_objects_are_their_backend_names() -> None:
    assert sky.Resources(cloud=sky.AWS(), region="us-east-1").infra == "aws/us-east-1"
    assert sky.Resources(cloud=sky.Kubernetes()).infra == "kubernetes"
    assert sky.Resources(cloud=sky.GCP(), region="us-central1", zone="us-central1-a").zone == (
        "us-central1-a")
    r = sky.Resources(infra="aws/us-east-1")
    assert r.copy(cloud=sky.GCP()).infra == "gcp"  # a new cloud drops the region
    assert sky.AWS() == sky.AWS() and sky.AWS() == "aws" and sky.AWS() != sky.GCP()
    assert str(sky.Kubernetes()) == "kubernetes" and repr(sky.AWS()) == "AWS()"


def test_other_clouds_are_placeholders() -> None:
    available = sorted(name for name, c in CLOUDS.items() if c.available)
    assert available == ["AWS", "GCP", "Kubernetes", "Local", "SSH"]
    assert not sky.Azure.available and "placeholder" in (sky.Azure.__doc__ or "")
    # A task naming one parses; launching it is refused by the optimizer (no such backend).
    task = sky.Task(run="x", resources=sky.Resources(cloud=sky.Lambda()))
    assert task.to_yaml_config()["resources"] == {"infra": "lambda"}
