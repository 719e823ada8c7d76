"""``skyhop show-gpus [NAME]``: accelerators across the enabled backends."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import click


def summary(rows: Sequence[dict[str, Any]]) -> str:
    """One line per accelerator: the counts per node available, and where."""
    counts: dict[str, set[int]] = {}
    backends: dict[str, set[str]] = {}
    for r in rows:
        counts.setdefault(r["accelerator"], set()).add(int(r["count"]))
        backends.setdefault(r["accelerator"], set()).add(r["backend"])
    from skyhop.cli.render import table

    return table(
        ["GPU", "QTY PER NODE", "INFRA"],
        [[name, ", ".join(str(c) for c in sorted(counts[name])),
          ", ".join(sorted(backends[name]))] for name in sorted(counts, key=str.lower)],
    )  # fmt: skip


def details(rows: Sequence[dict[str, Any]]) -> str:
    """Every instance type offering the accelerator, with its hourly prices."""
    from skyhop.cli.render import cost, number, table

    return table(
        ["GPU", "QTY", "INFRA", "INSTANCE_TYPE", "vCPUs", "MEM(GB)", "$/HR", "SPOT $/HR",
         "REGION"],
        [[r["accelerator"], r["count"], r["backend"], r["instance_type"], number(r["cpus"]),
          number(r["memory_gb"]), cost(r["price"]),
          "-" if r["spot_price"] is None else cost(r["spot_price"]), r["region"] or "-"]
         for r in rows],
    )  # fmt: skip


@click.command("show-gpus")
@click.argument("name", required=False)
@click.option("--infra", default=None, help="Only this backend (or backend/region).")
def show_gpus(name: str | None, infra: str | None) -> None:
    """List the accelerators the enabled backends offer.

    Without NAME: each accelerator with the counts per node available. With NAME (e.g.
    A100, h100): every instance type that has it, with on-demand and spot prices.
    """
    from skyhop import sdk

    rows = sdk.get(sdk.show_gpus(name, infra))
    if not rows:
        what = f"No {name} accelerators" if name else "No accelerators"
        click.echo(f"{what} are offered by the enabled backends (see `skyhop check`).")
        return
    click.echo(details(rows) if name else summary(rows))
