"""A real browser for the dashboard tests: Debian's chromium driven by Playwright.

One headless chromium for these tests; each test gets a fresh context (its own cookies,
so its own dashboard session) and page. Tests skip, saying why, only where chromium or
Playwright is missing. Screenshots go to the test's tmp dir (``shot``).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

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
