"""Text rendering for the CLI: tables, relative times, durations, backend checks.

Everything here takes plain values (dicts, records) and returns strings, so it is tested
without a server or a terminal. Text from the server (names, messages) goes through
:func:`safe` first: a control character (an ESC sequence that recolours or clears the
terminal, a carriage return that overwrites a line, a bidi override) is shown escaped,
never sent to the terminal. Job output streamed by ``logs`` is the job's own and is
passed through as it is.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from typing import Any

CHECK_MARK = "✔"

_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_CONTROL_OR_SPACE = re.compile(
    "[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029]"
)


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group(0))
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def safe(text: Any, *, one_line: bool = False) -> str:
    """``text`` with terminal control characters escaped (``\\x1b``); newlines and tabs
    kept unless ``one_line``."""
    return (_CONTROL_OR_SPACE if one_line else _CONTROL).sub(_escape, str(text))


def table(header: Sequence[str], rows: Sequence[Sequence[Any]], *, gap: int = 2) -> str:
    """Left-aligned columns separated by at least ``gap`` spaces; no trailing spaces."""
    cells = [[safe(c, one_line=True) for c in header]] + [
        [safe(c, one_line=True) for c in row] for row in rows
    ]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = []
    for row in cells:
        padded = [cell.ljust(widths[i] + gap) for i, cell in enumerate(row[:-1])] + [row[-1]]
        lines.append("".join(padded).rstrip())
    return "\n".join(lines)


def ago(timestamp: float | None, now: float | None = None) -> str:
    """``a few secs ago``, ``5 mins ago``, ``2 hrs ago``, ``3 days ago``; ``-`` for none."""
    if not timestamp:
        return "-"
    seconds = max(0.0, (now if now is not None else time.time()) - timestamp)
    if seconds < 60:
        return "a few secs ago"
    for unit, size in (("day", 86400), ("hr", 3600), ("min", 60)):
        if seconds >= size:
            count = int(seconds // size)
            return f"{count} {unit}{'s' if count != 1 else ''} ago"
    return "-"  # unreachable


def duration(seconds: float | None) -> str:
    """``42s``, ``3m 5s``, ``2h 7m``, ``1d 4h``; ``-`` for none."""
    if seconds is None:
        return "-"
    s = int(max(0.0, seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60}s"
    if s < 86400:
        return f"{s // 3600}h {s % 3600 // 60}m"
    return f"{s // 86400}d {s % 86400 // 3600}h"


def number(value: float) -> str:
    """``2`` for 2.0, ``0.5`` for 0.5."""
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def cost(value: float) -> str:
    """At least two decimals, three when they matter: ``0.00``, ``0.098``, ``1.50``."""
    text = f"{value:.3f}"
    return text[:-1] if text.endswith("0") else text


def considered_resources(rows: Sequence[dict[str, Any]], num_nodes: int) -> str:
    """The optimizer's "Considered resources" table, ruled above and below."""
    header = ["INFRA", "INSTANCE", "vCPUs", "Mem(GB)", "GPUS", "COST ($)", "CHOSEN"]
    body = [
        [
            row["infra"],
            row["instance_type"],
            number(row["cpus"]),
            number(row["memory_gb"]),
            row.get("gpus") or "-",
            cost(float(row["cost"])),
            CHECK_MARK if row.get("chosen") else "",
        ]
        for row in rows
    ]
    lines = table(header, body, gap=3).splitlines()
    rule = "-" * (max(len(line) for line in lines) + 3)
    nodes = f"{num_nodes} node{'s' if num_nodes != 1 else ''}"
    return "\n".join([f"Considered resources ({nodes}):", rule, lines[0], rule, *lines[1:], rule])


def _infra(record: dict[str, Any]) -> str:
    handle = record.get("handle")
    backend = record.get("backend") or (handle.backend if handle is not None else "-")
    place = [p for p in (getattr(handle, "region", None), getattr(handle, "zone", None)) if p]
    return f"{backend} ({', '.join(place)})" if place else str(backend)


def _autostop(record: dict[str, Any]) -> str:
    minutes = record.get("autostop")
    if minutes is None or minutes < 0:
        return "-"
    return f"{minutes}m (down)" if record.get("to_down") else f"{minutes}m"


def _value(status: Any) -> str:
    return str(getattr(status, "value", status))


def _status_reason(record: dict[str, Any]) -> str:
    """Why a cluster is in its status (an operation in progress, or what went wrong)."""
    meta = record.get("metadata") or {}
    operation = meta.get("operation")
    if operation:
        return f"{operation.get('op')} in progress: {operation.get('phase')}"
    return str(meta.get("status_reason") or "")


def clusters(
    records: Sequence[dict[str, Any]],
    *,
    show_user: bool = False,
    verbose: bool = False,
    now: float | None = None,
) -> str:
    """The ``skyhop status`` table (records as the SDK returns them: dicts).

    ``verbose`` (``status -a``) adds the node count, head IP and hourly price.
    """
    if not records:
        return "No existing clusters."
    header = (
        ["NAME"]
        + (["USER"] if show_user else [])
        + ["INFRA", "RESOURCES", "STATUS", "AUTOSTOP", "LAUNCHED"]
        + (["NODES", "HEAD_IP", "$/HR"] if verbose else [])
    )
    rows = []
    for r in records:
        row = (
            [r["name"]]
            + ([r.get("user_name") or "-"] if show_user else [])
            + [
                _infra(r),
                r.get("resources_str") or "-",
                _value(r["status"]),
                _autostop(r),
                ago(r.get("launched_at"), now),
            ]
        )
        if verbose:
            handle = r.get("handle")
            price = (r.get("metadata") or {}).get("price_per_hour")
            row += [
                handle.launched_nodes if handle is not None else "-",
                (handle.head_ip if handle is not None else None) or "-",
                cost(float(price)) if price is not None else "-",
            ]
        rows.append(row)
    notes = [
        f"{r['name']}: {_value(r['status'])}, {why}"
        for r in records
        if _value(r["status"]) != "UP" and (why := _status_reason(r))
    ]
    return table(header, rows) + "".join("\n" + note for note in notes)


def cost_report(records: Sequence[dict[str, Any]], days: int = 30, *,
                now: float | None = None) -> str:  # fmt: skip
    """``skyhop cost-report``: each cluster's cost from its price and time UP, torn-down
    ones (status None) as TERMINATED."""
    if not records:
        return f"No clusters, existing or torn down in the last {days} days."
    now = now if now is not None else time.time()
    header = ["NAME", "LAUNCHED", "DURATION", "RESOURCES", "STATUS", "$/HR", "COST ($)"]
    rows = []
    total = 0.0
    for r in records:
        spent = float(r.get("total_cost") or 0.0)
        total += spent
        rows.append(
            [
                r["name"],
                ago(r.get("launched_at"), now),
                duration(float(r.get("duration") or 0.0)),
                r.get("resources_str") or "-",
                "TERMINATED" if r.get("status") is None else _value(r["status"]),
                cost(float(r.get("price_per_hour") or 0.0)),
                cost(spent),
            ]
        )
    return table(header, rows) + f"\nTotal: $ {cost(total)}"


def jobs(records: Sequence[dict[str, Any]], *, now: float | None = None) -> str:
    """The ``skyhop queue`` table."""
    if not records:
        return "No jobs."
    now = now if now is not None else time.time()
    header = [
        "ID",
        "NAME",
        "USER",
        "SUBMITTED",
        "STARTED",
        "DURATION",
        "RESOURCES",
        "STATUS",
        "LOG",
    ]
    rows = []
    for j in records:
        started = j.get("start_at")
        ended = j.get("end_at")
        elapsed = None if not started else (ended or now) - started
        rows.append(
            [
                j["job_id"],
                j.get("job_name") or "-",
                j.get("username") or "-",
                ago(j.get("submitted_at"), now),
                ago(started, now),
                duration(elapsed),
                j.get("resources") or "-",
                _value(j["status"]),
                j.get("log_path") or "-",
            ]
        )
    return table(header, rows)


def requests(records: Sequence[Any], *, now: float | None = None) -> str:
    """The ``skyhop api status`` table (``RequestRecord`` objects)."""
    if not records:
        return "No requests."
    header = ["ID", "User", "Name", "Cluster", "Created", "Status"]
    rows = [
        [
            r.request_id,
            r.user_name,
            r.name,
            r.cluster_name or "-",
            ago(r.created_at, now),
            _value(r.status),
        ]
        for r in records
    ]
    return table(header, rows)


class _SafeCheck:
    """A check result whose text fields are :func:`safe`."""

    def __init__(self, result: Any) -> None:
        self.backend = safe(result.backend, one_line=True)
        self.enabled = result.enabled
        self.reason = safe(result.reason or "")
        self.fix = safe(result.fix or "")
        self.details = {
            safe(k, one_line=True): safe(v) for k, v in (result.details or {}).items()
        }


def checks(results: Sequence[Any]) -> str:
    """``skyhop check``: each backend enabled, or disabled with the reason and the fix."""
    lines = ["Backends:"]
    for r in results:
        r = _SafeCheck(r)
        if r.enabled:
            lines.append(f"  {r.backend}: enabled {CHECK_MARK}")
        else:
            lines.append(f"  {r.backend}: disabled" + (f" — {r.reason}" if r.reason else ""))
            if r.fix:
                lines.append(f"    Fix: {r.fix}")
        for part, message in sorted((r.details or {}).items()):
            lines.append(f"    {part}: {message}")
    enabled = [r.backend for r in results if r.enabled]
    lines.append("")
    if enabled:  # SkyPilot's heading, which scripts look for (docs/cli-output.md)
        lines.append("🎉 Enabled infra 🎉")
        lines.extend(f"  {name}" for name in enabled)
    else:
        lines.append("No infra is enabled; see the fixes above.")
    return "\n".join(lines)
