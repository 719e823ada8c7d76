"""The ssh backend against real sshd hosts in network namespaces: pools, allocation,
multi-node jobs, cancellation on remote nodes, file sync, check, dead hosts, speed."""

from __future__ import annotations

import functools
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio
from ssh_netns import FakeHosts, fake_hosts_or_skip

from skyhop_core.exceptions import CapacityError, NotSupportedError
from skyhop_core.models.records import JobSpec, NodeState, ProvisionRequest
from skyhop_core.models.resources import Resources
from skyhop_core.models.status import JobStatus
from skyhop_core.plugins import load_backends
from skyhop_core.testing.harness import BackendHarness, make_context
from skyhop_ssh.pools import PoolConfigError, parse_pools


def _trio(fn: Callable[..., Awaitable[None]]) -> Callable[..., None]:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        trio.run(functools.partial(fn, *args, **kwargs))

    return wrapper


@pytest.fixture
def persistent() -> Iterator[str]:
    with tempfile.TemporaryDirectory(prefix="skyhop-sshb-") as path:
        yield path


def harness_for(pools: dict[str, Any], persistent: str, infra: str) -> BackendHarness:
    backends = load_backends()
    ctx = make_context(backends, "ssh", persistent, config={"node_pools": pools})
    return BackendHarness(backends, "ssh", ctx, Resources(infra=infra, cpus="1+"))


@pytest.fixture
def ssh(fake_hosts: FakeHosts, persistent: str) -> BackendHarness:
    return harness_for({"lab": fake_hosts.pool()}, persistent, "ssh/lab")


@asynccontextmanager
async def cluster(h: BackendHarness, nodes: int) -> AsyncIterator[Any]:
    async with h.cleanup():
        handle = await h.provision(h.cluster_name("t"), nodes)
        await h.setup_runtime(handle)
        yield handle


# --- pools ------------------------------------------------------------------------------


def test_pools_parse_skypilot_format() -> None:
    pools = parse_pools(
        {"p": {"user": "root", "identity_file": "/k", "proxy_jump": "bastion",
               "hosts": ["10.0.0.11", {"ip": "10.0.0.12", "port": 2222, "user": "ubuntu",
                                       "identity_file": "/other"}]}},
        "test",
    )  # fmt: skip
    first, second = pools["p"]
    assert (first.ip, first.port, first.user, first.identity_file) == (
        "10.0.0.11",
        22,
        "root",
        "/k",
    )
    assert (second.port, second.user, second.identity_file) == (2222, "ubuntu", "/other")
    assert second.proxy_jump == "bastion" and second.key == "10.0.0.12:2222"
    with pytest.raises(PoolConfigError, match="hosts"):
        parse_pools({"p": {"user": "x"}}, "test")
    with pytest.raises(PoolConfigError, match="unknown keys"):
        parse_pools({"p": {"hosts": ["a"], "colour": "red"}}, "test")


# --- lifecycle and jobs ------------------------------------------------------------------


@_trio
async def test_multi_node_job_setup_ranks_and_prefixed_logs(ssh: BackendHarness) -> None:
    async with cluster(ssh, 2) as handle:
        assert all(n.cpus > 0 and n.memory_gb > 0 for n in handle.nodes)
        job = JobSpec(
            name="ranks", num_nodes=2, setup="echo setup-on-$SKYHOP_NODE_RANK",
            run='echo rank=$SKYHOP_NODE_RANK n=$SKYHOP_NUM_NODES ips=$(echo $SKYHOP_NODE_IPS)',
        )  # fmt: skip
        job_id = await ssh.call("skyhop_submit_job", handle=handle, job=job)
        status, text = await ssh.tail(handle, job_id, follow=True)
        assert status is JobStatus.SUCCEEDED, text
        ips = " ".join(handle.node_ips)
        for rank in (0, 1):
            assert f"(setup, rank {rank}) setup-on-{rank}" in text
            assert f"(rank {rank}) rank={rank} n=2 ips={ips}" in text


@_trio
async def test_failing_rank_stops_the_others(ssh: BackendHarness, fake_hosts: FakeHosts) -> None:
    async with cluster(ssh, 2) as handle:
        # The fake hosts share one process table: a duration no other run uses.
        marker = f"sleep {random.randint(10_000_000, 99_999_999)}"
        job = JobSpec(name="fail", num_nodes=2, run=[marker, "sleep 1; exit 3"])
        job_id = await ssh.call("skyhop_submit_job", handle=handle, job=job)
        record = await ssh.wait_for_job(handle, job_id, {JobStatus.FAILED})
        assert record.status is JobStatus.FAILED
        head = ssh.runner(handle, handle.head)
        left = await head.run(["sh", "-c", f"pgrep -fx '{marker}' || true"])
        assert left.stdout.strip() == b""


@_trio
async def test_cancel_kills_remote_ranks(ssh: BackendHarness) -> None:
    async with cluster(ssh, 2) as handle:
        first, second = (f"sleep {random.randint(10_000_000, 99_999_999)}" for _ in range(2))
        job = JobSpec(name="long", num_nodes=2, run=[first, second])
        job_id = await ssh.call("skyhop_submit_job", handle=handle, job=job)
        await ssh.wait_for_job(handle, job_id, {JobStatus.RUNNING})
        rank1 = ssh.runner(handle, handle.nodes[1])
        with trio.fail_after(20):
            while second.encode() not in (await rank1.run(["ps", "-eo", "args"])).stdout:
                await trio.sleep(0.2)
        assert await ssh.cancel(handle, [job_id]) == [job_id]
        await ssh.wait_for_job(handle, job_id, {JobStatus.CANCELLED})
        with trio.fail_after(20):
            while second.encode() in (await rank1.run(["ps", "-eo", "args"])).stdout:
                await trio.sleep(0.2)


@_trio
async def test_hosts_belong_to_one_cluster_and_down_releases(ssh: BackendHarness) -> None:
    async with ssh.cleanup():
        offer = await ssh.best_offer()
        first = await ssh.provision(ssh.cluster_name("a"), 2)
        second = await ssh.provision(ssh.cluster_name("b"), 1)
        assert not {n.instance_id for n in first.nodes} & {n.instance_id for n in second.nodes}
        assert await ssh.offers() == [], "every host is in use: no offers"
        full = ProvisionRequest(cluster_name="c", num_nodes=1, resources=ssh.resources, offer=offer)
        with pytest.raises(CapacityError, match="free host"):
            await ssh.call("skyhop_provision", request=full)
        runtime = first.head.runtime_dir
        await ssh.down(first)
        gone = await ssh.runner(second, second.head).run(["test", "-e", runtime])
        assert gone.returncode == 1, "down must remove the runtime directory"
        third = await ssh.provision(ssh.cluster_name("d"), 2)
        assert {n.instance_id for n in third.nodes} == {n.instance_id for n in first.nodes}
        with pytest.raises(NotSupportedError, match="down"):
            await ssh.stop(third)


@_trio
async def test_upload_rsync_honours_ignores(ssh: BackendHarness, tmp_path: Any) -> None:
    (tmp_path / "keep.txt").write_text("keep\n")
    (tmp_path / "skip.log").write_text("skip\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "deep.txt").write_text("deep\n")
    async with cluster(ssh, 2) as handle:
        for node in handle.nodes:
            runner = ssh.runner(handle, node)
            await runner.upload(str(tmp_path), "~/wd", excludes=["*.log"])
            listed = await runner.run(["sh", "-c", "cd ~/wd 2>/dev/null || cd " +
                                       runner.resolve("~/wd") + "; find . -type f | sort"])  # fmt: skip
            assert listed.stdout.decode().split() == ["./keep.txt", "./sub/deep.txt"]


@_trio
async def test_commands_are_multiplexed(ssh: BackendHarness) -> None:
    """Every command after the first goes through the one ControlMaster: its pid (from
    ``ssh -O check``) is the same before and after five more commands."""
    from skyhop_ssh.sshcmd import control_path

    async with cluster(ssh, 1) as handle:
        runner = ssh.runner(handle, handle.head)

        async def master() -> str:
            assert (await runner.run(["true"])).returncode == 0
            check = await trio.run_process(
                ["ssh", "-o", f"ControlPath={control_path(runner.target)}", "-O", "check",
                 "placeholder"], capture_stderr=True, check=False)  # fmt: skip
            text = check.stderr.decode()
            assert check.returncode == 0 and "Master running" in text, text
            return text

        first = await master()
        for _ in range(5):
            assert await master() == first


# --- check and failures --------------------------------------------------------------------


@_trio
async def test_check_reports_pools_and_unreachable_hosts(
    fake_hosts: FakeHosts, persistent: str
) -> None:
    broken = fake_hosts.pool([0])
    broken["hosts"].append({"ip": f"10.213.{fake_hosts.subnet}.250"})
    h = harness_for({"good": fake_hosts.pool([1]), "broken": broken}, persistent, "ssh")
    result = await h.check()
    assert result.enabled
    assert "1 reachable" in result.details["good"]
    bad = [k for k in result.details if k.startswith("broken/") and ".250" in k]
    assert bad and "unreachable" in result.details[bad[0]]


@_trio
async def test_unreachable_host_fails_launch_cleanly(
    fake_hosts: FakeHosts, persistent: str
) -> None:
    pool = fake_hosts.pool([0])
    pool["hosts"].append({"ip": f"10.213.{fake_hosts.subnet}.251"})
    h = harness_for({"mixed": pool}, persistent, "ssh/mixed")
    from skyhop_ssh.hosts import HostState

    with pytest.raises(CapacityError, match=r"\.251"):
        await h.provision(h.cluster_name("x"), 2)
    assert HostState(h.ctx.state_dir).snapshot()["hosts"] == {}


@pytest.fixture
def doomed_hosts() -> Iterator[FakeHosts]:
    """Hosts of their own for a test that kills one."""
    with fake_hosts_or_skip(2) as hosts:
        yield hosts


@_trio
async def test_dead_host_fails_the_job_and_cluster_is_unhealthy(
    doomed_hosts: FakeHosts, persistent: str
) -> None:
    h = harness_for({"doom": doomed_hosts.pool()}, persistent, "ssh/doom")
    async with cluster(h, 2) as handle:
        job_id = await h.call(
            "skyhop_submit_job", handle=handle, job=JobSpec(name="d", num_nodes=2, run="sleep 600")
        )
        await h.wait_for_job(handle, job_id, {JobStatus.RUNNING})
        await trio.sleep(1)
        doomed_hosts.kill_host(1)
        record = await h.wait_for_job(handle, job_id, {JobStatus.FAILED_DRIVER})
        assert record.status is JobStatus.FAILED_DRIVER
        states = {s.rank: s.state for s in await h.query(handle)}
        assert states == {0: NodeState.RUNNING, 1: NodeState.UNKNOWN}


_STREAMER = """
import json, sys, trio
from skyhop_core import wire
from skyhop_core.models.records import NodeInfo
from skyhop_ssh.sshcmd import SSHCommandRunner

runner = SSHCommandRunner(wire.structure(json.loads(sys.argv[1]), NodeInfo), sys.argv[2])

async def main():
    async def out(chunk):
        sys.stdout.write(chunk.decode()); sys.stdout.flush()
    await runner.stream([*runner.agent_command(), "tail", sys.argv[3], "--follow"], out)

trio.run(main)
"""


def _tails_of(runtime_dir: str) -> list[int]:
    """Local ssh clients and remote agents tailing with ``--follow`` in ``runtime_dir``
    (the fake hosts share this machine's process table)."""
    found = []
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read()
        except OSError:
            continue
        if runtime_dir.encode() in cmdline and b"tail" in cmdline and b"--follow" in cmdline:
            found.append(int(entry))
    return found


@_trio
async def test_a_log_tail_ends_with_the_process_that_streams_it(ssh: BackendHarness) -> None:
    from skyhop_core import wire
    from skyhop_ssh.cluster import known_hosts

    async with cluster(ssh, 1) as handle:
        job_id = await ssh.submit(handle, "echo started; sleep 600")
        await ssh.wait_for_job(handle, job_id, {JobStatus.RUNNING})
        streamer = subprocess.Popen(
            [sys.executable, "-c", _STREAMER, json.dumps(wire.unstructure(handle.head)),
             known_hosts(ssh.ctx), str(job_id)],
            stdout=subprocess.PIPE,
        )  # fmt: skip
        try:
            assert streamer.stdout is not None
            line = await trio.to_thread.run_sync(streamer.stdout.readline)
            assert line == b"started\n"
            await trio.sleep(1.5)  # the tail has nothing more to write
            assert len(_tails_of(handle.head.runtime_dir)) >= 2  # ssh here, the agent there
            streamer.send_signal(signal.SIGKILL)  # as a server is killed: no cleanup at all
        finally:
            streamer.kill()
            streamer.wait()
        with trio.fail_after(10):
            while _tails_of(handle.head.runtime_dir):
                await trio.sleep(0.2)
        assert (await ssh.job(handle, job_id)).status is JobStatus.RUNNING  # only the tail ended
