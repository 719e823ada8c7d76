"""GPUs on Kubernetes nodes: their resource names, and their type from the common labels.

A node's GPU count is its allocatable ``nvidia.com/gpu`` (or ``amd.com/gpu``); its GPU
type comes from the first of the label keys that GPU operators and clouds set. Label
values name the same GPU differently (``NVIDIA-A100-SXM4-80GB``, ``nvidia-tesla-a100``,
``a100``), so :func:`canonical` reduces them to skyhop's accelerator names (``A100``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

#: Extended resources that count GPUs, in the order they are looked for.
GPU_RESOURCES = ("nvidia.com/gpu", "amd.com/gpu")
#: Label keys that name a node's GPU type, most specific first.
LABEL_KEYS = (
    "skyhop.dev/accelerator",
    "nvidia.com/gpu.product",
    "cloud.google.com/gke-accelerator",
    "karpenter.k8s.aws/instance-gpu-name",
    "amd.com/gpu.product-name",
)
_PREFIXES = ("nvidia-tesla-", "nvidia-", "tesla-", "geforce-", "quadro-", "amd-", "instinct-")


def canonical(value: str) -> str:
    """``NVIDIA-A100-SXM4-80GB`` / ``nvidia-tesla-a100`` / ``a100`` -> ``A100``."""
    text = value.strip().lower().replace("_", "-").replace(" ", "-")
    changed = True
    while changed:
        changed = False
        for prefix in _PREFIXES:
            if text.startswith(prefix):
                text, changed = text[len(prefix) :], True
    parts = [p for p in text.split("-") if p]
    if not parts:
        return value
    if parts[0] in ("rtx", "gtx") and len(parts) > 1:
        return (parts[0] + parts[1]).upper()
    return re.sub(r"[^a-z0-9]", "", parts[0]).upper() or value


def node_gpu(labels: Mapping[str, str], allocatable: Mapping[str, str]) -> tuple[str, str, int]:
    """(resource name, GPU type, count) of a node; ("", "", 0) without GPUs.

    A node with GPUs but no type label reports the type ``GPU``.
    """
    for resource in GPU_RESOURCES:
        try:
            count = int(float(allocatable.get(resource, 0) or 0))
        except ValueError:
            count = 0
        if count > 0:
            for key in LABEL_KEYS:
                if labels.get(key):
                    return resource, canonical(labels[key]), count
            return resource, "GPU", count
    return "", "", 0


def affinity_terms(nodes_labels: list[Mapping[str, str]], gpu_type: str) -> list[dict[str, object]]:
    """Node-selector terms (ORed) matching the nodes whose GPU type is ``gpu_type``.

    One term per label key, with the exact label values those nodes carry, so the pod
    lands only on the right GPUs however the cluster labels them.
    """
    values: dict[str, set[str]] = {}
    for labels in nodes_labels:
        for key in LABEL_KEYS:
            value = labels.get(key)
            if value and canonical(value).lower() == gpu_type.lower():
                values.setdefault(key, set()).add(value)
                break
    return [
        {"matchExpressions": [{"key": key, "operator": "In", "values": sorted(vals)}]}
        for key, vals in sorted(values.items())
    ]
