"""Two fake Kubernetes clusters for the kubernetes backend's tests, once per session.

``alpha`` has two small nodes (1 CPU, 2 GiB each); ``beta`` has a 4-CPU node and a GPU
node (2 x ``nvidia.com/gpu``, labelled ``NVIDIA-A100-SXM4-80GB`` and tainted, as the GPU
operator does). One kubeconfig has a context for each, namespace ``skyhop``. Skipped where
the fake kubelet cannot make pod namespaces (not root, no ``ip``/``bwrap``).
"""

from __future__ import annotations

import os
import secrets
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("lightkube", reason="the kubernetes extra (lightkube) is not installed")
sys.path.insert(0, str(Path(__file__).parent))

from fakekube.kubelet import unavailable  # noqa: E402
from fakekube_proc import FakeCluster, write_kubeconfig  # noqa: E402

ALPHA_NODES: list[dict[str, Any]] = [{"name": "alpha-1", "cpu": "1", "memory": "2Gi"},
               {"name": "alpha-2", "cpu": "1", "memory": "2Gi"}]  # fmt: skip
BETA_NODES: list[dict[str, Any]] = [
    {"name": "beta-cpu", "cpu": "4", "memory": "8Gi"},
    {"name": "beta-gpu", "cpu": "8", "memory": "32Gi", "gpus": {"nvidia.com/gpu": "2"},
     "labels": {"nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB"},
     "taints": [{"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}]},
]  # fmt: skip


@pytest.fixture(scope="session")
def fake_clusters(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, FakeCluster]]:
    reason = unavailable() or (
        None if shutil.which("openssl") else "openssl is not installed (the API's TLS certificate)"
    )
    if reason:
        pytest.skip(f"the fake Kubernetes clusters need pod namespaces: {reason}")
    root = Path(tmp_path_factory.mktemp("fakekube"))
    clusters: dict[str, FakeCluster] = {}
    try:
        # Two distinct pod subnets, 10.214.N.0/24 and N+1; parallel test workers
        # (pytest-xdist gwK) start at N = 10 + 4k + K*2 so theirs never meet.
        worker = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw") or 0)
        subnet = 10 + 4 * secrets.randbelow(59) + 2 * (worker % 2)
        clusters["alpha"] = FakeCluster("alpha", root / "alpha", ALPHA_NODES, subnet)
        clusters["beta"] = FakeCluster("beta", root / "beta", BETA_NODES, subnet + 1)
        yield clusters
    finally:
        crashed = [c.name for c in clusters.values() if c.proc.poll() is not None]
        for cluster in clusters.values():
            cluster.stop()
    # The fake must have served the whole session without crashing or raising (a
    # websocket-close race in hypercorn's trio worker would show up here).
    logs = {c.name: (c.root / "server.log").read_text() for c in clusters.values()}
    broken = {n: t for n, t in logs.items() if "Traceback" in t or n in crashed}
    assert not broken, "fakekube failed during the session:\n" + "\n".join(
        f"--- {n}\n{t[-3000:]}" for n, t in broken.items()
    )


@pytest.fixture(scope="session")
def kubeconfig(fake_clusters: dict[str, FakeCluster],
               tmp_path_factory: pytest.TempPathFactory) -> Path:  # fmt: skip
    return write_kubeconfig(Path(tmp_path_factory.mktemp("kube")) / "config", fake_clusters)


@pytest.fixture
def k8s_config(kubeconfig: Path) -> dict[str, Any]:
    """The backend's config section for the fakes: both contexts, quick failover."""
    return {"kubeconfig": str(kubeconfig), "allowed_contexts": ["alpha", "beta"],
            "unschedulable_timeout": 0.5, "provision_timeout": 60}  # fmt: skip
