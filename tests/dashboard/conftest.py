"""A real browser and a real local API server for the dashboard tests.

One headless chromium per module (Debian's, driven by Playwright); each test gets a
fresh context (its own cookies, so its own dashboard session) and page. Tests skip,
saying why, only where chromium or Playwright is missing. Screenshots go to the test's
tmp dir (``shot``).

One local API server (``server``) serves every module of this package that needs one:
it starts once, and at once submits the slow things those modules use — the ticking
cluster, the cluster the stop/down test stops, a managed job, the service of the
services page — so they come up in parallel while the browser starts and the first
tests run.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from serverproc import kill_processes_under

from .dashcalls import FAST, TICKING, DashServer, free_port, launch, serve_port_range, web_task

CHROMIUM = os.environ.get("SKYHOP_TEST_CHROMIUM", "/usr/bin/chromium")


def _missing() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright for Python is not installed (pip install -e '.[test]')"
    if not (os.path.exists(CHROMIUM) or shutil.which(CHROMIUM)):
        return f"chromium is not installed at {CHROMIUM} (apt-get install -y chromium)"
    return None


# Module scope, not session: while Playwright's sync API is open its asyncio loop counts
# as running in this thread, and every later asyncio.run() (the async SDK's tests) fails.
@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    problem = _missing()
    if problem:
        pytest.skip(problem)
    os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        # --no-sandbox: chromium's own sandbox refuses to run as root (CI runs as root).
        chromium = pw.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=["--no-sandbox"]
        )
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1360, "height": 900})
    context.set_default_timeout(30_000)
    tab = context.new_page()
    yield tab
    context.close()


@pytest.fixture
def shot(tmp_path: Path) -> Callable[[Any, str], Path]:
    """``shot(page, name)`` saves a full-page screenshot as a test artifact."""

    def take(tab: Any, name: str) -> Path:
        path = tmp_path / "screenshots" / f"{name}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        tab.screenshot(path=str(path), full_page=True)
        return path

    return take


@pytest.fixture(scope="package")
def booting(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DashServer]:
    """This package's local server, booting in the background (see ``server``)."""
    root = tmp_path_factory.mktemp("dash")
    srv = DashServer(root, env={**FAST, "SKYHOP_SERVE_PORTS": serve_port_range()})

    def submit() -> dict[str, str]:
        import skyhop as sky

        return {
            "dash-a": launch("dash-a", TICKING, wait=False),
            "dash-b": launch("dash-b", "echo hi", wait=False),
            "dash-mj": sky.jobs.launch(sky.Task(
                name="dash-mj", run="for i in $(seq 1 2000); do echo mj $i; sleep 0.3; done",
                resources=sky.Resources(infra="local"))),
            "dash-web": sky.serve.up(web_task(free_port(), sys.executable),
                                     service_name="dash-web"),
        }

    srv.boot(submit)
    try:
        yield srv
    finally:
        try:
            srv.ready()
        finally:
            try:
                srv.stop()
            finally:
                srv.kill()
                kill_processes_under(root)


@pytest.fixture
def server(booting: DashServer) -> Iterator[DashServer]:
    """The package's server, up, with the SDK in the test talking to it.

    Function-scoped over the package-scoped ``booting`` so that the server boots (and
    launches the ticking cluster, the stop/down cluster and the service) while the
    module's chromium starts: module fixtures are set up before function ones."""
    from skyhop.client import using

    booting.ready()
    with using(booting.client):
        yield booting
