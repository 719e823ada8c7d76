"""A network identity per local node: a network namespace with its own address on a bridge.

A sandboxed node's holder (see :mod:`skyhop_local.sandbox`) is started in a new network
namespace; :meth:`NodeNetwork.attach` then gives it a veth pair whose host end is on a
bridge of this host (``skyhop0``, ``10.147.0.1/16`` unless the ``local`` config section's
``network`` says otherwise) and whose node end, ``eth0``, has the node's own address.
The host and the other nodes reach the node there, so ``SKYHOP_NODE_IPS`` lists distinct
addresses and two nodes can listen on the same port. The namespace (and the veth pair)
goes away with the holder; nothing here needs cleaning up but the address lease.

Addresses are leased host-wide in a registry directory (``/run/skyhop-local/addresses``,
one file per address, created with ``O_EXCL``, naming the layer that holds it), so
clusters of different servers on one host never collide; a lease whose layer is gone is
taken over. A node keeps its address across stop and start.

Egress: with ``slirp4netns`` (a Debian package) each node also gets a user-mode NAT
interface (``tap0``, default route), so it reaches package registries without any change
to the host's forwarding or firewall, and not the host's loopback. Without it the node
reaches the host and the other nodes only; ``skyhop check`` says so.
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import os
import secrets
import shlex
import shutil
import signal
import subprocess
import time
from collections.abc import Mapping
from typing import Any

import attrs

#: Environment switch that turns per-node networks off (``off``), like ``network: off``.
NETWORK_ENV = "SKYHOP_LOCAL_NETWORK"
_OFF = ("off", "false", "no", "none", "0")


class NetworkError(Exception):
    """A node's network could not be set up."""


@attrs.frozen
class NetworkConfig:
    """The ``network`` part of the ``local`` config section (all optional)."""

    bridge: str = "skyhop0"
    subnet: str = "10.147.0.0/16"
    registry: str = "/run/skyhop-local/addresses"
    #: ``auto`` (slirp4netns when installed), ``slirp4netns`` or ``none``.
    egress: str = "auto"

    @classmethod
    def from_config(cls, config: Mapping[str, Any] | None) -> NetworkConfig:
        section = (config or {}).get("network")
        if not isinstance(section, Mapping):
            return cls()
        known = {f.name for f in attrs.fields(cls)}
        unknown = sorted(set(section) - known - {"enabled"})
        if unknown:
            raise ValueError(
                f"local.network: unknown option(s) {', '.join(unknown)}; "
                f"known: enabled, {', '.join(sorted(known))}"
            )
        cfg = cls(**{k: str(v) for k, v in section.items() if k in known})
        try:
            if cfg.network.num_addresses < 4:
                raise ValueError("it has fewer than 2 addresses for nodes")
        except ValueError as exc:
            raise ValueError(
                f"local.network.subnet: {cfg.subnet!r} is not a usable IPv4 subnet ({exc}); "
                "use e.g. 10.147.0.0/16"
            ) from None
        if cfg.egress not in ("auto", "slirp4netns", "none"):
            raise ValueError(f"local.network.egress: {cfg.egress!r}; use auto, slirp4netns or none")
        return cfg

    @property
    def network(self) -> ipaddress.IPv4Network:
        return ipaddress.IPv4Network(self.subnet, strict=False)

    @property
    def gateway(self) -> str:
        return str(next(self.network.hosts()))

    def egress_tool(self) -> str | None:
        if self.egress == "none":
            return None
        return shutil.which("slirp4netns")


@attrs.frozen
class NetworkSupport:
    """Whether nodes get their own network namespace (``netns``) or share the host's."""

    mode: str
    reason: str

    @property
    def isolated(self) -> bool:
        return self.mode == "netns"


def detect(config: Mapping[str, Any] | None, sandboxed: bool) -> NetworkSupport:
    """What this host gives a node's network (honouring ``network: off`` and the env).

    Raises ValueError, naming the option, for a bad ``network`` section."""
    cfg = NetworkConfig.from_config(config)
    section = (config or {}).get("network")
    setting = os.environ.get(NETWORK_ENV) or (
        str(section)
        if not isinstance(section, Mapping) and section is not None
        else str((section or {}).get("enabled", "auto"))
    )
    fallback = "the host's network, with task ports mapped to free loopback ports"
    if setting.strip().lower() in _OFF:
        return NetworkSupport("none", f"{fallback} (turned off by {NETWORK_ENV} or network: off)")
    if not sandboxed:
        return NetworkSupport("none", f"{fallback} (nodes are not sandboxes)")
    if shutil.which("ip") is None:
        return NetworkSupport("none", f"{fallback} (`ip` not found: install iproute2)")
    egress = (
        "egress through slirp4netns"
        if cfg.egress_tool()
        else "no egress beyond this host (install slirp4netns)"
    )
    return NetworkSupport(
        "netns", f"own network namespace per node on bridge {cfg.bridge} ({cfg.subnet}), {egress}"
    )


def _ip(*args: str, netns_pid: int | None = None, check: bool = True) -> str:
    argv = ["ip", *args]
    if netns_pid is not None:
        argv = ["nsenter", f"--target={netns_pid}", "--net", "--", *argv]
    done = subprocess.run(argv, capture_output=True, text=True)
    if check and done.returncode != 0:
        raise NetworkError(f"`{' '.join(argv)}` failed: {done.stderr.strip()}")
    return done.stdout


@attrs.frozen
class NodeNetwork:
    """The network of the node whose layer is ``layer_dir``."""

    layer_dir: str
    config: NetworkConfig = NetworkConfig()

    @property
    def _address_file(self) -> str:
        return os.path.join(self.layer_dir, "address")

    @property
    def host_interface(self) -> str:
        digest = hashlib.sha1(os.path.realpath(self.layer_dir).encode()).hexdigest()
        return f"skh{digest[:11]}"  # interface names have at most 15 characters

    def address(self) -> str:
        """The node's address: the one it had, or a newly leased one (blocking)."""
        os.makedirs(self.config.registry, exist_ok=True)
        with contextlib.suppress(OSError):
            with open(self._address_file) as f:
                previous = f.read().strip()
            if previous and self._lease(previous):
                return previous
        for host in self.config.network.hosts():
            candidate = str(host)
            if candidate != self.config.gateway and self._lease(candidate):
                with open(self._address_file, "w") as f:
                    f.write(candidate + "\n")
                return candidate
        raise NetworkError(
            f"No free address left in {self.config.subnet} (leases in {self.config.registry})."
        )

    def _lease(self, address: str) -> bool:
        path = os.path.join(self.config.registry, address)
        mine = os.path.realpath(self.layer_dir)
        # The lease is written whole, then linked into place (as exclusive as O_EXCL): a
        # node leasing at the same moment never reads it empty and takes it for stale.
        draft = f"{path}.{os.getpid()}.{secrets.token_hex(4)}.draft"
        with open(draft, "w") as f:
            f.write(mine + "\n")
        try:
            os.link(draft, path)
            return True
        except FileExistsError:
            with contextlib.suppress(OSError), open(path) as f:
                holder = f.read().strip()
                if holder == mine:
                    return True
                if os.path.isdir(holder):
                    return False
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)  # its layer is gone: the lease is stale
            return self._lease(address) if not os.path.exists(path) else False
        finally:
            os.unlink(draft)

    def release(self) -> None:
        """Give the address back (at ``down``)."""
        with contextlib.suppress(OSError):
            with open(self._address_file) as f:
                address = f.read().strip()
            with open(os.path.join(self.config.registry, address)) as f:
                if f.read().strip() == os.path.realpath(self.layer_dir):
                    os.unlink(os.path.join(self.config.registry, address))

    def attach(self, pid: int) -> str:
        """Wire the network namespace of process ``pid`` to the bridge; its address."""
        address = self.address()
        prefix = self.config.network.prefixlen
        self._ensure_bridge()
        hostif = self.host_interface
        _ip("link", "del", hostif, check=False)  # a leftover of an earlier holder
        _ip("link", "add", hostif, "type", "veth", "peer", "name", "eth0", "netns", str(pid))
        _ip("link", "set", hostif, "master", self.config.bridge, "up")
        _ip("addr", "add", f"{address}/{prefix}", "dev", "eth0", netns_pid=pid)
        _ip("link", "set", "eth0", "up", netns_pid=pid)
        _ip("link", "set", "lo", "up", netns_pid=pid)
        # The address may have been a node's that is gone: forget its hardware address,
        # or connections from this host go to the old one until the entry goes stale.
        _ip("neigh", "flush", "to", address, "dev", self.config.bridge, check=False)
        slirp = self.config.egress_tool()
        if slirp:
            self._start_egress(slirp, pid)
        else:
            _ip("route", "add", "default", "via", self.config.gateway, netns_pid=pid)
        return address

    def _ensure_bridge(self) -> None:
        bridge = self.config.bridge
        if _ip("link", "show", bridge, check=False).strip() == "":
            _ip("link", "add", bridge, "type", "bridge", check=False)  # may race another
        gateway = f"{self.config.gateway}/{self.config.network.prefixlen}"
        if gateway not in _ip("-o", "addr", "show", "dev", bridge):
            _ip("addr", "add", gateway, "dev", bridge, check=False)
        _ip("link", "set", bridge, "up")

    def _start_egress(self, slirp: str, pid: int) -> None:
        """A user-mode NAT for the node (it exits when the namespace's holder dies)."""
        log = os.path.join(self.layer_dir, "slirp4netns.log")
        ready_r, ready_w = os.pipe()
        argv = [slirp, "--configure", "--mtu=65520", "--disable-host-loopback",
                f"--ready-fd={ready_w}", str(pid), "tap0"]  # fmt: skip
        # Started through a shell that exits at once, so that it is nobody's child here.
        launch = f"{shlex.join(argv)} >{shlex.quote(log)} 2>&1 </dev/null & echo $!"
        try:
            out = subprocess.run(
                ["sh", "-c", launch], capture_output=True, text=True, pass_fds=(ready_w,)
            ).stdout
        finally:
            os.close(ready_w)
        try:
            ready = os.read(ready_r, 1)
        finally:
            os.close(ready_r)
        slirp_pid = int(out.strip() or 0)
        if ready != b"1":
            with contextlib.suppress(ProcessLookupError, PermissionError):
                if slirp_pid:
                    os.kill(slirp_pid, signal.SIGKILL)
            raise NetworkError(f"slirp4netns did not start for the node (see {log}).")
        with open(os.path.join(self.layer_dir, "slirp4netns.pid"), "w") as f:
            f.write(f"{slirp_pid}\n")

    def stop(self) -> None:
        """Unplug the node from the bridge and stop its egress helper. The namespace dies
        with the holder, but the kernel frees a dead namespace later, on its own time:
        until then its end of the cable would still answer for the address, which the
        next node may already have (a replica that never answered its probes)."""
        _ip("link", "del", self.host_interface, check=False)
        pid_file = os.path.join(self.layer_dir, "slirp4netns.pid")
        with contextlib.suppress(OSError, ValueError):
            with open(pid_file) as f:
                pid = int(f.read().strip())
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if b"slirp4netns" in f.read():
                    kill_and_wait(pid)
            os.unlink(pid_file)


def kill_and_wait(pid: int) -> None:
    """SIGKILL a detached helper (a holder, slirp4netns) and wait until it is gone; a
    zombie counts as gone (the helper is nobody's child here once its shell exited)."""
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    return
        except (OSError, IndexError):
            return
        time.sleep(0.005)
