"""The pod and Service manifests of a skyhop cluster on Kubernetes (plain dicts).

One pod per node, ``<cluster>-head`` and ``<cluster>-worker<i>``, labelled with the
cluster, the user and the rank (and the task's ``resources.labels``); one headless
Service per pod, with the pod's name, so ranks reach each other by DNS name too. The
container only waits (``sleep``): skyhop installs its node agent and runs jobs through
exec. Requests equal limits for CPU and memory (Guaranteed QoS when both are set); GPUs
are an extended-resource limit, with node affinity on the GPU type's label and
tolerations for the usual GPU taints. ``kubernetes: pod_overrides`` in the config is
merged into the pod (dicts merged, everything else replaced) for what skyhop does not
model (service accounts, volumes, priority classes, ...).
"""

from __future__ import annotations

import copy
import hashlib
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

DEFAULT_IMAGE = "python:3.12-slim"
CONTAINER = "skyhop"
LABEL_CLUSTER = "skyhop.dev/cluster"
LABEL_USER = "skyhop.dev/user"
LABEL_RANK = "skyhop.dev/rank"
LABEL_MANAGED = "skyhop.dev/managed-by"
#: Waits forever and exits at once on SIGTERM (pods are deleted with a short grace).
KEEPALIVE = "trap 'exit 0' TERM INT; while :; do sleep 3600 & wait $!; done"
GPU_TOLERATIONS = [
    {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "amd.com/gpu", "operator": "Exists", "effect": "NoSchedule"},
]


def object_name(cluster: str) -> str:
    """The cluster's name as the stem of Kubernetes object names.

    skyhop allows ``A-Z``, ``_`` and ``.`` and 63 characters; pod and Service names allow
    only lowercase letters, digits and ``-`` (63 for a Service). A name that needs
    changing gets a short hash so two clusters never map to the same pods.
    """
    stem = re.sub(r"[^a-z0-9-]", "-", cluster.lower()).strip("-") or "c"
    if stem != cluster or len(stem) > 45:
        digest = hashlib.sha256(cluster.encode()).hexdigest()[:6]
        stem = f"{stem[:38].rstrip('-')}-{digest}"
    return stem


def pod_name(cluster: str, rank: int) -> str:
    stem = object_name(cluster)
    return f"{stem}-head" if rank == 0 else f"{stem}-worker{rank}"


def cluster_selector(cluster: str) -> str:
    return f"{LABEL_CLUSTER}={cluster}"


def cpu_quantity(cpus: float) -> str:
    millis = int(math.ceil(cpus * 1000))
    return str(millis // 1000) if millis % 1000 == 0 else f"{millis}m"


def memory_quantity(gb: float) -> str:
    mib = int(math.ceil(gb * 1024))
    return f"{mib // 1024}Gi" if mib % 1024 == 0 else f"{mib}Mi"


def merge(base: dict[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """``override`` merged into a copy of ``base``: dicts recursively, the rest replaced."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def labels(cluster: str, user_hash: str, rank: int,
           extra: Mapping[str, str] | None = None) -> dict[str, str]:  # fmt: skip
    out = {str(k): str(v) for k, v in (extra or {}).items()}
    out.update({LABEL_CLUSTER: cluster, LABEL_USER: user_hash or "unknown",
                LABEL_RANK: str(rank), LABEL_MANAGED: "skyhop"})  # fmt: skip
    return out


def pod(
    cluster: str,
    rank: int,
    *,
    user_hash: str,
    image: str,
    cpus: float | None,
    memory_gb: float | None,
    gpu_resource: str = "",
    gpu_count: int = 0,
    gpu_terms: Sequence[Mapping[str, Any]] = (),
    extra_labels: Mapping[str, str] | None = None,
    tolerations: Sequence[Mapping[str, Any]] = (),
    overrides: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The manifest of the pod of ``rank``."""
    limits: dict[str, str] = {}
    if cpus:
        limits["cpu"] = cpu_quantity(cpus)
    if memory_gb:
        limits["memory"] = memory_quantity(memory_gb)
    if gpu_count:
        limits[gpu_resource or "nvidia.com/gpu"] = str(gpu_count)
    name = pod_name(cluster, rank)
    spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "hostname": name,
        "terminationGracePeriodSeconds": 10,
        "automountServiceAccountToken": False,
        "containers": [
            {
                "name": CONTAINER,
                "image": image,
                "command": ["/bin/sh", "-c", KEEPALIVE],
                "env": [
                    {"name": "SKYHOP_CLUSTER", "value": cluster},
                    {"name": "SKYHOP_NODE_RANK", "value": str(rank)},
                ],
                "resources": {"requests": dict(limits), "limits": dict(limits)} if limits else {},
            }
        ],  # fmt: skip
    }
    tols = [dict(t) for t in tolerations]
    if gpu_count:
        tols += [t for t in GPU_TOLERATIONS if t not in tols]
        if gpu_terms:
            spec["affinity"] = {"nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [dict(t) for t in gpu_terms]}}}  # fmt: skip
    if tols:
        spec["tolerations"] = tols
    manifest: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels(cluster, user_hash, rank, extra_labels)},
        "spec": spec,
    }
    return merge(manifest, overrides) if overrides else manifest


def headless_service(cluster: str, rank: int, user_hash: str) -> dict[str, Any]:
    """A headless Service named like the pod: ``<pod>.<namespace>.svc`` resolves to it."""
    name = pod_name(cluster, rank)
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "labels": labels(cluster, user_hash, rank)},
        "spec": {"clusterIP": "None", "selector": {LABEL_CLUSTER: cluster,
                                                   LABEL_RANK: str(rank)},
                 "ports": [{"name": "relay", "port": 7077, "targetPort": 7077}]},
    }  # fmt: skip


def ports_service(cluster: str, user_hash: str, ports: Sequence[int],
                  service_type: str) -> dict[str, Any]:  # fmt: skip
    """The Service exposing the task's ``ports`` on the head (NodePort or LoadBalancer)."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": f"{object_name(cluster)}-ports",
                     "labels": labels(cluster, user_hash, 0)},
        "spec": {"type": service_type,
                 "selector": {LABEL_CLUSTER: cluster, LABEL_RANK: "0"},
                 "ports": [{"name": f"p{p}", "port": p, "targetPort": p, "protocol": "TCP"}
                           for p in sorted(set(ports))]},
    }  # fmt: skip
