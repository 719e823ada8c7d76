"""Figures, targets, the printed table, the JSON file and the machine description."""

from __future__ import annotations

import datetime
import json
import math
import os
import platform
import sys
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any


@dataclass
class Target:
    """A target such as "p50 < 150 ms": ``op`` is ``<`` or ``>``; ``on`` is p50 or p99."""

    op: str
    limit: float
    on: str = "p50"
    also_zero_errors: bool = False

    def text(self, unit: str) -> str:
        label = "" if self.on == "p50" else f"{self.on} "
        extra = ", 0 errors" if self.also_zero_errors else ""
        return f"{label}{self.op} {self.limit:g} {unit}{extra}"


@dataclass
class Figure:
    """One row of the table: a measurement next to its same-run baseline."""

    group: str
    name: str
    unit: str
    p50: float | None = None
    p99: float | None = None
    baseline: str = ""
    baseline_p50: float | None = None
    baseline_p99: float | None = None
    target: Target | None = None
    note: str = ""
    error: str | None = None
    errors: int | None = None
    #: Why the figure could not be measured on this machine (not a failure).
    skipped: str | None = None

    @property
    def ratio(self) -> float | None:
        if self.p50 is None or not self.baseline_p50 or math.isnan(self.p50):
            return None
        return self.p50 / self.baseline_p50

    @property
    def passed(self) -> bool | None:
        if self.error is not None:
            return False
        if self.target is None or self.skipped is not None:
            return None
        value = self.p50 if self.target.on == "p50" else self.p99
        if value is None or math.isnan(value):
            return False
        ok = value < self.target.limit if self.target.op == "<" else value > self.target.limit
        if self.target.also_zero_errors and self.errors:
            ok = False
        return ok

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["target"] = self.target.text(self.unit) if self.target else None
        data["ratio"] = self.ratio
        data["passed"] = self.passed
        return data


def _num(value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.3g}"


def _pair(p50: float | None, p99: float | None) -> str:
    return _num(p50) if p99 is None else f"{_num(p50)} / {_num(p99)}"


def mark(fig: Figure) -> str:
    if fig.error is not None:
        return "ERROR"
    if fig.skipped is not None:
        return "skipped"
    return {True: "pass", False: "FAIL", None: "info"}[fig.passed]


def table_rows(figures: Iterable[Figure]) -> list[list[str]]:
    rows = []
    for fig in figures:
        ratio = fig.ratio
        rows.append([
            fig.name,
            "error" if fig.error is not None else _pair(fig.p50, fig.p99),
            fig.unit,
            (f"{fig.baseline}: {_pair(fig.baseline_p50, fig.baseline_p99)}"
             if fig.baseline else ""),
            "" if ratio is None else f"×{ratio:.2f}" if ratio < 100 else f"×{ratio:.0f}",
            fig.target.text(fig.unit) if fig.target else "",
            mark(fig),
        ])
    return rows


HEADER = ["figure", "p50 / p99 (or value)", "unit", "baseline (same run)", "value ÷ baseline",
          "target", "result"]


def text_table(figures: list[Figure]) -> str:
    """A plain-text table for the terminal, followed by notes and errors."""
    rows = [HEADER, *table_rows(figures)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(HEADER))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
             for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines) + "\n" + notes(figures)


def markdown_table(figures: list[Figure]) -> str:
    """The same table in Markdown (for bench/RESULTS.md), followed by notes and errors."""
    rows = table_rows(figures)
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in rows]
    return "\n".join(lines) + "\n\n" + notes(figures, bullet="- ")


def notes(figures: list[Figure], bullet: str = "  ") -> str:
    out = []
    for fig in figures:
        if fig.note:
            out.append(f"{bullet}{fig.name}: {fig.note}")
        if fig.error is not None:
            out.append(f"{bullet}{fig.name}: ERROR {fig.error}")
        if fig.skipped is not None:
            out.append(f"{bullet}{fig.name}: skipped: {fig.skipped}")
    return "\n".join(out) + ("\n" if out else "")


def machine() -> dict[str, Any]:
    """What the figures came from: CPUs, memory, Python, kernel, date."""
    mem_kb = 0
    try:
        with open("/proc/meminfo") as f:
            mem_kb = int(next(line for line in f if line.startswith("MemTotal")).split()[1])
    except (OSError, StopIteration, ValueError):
        pass
    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            model = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")),
                         "")
    except OSError:
        pass
    return {
        "nproc": os.cpu_count(),
        "cpu_model": model,
        "memory_gb": round(mem_kb / 1024 / 1024, 1),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "load_average_1m": round(os.getloadavg()[0], 2),
        "bytecode_cache": "off" if os.environ.get("PYTHONDONTWRITEBYTECODE") else "on",
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


def write_json(path: Path, figures: list[Figure], info: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {"machine": info, "figures": [f.as_json() for f in figures]}
    path.write_text(json.dumps(data, indent=2, default=str) + "\n")


def machine_line(info: dict[str, Any]) -> str:
    return (f"{info['nproc']} CPUs ({info['cpu_model'] or 'unknown model'}), "
            f"{info['memory_gb']} GB RAM, Python {info['python']}, {info['platform']}, "
            f"load average {info['load_average_1m']} at start"
            + (", PYTHONDONTWRITEBYTECODE=1 (no .pyc cache for skyhop's own modules)"
               if info["bytecode_cache"] == "off" else "")
            + f", {info['date']}")
