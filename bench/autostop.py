"""What the autostop loop's idle check costs on a node: the agent's ``idle`` with and
without ``--ssh`` (``--wait-for jobs_and_ssh`` also scans ``/proc`` for terminals under
sshd), on a runtime directory of its own, against this machine's process table."""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

from bench.report import Figure
from bench.util import Run, paired, run_quiet, summary

NAME = "agent idle check, jobs_and_ssh"


def idle_check(run: Run) -> list[Figure]:
    with tempfile.TemporaryDirectory(prefix="skyhop-bench-idle-") as tmp:
        runtime = Path(tmp) / "rt"
        runtime.mkdir()
        node = {"rank": 0, "ip": "127.0.0.1", "cpus": 1, "gpus": {}, "home": tmp,
                "runtime_dir": str(runtime)}  # fmt: skip
        (runtime / "cluster.json").write_text(
            json.dumps({"cluster_name": "bench", "backend": "ssh", "nodes": [node]})
        )
        agent = [sys.executable, "-m", "skyhop_core.agent", "--root", str(runtime)]
        run_quiet([*agent, "start"])
        try:
            runs = run.reps(5, 30)
            ssh, jobs = paired(lambda: run_quiet([*agent, "idle", "--ssh"]),
                               lambda: run_quiet([*agent, "idle"]), runs)  # fmt: skip
        finally:
            run_quiet([*agent, "stop"])
    s, b = summary(ssh, 1000), summary(jobs, 1000)
    procs = sum(1 for e in os.listdir("/proc") if e.isdigit())
    return [Figure("autostop", NAME, "ms", s["p50"], s["p99"], "agent idle (jobs only)",
                   b["p50"], b["p99"], None,
                   f"{runs} runs each, alternated, after 1 warm-up; {procs} processes in "
                   "/proc; one process start each (the server runs one per cluster per "
                   "SKYHOP_AUTOSTOP_INTERVAL, 30 s)")]  # fmt: skip
