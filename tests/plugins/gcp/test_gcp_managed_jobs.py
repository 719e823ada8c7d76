"""A managed spot job on GCP recovers from a preemption, on the fake Compute API.

The job's cluster is a real spot VM of the fake (an sshd host); the test preempts it the
way Google does (``compute.instances.preempted``, then the VM is deleted), the controller
sees the cluster gone through the backend's ``query``, launches a new one and the job runs
again to success; at the end the cluster is torn down. The job signals the test through a
marker file: the fake's hosts share this machine's filesystem outside ``/home``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from jobcalls import wait_status

import skyhop as sky
from skyhop.client import ApiClient, using

pytestmark = pytest.mark.timeout(240)

CONFIG = "backends:\n  gcp:\n    poll_interval: 0.05\n    ssh_wait_seconds: 60\n"
FAST = {"SKYHOP_JOBS_POLL_SECONDS": "0.2", "SKYHOP_JOBS_RETRY_BASE": "0.2",
        "SKYHOP_JOBS_RETRY_CAP": "0.5", "SKYHOP_JOBS_LAUNCH_RETRIES": "2"}  # fmt: skip


def test_a_preempted_spot_job_recovers(gce_hosts: Any, make_server: Any, tmp_path: Path) -> None:
    root = tmp_path / "state"
    root.mkdir()
    (root / "config.yaml").write_text(CONFIG)
    server = make_server(root, env=FAST)
    marker = tmp_path / "ran-once"
    run = f"if [ -f {marker} ]; then echo second-run; exit 0; fi; touch {marker}; sleep 600"
    task = {"name": "spotty", "run": run, "resources": {
        "infra": "gcp/us-central1", "instance_type": "e2-standard-2", "use_spot": True}}  # fmt: skip
    with using(ApiClient(server.endpoint, auto_start=False)):
        job_id = int(sky.get(sky.jobs.launch(task))["job_id"])
        wait_status(job_id, "RUNNING", timeout=120)
        deadline = time.monotonic() + 60
        while not marker.exists():
            assert time.monotonic() < deadline, "the job never started on the VM"
            time.sleep(0.2)
        (vm,) = gce_hosts.instances()
        assert vm["labels"]["skyhop-cluster"].startswith("spotty-")
        gce_hosts.control("preempt", {"zone": vm["zone"], "instance": vm["name"]})
        row = wait_status(job_id, "SUCCEEDED", timeout=180)
        assert row["recovery_count"] == 1, row
    deadline = time.monotonic() + 60
    while gce_hosts.instances():  # the controller tears the cluster down at the end
        assert time.monotonic() < deadline, gce_hosts.instances()
        time.sleep(0.5)
    assert gce_hosts.control("firewalls")["firewalls"] == []
