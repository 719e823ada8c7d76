"""Read-only operations about backends: check, optimize."""

from __future__ import annotations

from typing import Any

import trio

from skyhop_core.models.records import CheckResult
from skyhop_core.ops import params as P
from skyhop_core.ops.common import backend_ctx, find_cluster, parse_task
from skyhop_core.ops.provisioning import plan
from skyhop_core.optimizer import table_rows
from skyhop_core.requests.context import RequestContext


async def check(ctx: RequestContext, p: P.NoParams) -> list[CheckResult]:
    """Whether each backend can be used, and how to enable those that cannot.

    Every check runs afresh and replaces what the server's check cache held, so plans
    made after a ``skyhop check`` see its answers (credentials just added or removed).
    """
    backends = ctx.services.backends
    cache = getattr(ctx.services, "check_cache", None)
    if cache is not None:
        cache.invalidate()
    results: dict[str, CheckResult] = {}

    async def one(name: str) -> None:
        bctx = backend_ctx(ctx, name)
        try:
            results[name] = await backends.call(name, "skyhop_check", ctx=bctx)
        except Exception as exc:
            results[name] = CheckResult(name, False, reason=f"check failed: {exc}")
            return
        if cache is not None:
            cache.put(name, bctx.config, results[name])

    async with trio.open_nursery() as nursery:
        for name in backends.names():
            nursery.start_soon(one, name)
    out = [results[n] for n in backends.names()]
    out += [
        CheckResult(b.name, False, reason=f"the plugin failed to load: {b.error}",
                    fix=f"reinstall or remove the package providing the {b.name!r} plugin")
        for b in backends.broken
    ]
    return out


async def optimize(ctx: RequestContext, p: P.OptimizeParams) -> list[dict[str, Any]]:
    """Rows of the "Considered resources" table; [] when the cluster already exists."""
    if p.cluster_name and await find_cluster(ctx, p.cluster_name) is not None:
        return []
    task, _ = parse_task(p.task)
    candidates = await plan(ctx, task, p.optimize_target)
    return table_rows(ctx.services.backends, candidates)
