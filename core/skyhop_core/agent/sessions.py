"""Interactive SSH sessions on this node, for ``autostop --wait-for jobs_and_ssh``.

A session is what SkyPilot counts: a process on a pseudo-terminal (``/dev/pts/N``) that
descends from ``sshd`` (``sshd-session`` on OpenSSH 9.8 and later). ``ssh -N`` tunnels and
the commands skyhop itself runs over SSH have no terminal and do not count. Read from
``/proc`` (``stat`` is readable for every process): no ``who`` (utmp is not written by
every sshd) and no psutil on the node.

Only processes in this agent's network namespace count where that can be read: on a VM
that is everything, and a container with a network of its own (or the test suite's
other fake hosts, which share one kernel) is another machine's session.
"""

from __future__ import annotations

import os

#: Major device numbers of UNIX 98 pseudo-terminal slaves (``/dev/pts/*``).
PTY_MAJORS = range(136, 144)


def _stat(proc: str, pid: str) -> tuple[bytes, int, int] | None:
    """(command name, parent PID, controlling terminal) of ``pid``, or None if gone."""
    try:
        with open(f"{proc}/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    # The name is in parentheses and may itself hold spaces and parentheses.
    head, _, rest = data.rpartition(b")")
    fields = rest.split()
    if len(fields) < 5:
        return None
    return head.partition(b"(")[2], int(fields[1]), int(fields[4])


def _same_network(proc: str, pid: str, mine: str | None) -> bool:
    if mine is None:
        return True
    try:
        return os.readlink(f"{proc}/{pid}/ns/net") == mine
    except PermissionError:  # another user's process: it cannot be told apart, so it counts
        return True
    except OSError:  # it ended since the scan
        return False


def active(proc: str = "/proc") -> int:
    """How many terminals of interactive SSH sessions are open on this node."""
    try:
        mine: str | None = os.readlink(f"{proc}/self/ns/net")
    except OSError:
        mine = None
    table: dict[int, tuple[bytes, int, int]] = {}
    for entry in os.listdir(proc):
        if entry.isdigit() and (info := _stat(proc, entry)) is not None:
            table[int(entry)] = info
    terminals = set()
    for pid, (_, ppid, tty) in table.items():
        if not tty or os.major(tty) not in PTY_MAJORS or tty in terminals:
            continue
        parent, seen = ppid, 0
        while parent in table and seen < 64:  # a loop guard: pids are reused
            if table[parent][0].startswith(b"sshd"):
                if _same_network(proc, str(pid), mine):
                    terminals.add(tty)
                break
            parent, seen = table[parent][1], seen + 1
    return len(terminals)
