"""The dashboard in a real browser against a real local API server.

Real clusters and managed jobs on ``local``: the pages list them with their statuses,
which change without a reload; job, managed-job and request logs stream into the page
while the job writes them; Cancel/Stop/Down buttons ask first, then act; the requests
page filters and pages thousands of rows on the server.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

import skyhop as sky
from skyhop.client import identity

from .dashcalls import TICKING, DashServer, launch, row, url

pytestmark = pytest.mark.timeout(240)


@pytest.fixture
def ticking(server: DashServer) -> str:
    """A cluster whose job 1 prints a tick every 0.3 s (launched as the server booted)."""
    assert server.result("dash-a")["job_id"] == 1
    return "dash-a"


def test_clusters_page_lists_clusters_and_refreshes_without_reload(
    server: DashServer, ticking: str, page: Any, shot: Callable[..., Path]
) -> None:
    from playwright.sync_api import expect

    page.goto(url(server, "/clusters"))
    cluster = row(page, f'data-cluster="{ticking}"')
    expect(cluster.locator(".status")).to_have_text("UP")
    cells = cluster.locator("td")
    expect(cells.nth(1)).to_have_text("local")  # infra
    expect(cells.nth(2)).to_contain_text("1x(local")  # resources
    expect(cells.nth(6)).to_have_text("$0.00")  # cost so far: local is free
    page.evaluate("window.__not_reloaded = true")
    # A cluster launched while the page is open shows up, and goes INIT -> UP.
    launch("dash-new", "echo hi", wait=False)
    new = row(page, 'data-cluster="dash-new"')
    expect(new).to_have_count(1, timeout=30_000)
    expect(new.locator(".status")).to_contain_text("UP", timeout=60_000)
    assert page.evaluate("window.__not_reloaded") is True
    shot(page, "clusters")


def test_a_job_log_streams_into_the_page_as_it_is_written(
    server: DashServer, ticking: str, page: Any, shot: Callable[..., Path]
) -> None:
    from playwright.sync_api import expect

    page.goto(url(server, f"/clusters/{ticking}/jobs/1"))
    log = page.locator("#log")
    expect(log).to_contain_text("tick 1\n", timeout=30_000)
    seen = max(int(n) for n in re.findall(r"tick (\d+)", log.inner_text()))
    # Later lines arrive without a reload: the job writes one every 0.3 s.
    expect(log).to_contain_text(f"tick {seen + 5}\n", timeout=30_000)
    expect(page.locator("#job-row .status")).to_have_text("RUNNING")
    expect(page.locator("#log-state")).to_have_text("streaming…")
    shot(page, "job-log")


def test_cancel_a_job_asks_first_then_the_job_is_cancelled(
    server: DashServer, ticking: str, page: Any, shot: Callable[..., Path]
) -> None:
    from playwright.sync_api import expect

    job_id = sky.get(sky.exec(sky.Task(run=TICKING), cluster_name=ticking))["job_id"]
    page.goto(url(server, f"/clusters/{ticking}"))
    job = row(page, f'data-job="{job_id}"')
    expect(job.locator(".status")).to_have_text("RUNNING", timeout=30_000)
    asked: list[str] = []

    def dismiss(dialog: Any) -> None:
        asked.append(dialog.message)
        dialog.dismiss()

    page.once("dialog", dismiss)
    job.get_by_role("button", name="Cancel").click()
    time.sleep(0.6)  # a request the dismissal wrongly let through would be on its way
    assert asked == [f"Cancel job {job_id} on {ticking}?"]
    expect(job.locator(".status")).to_have_text("RUNNING")
    page.once("dialog", lambda dialog: dialog.accept())
    job.get_by_role("button", name="Cancel").click()
    expect(page.locator("#flash")).to_contain_text(f"Cancelled job {job_id}", timeout=30_000)
    expect(job.locator(".status")).to_have_text("CANCELLED", timeout=15_000)
    statuses = sky.get(sky.job_status(ticking, [job_id]))
    assert statuses[str(job_id)].value == "CANCELLED"
    shot(page, "job-cancelled")


def test_stop_then_down_a_cluster_from_the_page(
    server: DashServer, page: Any, shot: Callable[..., Path]
) -> None:
    from playwright.sync_api import expect

    server.result("dash-b")
    page.goto(url(server, "/clusters"))
    cluster = row(page, 'data-cluster="dash-b"')
    page.once("dialog", lambda dialog: dialog.accept())
    cluster.get_by_role("button", name="Stop").click()
    expect(cluster.locator(".status")).to_have_text("STOPPED", timeout=60_000)
    expect(cluster.get_by_role("button", name="Stop")).to_have_count(0)
    page.once("dialog", lambda dialog: dialog.accept())
    cluster.get_by_role("button", name="Down").click()
    expect(page.locator("#flash")).to_contain_text("Cluster dash-b is terminated.", timeout=60_000)
    expect(cluster).to_have_count(0)
    assert "dash-b" not in [c["name"] for c in sky.get(sky.status())]
    shot(page, "cluster-down")


def test_managed_job_page_streams_output_and_controller_log_and_cancels(
    server: DashServer, page: Any, shot: Callable[..., Path]
) -> None:
    from playwright.sync_api import expect

    job_id, _ = server.result("dash-mj")  # submitted as the server booted
    page.goto(url(server, "/jobs"))
    job = row(page, f'data-job="{job_id}"')
    expect(job.locator(".status")).to_have_text("RUNNING", timeout=90_000)
    expect(job.locator(".recoveries")).to_have_text("0")
    job.get_by_role("link", name="logs").click()
    expect(page.locator("#log")).to_contain_text("mj 3\n", timeout=60_000)
    expect(page.locator("#controller-log")).not_to_be_empty(timeout=30_000)
    shot(page, "managed-job")
    page.once("dialog", lambda dialog: dialog.accept())
    page.locator("#job-status").get_by_role("button", name="Cancel").click()
    expect(page.locator("#flash")).to_contain_text(f"Cancelling managed job {job_id}")
    expect(page.locator("#job-status .status")).to_contain_text("CANCELLED", timeout=120_000)
    # Both streams end once the job is over, saying so.
    expect(page.locator("#log-state")).to_contain_text("finished", timeout=30_000)
    shot(page, "managed-job-cancelled")


def test_requests_page_filters_and_streams_and_cancels_a_request(
    server: DashServer, ticking: str, page: Any, shot: Callable[..., Path]
) -> None:
    from playwright.sync_api import expect

    failed = sky.stop("no-such-cluster")
    with pytest.raises(Exception, match="does not exist"):
        sky.get(failed)
    job_id = sky.get(sky.exec(sky.Task(run=TICKING), cluster_name=ticking))["job_id"]
    # A long-running request: follow the job's log (what `skyhop logs -f` submits).
    follower = httpx.post(
        f"{server.endpoint}/api/v1/logs",
        json={"cluster_name": ticking, "job_id": job_id, "follow": True},
        headers=dict(zip(("X-Skyhop-User", "X-Skyhop-User-Hash"), identity(), strict=True)),
    ).json()["request_id"]

    page.goto(url(server, "/requests?status=FAILED"))
    names = page.locator("#requests-table td.name").all_inner_texts()
    assert names and set(names) == {"stop"}
    expect(row(page, f'data-request="{failed}"')).to_have_count(1)
    page.goto(url(server, "/requests?name=exec"))
    assert set(page.locator("#requests-table td.name").all_inner_texts()) == {"exec"}

    page.goto(url(server, f"/requests/{follower[:8]}"))
    expect(page.locator("#log")).to_contain_text("tick 3\n", timeout=30_000)
    page.once("dialog", lambda dialog: dialog.accept())
    page.locator("#request-status").get_by_role("button", name="Cancel").click()
    expect(page.locator("#flash")).to_contain_text(f"Cancelled request {follower[:8]}")
    expect(page.locator("#request-status .status")).to_contain_text("CANCELLED")
    expect(page.locator("#log-state")).to_contain_text("finished: CANCELLED")
    shot(page, "request-cancelled")
    sky.cancel(ticking, job_ids=[job_id])


def test_requests_page_pages_thousands_of_rows_on_the_server(
    server: DashServer, page: Any, shot: Callable[..., Path]
) -> None:
    from playwright.sync_api import expect

    from skyhop_core.state import open_store
    from skyhop_core.state.db import requests

    now = time.time()
    rows = [
        dict(
            request_id=str(uuid.uuid4()), name="status", user_name="bulk", user_hash="bulk0001",
            user_role="user", cluster_name=None, status="SUCCEEDED", schedule_type="short",
            created_at=now - i, started_at=now - i, finished_at=now - i + 0.01,
            body={"padding": "x" * 2000}, result=[{"big": "y" * 2000}], error=None,
        )
        for i in range(3000)
    ]
    store = open_store(server.root)
    store.run_sync(lambda conn: conn.execute(requests.insert(), rows))

    started = time.monotonic()
    fragment = httpx.get(url(server, "/requests?user=bulk&fragment=table"))
    elapsed = time.monotonic() - started
    assert fragment.status_code == 200
    assert fragment.text.count("<tr data-request=") == 50
    # Bodies and results (4 KB a row here) never travel: the page is small and quick.
    assert len(fragment.content) < 40_000, len(fragment.content)
    assert elapsed < 2.0, elapsed

    page.goto(url(server, "/requests?user=bulk"))
    expect(page.locator(".pager")).to_contain_text("page 1 of 60 (3000 rows)")
    expect(page.locator("#requests-table tbody tr")).to_have_count(50)
    first = page.locator("#requests-table tbody tr").first.get_attribute("data-request")
    page.get_by_role("link", name="older →").click()
    expect(page.locator(".pager")).to_contain_text("page 2 of 60")
    assert page.locator("#requests-table tbody tr").first.get_attribute("data-request") != first
    assert first == rows[0]["request_id"]
    shot(page, "requests-paged")


def test_backends_page_shows_check(server: DashServer, page: Any) -> None:
    from playwright.sync_api import expect

    page.goto(url(server, "/backends"))
    expect(row(page, 'data-backend="local"').locator(".status")).to_have_text("enabled")


def test_actions_refuse_requests_not_from_the_dashboard(
    server: DashServer, ticking: str
) -> None:
    # A cross-site form post carries no HX-Request header; a cross-site script that
    # sets it still sends its own Origin.
    plain = httpx.post(url(server, f"/clusters/{ticking}/down"))
    assert plain.status_code == 403 and "HX-Request" in plain.text
    forged = httpx.post(
        url(server, f"/clusters/{ticking}/down"),
        headers={"HX-Request": "true", "Origin": "http://evil.example"},
    )
    assert forged.status_code == 403 and "another site" in forged.text
    assert ticking in [c["name"] for c in sky.get(sky.status())]


def test_the_server_starts_without_importing_the_dashboard() -> None:
    code = (
        "import sys, skyhop_core.server.app, skyhop_core.server.main; "
        "print(sorted(m for m in sys.modules if m.startswith(('jinja2', 'skyhop_core.dashboard'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_dashboard_routes_stay_out_of_the_openapi_document(server: DashServer) -> None:
    paths = httpx.get(f"{server.endpoint}/api/openapi.json").json()["paths"]
    assert not [p for p in paths if p.startswith("/dashboard")]
