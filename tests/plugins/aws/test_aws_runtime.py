"""The AWS backend's node agent: waiting for SSH, installing over SSH, a 2-node job.

moto's EC2 instances are records, not machines: nothing answers SSH at their addresses.
So the multi-node test provisions the cluster on moto (real boto3 calls, the real handle
with its launchers), then points each node at a real sshd host in a network namespace
(:func:`aws_on_fake_hosts.on_fake_hosts`: address, SSH user and key, home and runtime
directory). Everything after that — waiting for SSH, installing the
agent bundle with the cluster key on the head, ``cluster.json``, starting the agent, the
job reaching rank 1 through the launcher — is the AWS plugin's code over OpenSSH.
"""

from __future__ import annotations

import json
import shutil
import socket
import time
from pathlib import Path
from typing import Any

import pytest
import trio
from aws_on_fake_hosts import on_fake_hosts, stop_agents

from skyhop_aws import catalog, runtime
from skyhop_aws.plugin import AwsPlugin
from skyhop_core.context import BackendContext
from skyhop_core.exceptions import CommandError
from skyhop_core.models.records import (
    ClusterHandle,
    JobSpec,
    NodeInfo,
    NodeState,
    ProvisionRequest,
)
from skyhop_core.models.resources import Resources
from skyhop_core.models.status import JobStatus
from skyhop_core.plugins import load_backends
from skyhop_core.testing.harness import make_context

REGION = "us-east-1"


def test_agent_installed_over_ssh_runs_a_two_node_job(
    aws_env: str, ec2_hosts: Any, tmp_path: Path
) -> None:
    backends = load_backends([AwsPlugin()], entry_points=False)
    config = {"poll_interval": 0.05, "ssh_wait_seconds": 60}
    ctx = make_context(backends, "aws", str(tmp_path), config=config, log=print)
    resources = Resources(infra=f"aws/{REGION}", instance_type="t3.medium")
    request = ProvisionRequest(cluster_name="agent", num_nodes=2, resources=resources,
                               offer=catalog.offers_for(resources)[0])  # fmt: skip

    async def call(hook: str, **kwargs: Any) -> Any:
        return await backends.call("aws", hook, ctx=ctx, **kwargs)

    async def main() -> tuple[ClusterHandle, str, JobStatus]:
        handle = await call("skyhop_provision", request=request)
        head, rank1 = handle.nodes
        assert head.runtime_dir == "/home/ubuntu/.skyhop_runtime" and head.home == "/home/ubuntu"
        assert "agent_launcher" not in head.extra
        launcher = json.loads(rank1.extra["agent_launcher"])  # decided at provision time
        assert launcher[-1] == f"ubuntu@{rank1.extra['private_ip']}"
        assert any(a.startswith(f"{head.runtime_dir}/keys/") for a in launcher)
        fake = on_fake_hosts(handle, ec2_hosts)
        chunks: list[bytes] = []

        async def on_output(chunk: bytes) -> None:
            chunks.append(chunk)

        try:
            with trio.fail_after(120):
                await call("skyhop_setup_runtime", handle=fake)
                job = JobSpec(name="ranks", num_nodes=2, run="echo aws-rank-$SKYHOP_NODE_RANK")
                job_id = await call("skyhop_submit_job", handle=fake, job=job)
                status = await call("skyhop_tail_logs", handle=fake, job_id=job_id,
                                    follow=True, tail=0, on_output=on_output)  # fmt: skip
        finally:
            with trio.CancelScope(shield=True):
                await stop_agents(ctx, fake, wipe=True)
                await call("skyhop_down", handle=handle)
        return handle, b"".join(chunks).decode(errors="replace"), status

    handle, text, status = trio.run(main)
    assert status is JobStatus.SUCCEEDED, text
    assert "aws-rank-0" in text and "aws-rank-1" in text, text
    statuses = trio.run(AwsPlugin().skyhop_query, ctx, handle)
    assert [s.state for s in statuses] == [NodeState.TERMINATED] * 2


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.skipif(shutil.which("ssh") is None, reason="the OpenSSH client is not installed")
def test_ssh_wait_gives_up_with_a_clear_error(tmp_path: Path) -> None:
    port = closed_port()
    node = NodeInfo(rank=0, ip="127.0.0.1", instance_id="i-0closedport", cpus=2, memory_gb=4,
                    runtime_dir="/home/ubuntu/.skyhop_runtime", home="/home/ubuntu",
                    extra={"ssh_user": "ubuntu", "ssh_port": str(port)})  # fmt: skip
    handle = ClusterHandle(cluster_name="dead", backend="aws", nodes=(node,))
    ctx = BackendContext(state_dir=str(tmp_path / "aws"), persistent_path=str(tmp_path),
                         config={"ssh_wait_seconds": 2})  # fmt: skip
    start = time.monotonic()
    with pytest.raises(CommandError) as info:
        trio.run(AwsPlugin().skyhop_setup_runtime, ctx, handle)
    elapsed = time.monotonic() - start
    message = str(info.value)
    assert "i-0closedport" in message and f"127.0.0.1:{port}" in message, message
    assert "within 2s" in message and "Connection refused" in message, message
    assert 2 <= elapsed < 10, elapsed

    async def cancelled() -> float:  # a long wait is cancellable at once
        begin = trio.current_time()
        with trio.move_on_after(0.5):
            await runtime.wait_for_ssh(ctx, node, 600)
        return trio.current_time() - begin

    assert trio.run(cancelled) < 5
