"""A managed job on an SSH pool survives the loss of its machine, end to end through a
real API server.

The pool has two fake hosts (their own network namespaces and sshd, see
``ssh_netns``). The job lands on the first; the test then kills that host (every
process in it, sshd included; its link down) and takes it out of the pool file, as an
operator would a dead machine. The controller sees the node stop answering the
backend's ``query``, recovers the job on the other host, and the job SUCCEEDS with one
recovery and no restart spent.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from jobcalls import Capture, controller_log, wait_status
from serverproc import ServerProcess, kill_processes_under
from ssh_netns import FakeHosts, fake_hosts_or_skip

import skyhop as sky
from skyhop.client import ApiClient, using

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def two_hosts() -> Iterator[FakeHosts]:
    """Hosts of this module's own: the test kills one (the session's are shared)."""
    with fake_hosts_or_skip(2, "ssh managed-job tests") as hosts:
        yield hosts


@pytest.fixture
def pool_server(two_hosts: FakeHosts) -> Iterator[tuple[ServerProcess, FakeHosts]]:
    root = Path(f"/tmp/skyhop-ssh-mj-{two_hosts.tag}")  # short: agent sockets live here
    root.mkdir()
    (root / "ssh_node_pools.yaml").write_text(yaml.safe_dump({"lab": two_hosts.pool([0, 1])}))
    env = {"SKYHOP_JOBS_POLL_SECONDS": "0.5", "SKYHOP_JOBS_RETRY_BASE": "0.5",
           "SKYHOP_SERVER_LEASE_SECONDS": "3"}  # fmt: skip
    server = ServerProcess(root, env=env).start()
    try:
        with using(ApiClient(server.endpoint, auto_start=False)):
            yield server, two_hosts
    finally:
        server.stop()
        kill_processes_under(root)
        shutil.rmtree(root, ignore_errors=True)


def output(job_id: int) -> str:
    out = Capture()
    sky.jobs.tail_logs(job_id=job_id, follow=False, output_stream=out)  # type: ignore[arg-type]
    return out.text


def test_a_job_whose_host_dies_recovers_on_another_host(pool_server: Any) -> None:
    server, hosts = pool_server
    # The first attempt leaves a mark (the hosts share this machine's filesystem) and
    # waits; the second one finishes. Each says where it runs.
    mark = server.root / "attempted"
    run = (
        f"if [ -f {mark} ]; then echo finished-on $(hostname -I); exit 0; fi; "
        f"touch {mark}; echo started-on $(hostname -I) task=$SKYHOP_TASK_ID; sleep 600"
    )
    task = {"name": "sshjob", "run": run, "resources": {"infra": "ssh/lab"}}
    job_id = int(sky.get(sky.jobs.launch(task))["job_id"])
    wait_status(job_id, "RUNNING", timeout=120)
    deadline = time.monotonic() + 60
    while "task=" not in output(job_id):
        assert time.monotonic() < deadline, controller_log(job_id)
        time.sleep(0.3)
    first = output(job_id)
    assert hosts.ips[0] in first.split("started-on")[1].split("task=")[0], first
    task_id = first.split("task=")[1].split()[0]

    # The machine dies, and the operator takes it out of the pool.
    hosts.kill_host(0)
    (server.root / "ssh_node_pools.yaml").write_text(yaml.safe_dump({"lab": hosts.pool([1])}))

    row = wait_status(job_id, "SUCCEEDED", timeout=240)
    assert (row["recovery_count"], row["restart_count"]) == (1, 0)
    text = output(job_id)
    assert hosts.ips[1] in text.split("finished-on")[1].splitlines()[0], text
    assert task_id.startswith("sky-managed-")
    assert "Recovering: the cluster was preempted" in controller_log(job_id)
    assert not any(c["name"] == f"sshjob-{job_id}" for c in sky.get(sky.status()))
