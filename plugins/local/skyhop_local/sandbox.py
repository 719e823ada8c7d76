"""Local nodes as sandboxes: the host root read-only underneath, the node's layer on top.

Each node of a local cluster gets a *layer*, ``<cluster>/layers/node-<rank>/``:

- ``upper/`` and ``work/``: the overlayfs upper and work directories. Everything a job
  writes outside its home (``pip install``, ``/data``, ``/opt``, ``/tmp``, file mounts to
  absolute paths) lands in ``upper/``; the host's own files are never touched.
- ``root/``: where the overlay is mounted — but only inside the node's private mount
  namespace, so nothing is ever mounted on the host (a ``shutil.rmtree`` of the cluster
  directory cannot walk into the host's root through it).
- ``holder.pid`` and ``enter``: the *holder* is one ``sleep`` process that keeps the
  namespace alive. util-linux builds it: ``unshare --mount`` makes the namespace, ``mount
  -t overlay`` stacks ``upper/`` over ``/``, ``/dev`` ``/proc`` ``/sys`` are bound in (GPUs
  are shared with the host), a tmpfs hides the persistent path (database, tokens, other
  clusters) and the node's home is bound back over it, then the holder ``chroot``\\ s into
  the overlay. ``enter`` is a shell script: ``sh enter '<command line>'`` runs the line
  inside the node (``nsenter`` into the holder's namespaces and root) with a clean
  environment whose ``HOME`` is the node's home. It is the node's job launcher.
  ``enter-root`` is the same without ``run_as``'s user switch: storage mounts (rclone,
  holding the store's credentials) run through it.

Stopping a node ends every process in its mount namespace (SIGTERM, then SIGKILL: a
storage mount's rclone writes back its cache), then kills its holder (the namespace and
its mounts go with it) and keeps the layer; starting it again makes a new holder over the same layer; ``down`` removes it.

A holder proves it is the right process by a random token that it writes into the
overlay (``/.skyhop-node``) and that ``enter`` checks through ``/proc/<pid>/root``, so a
recycled pid can never make a command run on the host.

Sandboxes need root (mounting overlayfs, ``nsenter``) and the ``overlay`` filesystem; see
:func:`detect`. Without them a node is a plain directory and :func:`check_target` refuses
file mounts outside its home.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shlex
import shutil
import subprocess
import time
from collections.abc import Mapping
from typing import Any

import attrs

from skyhop_core.exceptions import NotSupportedError, SkyhopError
from skyhop_local.network import NetworkError, NodeNetwork, kill_and_wait

#: Environment switch that turns sandboxes off (``off``) like ``sandbox: off`` in the
#: ``local`` section of the config; tests use it to exercise the fallback.
SANDBOX_ENV = "SKYHOP_LOCAL_SANDBOX"
MARKER = ".skyhop-node"
START_TIMEOUT_SECONDS = 10.0
_TOOLS = ("unshare", "nsenter", "mount", "chroot", "env", "sleep")
_OFF = ("off", "false", "no", "none", "0")
#: Variables of the server's environment a job keeps (the rest may hold secrets).
_KEEP_ENV = ("PATH", "LANG", "LC_ALL", "TERM", "TZ")
# Mounts of the host other than the root that stay what they are inside a node, bound
# read-only (the overlay's lower layer is the root file system only).
_VIRTUAL_ROOTS = ("/proc", "/sys", "/dev")
_NODE_OWN = ("/tmp", "/var/tmp")


@attrs.frozen
class Support:
    """Which isolation this host gives local nodes: ``overlay`` or ``none`` (and why)."""

    mode: str
    reason: str

    @property
    def sandboxed(self) -> bool:
        return self.mode == "overlay"


def detect(config: Mapping[str, Any] | None = None) -> Support:
    """What this host supports, honouring ``sandbox: off`` and ``SKYHOP_LOCAL_SANDBOX``."""
    setting = os.environ.get(SANDBOX_ENV) or str((config or {}).get("sandbox", "auto"))
    if setting.strip().lower() in _OFF:
        return Support("none", f"sandboxes are turned off ({SANDBOX_ENV} or sandbox: off)")
    if os.geteuid() != 0:
        return Support(
            "none",
            "the server does not run as root, and sandboxed local nodes need root to mount "
            "their overlay",
        )
    missing = [tool for tool in _TOOLS if shutil.which(tool) is None]
    if missing:
        return Support("none", f"{', '.join(missing)} not found (install util-linux)")
    try:
        with open("/proc/filesystems") as f:
            has_overlay = any(line.split()[-1] == "overlay" for line in f if line.strip())
    except OSError:
        has_overlay = False
    if not has_overlay and subprocess.run(["modprobe", "overlay"], capture_output=True).returncode:
        return Support("none", "the kernel has no overlay file system")
    return Support("overlay", "each node has its own overlay over a read-only host root")


class SandboxError(SkyhopError):
    """A node's sandbox could not be started or entered."""


@attrs.frozen
class Layer:
    """The sandbox of one node: its layer directory, its home, the path it must hide."""

    dir: str
    home: str
    hidden: str
    run_as: str | None = None
    #: The node's own network namespace (None: the node shares the host's network).
    net: NodeNetwork | None = None

    @property
    def upper(self) -> str:
        return os.path.join(self.dir, "upper")

    @property
    def root(self) -> str:
        return os.path.join(self.dir, "root")

    @property
    def enter(self) -> str:
        return os.path.join(self.dir, "enter")

    @property
    def _pid_file(self) -> str:
        return os.path.join(self.dir, "holder.pid")

    @property
    def enter_root(self) -> str:
        return os.path.join(self.dir, "enter-root")

    def launcher(self) -> list[str]:
        """The argv prefix that runs one shell command line inside the node."""
        return ["sh", self.enter]

    def mount_launcher(self) -> list[str]:
        """The same, but as root even where jobs run as ``run_as``: storage mounts (rclone
        holds the store's credentials, which the jobs' user must not read)."""
        return ["sh", self.enter_root]

    def holder(self) -> int | None:
        """The pid of this node's live holder, or None."""
        try:
            with open(self._pid_file) as f:
                pid_text, token = f.read().split()
            with open(f"/proc/{int(pid_text)}/root/{MARKER}") as f:
                return int(pid_text) if f.read().strip() == token else None
        except (OSError, ValueError):
            return None

    def start(self) -> int:
        """Start the holder unless it runs; its pid (blocking, up to a few seconds)."""
        pid = self.holder()
        if pid is not None:
            return pid
        for sub in ("upper", "work", "root"):
            os.makedirs(os.path.join(self.dir, sub), exist_ok=True)
        # The node's / takes the upper layer's mode: 0755 like a machine's root, whatever
        # the server's umask (077), or a run_as user could not enter its own node.
        os.chmod(self.upper, 0o755)
        _own_temp_dirs(self.upper)
        token = secrets.token_hex(16)
        ready = os.path.join(self.dir, "ready")
        log = os.path.join(self.dir, "holder.log")
        for stale in (ready, self._pid_file):
            if os.path.exists(stale):
                os.unlink(stale)
        script = self._holder_script(token, ready)
        namespaces = "--mount --net" if self.net else "--mount"
        launch = (
            f'unshare {namespaces} --propagation private -- sh -c "$1" '
            f">{shlex.quote(log)} 2>&1 </dev/null & echo $!"
        )
        out = subprocess.run(
            ["sh", "-c", launch, "sh", script], capture_output=True, text=True, check=True
        ).stdout
        pid = int(out.strip())
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while not os.path.exists(ready):
            if time.monotonic() > deadline or not os.path.exists(f"/proc/{pid}"):
                with open(log, errors="replace") as f:
                    detail = f.read().strip()
                kill_and_wait(pid)
                raise SandboxError(
                    f"The sandbox of the local node {self.home} did not start: "
                    f"{detail or 'no output'} (see {log})."
                )
            time.sleep(0.005)
        if self.net is not None:
            try:
                self.net.attach(pid)
            except (NetworkError, OSError) as exc:
                kill_and_wait(pid)
                raise SandboxError(
                    f"The network of the local node {self.home} could not be set up: {exc}"
                ) from exc
        _write_atomic(self._pid_file, f"{pid} {token}\n")
        # "ready" is written just before the holder chroots into the overlay: until the
        # chroot, /proc/PID/root is not the node's root and the node would look stopped
        # (seen under load right after a start). Return once it is really in place.
        while self.holder() != pid:
            if time.monotonic() > deadline or not os.path.exists(f"/proc/{pid}"):
                kill_and_wait(pid)
                raise SandboxError(
                    f"The sandbox of the local node {self.home} did not enter its root "
                    f"within {START_TIMEOUT_SECONDS:.0f} s (see {log})."
                )
            time.sleep(0.005)
        _write_atomic(self.enter, self._enter_script(pid, token))
        _write_atomic(self.enter_root, self._enter_script(pid, token, as_root=True))
        return pid

    def stop(self) -> None:
        """Kill the holder (the namespace and its mounts go away); the layer stays."""
        pid = self.holder()
        if pid is not None:
            # Whatever else lives in the node (a storage mount's rclone) would keep the
            # namespace, and its mounts, alive: end it first, as a machine's shutdown.
            _end_processes(_namespace_members(pid))
            kill_and_wait(pid)
        if self.net is not None:
            self.net.stop()

    def remove(self) -> None:
        self.stop()
        if self.net is not None:
            self.net.release()
        shutil.rmtree(self.dir, ignore_errors=True)

    def host_path(self, path: str) -> str:
        """Where the node's absolute ``path`` is, seen from the host (the holder runs)."""
        pid = self.holder()
        if pid is None:
            raise SandboxError(f"The sandbox of the local node {self.home} is not running.")
        return f"/proc/{pid}/root/{path.lstrip('/')}"

    def _holder_script(self, token: str, ready: str) -> str:
        root = self.root
        q = shlex.quote
        lines = [
            "set -e",
            # Directories made here are part of the node's tree, seen by run_as users.
            "umask 022",
            f"mount -t overlay overlay -o lowerdir=/,upperdir={q(self.upper)},"
            f"workdir={q(os.path.join(self.dir, 'work'))} {q(root)}",
        ]
        for path in _VIRTUAL_ROOTS:
            lines.append(f"mount --rbind {path} {q(root + path)}")
        # Devices are the host's (GPUs), but shared memory is the node's own.
        lines.append(
            f"if [ -d {q(root + '/dev/shm')} ]; then "
            f"mount -t tmpfs -o mode=1777,nosuid,nodev skyhop-shm {q(root + '/dev/shm')}; fi"
        )
        for mountpoint in _other_mounts(self.hidden):
            target = q(root + mountpoint)
            lines.append(f"mkdir -p {target}")
            lines.append(f"mount --bind {q(mountpoint)} {target}")
            lines.append(f"mount -o remount,bind,ro {target}")
        hidden = q(root + self._cover())
        home = q(root + self.home)
        runtime = q(root + os.path.join(self.home, ".skyhop_runtime"))
        lines += [
            # The persistent path (database, tokens, uploads, other nodes) is invisible;
            # only this node's home comes back, without the agent's runtime directory.
            f"mkdir -p {hidden}",
            f"mount -t tmpfs -o mode=0755 skyhop-hidden {hidden}",
            f"mkdir -p {home}",
            f"mount --bind {q(self.home)} {home}",
            f"if [ -d {runtime} ]; then mount -t tmpfs -o mode=0700 skyhop-hidden {runtime}; fi",
            f"echo {token} > {q(root + '/' + MARKER)}",
            f"(umask 077; echo ready > {q(ready)})",  # the host side stays private
            # The variable names the holder's layer for whoever hunts leftover processes.
            f"exec env SKYHOP_NODE_LAYER={q(self.dir)} chroot {q(root)} sleep infinity",
        ]
        return "\n".join(lines) + "\n"

    def _cover(self) -> str:
        """Where the tmpfs that hides the persistent path goes: the path itself, or for
        jobs that run as another user the topmost ancestor that user could not enter
        (``/root``, a private temporary directory), so the home bound under it, and
        nothing else there, is reachable."""
        if not self.run_as:
            return self.hidden
        path = self.hidden
        cover = self.hidden
        while path != "/":
            try:
                if not os.stat(path).st_mode & 0o001:
                    cover = path
            except OSError:
                pass
            path = os.path.dirname(path)
        return cover

    def _enter_script(self, pid: int, token: str, as_root: bool = False) -> str:
        keep = " ".join(f'{name}="${{{name}:-}}"' for name in _KEEP_ENV if name != "PATH")
        user = []
        if self.run_as and not as_root:
            import pwd

            entry = pwd.getpwnam(self.run_as)
            user = [f"--setuid={entry.pw_uid}", f"--setgid={entry.pw_gid}"]
        net = ["--net"] if self.net else []
        nsenter = shlex.join(["nsenter", f"--target={pid}", "--mount", *net, "--root", *user, "--"])
        home = shlex.quote(self.home)
        return (
            "#!/bin/sh\n"
            "# Runs the shell command line $1 inside this local node (written by skyhop).\n"
            # ``read`` is a builtin: no fork on the way to the job's first output.
            f"read -r token 2>/dev/null < /proc/{pid}/root/{MARKER} || token=\n"
            f'if [ "$token" != {token} ]; then\n'
            f"  echo 'skyhop: the sandbox of the local node {self.home} is not running; "
            "start the cluster again' >&2\n"
            "  exit 125\n"
            "fi\n"
            f'exec {nsenter} env -i -C {home} HOME={home} PATH="$PATH" {keep} bash -c "$1"\n'
        )


def _namespace_members(holder: int) -> list[int]:
    """The processes in the holder's mount namespace, the holder excepted."""
    try:
        namespace = os.readlink(f"/proc/{holder}/ns/mnt")
    except OSError:
        return []
    members = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != holder:
            try:
                if os.readlink(f"/proc/{entry}/ns/mnt") == namespace:
                    members.append(int(entry))
            except OSError:
                continue  # gone, or not ours to look at
    return members


def _end_processes(pids: list[int], grace: float = 5.0) -> None:
    """SIGTERM ``pids`` (rclone then writes back what it cached and unmounts), SIGKILL
    what is left after ``grace`` seconds."""
    import signal

    for pid in pids:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    alive = list(pids)
    while alive and time.monotonic() < deadline:
        alive = [pid for pid in alive if _running(pid)]
        if alive:
            time.sleep(0.02)
    for pid in alive:
        kill_and_wait(pid)


def _running(pid: int) -> bool:
    """Whether ``pid`` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def _own_temp_dirs(upper: str) -> None:
    """Give the node an empty ``/tmp`` and ``/var/tmp`` of its own: opaque directories in
    its layer, so nothing of the host's temporary files shows through (another machine's
    /tmp is not this one's). Made once; what jobs write there stays across stop/start."""
    for name in _NODE_OWN:
        path = os.path.join(upper, name.lstrip("/"))
        if os.path.isdir(path):
            continue
        parent = os.path.dirname(path)
        if not os.path.isdir(parent):  # /var: as on the host (the server's umask is 077)
            os.makedirs(parent, exist_ok=True)
            os.chmod(parent, 0o755)
        os.mkdir(path)
        os.chmod(path, 0o1777)
        os.setxattr(path, "trusted.overlay.opaque", b"y")


def _other_mounts(hidden: str) -> list[str]:
    """Host mount points besides ``/`` that a node sees read-only, parents first."""
    found: list[str] = []
    try:
        with open("/proc/self/mountinfo") as f:
            lines = f.read().splitlines()
    except OSError:
        return found
    for line in lines:
        mountpoint = line.split()[4].encode().decode("unicode_escape")
        if mountpoint == "/" or mountpoint in _NODE_OWN or mountpoint in found:
            continue
        if any(_under(mountpoint, root) for root in (*_VIRTUAL_ROOTS, hidden, *_NODE_OWN)):
            continue
        if os.path.isdir(mountpoint):
            found.append(mountpoint)
    return found


def _under(path: str, root: str) -> bool:
    root = root.rstrip("/")
    return path == root or path.startswith(root + "/")


def _write_atomic(path: str, text: str) -> None:
    with open(path + ".tmp", "w") as f:
        f.write(text)
    os.replace(path + ".tmp", path)


def check_target(remote: str, home: str, support: Support) -> None:
    """Refuse an upload target a node without a sandbox would write on the host."""
    if support.sandboxed or not os.path.isabs(remote) or _under(remote, home):
        return
    raise NotSupportedError(
        f"Cannot put a file mount or workdir at {remote} on a local node: without a sandbox "
        f"({support.reason}) it would be written to the host's own {remote}. Use a target "
        f"under ~ (the node's home, {home}), or run the server as root with util-linux and "
        "overlayfs so that local nodes get their own file system."
    )
