"""What this machine offers: CPUs, memory and NVIDIA GPUs, and free TCP ports."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from collections import Counter

NVIDIA_SMI_TIMEOUT = 10.0


def cpu_count() -> int:
    return os.cpu_count() or 1


def memory_gb() -> float:
    """Total memory in GB, from /proc/meminfo (or sysconf where there is no /proc)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return round(int(line.split()[1]) / 1024**2, 1)
    except OSError:
        pass
    try:
        return round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024**3, 1)
    except (ValueError, OSError):
        return 1.0


def gpus() -> dict[str, int]:
    """NVIDIA GPUs by name (``{"A100": 2}``); empty without ``nvidia-smi`` (blocking)."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return {}
    try:
        out = subprocess.run(
            [smi, "--query-gpu=name", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=NVIDIA_SMI_TIMEOUT,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    return dict(Counter(_short_gpu_name(line) for line in out.splitlines() if line.strip()))


def _short_gpu_name(full: str) -> str:
    """``NVIDIA A100-SXM4-80GB`` -> ``A100``; ``Tesla T4`` -> ``T4``."""
    words = [w for w in full.strip().split() if w.upper() not in ("NVIDIA", "TESLA", "GEFORCE")]
    return (words[0] if words else full.strip()).split("-")[0]


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
