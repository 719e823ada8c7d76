"""A managed job on AWS (moto) whose instances are terminated behind its back recovers,
end to end through a real API server.

The server runs the AWS backend against moto's EC2, with the instances mapped onto fake
sshd hosts so the node agent runs (``aws_fake_hosts_server``). The test terminates the
job's instance with a plain EC2 call; the controller sees it through the backend's
``query``, relaunches (a new instance), and the job SUCCEEDS with one recovery and no
restart spent, its SKYHOP_TASK_ID unchanged.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from jobcalls import Capture, controller_log, record, wait_status
from serverproc import ServerProcess, kill_processes_under

import skyhop as sky
from skyhop.client import ApiClient, using

pytestmark = pytest.mark.timeout(300)
HERE = Path(__file__).resolve().parent


def output(job_id: int) -> str:
    out = Capture()
    sky.jobs.tail_logs(job_id=job_id, follow=False, output_stream=out)  # type: ignore[arg-type]
    return out.text


def test_terminated_instances_are_recovered(
    aws_env: str, ec2_hosts: Any, ec2_client: Any, tmp_path: Path
) -> None:
    root = Path(f"/tmp/skyhop-aws-mj-{ec2_hosts.tag}")  # short: agent sockets live here
    root.mkdir()
    (root / "config.yaml").write_text(
        yaml.safe_dump({"aws": {"poll_interval": 0.05, "ssh_wait_seconds": 60}})
    )
    env = {
        "SKYHOP_PLUGINS": "aws_fake_hosts_server",
        "PYTHONPATH": f"{HERE}:{HERE.parent.parent}",
        "AWS_FAKE_HOSTS": json.dumps(ec2_hosts.pool()),
        "SKYHOP_JOBS_POLL_SECONDS": "0.5",
        "SKYHOP_JOBS_RETRY_BASE": "0.5",
    }
    server = ServerProcess(root, env=env).start()
    try:
        with using(ApiClient(server.endpoint, auto_start=False)):
            mark = tmp_path / "attempted"
            run = (f"if [ -f {mark} ]; then echo second task=$SKYHOP_TASK_ID; exit 0; fi; "
                   f"touch {mark}; echo first task=$SKYHOP_TASK_ID; sleep 600")  # fmt: skip
            task = {"name": "awsjob", "run": run,
                    "resources": {"infra": "aws/us-east-1", "instance_type": "t3.medium"}}
            job_id = int(sky.get(sky.jobs.launch(task))["job_id"])
            wait_status(job_id, "RUNNING", timeout=180)
            deadline = time.monotonic() + 60
            while "first task=" not in output(job_id):
                assert time.monotonic() < deadline, controller_log(job_id)
                time.sleep(0.3)
            running = ec2_client.describe_instances(
                Filters=[{"Name": "instance-state-name", "Values": ["running"]}]
            )
            ids = [i["InstanceId"] for r in running["Reservations"] for i in r["Instances"]]
            assert len(ids) == 1, ids
            ec2_client.terminate_instances(InstanceIds=ids)  # the preemption

            row = wait_status(job_id, "SUCCEEDED", timeout=240)
            assert (row["recovery_count"], row["restart_count"]) == (1, 0)
            text = output(job_id)
            first = text.split("first task=")[1].split()[0]
            assert text.split("second task=")[1].split()[0] == first
            assert "Recovering: the cluster was preempted" in controller_log(job_id)
            assert record(job_id)["infra"] == "aws/us-east-1"
            left = ec2_client.describe_instances(
                Filters=[{"Name": "instance-state-name", "Values": ["running", "pending"]}]
            )
            assert not [i for r in left["Reservations"] for i in r["Instances"]], "leaked"
    finally:
        server.stop()
        kill_processes_under(root)
        import shutil

        shutil.rmtree(root, ignore_errors=True)
