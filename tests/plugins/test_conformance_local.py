"""The built-in ``local`` backend passes the backend conformance suite.

The suite itself lives in :mod:`skyhop_core.testing.conformance`; the backend is found
through its ``skyhop.plugins`` entry point, as every other backend is. It runs twice:
with the isolation this host gives local nodes (sandboxes, each with its own network on
a bridge of the test's own where the host allows it) and with sandboxes turned off.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from skyhop_core.context import BackendContext
from skyhop_core.testing.conformance import BackendConformance, Simulation


def _netconfig() -> Any:
    path = Path(__file__).parent / "local" / "netconfig.py"
    spec = importlib.util.spec_from_file_location("local_netconfig", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def local_leftovers(ctx: BackendContext) -> Simulation:
    """What is left of a local cluster: its directory (nodes, layers, agent state)."""
    from skyhop_local.plugin import cluster_dir

    def leftovers(name: str) -> list[str]:
        path = cluster_dir(ctx, name)
        return [path] if Path(path).exists() else []

    return Simulation(leftovers=leftovers)


class TestLocalBackend(BackendConformance):
    backend_name = "local"

    @pytest.fixture
    def conformance_simulation(self, conformance_ctx: BackendContext) -> Simulation:
        return local_leftovers(conformance_ctx)

    @pytest.fixture
    def conformance_config(self, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
        netconfig = _netconfig()
        monkeypatch.delenv(netconfig.NETWORK_ENV, raising=False)
        with netconfig.node_network_config() as config:
            yield config


class TestLocalBackendWithoutSandbox(BackendConformance):
    backend_name = "local"

    @pytest.fixture
    def conformance_simulation(self, conformance_ctx: BackendContext) -> Simulation:
        return local_leftovers(conformance_ctx)

    @pytest.fixture
    def conformance_config(self) -> dict[str, Any]:
        return {"sandbox": "off"}
