"""Exec-to-first-output on a 2-node ``ssh`` cluster, next to one SSH round trip.

The hosts are the ssh backend tests' fake hosts (``tests/plugins/ssh/ssh_netns.py``,
loaded by path): two network namespaces on a private bridge, each with its own sshd.
A skyhop server of its own (not the suite's warm server) starts with an
``ssh_node_pools.yaml`` for them in its persistent path; a 2-node cluster is launched on
``infra: ssh/<pool>``, then ``exec`` of an ``echo`` with ``num_nodes: 2`` is timed the
way the local figure times it (``bench.jobs``): submit, get the job ID, follow its log
through the SDK until the first line arrives. The baseline, in the same run and
alternating with it, is ``ssh HOST true`` over an already-open ControlMaster connection
to the first host: the least one command on a remote node can cost.

Everything is torn down by PID even on failure: the cluster is downed, the ControlMaster
``ssh`` and the server are stopped, and the namespaces (with their sshd) are removed.
Where namespaces cannot be made (not root, no sshd, ...) the figure is reported as
skipped, with the reason.
"""

from __future__ import annotations

import contextlib
import importlib.util
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import yaml

from bench.jobs import _first_output
from bench.report import Figure
from bench.servers import ApiServer
from bench.util import Run, environment, stop_process, summary

NETNS = Path(__file__).resolve().parent.parent / "tests" / "plugins" / "ssh" / "ssh_netns.py"
POOL = "benchpool"
CLUSTER = "bench-ssh"
NAME = "exec to first output (2-node ssh cluster)"
BASELINE = "ssh true over an open ControlMaster"


def load_netns() -> ModuleType:
    """The fake-host helper of the ssh tests, imported from its file (not a package)."""
    if "ssh_netns" in sys.modules:
        return sys.modules["ssh_netns"]
    spec = importlib.util.spec_from_file_location("ssh_netns", NETNS)
    assert spec is not None and spec.loader is not None, NETNS
    module = importlib.util.module_from_spec(spec)
    sys.modules["ssh_netns"] = module
    spec.loader.exec_module(module)
    return module


def ssh_task(run_cmd: str | None = None) -> dict[str, Any]:
    """A 2-node task on the bench pool (no ``run`` when ``run_cmd`` is None)."""
    body: dict[str, Any] = {"num_nodes": 2, "resources": {"infra": f"ssh/{POOL}"}}
    if run_cmd is not None:
        body["run"] = run_cmd
    return body


def ssh_base(hosts: Any, control: Path) -> list[str]:
    """``ssh`` options and destination for the first fake host through ``control``."""
    return ["ssh", "-S", str(control), "-i", str(hosts.key), "-o", "IdentitiesOnly=yes",
            "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
            "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
            f"root@{hosts.ips[0]}"]


def open_master(hosts: Any, control: Path, timeout: float = 15) -> subprocess.Popen[bytes]:
    """A foreground ControlMaster ``ssh -M -N`` (its PID is ours); wait for its socket."""
    argv = ssh_base(hosts, control)
    proc = subprocess.Popen([*argv[:1], "-M", "-N", *argv[1:]], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + timeout
    while not control.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            stop_process(proc)
            err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
            raise RuntimeError(f"ControlMaster to {hosts.ips[0]} did not open: {err[-300:]!r}")
        time.sleep(0.01)
    return proc


def ssh_true(argv: list[str]) -> float:
    """Seconds for one ``ssh HOST true`` over the open master."""
    start = time.perf_counter()
    subprocess.run([*argv[:1], "-o", "ControlMaster=no", *argv[1:], "true"], check=True,
                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, timeout=30)
    return time.perf_counter() - start


def measure(run: Run, hosts: Any, control: Path) -> Figure:
    """Launch the cluster, open the master, then time exec runs against ``ssh true``."""
    import skyhop as sky

    start = time.perf_counter()
    sky.get(sky.launch(ssh_task(), cluster_name=CLUSTER))
    launch_s = time.perf_counter() - start
    argv = ssh_base(hosts, control)
    master = open_master(hosts, control)
    try:
        runs = run.reps(5, 20)
        samples, base = [], []
        for i in range(runs + 1):
            elapsed = _first_output(
                lambda cmd: sky.exec(ssh_task(cmd), cluster_name=CLUSTER), CLUSTER)
            ssh_s = ssh_true(argv)
            if i:  # the first pair is a warm-up
                samples.append(elapsed)
                base.append(ssh_s)
    finally:
        stop_process(master)
    s, b = summary(samples, 1000), summary(base, 1000)
    return Figure("ssh", NAME, "ms", s["p50"], s["p99"], BASELINE, b["p50"], b["p99"], None,
                  f"{runs} runs after 1 warm-up: sky.exec (num_nodes 2) + get + logs --follow "
                  "until the first echo arrives; 2 fake hosts (sshd in network namespaces); "
                  f"own server; cluster launch took {launch_s:.1f} s (untimed)")


def exec_first_output_ssh(run: Run) -> list[Figure]:
    """The figure, or a skipped one (with the reason) where fake hosts cannot be made."""
    import skyhop as sky

    netns = load_netns()
    reason = netns.unavailable()
    if reason:
        return [Figure("ssh", NAME, "ms", skipped=f"no fake hosts: {reason}")]
    hosts = api = None
    try:
        hosts = netns.FakeHosts(2)
        api = ApiServer()
        (api.root / "ssh_node_pools.yaml").write_text(yaml.safe_dump({POOL: hosts.pool()}))
        api.start()
        with environment(api.env):
            try:
                return [measure(run, hosts, hosts.root / "cm")]
            finally:
                with contextlib.suppress(Exception):
                    sky.get(sky.down(CLUSTER))
    finally:
        if api is not None:
            api.cleanup()
        if hosts is not None:
            hosts.close()
