"""The kubernetes backend passes the whole conformance suite, unmodified, on the fakes.

Every test provisions real pods on the fake API servers (``conftest``): the agent is
installed through exec stdin, jobs run as processes in the pods' network namespaces,
2-node jobs reach the worker pod through the relay, logs and cancellation go through
exec. What this cannot show is listed in the README (admission, RBAC, CNI, real GPUs,
autoscalers).
"""

from __future__ import annotations

from typing import Any

import pytest

from skyhop_core.testing.conformance import BackendConformance, Simulation
from skyhop_core.testing.harness import Timeouts


class TestKubernetesOnFake(BackendConformance):
    backend_name = "kubernetes"
    timeouts = Timeouts(call=60, provision=90, teardown=60, job=60)

    @pytest.fixture
    def conformance_config(self, k8s_config: dict[str, Any]) -> dict[str, Any]:
        return k8s_config

    @pytest.fixture
    def conformance_simulation(self, fake_clusters: dict[str, Any]) -> Simulation:
        from skyhop_kubernetes.manifests import LABEL_CLUSTER

        def leftovers(name: str) -> list[str]:
            """The cluster's pods and Services in every fake API server."""
            left = []
            for context, fake in fake_clusters.items():
                for kind in ("pods", "services"):
                    found = fake.api("GET", f"/api/v1/namespaces/skyhop/{kind}",
                                     params={"labelSelector": f"{LABEL_CLUSTER}={name}"})
                    found.raise_for_status()
                    left += [f"{context}: {kind[:-1]} {item['metadata']['name']}"
                             for item in found.json().get("items", [])]  # fmt: skip
            return left

        return Simulation(leftovers=leftovers)
