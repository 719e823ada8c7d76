"""The fake's kube-scheduler: place a pod on a node, or say why not, as kube-scheduler does.

A node fits when it is schedulable, the pod tolerates its ``NoSchedule`` taints, its
labels match the pod's ``nodeSelector`` and required node affinity, and its allocatable
resources minus the requests of the pods already on it cover the pod's requests. When no
node fits, the message has kube-scheduler's shape, e.g.
``0/2 nodes are available: 2 Insufficient cpu.``
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

_UNITS: dict[str, float] = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "k": 1e3, "M": 1e6, "G": 1e9,
          "T": 1e12, "m": 1e-3, "": 1}  # fmt: skip


def quantity(value: Any) -> float:
    """A resource quantity (``500m``, ``2``, ``4Gi``) as a number."""
    match = re.fullmatch(r"\s*([0-9.]+)([A-Za-z]*)\s*", str(value))
    if not match or match.group(2) not in _UNITS:
        raise ValueError(f"quantities must match the regular expression: {value!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def pod_requests(pod: dict[str, Any]) -> dict[str, float]:
    """The pod's requests summed over containers (limits stand in for missing requests)."""
    total: dict[str, float] = {}
    for c in pod.get("spec", {}).get("containers", []):
        res = c.get("resources") or {}
        req = {**(res.get("limits") or {}), **(res.get("requests") or {})}
        for key, value in req.items():
            total[key] = total.get(key, 0.0) + quantity(value)
    return total


def _tolerates(pod: dict[str, Any], taint: dict[str, Any]) -> bool:
    for tol in pod.get("spec", {}).get("tolerations") or []:
        if tol.get("effect") and tol["effect"] != taint.get("effect"):
            continue
        if tol.get("operator") == "Exists" and (not tol.get("key") or tol["key"] == taint["key"]):
            return True
        if tol.get("key") == taint["key"] and tol.get("value", "") == taint.get("value", ""):
            return True
    return False


def _expr_ok(expr: dict[str, Any], labels: dict[str, str]) -> bool:
    key, op, values = expr["key"], expr["operator"], expr.get("values") or []
    if op == "In":
        return labels.get(key) in values
    if op == "NotIn":
        return labels.get(key) not in values
    if op == "Exists":
        return key in labels
    if op == "DoesNotExist":
        return key not in labels
    return False


def _affinity_ok(pod: dict[str, Any], labels: dict[str, str]) -> bool:
    spec = pod.get("spec", {})
    if any(labels.get(k) != v for k, v in (spec.get("nodeSelector") or {}).items()):
        return False
    required = (((spec.get("affinity") or {}).get("nodeAffinity") or {})
                .get("requiredDuringSchedulingIgnoredDuringExecution") or {})  # fmt: skip
    terms = required.get("nodeSelectorTerms") or []
    if not terms:
        return True
    return any(all(_expr_ok(e, labels) for e in t.get("matchExpressions") or []) for t in terms)


def choose_node(pod: dict[str, Any], nodes: list[dict[str, Any]],
                pods: list[dict[str, Any]]) -> tuple[str | None, str]:  # fmt: skip
    """(node name, "") for the first node that fits, else (None, the scheduler's message)."""
    want = pod_requests(pod)
    reasons: Counter[str] = Counter()
    for node in nodes:
        name = node["metadata"]["name"]
        labels = node["metadata"].get("labels") or {}
        if node.get("spec", {}).get("unschedulable"):
            reasons["node(s) were unschedulable"] += 1
            continue
        untolerated = [t for t in node.get("spec", {}).get("taints") or []
                       if t.get("effect") in ("NoSchedule", "NoExecute")
                       and not _tolerates(pod, t)]  # fmt: skip
        if untolerated:
            t = untolerated[0]
            value = f": {t['value']}" if t.get("value") else ""
            reasons[f"node(s) had untolerated taint {{{t['key']}{value}}}"] += 1
            continue
        if not _affinity_ok(pod, labels):
            reasons["node(s) didn't match Pod's node affinity/selector"] += 1
            continue
        used: dict[str, float] = {}
        for other in pods:
            if other["spec"].get("nodeName") == name and other["status"].get("phase") in (
                "Pending",
                "Running",
            ):
                for k, v in pod_requests(other).items():
                    used[k] = used.get(k, 0.0) + v
        allocatable = {k: quantity(v) for k, v in (node["status"].get("allocatable") or {}).items()}
        short = [k for k, v in sorted(want.items())
                 if v > 0 and used.get(k, 0.0) + v > allocatable.get(k, 0) + 1e-9]  # fmt: skip
        if short:
            for k in short:
                reasons[f"Insufficient {k}"] += 1
            continue
        return name, ""
    detail = ", ".join(f"{n} {r}" for r, n in sorted(reasons.items(), key=lambda x: x[0]))
    message = (
        f"0/{len(nodes)} nodes are available: {detail}."
        if detail
        else ("no nodes available to schedule pods")
    )
    if nodes:
        message += (f" preemption: 0/{len(nodes)} nodes are available: {len(nodes)} "
                    "Preemption is not helpful for scheduling.")  # fmt: skip
    return None, message
