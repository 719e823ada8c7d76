"""End to end through the real API server: a 2-node job on an SSH pool, logs, down."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from ptyterm import Terminal
from ssh_netns import FakeHosts

import skyhop as sky

CLI = [sys.executable, "-m", "skyhop.cli"]

@pytest.fixture
def pool_server(fake_hosts: FakeHosts, make_server: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    root = Path(f"/tmp/skyhop-ssh-e2e-{fake_hosts.tag}")  # short: agent sockets live here
    root.mkdir()
    (root / "ssh_node_pools.yaml").write_text(yaml.safe_dump({"lab": fake_hosts.pool([0, 1])}))
    server = make_server(root)
    for key in ("SKYHOP_PERSISTENT_PATH", "SKYHOP_API_SERVER_ENDPOINT", "SKYHOP_CONFIG"):
        monkeypatch.setenv(key, server.env[key])
    yield server
    import shutil

    shutil.rmtree(root, ignore_errors=True)


def test_launch_two_nodes_through_the_server(pool_server: Any, fake_hosts: FakeHosts) -> None:
    task = sky.Task(
        run='echo "hello from $SKYHOP_NODE_RANK of $SKYHOP_NUM_NODES"',
        num_nodes=2,
        resources=sky.Resources(infra="ssh/lab"),
    )
    job_id, handle = sky.stream_and_get(
        sky.launch(task, cluster_name="pool2"), output_stream=io.StringIO()
    )
    assert [n.rank for n in handle.nodes] == [0, 1]
    out = io.StringIO()
    assert sky.tail_logs("pool2", job_id, follow=True, output_stream=out) == 0
    text = out.getvalue()
    assert "(rank 0) hello from 0 of 2" in text and "(rank 1) hello from 1 of 2" in text, text
    # skyhop ssh into each node, through the server's connections to the pool's hosts.
    seen = set()
    for rank in (0, 1):
        done = subprocess.run(
            [*CLI, "ssh", "pool2", "--node", str(rank), "--", "hostname -I; exit 5"],
            env=pool_server.env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert done.returncode == 5, done.stderr
        seen.update(set(done.stdout.split()) & {fake_hosts.ips[0], fake_hosts.ips[1]})
    assert seen == {fake_hosts.ips[0], fake_hosts.ips[1]}
    term = Terminal([*CLI, "ssh", "pool2"], pool_server.env)
    try:
        term.write(b"tty; exit 4\n")
        term.expect(rb"/dev/pts/\d+")  # a terminal on the host, under its sshd
        assert term.wait() == 4
    finally:
        term.close()
    sky.stream_and_get(sky.down("pool2"), output_stream=io.StringIO())
    hosts = json.loads((pool_server.root / "backends" / "ssh" / "hosts.json").read_text())
    assert hosts["hosts"] == {}, "down must release the hosts"
