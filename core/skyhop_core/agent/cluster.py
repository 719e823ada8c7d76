"""The cluster description (``cluster.json``) and per-node resource accounting.

``cluster.json`` is written by the core's ``skyhop_setup_runtime``::

    {
      "cluster_name": "dev", "backend": "local",
      "instance_type": "local", "region": null, "zone": null,
      "nodes": [
        {"rank": 0, "ip": "127.0.0.1", "cpus": 8, "gpus": {"A100": 1},
         "home": "/path/home", "runtime_dir": "/path/home/.skyhop_runtime",
         "launcher": null},
        ...
      ],
      "forwards": [{"listen": "127.0.0.1:41234", "target": "127.0.0.1:8080"}]
    }

``launcher`` is an argv prefix that runs a command on that node; the agent appends one
argument, a POSIX shell command line. ``null`` runs the command here as a subprocess.
``forwards`` (optional) are TCP ports the daemon relays while it runs.
"""

from __future__ import annotations

import json
from typing import Any

EPSILON = 1e-9


class ClusterInfo:
    """The parsed ``cluster.json``."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data
        self.nodes: list[dict[str, Any]] = sorted(data.get("nodes") or [], key=lambda n: n["rank"])
        if not self.nodes:
            raise ValueError("cluster.json lists no nodes")

    @classmethod
    def load(cls, path: str) -> ClusterInfo:
        with open(path) as f:
            return cls(json.load(f))

    @property
    def name(self) -> str:
        return str(self.data.get("cluster_name") or "")


def _gpu_key(name: str) -> str:
    return name.lower()


class Accounting:
    """Free CPUs and GPUs of every node, with allocations held by running jobs."""

    def __init__(self, cluster: ClusterInfo) -> None:
        self.cluster = cluster
        self.allocations: dict[int, list[int]] = {}  # job id -> node ranks (job rank order)
        self._free_cpus = {n["rank"]: float(n.get("cpus") or 0) for n in cluster.nodes}
        self._free_gpus = {
            n["rank"]: {_gpu_key(k): float(v) for k, v in (n.get("gpus") or {}).items()}
            for n in cluster.nodes
        }
        self._held: dict[int, tuple[float, dict[str, float]]] = {}

    def _fits_node(self, rank: int, cpus: float, gpus: dict[str, float], *, free: bool) -> bool:
        node = next(n for n in self.cluster.nodes if n["rank"] == rank)
        have_cpus = self._free_cpus[rank] if free else float(node.get("cpus") or 0)
        have_gpus = (
            self._free_gpus[rank]
            if free
            else {_gpu_key(k): float(v) for k, v in (node.get("gpus") or {}).items()}
        )
        if cpus > have_cpus + EPSILON:
            return False
        return all(have_gpus.get(_gpu_key(k), 0) >= v - EPSILON for k, v in gpus.items() if v > 0)

    def feasible(self, cpus: float, gpus: dict[str, float], num_nodes: int) -> bool:
        """Whether the job could ever run here (on an otherwise idle cluster)."""
        fitting = [
            n["rank"]
            for n in self.cluster.nodes
            if self._fits_node(n["rank"], cpus, gpus, free=False)
        ]
        return len(fitting) >= num_nodes

    def allocate(
        self, job_id: int, cpus: float, gpus: dict[str, float], num_nodes: int
    ) -> list[int] | None:
        """Reserve ``num_nodes`` nodes with enough free resources; None if not possible now."""
        chosen = [
            n["rank"]
            for n in self.cluster.nodes
            if self._fits_node(n["rank"], cpus, gpus, free=True)
        ][:num_nodes]
        if len(chosen) < num_nodes:
            return None
        self.reserve(job_id, chosen, cpus, gpus)
        return chosen

    def reserve(self, job_id: int, ranks: list[int], cpus: float, gpus: dict[str, float]) -> None:
        """Record that ``job_id`` holds ``cpus``/``gpus`` on each of ``ranks``."""
        wanted = {_gpu_key(k): float(v) for k, v in gpus.items()}
        for rank in ranks:
            if rank not in self._free_cpus:
                continue  # the node left the cluster; nothing to account
            self._free_cpus[rank] -= cpus
            for key, count in wanted.items():
                self._free_gpus[rank][key] = self._free_gpus[rank].get(key, 0) - count
        self.allocations[job_id] = list(ranks)
        self._held[job_id] = (cpus, wanted)

    def held(self, job_id: int) -> tuple[float, dict[str, float]]:
        """What ``job_id`` holds on each of its nodes: (cpus, gpus)."""
        return self._held.get(job_id, (0.0, {}))

    def release(self, job_id: int) -> None:
        ranks = self.allocations.pop(job_id, [])
        cpus, wanted = self._held.pop(job_id, (0.0, {}))
        for rank in ranks:
            if rank not in self._free_cpus:
                continue
            self._free_cpus[rank] += cpus
            for key, count in wanted.items():
                self._free_gpus[rank][key] = self._free_gpus[rank].get(key, 0) + count


def resources_str(num_nodes: int, cpus: float, gpus: dict[str, float]) -> str:
    """How a job's request is shown in the queue, e.g. ``2x[CPU:1, A100:1]``."""
    parts = [f"CPU:{cpus:g}"] + [f"{k}:{v:g}" for k, v in sorted(gpus.items()) if v]
    return f"{num_nodes}x[{', '.join(parts)}]"
