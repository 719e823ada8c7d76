"""The server's backend-check cache: TTL, config changes, invalidation, one check for
concurrent misses, and the optimizer never refusing on a cached "not enabled"."""

from __future__ import annotations

from typing import Any

import pytest
import trio

from skyhop_core.checkcache import CheckCache
from skyhop_core.context import BackendContext
from skyhop_core.exceptions import ResourcesUnavailableError
from skyhop_core.hookspecs import hookimpl
from skyhop_core.models.records import BackendInfo, CheckResult, Offer
from skyhop_core.models.resources import Resources
from skyhop_core.optimizer import Optimizer
from skyhop_core.plugins import load_backends


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class CountingCloud:
    """A backend whose check is counted and whose enabled state the test flips."""

    def __init__(self, name: str = "c") -> None:
        self.name, self.enabled, self.checks = name, True, 0

    @hookimpl
    def skyhop_backend_info(self) -> BackendInfo:
        return BackendInfo(name=self.name, display_name=self.name.upper())

    @hookimpl
    async def skyhop_check(self, ctx: BackendContext) -> CheckResult:
        self.checks += 1
        await trio.sleep(0.01)  # a real check takes a while: concurrent misses overlap
        return CheckResult(self.name, self.enabled, reason="" if self.enabled else "no creds")

    @hookimpl
    async def skyhop_offers(self, ctx: BackendContext, resources: Resources) -> list[Offer]:
        return [Offer(self.name, "m1", 2, 8, price=0.1)]


def optimizer(cloud: CountingCloud, cache: CheckCache, config: dict[str, Any]) -> Optimizer:
    backends = load_backends([cloud], entry_points=False)
    return Optimizer(
        backends,
        lambda name: BackendContext(state_dir="/nonexistent", persistent_path="/nonexistent",
                                    config=config),
        cache,
    )


def plan(opt: Optimizer) -> list[Any]:
    async def main() -> list[Any]:
        return await opt.candidates([Resources()], 1)

    return trio.run(main)


def test_results_are_reused_within_the_ttl_and_checked_again_after() -> None:
    cloud, clock = CountingCloud(), Clock()
    cache = CheckCache(ttl=30, clock=clock)
    for _ in range(3):  # three requests, each with its own optimizer
        assert plan(optimizer(cloud, cache, {}))
    assert cloud.checks == 1
    clock.now += 31
    plan(optimizer(cloud, cache, {}))
    assert cloud.checks == 2


def test_a_changed_config_section_is_checked_afresh() -> None:
    cloud, cache = CountingCloud(), CheckCache(ttl=30, clock=Clock())
    plan(optimizer(cloud, cache, {"region": "a"}))
    plan(optimizer(cloud, cache, {"region": "b"}))
    plan(optimizer(cloud, cache, {"region": "a"}))
    assert cloud.checks == 2


def test_invalidate_forgets_and_a_ttl_of_zero_caches_nothing() -> None:
    cloud, cache = CountingCloud(), CheckCache(ttl=30, clock=Clock())
    plan(optimizer(cloud, cache, {}))
    cache.invalidate()
    plan(optimizer(cloud, cache, {}))
    assert cloud.checks == 2
    off = CheckCache(ttl=0)
    plan(optimizer(cloud, off, {}))
    plan(optimizer(cloud, off, {}))
    assert cloud.checks == 4


def test_concurrent_misses_share_one_check() -> None:
    cloud, cache = CountingCloud(), CheckCache(ttl=30)

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            for _ in range(20):
                nursery.start_soon(optimizer(cloud, cache, {}).candidates, [Resources()], 1)

    trio.run(main)
    assert cloud.checks == 1


def test_a_check_in_flight_during_invalidate_is_not_stored() -> None:
    cloud, cache = CountingCloud(), CheckCache(ttl=30)

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(optimizer(cloud, cache, {}).check, "c")
            await trio.sleep(0.001)
            cache.invalidate()
        assert cache.cached("c", {}) is None

    trio.run(main)


def test_a_cached_not_enabled_is_checked_again_before_it_refuses() -> None:
    cloud, cache = CountingCloud(), CheckCache(ttl=30, clock=Clock())
    cloud.enabled = False
    with pytest.raises(ResourcesUnavailableError, match="No backend is enabled"):
        plan(optimizer(cloud, cache, {}))
    with pytest.raises(ResourcesUnavailableError):  # cached, then afresh: still refused
        plan(optimizer(cloud, cache, {}))
    assert cloud.checks == 2
    cloud.enabled = True  # the user fixed the credentials
    assert plan(optimizer(cloud, cache, {}))  # cached "not enabled", then afresh
    assert cloud.checks == 3
    plan(optimizer(cloud, cache, {}))
    assert cloud.checks == 3  # the fresh "enabled" is cached
