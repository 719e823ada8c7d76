"""The ssh backend passes the backend conformance suite against real sshd hosts."""

from __future__ import annotations

from typing import Any

import pytest
from ssh_netns import FakeHosts

from skyhop_core.context import BackendContext
from skyhop_core.models.resources import Resources
from skyhop_core.testing.conformance import BackendConformance, Simulation


class TestSSHBackend(BackendConformance):
    backend_name = "ssh"

    @pytest.fixture
    def conformance_config(self, fake_hosts: FakeHosts) -> dict[str, Any]:
        return {"node_pools": {"conf": fake_hosts.pool()}}

    @pytest.fixture
    def conformance_resources(self) -> Resources:
        return Resources(infra="ssh/conf", cpus="1+")

    @pytest.fixture
    def conformance_simulation(self, conformance_ctx: BackendContext) -> Simulation:
        from skyhop_ssh.hosts import HostState

        def leftovers(name: str) -> list[str]:
            """Pool hosts the cluster still holds (a leak keeps them from other clusters)."""
            held = HostState(conformance_ctx.ensure_state_dir()).cluster_hosts(name)
            return [f"host {key} (rank {rank})" for key, rank in sorted(held.items())]

        return Simulation(leftovers=leftovers)
