"""``skyhop ssh`` on a local cluster of the warm server: a command's whole run from a fresh
CLI process (against ``skyhop status``, also a fresh CLI process and one server round
trip), and a keystroke's round trip in an open terminal session (typed into the CLI's
terminal, shown back by the node's shell), against the same shell on a terminal of its
own without skyhop between (the node's launcher run directly)."""

from __future__ import annotations

import json
import os
import select
import subprocess
import time
from collections.abc import Sequence

from bench.cli import skyhop_executable
from bench.jobs import BENCH_CLUSTER, ensure_cluster
from bench.report import Figure
from bench.util import Run, paired, run_quiet, summary

COMMAND = "skyhop ssh CLUSTER -- true"
KEYSTROKE = "skyhop ssh: keystroke round trip"


def command_run(run: Run) -> list[Figure]:
    ensure_cluster(run)
    exe, env = skyhop_executable(), run.server.env
    runs = run.reps(5, 20)
    ssh, status = paired(lambda: run_quiet([exe, "ssh", BENCH_CLUSTER, "--", "true"], env=env),
                         lambda: run_quiet([exe, "status"], env=env), runs)  # fmt: skip
    s, b = summary(ssh, 1000), summary(status, 1000)
    return [Figure("ssh_session", COMMAND, "ms", s["p50"], s["p99"], "skyhop status (warm)",
                   b["p50"], b["p99"], None,
                   f"{runs} runs each, alternated, after 1 warm-up; local cluster; the session "
                   "is one WebSocket through the server into the node's sandbox")]  # fmt: skip


class _Terminal:
    """A program on a pseudo-terminal this process holds."""

    def __init__(self, argv: Sequence[str], env: dict[str, str] | None = None) -> None:
        self.master, slave = os.openpty()
        self.proc = subprocess.Popen(list(argv), stdin=slave, stdout=slave, stderr=slave,
                                     env=env, start_new_session=True)  # fmt: skip
        os.close(slave)
        self.buffer = b""

    def until(self, marker: bytes, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while marker not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise RuntimeError(f"{marker!r} not shown; the terminal showed "
                                   f"{self.buffer[-300:]!r}")  # fmt: skip
            if select.select([self.master], [], [], left)[0]:
                self.buffer += os.read(self.master, 65536)
        self.buffer = self.buffer[self.buffer.index(marker) + len(marker):]

    def keystroke(self, n: int) -> None:
        """Type a line whose output (not its echo) is unique, and wait for that output."""
        os.write(self.master, f"echo k$(({n}+1))z\n".encode())
        self.until(f"k{n + 1}z".encode())

    def close(self) -> None:
        os.write(self.master, b"exit\n")
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self.master)


def _direct_argv() -> list[str]:
    """The node's own shell without skyhop: its launcher (the sandbox), as the server runs it."""
    import skyhop as sky

    record = sky.get(sky.status([BENCH_CLUSTER]))[0]
    launcher = record["handle"].nodes[0].extra.get("job_launcher")
    line = "exec bash -l"
    return ["setsid", "--ctty", "--wait", *(json.loads(launcher) if launcher else ["bash", "-c"]),
            line]  # fmt: skip


def keystroke_round_trip(run: Run) -> list[Figure]:
    ensure_cluster(run)
    through = _Terminal([skyhop_executable(), "ssh", BENCH_CLUSTER], env=run.server.env)
    direct = _Terminal(_direct_argv())
    try:
        runs = run.reps(20, 200)
        counter = iter(range(10**9))
        ssh, base = paired(lambda: through.keystroke(next(counter)),
                           lambda: direct.keystroke(next(counter)), runs, warmup=3)  # fmt: skip
    finally:
        through.close()
        direct.close()
    s, b = summary(ssh, 1000), summary(base, 1000)
    return [Figure("ssh_session", KEYSTROKE, "ms", s["p50"], s["p99"],
                   "the node's shell on a terminal, no skyhop", b["p50"], b["p99"], None,
                   f"{runs} lines each, alternated, in one open session: a line typed into "
                   "the CLI's terminal until the shell's output is shown back")]  # fmt: skip
