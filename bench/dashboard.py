"""The dashboard in headless chromium (Playwright, Debian's /usr/bin/chromium).

- **First page load**: a fresh browser context (empty cache, no cookies) opens
  ``/dashboard/clusters`` with the ``bench`` cluster on it, and
  ``/dashboard/requests`` with every request of the run so far; the figure is the
  navigation's ``loadEventEnd`` (HTML, htmx, CSS, script; the table is in the first
  response). Baseline: the same browser loading ``/api/health`` (one small JSON).
- **Services page first load**: likewise ``/dashboard/services`` with one service
  (``bench-web``: one replica of Python's ``http.server``, READY, behind its load
  balancer) started on the warm server for this figure and taken down after it.
- **Log line, job to browser**: a job on the ``bench`` cluster prints its wall-clock
  time every 0.2 s; the job's page follows its log as server-sent events, and a
  ``MutationObserver`` notes when each line appears in the page (lines written before
  the stream connected, which arrive as one backlog, are not counted). Baseline: the same
  job's lines through the SDK's stream of a ``logs --follow`` request (what ``skyhop
  logs -f`` shows). Both clocks are this machine's.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from bench.jobs import BENCH_CLUSTER, ensure_cluster, submit_job, submit_logs
from bench.report import Figure, Target
from bench.util import Run, summary

CHROMIUM = os.environ.get("SKYHOP_BENCH_CHROMIUM", "/usr/bin/chromium")
LINE = re.compile(r"T (\d+\.\d+)")

#: Records when each "T <time>" line shows up in the log pane (ms since the epoch).
OBSERVER = """
window.__arrivals = [];
new MutationObserver(records => {
  const now = Date.now();
  for (const r of records) for (const n of r.addedNodes) {
    for (const m of (n.textContent || '').matchAll(/T (\\d+\\.\\d+)/g)) {
      window.__arrivals.push([parseFloat(m[1]) * 1000, now]);
    }
  }
}).observe(document.getElementById('log'), {childList: true});
"""


def _problem() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright is not installed (pip install -e '.[test]')"
    if not os.path.exists(CHROMIUM):
        return f"no chromium at {CHROMIUM} (apt-get install -y chromium)"
    return None


@contextmanager
def _browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                                     args=["--no-sandbox"])
        try:
            yield browser
        finally:
            browser.close()


def _load_ms(browser: Any, url: str) -> float:
    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(url, wait_until="load")
        timing = page.evaluate(
            "JSON.stringify(performance.getEntriesByType('navigation')[0])"
        )
        return float(json.loads(timing)["loadEventEnd"])
    finally:
        context.close()


def _insert_finished_requests(run: Run, count: int) -> None:
    """``count`` finished requests of this user (each with a 2 KB body and result)."""
    import uuid

    from skyhop.client import identity
    from skyhop_core.state import open_store
    from skyhop_core.state.db import requests

    name, user_hash = identity()
    now = time.time()
    rows = [
        dict(request_id=str(uuid.uuid4()), name="status", user_name=name, user_hash=user_hash,
             user_role="user", cluster_name=None, status="SUCCEEDED", schedule_type="short",
             created_at=now - 100 - i, started_at=now - 100 - i, finished_at=now - 99.99 - i,
             body={"padding": "x" * 1000}, result=[{"padding": "y" * 1000}], error=None)
        for i in range(count)
    ]
    store = open_store(run.server.root)
    store.run_sync(lambda conn: conn.execute(requests.insert(), rows))


def first_load(run: Run) -> list[Figure]:
    problem = _problem()
    if problem:
        return [Figure("dashboard", "dashboard first page load", "ms", skipped=problem)]
    ensure_cluster(run)
    reps = run.reps(5, 20)
    base = run.server.endpoint
    bulk = run.reps(2000, 10000)
    _insert_finished_requests(run, bulk)
    figures = []
    with _browser() as browser:
        _load_ms(browser, f"{base}/dashboard/clusters")  # warm-up: the dashboard's import
        health = [_load_ms(browser, f"{base}/api/health") for _ in range(reps)]
        hb = summary(health)
        for path, what in (("/clusters", "1 cluster"),
                           ("/requests", f"{bulk:,} finished requests, 50 a page")):
            samples = [_load_ms(browser, f"{base}/dashboard{path}") for _ in range(reps)]
            s = summary(samples)
            figures.append(Figure(
                "dashboard", f"dashboard first load: {path.strip('/')}", "ms",
                p50=s["p50"], p99=s["p99"], baseline="same browser, /api/health",
                baseline_p50=hb["p50"], baseline_p99=hb["p99"],
                target=Target("<", 500),
                note=f"{reps} fresh browser contexts (empty cache) after 1 warm-up; {what}; "
                "navigation loadEventEnd",
            ))
        with _service() as status:
            samples = [_load_ms(browser, f"{base}/dashboard/services") for _ in range(reps)]
        s = summary(samples)
        figures.append(Figure(
            "dashboard", "dashboard first load: services", "ms",
            p50=s["p50"], p99=s["p99"], baseline="same browser, /api/health",
            baseline_p50=hb["p50"], baseline_p99=hb["p99"], target=Target("<", 500),
            note=f"{reps} fresh browser contexts (empty cache); 1 service, 1 replica "
            f"({status}); navigation loadEventEnd",
        ))
    figures.append(_html_figure(run, reps * 5, bulk))
    return figures


@contextmanager
def _service(timeout: float = 90) -> Iterator[str]:
    """``bench-web`` up on the warm server (waits up to ``timeout`` for its replica to
    be READY); yields its status as the page will show it, then takes it down."""
    import sys

    import skyhop as sky
    from bench.util import free_port

    port = free_port()
    task = {
        "name": "bench-web", "resources": {"infra": "local"},
        "run": f"exec {sys.executable} -u -m http.server {port} --bind 127.0.0.1",
        "service": {"readiness_probe": {"path": "/", "initial_delay_seconds": 120},
                    "replicas": 1, "ports": port},
    }
    sky.get(sky.serve.up(task, service_name="bench-web"))
    try:
        deadline = time.monotonic() + timeout
        status = ""
        while time.monotonic() < deadline:
            record = sky.get(sky.serve.status("bench-web"))[0]
            status = record["status"].value
            if status == "READY":
                break
            time.sleep(0.5)
        import httpx

        from skyhop.client import current_client

        table = httpx.get(f"{current_client().endpoint}/dashboard/services?fragment=table",
                          timeout=30).text
        if 'data-service="bench-web"' not in table:
            raise RuntimeError(f"the services page does not list bench-web: {table[:300]}")
        yield status
    finally:
        sky.get(sky.serve.down("bench-web", purge=True))


def _html_figure(run: Run, reps: int, bulk: int) -> Figure:
    """The server's part alone: the requests page's HTML over httpx, ``bulk`` rows behind it."""
    import httpx

    from bench.util import repeat

    with httpx.Client(base_url=run.server.endpoint, timeout=60) as client:
        size = len(client.get("/dashboard/requests").content)
        page = summary(repeat(lambda: client.get("/dashboard/requests"), reps, warmup=3), 1000)
        health = summary(repeat(lambda: client.get("/api/health"), reps, warmup=3), 1000)
    return Figure(
        "dashboard", "dashboard requests page HTML (server only)", "ms",
        p50=page["p50"], p99=page["p99"], baseline="GET /api/health",
        baseline_p50=health["p50"], baseline_p99=health["p99"], target=Target("<", 100),
        note=f"{reps} GETs with httpx after 3 warm-ups; {bulk:,} requests, a page of 50 "
        f"is {size / 1000:.0f} kB",
    )


def _ticker(lines: int) -> str:
    return (f"for i in $(seq 1 {lines}); do python3 -c 'import time; print(\"T %.3f\" % "
            "time.time(), flush=True)'; sleep 0.2; done")


def _browser_latencies(run: Run, lines: int) -> list[float]:
    job_id = submit_job(BENCH_CLUSTER, _ticker(lines))
    with _browser() as browser:
        context = browser.new_context()
        page = context.new_page()
        page.goto(f"{run.server.endpoint}/dashboard/clusters/{BENCH_CLUSTER}/jobs/{job_id}")
        page.evaluate(OBSERVER)
        page.wait_for_function("document.getElementById('log-state').textContent"
                               ".startsWith('finished')", timeout=lines * 1000 + 60_000)
        arrivals = page.evaluate("window.__arrivals")
        context.close()
    # Lines written before the stream was connected arrive as one backlog: not counted.
    connected = min((seen for _, seen in arrivals), default=0)
    return [(seen - written) / 1000 for written, seen in arrivals if written > connected]


def _sdk_latencies(lines: int) -> list[float]:
    from skyhop.client import current_client

    job_id = submit_job(BENCH_CLUSTER, _ticker(lines))
    request_id = submit_logs(BENCH_CLUSTER, job_id, follow=True)
    found: list[tuple[float, float]] = []
    buffer = ""
    for chunk in current_client().stream(request_id, follow=True):
        now = time.time()
        buffer += chunk
        *complete, buffer = buffer.split("\n")
        found += [(float(m.group(1)), now) for line in complete if (m := LINE.search(line))]
    connected = min((seen for _, seen in found), default=0)
    return [seen - written for written, seen in found if written > connected]


def log_line_latency(run: Run) -> list[Figure]:
    name = "dashboard log line, job to browser"
    problem = _problem()
    if problem:
        return [Figure("dashboard", name, "ms", skipped=problem)]
    ensure_cluster(run)
    lines = run.reps(25, 100)
    browser = _browser_latencies(run, lines)
    sdk = _sdk_latencies(lines)
    b, s = summary(browser, 1000), summary(sdk, 1000)
    return [Figure(
        "dashboard", name, "ms", p50=b["p50"], p99=b["p99"],
        baseline="same job's lines via the SDK (logs -f)", baseline_p50=s["p50"],
        baseline_p99=s["p99"], target=Target("<", 250),
        note=f"{b['n']} lines printed every 0.2 s after the stream connected, seen in the "
        f"page (MutationObserver) vs the job's own time.time(); SDK baseline {s['n']} lines",
    )]
