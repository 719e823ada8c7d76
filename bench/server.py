"""API server: cold start until ``/api/health`` answers, and idle RSS of its process tree.

Every run starts a new server on a new empty persistent path (so it also creates its
database), and alternates with the baseline: the stdlib trivial server (``bench.trivial``)
started from a fresh interpreter until it answers the same health call.
"""

from __future__ import annotations

import time

from bench.report import Figure, Target
from bench.servers import ApiServer, TrivialServer
from bench.util import MB, Run, summary, tree_rss

IDLE_SECONDS = 1.0


def _cold(run: Run) -> tuple[list[float], list[float], list[float], list[float]]:
    starts, rss, base_starts, base_rss = [], [], [], []
    runs = run.reps(2, 6)
    for i in range(runs + 1):  # the first pair is a warm-up (page cache, .pyc files)
        server = ApiServer()
        try:
            elapsed = server.start()
            time.sleep(IDLE_SECONDS)
            if i:
                starts.append(elapsed)
                rss.append(tree_rss(server.pid) / MB)
        finally:
            server.cleanup()
        trivial = TrivialServer()
        try:
            elapsed = trivial.start()
            time.sleep(IDLE_SECONDS)
            if i:
                assert trivial.proc is not None
                base_starts.append(elapsed)
                base_rss.append(tree_rss(trivial.proc.pid) / MB)
        finally:
            trivial.stop()
    return starts, rss, base_starts, base_rss


def server_figures(run: Run) -> list[Figure]:
    starts, rss, base_starts, base_rss = _cold(run)
    s, b = summary(starts, 1000), summary(base_starts, 1000)
    r, br = summary(rss), summary(base_rss)
    n = len(starts)
    return [
        Figure("server", "server cold start to healthy", "ms", s["p50"], s["p99"],
               "stdlib http.server", b["p50"], b["p99"], Target("<", 400),
               f"{n} starts on fresh persistent paths, after 1 warm-up"),
        Figure("server", "server idle RSS (process tree)", "MB", r["p50"], None,
               "stdlib http.server", br["p50"], None, Target("<", 120),
               f"RSS of the server and its descendants {IDLE_SECONDS:g} s after healthy"),
    ]

