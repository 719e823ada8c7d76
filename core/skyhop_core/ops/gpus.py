"""``show-gpus``: the accelerators the enabled backends offer, with instance types and prices."""

from __future__ import annotations

from typing import Any

import trio

from skyhop_core.models.records import Offer
from skyhop_core.models.resources import Resources
from skyhop_core.ops import params as P
from skyhop_core.ops.common import backend_ctx
from skyhop_core.optimizer import Optimizer
from skyhop_core.requests.context import RequestContext


def gpu_rows(offers: list[Offer], name: str | None = None) -> list[dict[str, Any]]:
    """One row per (accelerator, count, backend, instance type, region): the cheapest zone.

    ``name`` filters by accelerator name (case-insensitive). Sorted by accelerator, count,
    then price.
    """
    best: dict[tuple[Any, ...], dict[str, Any]] = {}
    for o in offers:
        for accelerator, count in o.accelerators.items():
            if name is not None and accelerator.lower() != name.lower():
                continue
            key = (accelerator, count, o.backend, o.instance_type, o.region)
            if key in best and best[key]["price"] <= o.price:
                continue
            best[key] = {
                "accelerator": accelerator,
                "count": count,
                "backend": o.backend,
                "instance_type": o.instance_type,
                "cpus": o.cpus,
                "memory_gb": o.memory_gb,
                "price": o.price,
                "spot_price": o.spot_price,
                "region": o.region,
            }
    return sorted(best.values(), key=lambda r: (r["accelerator"].lower(), r["count"], r["price"]))


async def show_gpus(ctx: RequestContext, p: P.ShowGpusParams) -> list[dict[str, Any]]:
    """Accelerator offers of every enabled backend (or of ``p.infra``'s backend)."""
    optimizer = Optimizer(ctx.services.backends, lambda name: backend_ctx(ctx, name))
    wanted = Resources(infra=p.infra) if p.infra else Resources()
    names = [wanted.backend] if wanted.backend else await optimizer.enabled_backends()
    offers: list[Offer] = []

    async def one(name: str) -> None:
        offers.extend(await optimizer.offers(name, wanted))

    async with trio.open_nursery() as nursery:
        for name in names:
            nursery.start_soon(one, name)
    return gpu_rows(offers, p.name)
