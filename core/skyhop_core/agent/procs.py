"""Process helpers: liveness that ignores zombies, and killing whole process groups.

Every job process is started in its own session, so its pid is also its process group
id and killing the group kills everything the job started (unless it called setsid).
"""

from __future__ import annotations

import contextlib
import os
import signal
import time


def _proc_stat(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name, or None if unreadable."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read().decode(errors="replace")
    except OSError:
        return None
    return data[data.rfind(")") + 2 :].split()


def pid_alive(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie counts as dead)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    stat = _proc_stat(pid)
    return stat is None or stat[0] != "Z"


def group_alive(pgid: int) -> bool:
    """Whether any live (non-zombie) process is in process group ``pgid``."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    if not os.path.isdir("/proc"):
        return True
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        stat = _proc_stat(int(entry))
        # stat fields after the name: state, ppid, pgrp, ...
        if stat and len(stat) > 2 and stat[2] == str(pgid) and stat[0] != "Z":
            return True
    return False


def kill_groups(pgids: list[int], grace: float = 1.0) -> None:
    """SIGTERM each process group, wait up to ``grace`` seconds, then SIGKILL them."""
    live = []
    for pgid in pgids:
        try:
            os.killpg(pgid, signal.SIGTERM)
            live.append(pgid)
        except (ProcessLookupError, PermissionError):
            pass
    deadline = time.monotonic() + grace
    while live and time.monotonic() < deadline:
        live = [g for g in live if group_alive(g)]
        if live:
            time.sleep(0.02)
    for pgid in live:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)
