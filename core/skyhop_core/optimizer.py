"""Choosing where to run: offers from every enabled backend, the cheapest feasible first.

For each of the task's resource options the optimizer asks the backends it allows (the
one named in ``infra``, or every enabled backend) for offers, keeps those that fit, and
ranks them: by hourly cost for the whole cluster (``COST``), or by the most accelerators
and vCPUs, then cost (``TIME``). With ``ordered`` resources the user's order comes first;
with ``any_of`` (a set) all options compete on the target alone. The launch walks the
ranked list and fails over to the next candidate when a backend reports that a place has
no capacity or quota, blocking that place for the rest of the launch.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import attrs
import trio

from skyhop_core.checkcache import CheckCache
from skyhop_core.context import BackendContext
from skyhop_core.exceptions import ResourcesUnavailableError, TooManyNodesError
from skyhop_core.models.records import CheckResult, Offer
from skyhop_core.models.status import OptimizeTarget
from skyhop_core.plugins import Backends


@attrs.frozen
class Candidate:
    resources: Any  # Resources
    offer: Offer
    num_nodes: int
    preference: int = 0

    @property
    def use_spot(self) -> bool:
        return bool(getattr(self.resources, "use_spot", False))

    @property
    def cost(self) -> float:
        return self.offer.hourly_cost(self.use_spot) * self.num_nodes

    def place(self) -> tuple[str, str | None, str | None]:
        return (self.offer.backend, self.offer.region, self.offer.zone)


def infra_label(backends: Backends, offer: Offer) -> str:
    name = backends.info(offer.backend).display_name
    where = offer.zone or offer.region
    return f"{name} ({where})" if where else name


def table_rows(backends: Backends, candidates: Sequence[Candidate]) -> list[dict[str, Any]]:
    """Rows of the "Considered resources" table; the first candidate is the chosen one."""
    rows = []
    for i, c in enumerate(candidates):
        gpus = ", ".join(f"{k}:{v}" for k, v in sorted(c.offer.accelerators.items())) or "-"
        rows.append(
            {
                "infra": infra_label(backends, c.offer),
                "instance_type": c.offer.instance_type + (" [spot]" if c.use_spot else ""),
                "cpus": c.offer.cpus,
                "memory_gb": c.offer.memory_gb,
                "gpus": gpus,
                "cost": round(c.cost, 4),
                "chosen": i == 0,
            }
        )
    return rows


CtxFactory = Callable[[str], BackendContext]


class Optimizer:
    """Plans one request. ``checks`` is the server's :class:`CheckCache` (shared across
    requests); without one, each backend is checked once per optimizer."""

    def __init__(
        self, backends: Backends, ctx_factory: CtxFactory, checks: CheckCache | None = None
    ) -> None:
        self.backends = backends
        self.ctx_factory = ctx_factory
        self.checks = checks
        self._checks: dict[str, CheckResult] = {}
        #: Backends this optimizer saw as not enabled from the cache (not checked afresh).
        self._stale_disabled: set[str] = set()

    async def check(self, backend: str, *, fresh: bool = False) -> CheckResult:
        if backend in self._checks and not fresh:
            return self._checks[backend]
        ctx = self.ctx_factory(backend)

        def run() -> Awaitable[CheckResult]:
            result: Awaitable[CheckResult] = self.backends.call(backend, "skyhop_check", ctx=ctx)
            return result

        if self.checks is None:
            result = await run()
            from_cache = False
        else:
            result, from_cache = await self.checks.get(backend, ctx.config, run, fresh=fresh)
        if from_cache and not result.enabled:
            self._stale_disabled.add(backend)
        else:
            self._stale_disabled.discard(backend)
        self._checks[backend] = result
        return result

    async def _recheck_stale(self) -> bool:
        """Check afresh the backends only the cache said were disabled; True if one of
        them is enabled now (the plan is then made again)."""
        stale, self._stale_disabled = self._stale_disabled, set()
        enabled = False
        for name in stale:
            enabled = (await self.check(name, fresh=True)).enabled or enabled
        return enabled

    def max_nodes(self, backend: str) -> int | None:
        """The most nodes a cluster of ``backend`` may have: its config's ``max_nodes``,
        else what the backend declares (``None``: no fixed limit)."""
        configured = self.ctx_factory(backend).config.get("max_nodes")
        if configured is None:
            return self.backends.info(backend).max_nodes
        if isinstance(configured, bool) or not isinstance(configured, int) or configured < 1:
            raise ValueError(
                f"Config backends.{backend}.max_nodes: {configured!r} is not a whole number "
                ">= 1; fix the config file of the API server."
            )
        return configured

    def _too_many_nodes(self, num_nodes: int, limits: dict[str, int]) -> TooManyNodesError:
        listed = ", ".join(
            f"{self.backends.info(n).display_name} ({n}) allows {m}" for n, m in limits.items()
        )
        name = next(iter(limits))
        return TooManyNodesError(
            f"num_nodes: {num_nodes} is more nodes than the backend allows: {listed}. "
            f"Ask for fewer nodes, or raise the limit (config: backends: {name}: "
            "max_nodes: N) if the machines can take it. Nothing was created."
        )

    async def enabled_backends(self) -> list[str]:
        results: dict[str, bool] = {}

        async def one(name: str) -> None:
            results[name] = (await self.check(name)).enabled

        async with trio.open_nursery() as nursery:
            for name in self.backends.names():
                nursery.start_soon(one, name)
        return [n for n in self.backends.names() if results.get(n)]

    async def offers(self, backend: str, resources: Any) -> list[Offer]:
        # Backends filter their own offers (a pool like `local` fits differently from a
        # fixed instance type), so the list is taken as it is.
        offers: list[Offer] = await self.backends.call(
            backend, "skyhop_offers", ctx=self.ctx_factory(backend), resources=resources
        )
        return list(offers)

    async def candidates(
        self,
        resources_options: Sequence[Any],
        num_nodes: int,
        *,
        ordered: bool = False,
        target: OptimizeTarget = OptimizeTarget.COST,
        blocked: frozenset[tuple[str, str | None, str | None]] = frozenset(),
    ) -> list[Candidate]:
        """Every feasible candidate, best first. Raises ResourcesUnavailableError if none.

        A refusal that a cached "not enabled" may have caused is never given: those
        backends are checked afresh and, if one is enabled now, the plan is made again.
        """
        try:
            return await self._candidates(resources_options, num_nodes, ordered, target, blocked)
        except ResourcesUnavailableError:  # TooManyNodesError too
            if not self._stale_disabled or not await self._recheck_stale():
                raise
        return await self._candidates(resources_options, num_nodes, ordered, target, blocked)

    async def _candidates(
        self,
        resources_options: Sequence[Any],
        num_nodes: int,
        ordered: bool,
        target: OptimizeTarget,
        blocked: frozenset[tuple[str, str | None, str | None]],
    ) -> list[Candidate]:
        enabled = await self.enabled_backends()
        found: list[Candidate] = []
        too_small: dict[str, int] = {}  # backends skipped for num_nodes -> their maximum
        for preference, resources in enumerate(resources_options):
            wanted = resources.backend
            if wanted is not None and wanted not in self.backends.names():
                self.backends.info(wanted)  # raises UnknownBackendError with the list
            names = [wanted] if wanted else enabled
            for name in names:
                if name not in enabled:
                    check = await self.check(name)
                    raise ResourcesUnavailableError(
                        f"The {name} backend is not enabled: {check.reason}"
                        + (f" To fix: {check.fix}" if check.fix else "")
                    )
                limit = self.max_nodes(name)
                if limit is not None and num_nodes > limit:
                    too_small[name] = limit
                    if wanted:
                        raise self._too_many_nodes(num_nodes, {name: limit})
                    continue
                for offer in await self.offers(name, resources):
                    c = Candidate(resources, offer, num_nodes, preference if ordered else 0)
                    if not _is_blocked(c, blocked):
                        found.append(c)
        if not found and too_small and set(too_small) == set(enabled):
            raise self._too_many_nodes(num_nodes, too_small)
        if not found:
            raise ResourcesUnavailableError(await self._nothing_fits(resources_options, enabled))
        return _unique(sorted(found, key=lambda c: _rank(c, target)))

    async def _nothing_fits(self, resources_options: Sequence[Any], enabled: list[str]) -> str:
        asked = "; ".join(str(r) for r in resources_options)
        existing: list[Offer] = []
        for name in enabled:
            try:
                existing += await self.backends.call(
                    name, "skyhop_offers", ctx=self.ctx_factory(name), resources=_anything()
                )
            except Exception:
                continue
        msg = f"No resources satisfy the request ({asked})."
        nearest = nearest_offers(resources_options, existing)
        if nearest:
            msg += " Nearest offers that exist: " + "; ".join(
                self._describe(o) for o in nearest) + "."  # fmt: skip
        if not enabled:
            msg += " No backend is enabled: run `skyhop check`."
        else:
            msg += " Relax cpus/memory/accelerators or choose another infra."
        return msg

    def _describe(self, o: Offer) -> str:
        name = self.backends.info(o.backend).display_name
        where = f" ({o.region})" if o.region else ""
        gpus = ",".join(f"{k}:{v}" for k, v in o.accelerators.items()) or "no GPUs"
        return (f"{name}{where} {o.instance_type}: {o.cpus:g} vCPUs, {o.memory_gb:g} GB, "
                f"{gpus}, ${o.price:.2f}/h")  # fmt: skip


def nearest_offers(resources_options: Sequence[Any], offers: Sequence[Offer],
                   limit: int = 5) -> list[Offer]:  # fmt: skip
    """The offers closest to what was asked (same accelerator first, then size), one per
    instance type and region, cheapest zone kept."""
    best: dict[tuple[str, str, str | None], Offer] = {}
    for o in offers:
        key = (o.backend, o.instance_type, o.region)
        if key not in best or o.price < best[key].price:
            best[key] = o
    return sorted(best.values(), key=lambda o: min(_distance(r, o) for r in resources_options)
                  if resources_options else (o.price,))[:limit]  # fmt: skip


def _distance(resources: Any, offer: Offer) -> tuple[float, ...]:
    """How far ``offer`` is from ``resources`` (smaller is nearer), for error messages."""
    wanted = {k.lower(): v for k, v in (getattr(resources, "accelerators", None) or {}).items()}
    have = {k.lower(): v for k, v in offer.accelerators.items()}
    if wanted:
        same = [n for n in wanted if n in have]
        kind = 0 if same else (1 if have else 2)
        count = sum(abs(have.get(n, 0) - c) for n, c in wanted.items())
    else:
        kind, count = (1 if have else 0), 0
    place = 0 if resources.backend in (None, offer.backend) else 1
    cpus = resources.cpus_requirement()[0]
    memory = resources.memory_requirement()[0]
    size = abs(offer.cpus - cpus) / max(cpus, 1.0) if cpus else 0.0
    size += abs(offer.memory_gb - memory) / max(memory, 1.0) if memory else 0.0
    return (kind, place, count, size, offer.price)


def _anything() -> Any:
    from skyhop_core.models.resources import Resources

    return Resources()


def _is_blocked(c: Candidate, blocked: frozenset[tuple[str, str | None, str | None]]) -> bool:
    backend, region, zone = c.place()
    for b_backend, b_region, b_zone in blocked:
        if b_backend != backend:
            continue
        if b_region is None or (b_region == region and (b_zone is None or b_zone == zone)):
            return True
    return False


def _unique(ranked: list[Candidate]) -> list[Candidate]:
    """Drop repeats of the same offer (several options can match one machine)."""
    seen: set[tuple[Any, ...]] = set()
    out = []
    for c in ranked:
        key = (*c.place(), c.offer.instance_type, c.use_spot)
        if key not in seen:
            seen.add(key)
            out.append(c)
    return out


def _rank(c: Candidate, target: OptimizeTarget) -> tuple[Any, ...]:
    if target is OptimizeTarget.TIME:
        gpus = sum(c.offer.accelerators.values())
        return (c.preference, -gpus, -c.offer.cpus, c.cost)
    return (c.preference, c.cost, c.offer.cpus)
