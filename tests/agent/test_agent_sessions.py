"""What the agent counts as an interactive SSH session (``autostop --wait-for
jobs_and_ssh``), on a /proc tree written by the test: names with spaces and parentheses,
processes that vanish mid-scan, a parent loop, terminals that are not pseudo-terminals,
and another network namespace. A real sshd's session: tests/plugins/ssh/test_ssh_sessions.py."""

from __future__ import annotations

import os
from pathlib import Path

from skyhop_core.agent import sessions

PTS = (136 << 8) | 3  # /dev/pts/3, as /proc/PID/stat encodes a terminal
TTY1 = (4 << 8) | 1  # /dev/tty1, a console: not SSH


def proc(
    root: Path, pid: int, name: str, ppid: int, tty: int = 0, net: str | None = "net:[1]"
) -> None:
    """A process in the fake /proc; ``net`` None: it ended after its stat was read."""
    where = root / str(pid)
    (where / "ns").mkdir(parents=True)
    (where / "stat").write_text(f"{pid} ({name}) S {ppid} {pid} {pid} {tty} -1 4194560 0 0\n")
    if net is not None:
        os.symlink(net, where / "ns" / "net")


def tree(tmp_path: Path) -> Path:
    root = tmp_path / "proc"
    (root / "self" / "ns").mkdir(parents=True)
    os.symlink("net:[1]", root / "self" / "ns" / "net")
    proc(root, 1, "systemd", 0)
    proc(root, 500, "sshd", 1)
    return root


def test_a_shell_on_a_pty_under_sshd_is_a_session(tmp_path: Path) -> None:
    root = tree(tmp_path)
    assert sessions.active(str(root)) == 0
    proc(root, 600, "sshd-session", 500)  # OpenSSH 9.8+: the per-session process
    proc(root, 601, "bash", 600, PTS)
    proc(root, 602, "python3 (my) job", 601, PTS)  # same terminal: still one session
    assert sessions.active(str(root)) == 1


def test_what_is_not_an_interactive_ssh_session_is_not_counted(tmp_path: Path) -> None:
    root = tree(tmp_path)
    proc(root, 700, "sshd", 500)
    proc(root, 701, "sleep", 700)  # `ssh host cmd` / `ssh -N`: no terminal
    proc(root, 710, "getty", 1, TTY1)  # a console login
    proc(root, 720, "tmux: server", 1, PTS)  # a terminal, but not under sshd
    proc(root, 730, "bash", 731, PTS)  # parents in a loop (reused PIDs)
    proc(root, 731, "bash", 730, PTS)
    proc(root, 740, "sshd", 500)
    proc(root, 741, "bash", 740, (136 << 8) | 4, net="net:[2]")  # another namespace's
    proc(root, 742, "bash", 740, (136 << 8) | 5, net=None)  # ended mid-scan
    (root / "750").mkdir()  # vanished between listing and reading
    (root / "751").mkdir()
    (root / "751" / "stat").write_text("garbage")
    assert sessions.active(str(root)) == 0

