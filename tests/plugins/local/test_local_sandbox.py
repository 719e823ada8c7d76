"""Local nodes are sandboxes: writes outside the home land in the node, never on the host.

Every path a job writes here carries a random name, so the assertions that the host
does *not* have it cannot be fooled by (or disturb) anything else on the machine.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest
import trio
from test_local_backend import Local, processes_under, trio_test

from skyhop_core.exceptions import NotSupportedError
from skyhop_core.models.records import ClusterHandle, JobSpec, NodeState, Offer, ProvisionRequest
from skyhop_core.models.status import JobStatus
from skyhop_local import sandbox

SUPPORT = sandbox.detect()
needs_sandbox = pytest.mark.skipif(not SUPPORT.sandboxed, reason=SUPPORT.reason)


@pytest.fixture
def local(tmp_path: Path) -> Iterator[Local]:
    backend = Local(tmp_path / "state")
    yield backend
    holders = _holders(tmp_path)
    for pid in holders:
        os.kill(pid, 9)
    leftovers = processes_under(tmp_path)
    for pid in leftovers:
        os.kill(pid, 9)
    assert not holders and not leftovers, f"processes outlived the test: {holders + leftovers}"


def _holders(root: Path) -> list[int]:
    """Live sandbox holders of layers under ``root``."""
    found = []
    for pid_file in root.rglob("holder.pid"):
        pid = int(pid_file.read_text().split()[0])
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            found.append(pid)
    return found


async def _run(local: Local, handle: ClusterHandle, run: str, nodes: int = 1) -> str:
    job = JobSpec(name="probe", run=run, num_nodes=nodes)
    job_id = await local.call("skyhop_submit_job", handle=handle, job=job)
    status, text = await local.tail(handle, job_id)
    assert status is JobStatus.SUCCEEDED, text
    return text


async def _upload(local: Local, handle: ClusterHandle, rank: int, src: Path, dest: str) -> None:
    runner = local.ctx.runner_factory(handle, handle.nodes[rank])  # type: ignore[misc]
    await runner.upload(str(src), dest)


@needs_sandbox
@trio_test
async def test_writes_outside_the_home_stay_in_the_node(local: Local, tmp_path: Path) -> None:
    tag = f"skyhop-test-{uuid.uuid4().hex[:12]}"
    paths = [f"/data/{tag}/x", f"/opt/{tag}/y", f"/tmp/{tag}-z", f"/etc/{tag}-mounted",
             f"/dev/shm/{tag}"]  # fmt: skip
    handle = await local.provision("box", 2)
    await local.call("skyhop_setup_runtime", handle=handle)
    mounted = tmp_path / "mounted.txt"
    mounted.write_text("from a file mount\n")
    for rank in (0, 1):
        await _upload(local, handle, rank, mounted, paths[3])
    write = (
        f"mkdir -p /data/{tag} /opt/{tag} && echo rank-$SKYHOP_NODE_RANK > {paths[0]} && "
        f"echo y > {paths[1]} && echo z > {paths[2]} && cat {paths[3]} && echo home=$HOME && "
        f"echo shm > {paths[4]} && test -c /dev/null"
    )
    text = await _run(local, handle, write, nodes=2)
    assert "(rank 0) from a file mount" in text and "(rank 1) from a file mount" in text
    assert f"(rank 0) home={handle.nodes[0].home}" in text
    assert f"(rank 1) home={handle.nodes[1].home}" in text
    for path in paths:
        assert not os.path.exists(path), f"{path} was written on the host"
    assert not os.path.exists(f"/data/{tag}") and not os.path.exists(f"/opt/{tag}")

    read = f"cat {paths[0]} {paths[1]} {paths[2]}; cd ~ && pwd"
    text = await _run(local, handle, read, nodes=2)  # a later job sees what the first wrote
    assert "(rank 0) rank-0" in text and "(rank 1) rank-1" in text  # each node its own /data
    assert f"(rank 1) {handle.nodes[1].home}" in text

    await local.call("skyhop_stop", handle=handle)
    assert _holders(tmp_path) == []
    started = await local.call("skyhop_start", handle=handle)
    await local.call("skyhop_setup_runtime", handle=started)
    text = await _run(local, started, f"cat {paths[0]} {paths[3]}")
    assert text == "rank-0\nfrom a file mount\n"  # stop/start keeps the node's layer

    layers = Path(handle.head.home).parent / "layers"
    assert (layers / "node-0" / "upper" / f"data/{tag}/x").read_text() == "rank-0\n"
    await local.call("skyhop_down", handle=started)
    assert not layers.exists() and _holders(tmp_path) == []
    for path in paths:
        assert not os.path.exists(path)


@needs_sandbox
@trio_test
async def test_a_node_has_its_own_empty_temp_dirs(local: Local, tmp_path: Path) -> None:
    host_file = Path("/tmp") / f"skyhop-host-tmp-{uuid.uuid4().hex[:12]}"
    host_file.write_text("the host's")
    try:
        handle = await local.provision("tmpbox", 1)
        await local.call("skyhop_setup_runtime", handle=handle)
        text = await _run(
            local, handle,
            f"test -e {host_file} && echo sees-host-tmp; stat -c %a /tmp /var/tmp; "
            "echo mine > /var/tmp/mine",
        )  # fmt: skip
        assert "sees-host-tmp" not in text  # another machine's /tmp is not this one's
        assert text.count("1777") == 2, text
        assert host_file.read_text() == "the host's" and not Path("/var/tmp/mine").exists()
        assert "mine" in await _run(local, handle, "cat /var/tmp/mine")
        await local.call("skyhop_down", handle=handle)
    finally:
        host_file.unlink()


@needs_sandbox
@trio_test
async def test_the_persistent_path_is_invisible_inside(local: Local, tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir(exist_ok=True)
    (state / "skyhop.db").write_text("the database")
    (state / "tokens").write_text("secret-token")
    other = await local.provision("other", 1)
    (Path(other.head.home) / "private.txt").write_text("another cluster's file")
    handle = await local.provision("box", 1)
    await local.call("skyhop_setup_runtime", handle=handle)
    (Path(handle.head.home) / "mine.txt").write_text("my own file")
    probe = (
        f"cat {state}/skyhop.db {state}/tokens {other.head.home}/private.txt "
        f"{handle.head.runtime_dir}/agent.db 2>&1; ls -A {state}; cat ~/mine.txt"
    )
    text = await _run(local, handle, probe)
    assert "the database" not in text and "secret-token" not in text
    assert "another cluster's file" not in text
    assert text.count("No such file or directory") == 4
    assert text.endswith("my own file")
    # The agent still keeps its database and the job's log in the runtime directory.
    assert (Path(handle.head.runtime_dir) / "agent.db").exists()
    await local.call("skyhop_down", handle=handle)
    await local.call("skyhop_down", handle=other)


@needs_sandbox
@trio_test
async def test_a_job_cannot_replace_a_host_system_file(local: Local, tmp_path: Path) -> None:
    handle = await local.provision("box", 1)
    await local.call("skyhop_setup_runtime", handle=handle)
    before = Path("/etc/hostname").read_bytes()
    source = tmp_path / "hostname"
    source.write_text("not-the-host\n")
    await _upload(local, handle, 0, source, "/etc/hostname")
    text = await _run(
        local, handle, "cat /etc/hostname; echo again > /etc/hostname; cat /etc/hostname"
    )
    assert text == "not-the-host\nagain\n"
    assert Path("/etc/hostname").read_bytes() == before
    await local.call("skyhop_down", handle=handle)


@trio_test
async def test_without_sandbox_absolute_mounts_are_refused(
    local: Local, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(sandbox.SANDBOX_ENV, "off")
    check = await local.call("skyhop_check")
    assert check.enabled and check.details["filesystem"].startswith("fallback, no sandbox")
    handle = await local.provision("plain", 1)
    assert handle.extra["sandbox"] == "none" and "job_launcher" not in handle.head.extra
    target = f"/etc/skyhop-test-{uuid.uuid4().hex[:12]}"
    source = tmp_path / "file.txt"
    source.write_text("content\n")
    with pytest.raises(NotSupportedError, match=f"{target}.*written to the host"):
        await _upload(local, handle, 0, source, target)
    assert not os.path.exists(target)
    await _upload(local, handle, 0, source, "~/inside/file.txt")  # the home is fine
    assert (Path(handle.head.home) / "inside" / "file.txt").read_text() == "content\n"
    await local.call("skyhop_setup_runtime", handle=handle)
    assert await _run(local, handle, "cat inside/file.txt") == "content\n"
    await local.call("skyhop_down", handle=handle)


@needs_sandbox
@trio_test
async def test_check_reports_the_overlay(local: Local) -> None:
    check = await local.call("skyhop_check")
    assert check.details["filesystem"].startswith("overlay")


@trio_test
async def test_a_bad_network_section_is_named_by_check(local: Local) -> None:
    for section, expected in (
        ({"bridge": "b0", "colour": "red"}, "unknown option(s) colour"),
        ({"subnet": "10.1.2.3/33"}, "local.network.subnet: '10.1.2.3/33'"),
        ({"egress": "tunnel"}, "local.network.egress: 'tunnel'"),
    ):
        local.ctx = attrs.evolve(local.ctx, config={"network": section})
        check = await local.call("skyhop_check")
        assert not check.enabled and expected in check.reason, check.reason


@pytest.fixture
def networked(local: Local, monkeypatch: pytest.MonkeyPatch) -> Iterator[Local]:
    """The local backend with node networks on a bridge and subnet of this test's own."""
    from netconfig import NETWORK_ENV, node_network_config

    monkeypatch.delenv(NETWORK_ENV, raising=False)
    with node_network_config() as config:
        local.ctx = attrs.evolve(local.ctx, config=config)
        yield local


@needs_sandbox
@trio_test
async def test_nodes_have_their_own_addresses_and_ports(networked: Local, tmp_path: Path) -> None:
    local = networked
    check = await local.call("skyhop_check")
    assert check.details["network"].startswith("netns")
    port = 8765
    handle = await local.provision("net", 2, ports=(port,))
    ips = [n.ip for n in handle.nodes]
    subnet = local.ctx.config["network"]["subnet"]
    assert len(set(ips)) == 2 and all(ip.startswith(subnet.rsplit(".", 2)[0]) for ip in ips)
    assert handle.ports[port] == f"{ips[0]}:{port}"
    await local.call("skyhop_setup_runtime", handle=handle)
    show = 'echo "$SKYHOP_NODE_IPS" | tr "\\n" " "; ip -o -4 addr show eth0'
    text = await _run(local, handle, show, 2)
    for rank, ip in enumerate(ips):  # every node lists all addresses and has its own
        prefix = f"(rank {rank}) {ips[0]} {ips[1]} "
        assert any(ln.startswith(prefix) and f"inet {ip}/" in ln for ln in text.splitlines())

    # Both nodes listen on the same port; the host reaches each at its own address.
    for rank, node in enumerate(handle.nodes):
        (Path(node.home) / "index.html").write_text(f"node {rank}")
    serve = f"python3 -m http.server {port} --bind 0.0.0.0"
    job = JobSpec(name="web", run=serve, num_nodes=2)
    await local.call("skyhop_submit_job", handle=handle, job=job)
    for rank, ip in enumerate(ips):
        assert await _get(ip, port) == f"node {rank}"

    bridge = local.ctx.config["network"]["bridge"]
    assert len(_plugged_into(bridge)) == 2
    await local.call("skyhop_stop", handle=handle)
    # Unplugged at once: a dead namespace the kernel has not freed yet must not answer
    # for an address the next node may get.
    assert _plugged_into(bridge) == []
    started = await local.call("skyhop_start", handle=handle)
    assert [n.ip for n in started.nodes] == ips
    await local.call("skyhop_setup_runtime", handle=started)
    assert await _run(local, started, "ip -o -4 addr show eth0 | grep -c ' inet '") == "1\n"
    registry = Path(local.ctx.config["network"]["registry"])
    assert sorted(p.name for p in registry.iterdir()) == sorted(ips)
    await local.call("skyhop_down", handle=started)
    assert list(registry.iterdir()) == []  # the addresses are free again


def _plugged_into(bridge: str) -> list[str]:
    """The interfaces attached to ``bridge``."""
    import subprocess

    out = subprocess.run(["ip", "-o", "link", "show", "master", bridge],
                         capture_output=True, text=True).stdout  # fmt: skip
    return [line.split(":")[1].strip().split("@")[0] for line in out.splitlines() if ":" in line]


async def _get(host: str, port: int) -> str:
    """The body of ``GET /`` at host:port, retrying while the server starts."""
    with trio.fail_after(15):
        while True:
            try:
                stream = await trio.open_tcp_stream(host, port)
            except OSError:
                await trio.sleep(0.1)
                continue
            async with stream:
                await stream.send_all(b"GET /index.html HTTP/1.0\r\n\r\n")
                body = b""
                while chunk := await stream.receive_some():
                    body += chunk
            return body.split(b"\r\n\r\n", 1)[-1].decode()


@needs_sandbox
@pytest.mark.skipif(shutil.which("slirp4netns") is None, reason="slirp4netns is not installed")
@trio_test
async def test_egress_goes_through_slirp4netns(networked: Local, tmp_path: Path) -> None:
    local = networked
    network = {**local.ctx.config["network"], "egress": "auto"}
    local.ctx = attrs.evolve(local.ctx, config={"network": network})
    handle = await local.provision("out", 1)
    await local.call("skyhop_setup_runtime", handle=handle)
    # No traffic leaves: the route and the helper are checked, nothing is sent.
    text = await _run(local, handle, "ip route show default")
    assert text.startswith("default via 10.0.2.2 dev tap0"), text
    layer = Path(handle.head.home).parent / "layers" / "node-0"
    slirp = int((layer / "slirp4netns.pid").read_text())
    assert b"slirp4netns" in Path(f"/proc/{slirp}/cmdline").read_bytes()
    await local.call("skyhop_stop", handle=handle)
    assert not _alive(slirp)
    await local.call("skyhop_down", handle=handle)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@needs_sandbox
@trio_test
async def test_a_job_never_runs_on_the_host_when_the_sandbox_is_gone(
    local: Local, tmp_path: Path
) -> None:
    handle = await local.provision("gone", 1)
    await local.call("skyhop_setup_runtime", handle=handle)
    [holder] = _holders(tmp_path)
    os.kill(holder, 9)
    marker = f"/tmp/skyhop-test-{uuid.uuid4().hex[:12]}"
    job = JobSpec(name="probe", run=f"touch {marker}")
    job_id = await local.call("skyhop_submit_job", handle=handle, job=job)
    status, text = await local.tail(handle, job_id)
    assert status is JobStatus.FAILED
    assert "sandbox of the local node" in text and "start the cluster again" in text
    assert not os.path.exists(marker)
    assert await local.states(handle) == [NodeState.STOPPED]  # as it is: switched off
    started = await local.call("skyhop_start", handle=handle)
    await local.call("skyhop_setup_runtime", handle=started)
    assert await local.states(started) == [NodeState.RUNNING]
    assert await _run(local, started, "echo back") == "back\n"
    await local.call("skyhop_down", handle=handle)


@needs_sandbox
@trio_test
async def test_a_relaunch_with_fewer_nodes_removes_the_extra_node(
    networked: Local, tmp_path: Path
) -> None:
    local = networked
    handle = await local.provision("shrink", 2)
    registry = Path(local.ctx.config["network"]["registry"])
    assert len(list(registry.iterdir())) == 2
    request = ProvisionRequest(
        cluster_name="shrink",
        num_nodes=1,
        resources=None,
        offer=Offer(backend="local", instance_type="local", cpus=2, memory_gb=1),
        previous=handle,
    )
    smaller = await local.call("skyhop_provision", request=request)
    assert [n.ip for n in smaller.nodes] == [handle.nodes[0].ip]  # rank 0 keeps its address
    layers = Path(handle.head.home).parent / "layers"
    assert sorted(p.name for p in layers.iterdir()) == ["node-0"]
    assert [p.name for p in registry.iterdir()] == [handle.nodes[0].ip]
    assert len(_holders(tmp_path)) == 1
    await local.call("skyhop_down", handle=smaller)
    assert _holders(tmp_path) == [] and list(registry.iterdir()) == []
