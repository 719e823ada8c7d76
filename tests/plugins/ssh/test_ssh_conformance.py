"""The ssh backend passes the backend conformance suite against real sshd hosts."""

from __future__ import annotations

from typing import Any

import pytest
from ssh_netns import FakeHosts

from skyhop_core.models.resources import Resources
from skyhop_core.testing.conformance import BackendConformance


class TestSSHBackend(BackendConformance):
    backend_name = "ssh"

    @pytest.fixture
    def conformance_config(self, fake_hosts: FakeHosts) -> dict[str, Any]:
        return {"node_pools": {"conf": fake_hosts.pool()}}

    @pytest.fixture
    def conformance_resources(self) -> Resources:
        return Resources(infra="ssh/conf", cpus="1+")
