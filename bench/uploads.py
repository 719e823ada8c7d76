"""Exec with a workdir: what uploading the task's files costs on an UP local cluster.

Each sample is ``sky.get(sky.exec(task, ...))`` (submitted to job ID, uploads included)
with a workdir of :data:`FILES` files of :data:`FILE_BYTES` each:

- first upload: a tree whose every file is new to the server (all content sent);
- unchanged: the same tree again (the manifest goes, no content);
- baseline: the same exec without a workdir, in the same run.

And what uploads add to a launch or exec with a *small* workdir (:data:`SMALL_FILES`
files, unchanged since the last run): the client's whole upload step (scan, manifest,
complete), next to one ``GET /api/health`` round trip.
"""

from __future__ import annotations

import os
import tempfile
import time
import uuid
from typing import Any

from bench.jobs import BENCH_CLUSTER, ensure_cluster, task
from bench.report import Figure
from bench.util import Run, summary

FILES = 200
FILE_BYTES = 16 * 1024
SMALL_FILES = 5


def _make_tree(root: str) -> None:
    tag = uuid.uuid4().bytes
    for i in range(FILES):
        sub = os.path.join(root, f"pkg{i % 10}")
        os.makedirs(sub, exist_ok=True)
        with open(os.path.join(sub, f"mod{i}.py"), "wb") as f:
            f.write(tag + i.to_bytes(4, "big") + os.urandom(FILE_BYTES - 20))


def _exec(workdir: str | None) -> float:
    import skyhop as sky

    body: dict[str, Any] = task("true")
    if workdir is not None:
        body["workdir"] = workdir
    start = time.perf_counter()
    sky.get(sky.exec(body, cluster_name=BENCH_CLUSTER))
    return time.perf_counter() - start


def workdir_figures(run: Run) -> list[Figure]:
    ensure_cluster(run)
    runs = run.reps(3, 10)
    first, unchanged, base = [], [], []
    _exec(None)  # warm-up
    with tempfile.TemporaryDirectory(prefix="skyhop-bench-workdir-") as tmp:
        for i in range(runs):
            tree = os.path.join(tmp, f"tree{i}")
            _make_tree(tree)
            first.append(_exec(tree))
            unchanged.append(_exec(tree))
            base.append(_exec(None))
        small = os.path.join(tmp, "small")
        os.makedirs(small)
        for i in range(SMALL_FILES):
            with open(os.path.join(small, f"f{i}.py"), "w") as fh:
                fh.write(f"print({i})\n")
        step, health = _small_upload(run, small)
    f, u, b = summary(first, 1000), summary(unchanged, 1000), summary(base, 1000)
    size = f"{FILES} files, {FILES * FILE_BYTES / 2**20:.1f} MiB"
    return [
        Figure("uploads", "exec with a new workdir (first upload)", "ms", f["p50"], f["p99"],
               "exec without workdir", b["p50"], b["p99"], None,
               f"{runs} runs; {size}, every file new to the server"),
        Figure("uploads", "exec with an unchanged workdir (re-upload)", "ms", u["p50"],
               u["p99"], "exec without workdir", b["p50"], b["p99"], None,
               f"{runs} runs; the same {size} again: manifest only, nothing sent"),
        Figure("uploads", "upload step, small unchanged workdir", "ms", step["p50"],
               step["p99"], "GET /api/health", health["p50"], health["p99"], None,
               f"{SMALL_FILES} files: what uploading adds to each launch/exec"),
    ]  # fmt: skip


def _small_upload(run: Run, path: str) -> tuple[dict[str, float], dict[str, float]]:
    from skyhop.client import current_client
    from skyhop.uploads import upload_source

    client = current_client()
    upload_source(client, path)  # the first one sends the files
    step, health = [], []
    for _ in range(run.reps(10, 50)):
        start = time.perf_counter()
        upload_source(client, path)
        step.append(time.perf_counter() - start)
        start = time.perf_counter()
        client.health()
        health.append(time.perf_counter() - start)
    return summary(step, 1000), summary(health, 1000)
