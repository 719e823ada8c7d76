"""CLI start-up: ``skyhop --help`` and ``skyhop status`` against the warm server.

Each command runs in a fresh process, alternating with its baseline (``python -c pass``;
a bare ``httpx.get`` of ``/api/health`` from a fresh interpreter). The console script is
the one installed next to this interpreter; when ``skyhop`` on PATH is a different file
(e.g. a pyenv shim), its ``--help`` is reported too, for information.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from bench.report import Figure, Target
from bench.util import Run, paired, run_quiet, summary


def skyhop_executable() -> str:
    """The ``skyhop`` console script of this interpreter's environment."""
    beside = Path(sys.executable).parent / "skyhop"
    if beside.exists():
        return str(beside)
    found = shutil.which("skyhop")
    if found is None:
        raise FileNotFoundError("no skyhop console script; run `pip install -e .`")
    return found


def _pass() -> None:
    run_quiet([sys.executable, "-c", "pass"])


def help_start(run: Run) -> list[Figure]:
    exe = skyhop_executable()
    runs = run.reps(5, 20)
    cmd, base = paired(lambda: run_quiet([exe, "--help"]), _pass, runs)
    figures = [_figure("skyhop --help", cmd, base, "python -c pass", Target("<", 150),
                       f"{exe}; {runs} runs after 1 warm-up")]
    on_path = shutil.which("skyhop")
    if on_path and os.path.realpath(on_path) != os.path.realpath(exe):
        shim, base2 = paired(lambda: run_quiet([on_path, "--help"]), _pass, run.reps(3, 10))
        figures.append(_figure("skyhop --help (PATH)", shim, base2, "python -c pass", None,
                               f"{on_path}: what a shell runs here (for information)"))
    return figures


def status_start(run: Run) -> list[Figure]:
    exe = skyhop_executable()
    env = run.server.env
    url = run.server.endpoint + "/api/health"
    probe = f"import httpx; httpx.get({url!r}).raise_for_status()"
    runs = run.reps(5, 20)
    cmd, base = paired(
        lambda: run_quiet([exe, "status"], env=env),
        lambda: run_quiet([sys.executable, "-c", probe], env=env),
        runs,
    )
    return [_figure("skyhop status (warm server)", cmd, base, "fresh python + httpx GET health",
                    Target("<", 300), f"{runs} runs after 1 warm-up; no clusters")]


def _seed_history(root: Path, recent: int, old: int) -> None:
    """``recent`` torn-down clusters of this user in the last 30 days, ``old`` before."""
    import time

    from skyhop.client import identity
    from skyhop_core.state import open_store
    from skyhop_core.state.db import cluster_history

    user, user_hash = identity()
    now = time.time()
    rows = [dict(name=f"bench-gone-{i}", backend="local", resources_str="1x local",
                 num_nodes=1, launched_at=now - age - 3600, terminated_at=now - age,
                 uptime_s=3600.0, price_per_hour=1.0, cost=1.0, user_hash=user_hash,
                 user_name=user)  # fmt: skip
            for i, age in enumerate([i * 60.0 for i in range(recent)]
                                    + [31 * 86400.0 + i for i in range(old)])]
    store = open_store(root)
    try:
        store.run_sync(lambda conn: conn.execute(cluster_history.insert(), rows))
    finally:
        store.close()


def cost_report_start(run: Run) -> list[Figure]:
    """``skyhop cost-report`` with a month of history (1,000 torn-down clusters, 9,000
    older ones it leaves out), against ``skyhop status`` in the same run."""
    exe = skyhop_executable()
    env = run.server.env
    _seed_history(run.server.root, 1000, 9000)
    runs = run.reps(5, 20)
    cmd, base = paired(lambda: run_quiet([exe, "cost-report"], env=env),
                       lambda: run_quiet([exe, "status"], env=env), runs)  # fmt: skip
    return [_figure("skyhop cost-report (1,000 rows)", cmd, base, "skyhop status",
                    None, f"{runs} runs after 1 warm-up; 10,000 history rows")]


def _figure(
    name: str, cmd: list[float], base: list[float], label: str, target: Target | None, note: str
) -> Figure:
    s, b = summary(cmd, 1000), summary(base, 1000)
    return Figure("cli", name, "ms", s["p50"], s["p99"], label, b["p50"], b["p99"], target,
                  note)

