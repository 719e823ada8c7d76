"""Template filters (times, durations, money, statuses) and server-side paging."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlencode

import attrs

#: Rows per page unless the page asks for another size; the most a page may ask for.
PER_PAGE = 50
MAX_PER_PAGE = 500


def ago(ts: float | None, now: float | None = None) -> str:
    if not ts:
        return "-"
    seconds = max(0, int((now or time.time()) - ts))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit} ago"
    return f"{seconds}s ago"


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60}s"
    if s < 86400:
        return f"{s // 3600}h {s % 3600 // 60}m"
    return f"{s // 86400}d {s % 86400 // 3600}h"


def money(value: float | None) -> str:
    return "-" if value is None else f"${value:.2f}" if value >= 0.01 or value == 0 else "<$0.01"


def status_value(status: Any) -> str:
    return str(getattr(status, "value", status))


def status_class(status: Any) -> str:
    """A CSS class for a status badge: ok, run, bad, off."""
    value = status_value(status)
    if value in ("UP", "SUCCEEDED", "READY"):
        return "ok"
    if "FAILED" in value:  # FAILED_SETUP, a replica's FAILED_PROBING, CONTROLLER_FAILED
        return "bad"
    if value in ("CANCELLED", "STOPPED", "CANCELLING", "SHUTTING_DOWN", "NO_REPLICA",
                 "PREEMPTED"):
        return "off"
    return "run"


def rate(value: float | None) -> str:
    """Requests per second, as the services page shows QPS."""
    if value is None:
        return "-"
    return f"{value:.2f}/s" if value < 100 else f"{value:,.0f}/s"


def positive_int(value: str | None) -> int | None:
    """A query parameter that must be a positive integer (a replica ID), else None."""
    return int(value) if value and value.isdigit() and int(value) > 0 else None


def url_with(query: Any, **changes: Any) -> str:
    """``?query`` with ``changes`` applied (None removes a parameter); ``fragment`` is
    dropped unless given, so links from a fragment lead to the whole page."""
    changes.setdefault("fragment", None)
    items = [(k, v) for k, v in query.multi_items() if k not in changes]
    items += [(k, str(v)) for k, v in changes.items() if v is not None]
    return "?" + urlencode(items)


FILTERS = {
    "ago": ago,
    "duration": duration,
    "money": money,
    "status": status_value,
    "status_class": status_class,
    "rate": rate,
}


@attrs.frozen
class Paging:
    """One page of a list: which rows, and the links around them."""

    page: int
    per_page: int
    total: int

    @classmethod
    def from_query(cls, query: Any, total: int) -> Paging:
        per_page = _positive(query.get("per_page"), PER_PAGE, MAX_PER_PAGE)
        pages = max(1, math.ceil(total / per_page))
        page = min(_positive(query.get("page"), 1, 10**9), pages)
        return cls(page, per_page, total)

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.per_page

    @property
    def pages(self) -> int:
        return max(1, math.ceil(self.total / self.per_page))

    def slice(self, rows: Sequence[Any]) -> list[Any]:
        return list(rows[self.offset : self.offset + self.per_page])


def _positive(value: str | None, default: int, most: int) -> int:
    try:
        number = int(value) if value else default
    except ValueError:
        number = default
    return max(1, min(number, most))
