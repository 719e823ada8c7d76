"""API server: cold start until ``/api/health`` answers, and idle RSS of its process tree.

Every run starts a new server on a new empty persistent path (so it also creates its
database), and alternates with the baseline: the stdlib trivial server (``bench.trivial``)
started from a fresh interpreter until it answers the same health call.

Bytecode: an installed wheel has ``.pyc`` files for skyhop's modules, but an editable
install on a machine with ``PYTHONDONTWRITEBYTECODE=1`` (this one) compiles every skyhop
module from source at every start. So each start is measured both ways, alternately:
with a bytecode cache (skyhop's sources compiled once into a ``PYTHONPYCACHEPREFIX``
under a temporary directory, the libraries' modules written there by the warm-up start:
what a user of a wheel gets), and without one (``PYTHONDONTWRITEBYTECODE=1``, no prefix:
skyhop compiled from source, libraries from pip's ``.pyc``). The first is the figure
against the target; the second is its own row.

A third row is what the first command waits for: from the spawn, through healthy, until
a status read (``POST /api/v1/status?wait=10``) sent right after answers.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from bench.report import Figure, Target
from bench.servers import ApiServer, TrivialServer
from bench.util import MB, Run, summary, tree_rss

IDLE_SECONDS = 1.0

#: skyhop's own top-level packages (sdk, core, the built-in backend plugins).
PACKAGES = (
    "skyhop", "skyhop_core", "skyhop_local", "skyhop_ssh", "skyhop_aws", "skyhop_gcp",
    "skyhop_kubernetes",
)


def bytecode_cache(prefix: Path) -> dict[str, str | None]:
    """Compile skyhop's packages into ``prefix``; the environment that reads (and fills) it."""
    dirs = []
    for name in PACKAGES:
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.submodule_search_locations:
            dirs.extend(spec.submodule_search_locations)
    env = {**os.environ, "PYTHONPYCACHEPREFIX": str(prefix)}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", "-j", "0", *dirs],
        env=env, check=True, stdout=subprocess.DEVNULL,
    )
    return {"PYTHONPYCACHEPREFIX": str(prefix), "PYTHONDONTWRITEBYTECODE": None}


#: No skyhop bytecode: as an editable install starts with ``PYTHONDONTWRITEBYTECODE=1``.
UNCACHED: dict[str, str | None] = {"PYTHONPYCACHEPREFIX": None, "PYTHONDONTWRITEBYTECODE": "1"}


def _first_read(server: ApiServer) -> float:
    """Seconds from the spawn until a status read sent once healthy was answered."""
    response = httpx.post(server.endpoint + "/api/v1/status?wait=10", json={}, timeout=30)
    if response.status_code != 200 or response.json().get("status") != "SUCCEEDED":
        raise RuntimeError(f"status read after start: {response.status_code} {response.text}")
    return time.perf_counter() - server.started_at


class _Samples:
    def __init__(self) -> None:
        self.cached: list[float] = []
        self.uncached: list[float] = []
        self.first_read: list[float] = []
        self.rss: list[float] = []
        self.base: list[float] = []
        self.base_rss: list[float] = []
        self.imports: list[float] = []


#: The libraries the server cannot answer without (state store, event loop, HTTP server
#: and its protocols, routing, the wire format, plugins, YAML): importing them is the
#: floor of a cold start on this stack.
LIBRARIES = (
    "sqlalchemy, sqlalchemy.pool, trio, hypercorn.trio, hypercorn.config, "
    "starlette.applications, starlette.routing, starlette.responses, attrs, cattrs, "
    "pluggy, yaml"
)


def _import_floor(cache: dict[str, str | None]) -> float:
    """Seconds for a fresh interpreter to import :data:`LIBRARIES` and exit."""
    env = {k: v for k, v in {**os.environ, **cache}.items() if v is not None}
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", f"import {LIBRARIES}"], env=env, check=True)
    return time.perf_counter() - start


def _cold(run: Run, cache: dict[str, str | None]) -> _Samples:
    samples = _Samples()
    runs = run.reps(2, 6)
    for i in range(runs + 1):  # the first round is a warm-up (page cache, .pyc files)
        server = ApiServer(env=cache)
        try:
            elapsed = server.start()
            read = _first_read(server)
            time.sleep(IDLE_SECONDS)
            if i:
                samples.cached.append(elapsed)
                samples.first_read.append(read)
                samples.rss.append(tree_rss(server.pid) / MB)
        finally:
            server.cleanup()
        server = ApiServer(env=UNCACHED)
        try:
            elapsed = server.start()
            if i:
                samples.uncached.append(elapsed)
        finally:
            server.cleanup()
        imports = _import_floor(cache)
        if i:
            samples.imports.append(imports)
        trivial = TrivialServer()
        try:
            elapsed = trivial.start()
            time.sleep(IDLE_SECONDS)
            if i:
                assert trivial.proc is not None
                samples.base.append(elapsed)
                samples.base_rss.append(tree_rss(trivial.proc.pid) / MB)
        finally:
            trivial.stop()
    return samples


def server_figures(run: Run) -> list[Figure]:
    prefix = Path(tempfile.mkdtemp(prefix="skyhop-bench-pyc-"))
    try:
        got = _cold(run, bytecode_cache(prefix))
    finally:
        shutil.rmtree(prefix, ignore_errors=True)
    s, u, f = summary(got.cached, 1000), summary(got.uncached, 1000), summary(got.first_read, 1000)
    b, imp = summary(got.base, 1000), summary(got.imports, 1000)
    r, br = summary(got.rss), summary(got.base_rss)
    n = len(got.cached)
    return [
        Figure("server", "server cold start to healthy", "ms", s["p50"], s["p99"],
               "stdlib http.server", b["p50"], b["p99"], Target("<", 400),
               f"{n} starts on fresh persistent paths, after 1 warm-up, with skyhop's "
               f"bytecode cached (as a wheel install); without: {u['p50']:.0f} ms (next row)"),
        Figure("server", "server cold start to healthy, against its libraries' import",
               "ms", s["p50"], s["p99"], "python importing the server's libraries",
               imp["p50"], imp["p99"], None,
               f"the floor of a start on this stack: a fresh interpreter importing {LIBRARIES} "
               "(same bytecode cache), nothing else"),
        Figure("server", "server cold start to healthy, no bytecode cache", "ms", u["p50"],
               u["p99"], "stdlib http.server", b["p50"], b["p99"], None,
               f"{n} starts alternating with the above; PYTHONDONTWRITEBYTECODE=1 on an "
               "editable install: every skyhop module compiled from source"),
        Figure("server", "server cold start to first status read", "ms", f["p50"], f["p99"],
               "stdlib http.server", b["p50"], b["p99"], None,
               "bytecode cached; a POST /api/v1/status?wait=10 sent once healthy, answered"),
        Figure("server", "server idle RSS (process tree)", "MB", r["p50"], None,
               "stdlib http.server", br["p50"], None, Target("<", 120),
               f"RSS of the server and its descendants {IDLE_SECONDS:g} s after healthy "
               "(and one status read)"),
    ]
