"""Putting the node agent on a host, and learning what the host has, in one SSH round trip.

The host needs only ``python3``: the bundle (a tar streamed over stdin) holds the
stdlib-only agent package as ``<runtime_dir>/pkg/skyhop_core/agent/`` (with the core's
import-light ``skyhop_core/__init__.py``), the launcher the head uses to start a job's
share on another node (``pkg/skyhop_ssh_launch.py``), and, for the head only, the keys
of the other nodes (``keys/``, mode 0600). The remote script unpacks it and prints the
host's facts as JSON: CPUs, memory, NVIDIA GPUs, home, runtime directory, rsync.
"""

from __future__ import annotations

import io
import json
import os
import tarfile
from collections.abc import Mapping
from typing import Any

from skyhop_core import agentjobs
from skyhop_core.exceptions import CommandError
from skyhop_ssh.sshcmd import SSHCommandRunner, Target, control_path, ssh_options

LAUNCHER_NAME = "skyhop_ssh_launch.py"

#: argv: runtime_dir, home ("" = login home), "install"|"probe". Prints facts as JSON.
REMOTE_SCRIPT = r"""
import json, os, shutil, subprocess, sys, tarfile
runtime = os.path.expanduser(sys.argv[1])
home = os.path.expanduser(sys.argv[2] or "~")
if sys.argv[3] == "install":
    for sub in ("pkg", "keys", "cm"):
        os.makedirs(os.path.join(runtime, sub), mode=0o700, exist_ok=True)
    os.makedirs(home, exist_ok=True)
    tarfile.open(fileobj=sys.stdin.buffer, mode="r|*").extractall(runtime)
    for name in os.listdir(os.path.join(runtime, "keys")):
        os.chmod(os.path.join(runtime, "keys", name), 0o600)
try:
    cpus = len(os.sched_getaffinity(0))
except AttributeError:
    cpus = os.cpu_count() or 1
memory = 0.0
with open("/proc/meminfo") as f:
    for line in f:
        if line.startswith("MemTotal:"):
            memory = int(line.split()[1]) / 1024 / 1024
gpus = {}
if shutil.which("nvidia-smi"):
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.SubprocessError):
        out = ""
    for name in filter(None, (l.strip() for l in out.splitlines())):
        for prefix in ("NVIDIA ", "Tesla ", "GeForce ", "Quadro "):
            name = name.replace(prefix, "")
        parts = name.replace("-", " ").split()
        short = parts[0] + parts[1] if parts[0] in ("RTX", "GTX") and len(parts) > 1 else parts[0]
        gpus[short] = gpus.get(short, 0) + 1
print(json.dumps({"cpus": cpus, "memory_gb": round(memory, 2), "gpus": gpus, "home": home,
                  "runtime_dir": runtime, "rsync": shutil.which("rsync") is not None}))
"""


def _add_file(tar: tarfile.TarFile, path: str, arcname: str, mode: int = 0o644) -> None:
    with open(path, "rb") as f:
        data = f.read()
    info = tarfile.TarInfo(arcname)
    info.size, info.mode = len(data), mode
    tar.addfile(info, io.BytesIO(data))


def bundle(keys: Mapping[str, str]) -> bytes:
    """The tar to install: the agent package, the launcher and ``keys`` (name -> path)."""
    agent_dir = agentjobs.agent_package_dir()
    core_init = os.path.join(os.path.dirname(agent_dir), "__init__.py")
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        _add_file(tar, core_init, "pkg/skyhop_core/__init__.py")
        for name in sorted(os.listdir(agent_dir)):
            if name.endswith(".py"):
                _add_file(tar, os.path.join(agent_dir, name), f"pkg/skyhop_core/agent/{name}")
        here = os.path.dirname(os.path.abspath(__file__))
        _add_file(tar, os.path.join(here, "remote_launch.py"), f"pkg/{LAUNCHER_NAME}")
        for name, path in keys.items():
            _add_file(tar, path, f"keys/{name}", mode=0o600)
    return buffer.getvalue()


def key_name(target: Target) -> str:
    """The file name under ``keys/`` of a target's identity file."""
    return control_path(target, "").lstrip("/")


async def install(
    runner: SSHCommandRunner, runtime_dir: str, home: str | None, data: bytes | None
) -> dict[str, Any]:
    """Install ``data`` (a bundle; None: only probe) and return the host's facts.

    Raises :class:`CommandError` naming the host and the reason when it fails.
    """
    mode = "probe" if data is None else "install"
    argv = ["python3", "-c", REMOTE_SCRIPT, runtime_dir, home or "", mode]
    result = await runner.run(argv, input=data)
    if result.returncode != 0:
        detail = result.stderr.decode(errors="replace").strip()
        if result.returncode == 255:
            reason = f"cannot connect: {detail or 'ssh failed'}"
        elif result.returncode == 127:
            reason = "python3 is not installed there (skyhop needs python3 on every host)"
        else:
            reason = detail or f"exit code {result.returncode}"
        raise CommandError(
            f"Host {runner.target.destination}:{runner.target.port}: {reason}",
            returncode=result.returncode, command=f"{mode} on {runner.node.ip}", detail=detail,
        )  # fmt: skip
    facts: dict[str, Any] = json.loads(result.stdout.decode().strip().splitlines()[-1])
    return facts


def launcher(head_runtime: str, target: Target) -> list[str]:
    """The argv prefix the head's agent uses to run a command on ``target``."""
    opts = ssh_options(
        target,
        f"{head_runtime}/known_hosts",
        control=f"{head_runtime}/cm/{key_name(target)[:12]}",
        identity_file=f"{head_runtime}/keys/{key_name(target)}" if target.identity_file else None,
    )
    # The jump host is for reaching the pool from outside; from the head the nodes are
    # assumed directly reachable.
    if "-J" in opts:
        i = opts.index("-J")
        del opts[i : i + 2]
    return ["python3", f"{head_runtime}/pkg/{LAUNCHER_NAME}", head_runtime, "ssh", *opts,
            target.destination]  # fmt: skip
