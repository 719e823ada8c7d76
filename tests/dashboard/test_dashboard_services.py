"""The services page in a real browser against a real service on ``local``.

The package's server started ``dash-web`` as it came up: one replica running Python's
own ``http.server``, behind the service's load balancer. The page lists it with its
status, endpoint, replica (ID, version, status, endpoint) and recent QPS, refreshed
without a reload; its page streams the controller, load-balancer and replica logs (a
request sent through the endpoint shows up in the replica's log); Down asks first,
then the service is gone from the page and from ``serve status``.
"""

from __future__ import annotations

import contextlib
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import skyhop as sky

from .dashcalls import DashServer, row, url

pytestmark = pytest.mark.timeout(240)


@pytest.fixture
def web(server: DashServer) -> str:
    """The service's endpoint, once ``serve up`` returned (its replica may still start)."""
    name, endpoint = server.result("dash-web")
    assert name == "dash-web"
    return str(endpoint)


@pytest.fixture
def traffic(web: str) -> Iterator[Callable[[], int]]:
    """Requests through the endpoint, about 5 a second, while the test runs; calling it
    says how many were answered."""
    stop = threading.Event()
    answered = [0]

    def send() -> None:
        with httpx.Client(trust_env=False, timeout=5) as client:
            while not stop.wait(0.2):
                with contextlib.suppress(httpx.HTTPError):
                    answered[0] += client.get(web + "/").status_code == 200

    thread = threading.Thread(target=send, daemon=True)
    thread.start()
    yield lambda: answered[0]
    stop.set()
    thread.join(timeout=10)


def test_the_services_page_refuses_a_cross_site_down(server: DashServer, web: str) -> None:
    forged = httpx.post(url(server, "/services/dash-web/down"),
                        headers={"HX-Request": "true", "Origin": "http://evil.example"})
    assert forged.status_code == 403 and "another site" in forged.text
    assert [r["name"] for r in sky.get(sky.serve.status())] == ["dash-web"]


def test_services_page_shows_status_replicas_and_qps_then_down_removes_it(
    server: DashServer, web: str, traffic: Callable[[], int], page: Any,
    shot: Callable[..., Path],
) -> None:
    from playwright.sync_api import expect

    page.goto(url(server, "/services"))
    service = row(page, 'data-service="dash-web"')
    expect(service.locator("td.status .badge")).to_have_text("READY", timeout=90_000)
    expect(service.locator("td.endpoint")).to_have_text(web)
    replica = service.locator('li[data-replica="1"]')
    expect(replica.locator(".badge")).to_have_text("READY")
    expect(replica).to_contain_text("v1")
    page.evaluate("window.__not_reloaded = true")
    # The load balancer's rate over its 4 s window reaches the page without a reload.
    expect(service.locator("td.qps")).not_to_have_text("0.00/s", timeout=30_000)
    assert traffic() > 0
    assert page.evaluate("window.__not_reloaded") is True
    shot(page, "services")

    service.get_by_role("link", name="dash-web").click()
    status = page.locator("#service-status")
    replica_row = status.locator('tr[data-replica="1"]')
    expect(replica_row.locator(".status .badge")).to_have_text("READY")
    endpoint = replica_row.locator("td.endpoint").inner_text()
    assert endpoint.startswith("http://127.0.0.1:") and endpoint != web
    expect(page.locator("#controller-log")).to_contain_text("READY", timeout=30_000)
    expect(page.locator("#lb-log")).to_contain_text("Ready replicas: [1]", timeout=30_000)
    # A request sent now shows up in the replica's log while the page is open.
    marker = f"/dash-{uuid.uuid4().hex[:8]}"
    expect(page.locator("#replica-log-state")).to_have_text("streaming…", timeout=30_000)
    assert httpx.get(web + marker, trust_env=False, timeout=10).status_code == 404
    expect(page.locator("#replica-log")).to_contain_text(f"GET {marker} HTTP/1.1", timeout=30_000)
    shot(page, "service")

    asked: list[str] = []

    def accept(dialog: Any) -> None:
        asked.append(dialog.message)
        dialog.accept()

    page.once("dialog", accept)
    status.get_by_role("button", name="Down").click()
    assert asked and asked[0].startswith("Take service dash-web down?")
    expect(page.locator("#flash")).to_contain_text("Service dash-web is", timeout=30_000)
    expect(page.locator("#service-status")).to_contain_text("No service dash-web",
                                                            timeout=60_000)
    # The log streams end with the service.
    expect(page.locator("#controller-log")).to_contain_text("Shutting down", timeout=30_000)
    expect(page.locator("#controller-log-state")).to_contain_text("finished", timeout=30_000)
    shot(page, "service-down")
    page.goto(url(server, "/services"))
    expect(row(page, 'data-service="dash-web"')).to_have_count(0)
    expect(page.locator(".empty")).to_contain_text("No services")
    assert sky.get(sky.serve.status()) == []
    assert "dash-web-1" not in [c["name"] for c in sky.get(sky.status())]
