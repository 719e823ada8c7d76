"""The dashboard's pages: one module each, listed in :data:`PAGE_MODULES`.

A page module defines ``PAGE``, a :class:`Page`: its URL slug (``/dashboard/<slug>``),
the title in the navigation bar, and a function returning its Starlette routes (the
page, its table fragment, its actions). Adding a page is one module in
:mod:`skyhop_core.dashboard.pages` and one entry here.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import attrs

if TYPE_CHECKING:
    from skyhop_core.dashboard.context import Dashboard

#: Page modules under ``skyhop_core.dashboard.pages``, in navigation order.
PAGE_MODULES = ("clusters", "managed_jobs", "services", "requests", "backends")


@attrs.frozen
class Page:
    """A page of the dashboard."""

    slug: str
    title: str
    #: ``routes(dashboard)`` -> Starlette routes, paths relative to the dashboard.
    routes: Callable[[Dashboard], list[Any]]


def pages() -> list[Page]:
    """Every page, in navigation order."""
    return [
        importlib.import_module(f"skyhop_core.dashboard.pages.{name}").PAGE
        for name in PAGE_MODULES
    ]
