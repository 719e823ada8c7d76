"""Machines for the fake's instances: the ssh tests' network-namespace hosts, booted on demand.

:class:`GuestHosts` is ``ssh_netns.FakeHosts`` (loaded by path: one copy of the namespace
code) whose namespaces start empty: ``count`` slots on the private bridge, none with an
address or an sshd. :meth:`boot` gives a running instance a free slot, its internal and
a fresh external address, and an sshd that plays the guest: it runs in a mount namespace
of its own where ``/home`` is the instance's boot disk (a directory that outlives
stop/start) and ``/etc/passwd`` has the users of the instance's ``ssh-keys`` metadata,
whose keys the fake's "guest agent" writes to ``~user/.ssh/authorized_keys`` as Google's
does. (Those users are uid 0 on the host's files, which the test hosts share; the host's
own files are never changed.) :meth:`halt` is the VM powering off: every process in the
namespace is killed and the addresses go away.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any


def load_ssh_netns() -> ModuleType:
    if "ssh_netns" in sys.modules:
        return sys.modules["ssh_netns"]
    path = Path(__file__).resolve().parents[2] / "ssh" / "ssh_netns.py"
    spec = importlib.util.spec_from_file_location("ssh_netns", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["ssh_netns"] = module
    spec.loader.exec_module(module)
    return module


ssh_netns = load_ssh_netns()
_ip = ssh_netns._ip


class GuestHosts(ssh_netns.FakeHosts):  # type: ignore[misc,name-defined]
    """``count`` empty namespace slots that :meth:`boot` turns into running instances."""

    def __init__(self, count: int) -> None:
        self.busy: dict[int, str] = {}  # slot -> instance
        self.procs: dict[int, subprocess.Popen[bytes]] = {}
        self.next_octet = 20
        super().__init__(count)

    def _add_host(self, i: int) -> None:
        ns, veth = f"skyhop-{self.tag}-g{i}", f"shv{self.tag}{i}"
        _ip("netns", "add", ns)
        self.namespaces.append(ns)
        _ip("link", "add", veth, "type", "veth", "peer", "name", f"{veth}p")
        _ip("link", "set", f"{veth}p", "netns", ns)
        _ip("link", "set", veth, "master", self.bridge)
        _ip("link", "set", veth, "up")
        _ip("-n", ns, "link", "set", "lo", "up")
        _ip("-n", ns, "link", "set", f"{veth}p", "name", "eth0")
        _ip("-n", ns, "link", "set", "eth0", "up")

    def fresh_ip(self) -> str:
        """An address on the bridge no running instance has (cycling through .20-.249)."""
        ip = f"10.213.{self.subnet}.{self.next_octet}"
        self.next_octet = 20 if self.next_octet >= 249 else self.next_octet + 1
        return ip

    def free_slot(self) -> int | None:
        return next((i for i in range(len(self.namespaces)) if i not in self.busy), None)

    def boot(
        self,
        instance: str,
        slot: int,
        disk: Path,
        keys: dict[str, list[str]],
        addresses: tuple[str, str],
    ) -> None:
        """Start ``instance`` in ``slot``: addresses (internal, external), guest users, sshd."""
        ns = self.namespaces[slot]
        self.busy[slot] = instance
        for ip in addresses:
            _ip("-n", ns, "addr", "add", f"{ip}/24", "dev", "eth0")
        write_keys(disk, keys)
        passwd = self.root / f"passwd-{slot}"
        passwd.write_text(guest_passwd(keys))
        config = self.root / f"guest-sshd-{slot}.conf"
        config.write_text(
            "".join(f"ListenAddress {ip}\n" for ip in addresses)
            + f"Port 22\nHostKey {self.root / 'host_key'}\nPidFile {self.root / f'guest-{slot}.pid'}\n"
            "AuthorizedKeysFile .ssh/authorized_keys\nPasswordAuthentication no\n"
            "KbdInteractiveAuthentication no\nPubkeyAuthentication yes\n"
            "PermitRootLogin prohibit-password\nUsePAM no\nStrictModes no\n"
            "MaxSessions 200\nMaxStartups 200\n"
        )
        script = ('mount --bind "$1" /home && mount --bind "$2" /etc/passwd && '
                  f'exec {ssh_netns.SSHD} -D -e -f "$3"')  # fmt: skip
        argv = ["ip", "netns", "exec", ns, "unshare", "--mount", "--propagation", "private",
                "sh", "-c", script, "guest", str(disk), str(passwd), str(config)]  # fmt: skip
        self.procs[slot] = self._guest_sshd(slot, argv)
        # The addresses may have lived on another slot (another MAC) before: drop the stale
        # ARP entries of the bridge and the other hosts, as a real network would re-learn.
        for ip in addresses:
            _ip("neigh", "flush", "to", ip, "dev", self.bridge, check=False)
            for other in self.namespaces:
                _ip("-n", other, "neigh", "flush", "to", ip, check=False)
        # An sshd that exited at once (seen under load, cause unknown) is started again
        # once; a second failure says why.
        for attempt in range(2):
            if all(self._port_open(ip, 15, self.procs[slot]) for ip in addresses):
                return
            if attempt == 0 and self.procs[slot].poll() is not None:
                self.procs[slot] = self._guest_sshd(slot, argv)
        log = (self.root / f"guest-sshd-{slot}.log").read_text(errors="replace")[-2000:]
        raise RuntimeError(f"the guest sshd of {instance} did not start; its log:\n{log}")

    def _guest_sshd(self, slot: int, argv: list[str]) -> subprocess.Popen[bytes]:
        with open(self.root / f"guest-sshd-{slot}.log", "ab") as log:
            proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        self.sshd.append(proc)
        return proc

    def halt(self, slot: int) -> None:
        """Power the slot's instance off: kill everything in the namespace, drop addresses."""
        ns = self.namespaces[slot]
        for pid in _ip("netns", "pids", ns, check=False).stdout.split():
            with contextlib.suppress(OSError):
                os.kill(int(pid), signal.SIGKILL)
        proc = self.procs.pop(slot, None)
        if proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)
        _ip("-n", ns, "addr", "flush", "dev", "eth0", check=False)
        self.busy.pop(slot, None)

    def describe(self) -> dict[str, Any]:
        return {"namespaces": list(self.namespaces), "bridge": self.bridge, "busy": self.busy}


def write_keys(disk: Path, keys: dict[str, list[str]]) -> None:
    """What the guest agent does with ``ssh-keys``: each user's authorized_keys in its home."""
    for user, lines in keys.items():
        ssh = disk / user / ".ssh"
        ssh.mkdir(parents=True, exist_ok=True, mode=0o700)
        (ssh / "authorized_keys").write_text("".join(line + "\n" for line in lines))


def guest_passwd(keys: dict[str, list[str]]) -> str:
    """The host's passwd plus one uid-0 user per ``ssh-keys`` user, home ``/home/<user>``."""
    with open("/etc/passwd") as f:
        base = f.read()
    existing = {line.split(":")[0] for line in base.splitlines() if line}
    shell = "/bin/bash" if shutil.which("bash") else "/bin/sh"
    extra = "".join(f"{u}:x:0:0:guest:/home/{u}:{shell}\n" for u in keys if u not in existing)
    return base.rstrip("\n") + "\n" + extra


def parse_ssh_keys(metadata: dict[str, Any]) -> dict[str, list[str]]:
    """``user -> [public keys]`` from Metadata items ``ssh-keys`` (lines ``user:key``)."""
    keys: dict[str, list[str]] = {}
    for item in metadata.get("items", ()) or ():
        if item.get("key") in ("ssh-keys", "sshKeys"):
            for line in str(item.get("value", "")).splitlines():
                user, sep, key = line.strip().partition(":")
                if sep and user and key:
                    keys.setdefault(user, []).append(key.strip())
    return keys
