"""Fake SSH hosts for tests: network namespaces on a private bridge, each with its own sshd.

Every host is a network namespace with its own address (10.213.N.10+i on a bridge only
this machine can reach) and its own OpenSSH server (key authentication only, a key the
tests generate). Namespaces share the filesystem, so each host gets its own directory
for its ``home`` and ``runtime_dir`` (pool options). Needs root, ``ip`` and ``sshd``;
:func:`unavailable` says why not when they are missing, and :func:`fake_hosts_or_skip`
is the fixture body every suite uses (the ssh backend's, and the AWS backend's, which loads
this module by path and maps its EC2 instances onto these hosts).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

SSHD = "/usr/sbin/sshd"


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check)


def unavailable() -> str | None:
    """Why fake hosts cannot be made here, or None when they can."""
    if os.geteuid() != 0:
        return "creating network namespaces needs root"
    for tool in ("ip", "ssh", "ssh-keygen", "rsync"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (apt-get install openssh-client rsync iproute2)"
    if not os.path.exists(SSHD):
        return f"{SSHD} is missing (apt-get install openssh-server)"
    probe = f"skyhop-probe-{secrets.token_hex(3)}"
    done = _ip("netns", "add", probe, check=False)
    if done.returncode != 0:
        return f"`ip netns add` failed: {done.stderr.strip()}"
    _ip("netns", "del", probe, check=False)
    return None


def _free_subnet() -> int:
    """A ``10.213.N.0/24`` that no route on this host uses yet (two sets of fake hosts
    alive at once must not share a subnet)."""
    routes = _ip("-4", "route", "show", "table", "all", check=False).stdout
    # Parallel test workers (pytest-xdist) take turns: gw0 the even subnets, gw1 the odd.
    worker = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw") or 0)
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    free = [
        n for n in range(10, 250)
        if f"10.213.{n}." not in routes and n % workers == worker % workers
    ]  # fmt: skip
    return free[secrets.randbelow(len(free))]


@contextlib.contextmanager
def fake_hosts_or_skip(count: int, purpose: str = "ssh backend tests") -> Iterator[FakeHosts]:
    """``count`` fake hosts for a fixture, removed afterwards even on failure; skips the
    test (``<purpose> need fake hosts: <why>``) where they cannot be made. (pytest is
    imported here so the benchmark suite can load this module without it.)"""
    import pytest

    reason = unavailable()
    if reason:
        pytest.skip(f"{purpose} need fake hosts: {reason}")
    hosts = FakeHosts(count)
    try:
        yield hosts
    finally:
        hosts.close()


class FakeHosts:
    """``count`` namespaces with sshd; :meth:`close` removes everything, even half-made."""

    def __init__(self, count: int) -> None:
        self.tag = secrets.token_hex(2)
        self.subnet = _free_subnet()
        self.root = Path(f"/tmp/skyhop-ssh-test-{self.tag}")
        self.bridge = f"shbr{self.tag}"
        self.namespaces: list[str] = []
        self.ips: list[str] = []
        self.sshd: list[subprocess.Popen[bytes]] = []
        self.key = self.root / "id_ed25519"
        try:
            self._setup(count)
        except BaseException:
            self.close()
            raise

    def _setup(self, count: int) -> None:
        self.root.mkdir(mode=0o700)
        Path("/run/sshd").mkdir(exist_ok=True)
        keygen = ["ssh-keygen", "-q", "-N", "", "-t", "ed25519", "-f"]
        subprocess.run([*keygen, str(self.key)], check=True)
        subprocess.run([*keygen, str(self.root / "host_key")], check=True)
        (self.root / "authorized_keys").write_text((self.root / "id_ed25519.pub").read_text())
        _ip("link", "add", self.bridge, "type", "bridge")
        _ip("addr", "add", f"10.213.{self.subnet}.1/24", "dev", self.bridge)
        _ip("link", "set", self.bridge, "up")
        for i in range(count):
            self._add_host(i)
        for i in range(len(self.ips)):
            self._wait_for_sshd(i)

    def _add_host(self, i: int) -> None:
        ns, veth, ip = (
            f"skyhop-{self.tag}-h{i}",
            f"shv{self.tag}{i}",
            f"10.213.{self.subnet}.{10 + i}",
        )
        _ip("netns", "add", ns)
        self.namespaces.append(ns)
        _ip("link", "add", veth, "type", "veth", "peer", "name", f"{veth}p")
        _ip("link", "set", f"{veth}p", "netns", ns)
        _ip("link", "set", veth, "master", self.bridge)
        _ip("link", "set", veth, "up")
        _ip("-n", ns, "link", "set", "lo", "up")
        _ip("-n", ns, "link", "set", f"{veth}p", "name", "eth0")
        _ip("-n", ns, "addr", "add", f"{ip}/24", "dev", "eth0")
        _ip("-n", ns, "link", "set", "eth0", "up")
        self.ips.append(ip)
        (self.home(i)).mkdir(parents=True)
        config = self.root / f"sshd-{i}.conf"
        config.write_text(
            f"ListenAddress {ip}\nPort 22\nHostKey {self.root / 'host_key'}\n"
            f"PidFile {self.root / f'sshd-{i}.pid'}\nAuthorizedKeysFile {self.root / 'authorized_keys'}\n"
            "PasswordAuthentication no\nKbdInteractiveAuthentication no\nPubkeyAuthentication yes\n"
            "PermitRootLogin prohibit-password\nUsePAM no\nStrictModes no\n"
            "MaxSessions 200\nMaxStartups 200\n"
        )
        self.sshd.append(self._start_sshd(i))

    def _start_sshd(self, i: int) -> subprocess.Popen[bytes]:
        config = self.root / f"sshd-{i}.conf"
        with open(self.root / f"sshd-{i}.log", "ab") as log:
            return subprocess.Popen(
                ["ip", "netns", "exec", self.namespaces[i], SSHD, "-D", "-e", "-f", str(config)],
                stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip

    def _wait_for_sshd(self, i: int, timeout: float = 15) -> None:
        """Wait for host ``i``'s sshd to accept connections; an sshd that exited (seen
        once in CI, cause unknown) is started again once, and a failure says why."""
        for attempt in range(2):
            if self._port_open(self.ips[i], timeout, self.sshd[i]):
                return
            if attempt == 0 and self.sshd[i].poll() is not None:
                self.sshd[i] = self._start_sshd(i)
                continue
            break
        log = (self.root / f"sshd-{i}.log").read_text(errors="replace")[-2000:]
        state = "running" if self.sshd[i].poll() is None else f"exited {self.sshd[i].returncode}"
        raise RuntimeError(f"sshd on {self.ips[i]} did not start ({state}); its log:\n{log}")

    @staticmethod
    def _port_open(ip: str, timeout: float, proc: subprocess.Popen[bytes] | None = None) -> bool:
        """Whether ``ip:22`` accepts a connection within ``timeout`` (False at once when
        ``proc``, the sshd, has exited)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and (proc is None or proc.poll() is None):
            with contextlib.suppress(OSError), socket.create_connection((ip, 22), timeout=1):
                return True
            time.sleep(0.05)
        return False

    def _wait_for_port(self, ip: str, timeout: float = 15) -> None:
        if not self._port_open(ip, timeout):
            raise RuntimeError(f"sshd on {ip} did not start; see {self.root}/*sshd-*.log")

    def home(self, i: int) -> Path:
        return self.root / f"h{i}" / "home"

    def pool(self, indices: list[int] | None = None) -> dict[str, Any]:
        """A pool spec (for ``ssh_node_pools.yaml``) of the given hosts (default: all)."""
        indices = list(range(len(self.ips))) if indices is None else indices
        return {
            "user": "root",
            "identity_file": str(self.key),
            "hosts": [
                {"ip": self.ips[i], "home": str(self.home(i)),
                 "runtime_dir": str(self.root / f"h{i}" / "runtime")}
                for i in indices
            ],
        }  # fmt: skip

    def kill_host(self, i: int) -> None:
        """Simulate host ``i`` dying: every process in it is killed, its link goes down."""
        pids = _ip("netns", "pids", self.namespaces[i], check=False).stdout.split()
        for pid in pids:
            with contextlib.suppress(OSError):
                os.kill(int(pid), signal.SIGKILL)
        _ip("-n", self.namespaces[i], "link", "set", "eth0", "down", check=False)

    def close(self) -> None:
        for proc in self.sshd:
            with contextlib.suppress(OSError):
                proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)
        for ns in self.namespaces:
            for pid in _ip("netns", "pids", ns, check=False).stdout.split():
                with contextlib.suppress(OSError):
                    os.kill(int(pid), signal.SIGKILL)
            _ip("netns", "del", ns, check=False)
        _ip("link", "del", self.bridge, check=False)
        shutil.rmtree(self.root, ignore_errors=True)
