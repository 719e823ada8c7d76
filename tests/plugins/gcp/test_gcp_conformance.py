"""The GCP backend passes the conformance suite, unmodified, on the fake Compute API.

The plugin is the real one, with nothing replaced: its google-auth credentials come from
the fake's service-account key file, its httpx client talks to the fake, and every
instance it creates is a real sshd host (``fakegce/hosts.py``) that lets in the key the
plugin put in ``ssh-keys`` metadata. So the node agent's installation over SSH, jobs,
logs, cancellation, stop/start with a new external IP, and re-provisioning all run for
real. Skipped where the fake's host namespaces cannot be made (not root, no sshd).
"""

from __future__ import annotations

from typing import Any

import pytest

from skyhop_core.models.resources import Resources
from skyhop_core.testing.conformance import BackendConformance
from skyhop_core.testing.harness import Timeouts


class TestGcpOnFakeCompute(BackendConformance):
    backend_name = "gcp"
    timeouts = Timeouts(call=60, provision=120, teardown=120, job=60)

    @pytest.fixture
    def conformance_plugins(self, gce_hosts: Any) -> list[object]:
        from skyhop_gcp.plugin import GcpPlugin

        return [GcpPlugin()]

    @pytest.fixture
    def conformance_entry_points(self) -> bool:
        return False

    @pytest.fixture
    def conformance_config(self, gce_hosts: Any) -> dict[str, Any]:
        return {"poll_interval": 0.05, "ssh_wait_seconds": 60}

    @pytest.fixture
    def conformance_resources(self) -> Any:
        return Resources(infra="gcp/us-central1", instance_type="e2-standard-2")
