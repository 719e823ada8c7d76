"""The optimizer with fake backends: ranking, ordered vs any_of, blocking, nothing fits."""

from __future__ import annotations

from typing import Any

import attrs
import pytest
import trio

from skyhop_core.context import BackendContext
from skyhop_core.exceptions import ResourcesUnavailableError
from skyhop_core.hookspecs import hookimpl
from skyhop_core.models.records import BackendInfo, CheckResult, Offer
from skyhop_core.models.resources import Resources
from skyhop_core.models.status import OptimizeTarget
from skyhop_core.optimizer import Optimizer, nearest_offers, table_rows
from skyhop_core.plugins import load_backends


class FakeCloud:
    """A backend with a fixed catalog; offers are filtered with ``Resources.fits``."""

    def __init__(self, name: str, offers: list[Offer], enabled: bool = True) -> None:
        self.name = name
        self.catalog = [attrs.evolve(o, backend=name) for o in offers]
        self.enabled = enabled

    @hookimpl
    def skyhop_backend_info(self) -> BackendInfo:
        return BackendInfo(name=self.name, display_name=self.name.upper())

    @hookimpl
    async def skyhop_check(self, ctx: BackendContext) -> CheckResult:
        return CheckResult(self.name, self.enabled, reason="" if self.enabled else "no creds")

    @hookimpl
    async def skyhop_offers(self, ctx: BackendContext, resources: Resources) -> list[Offer]:
        return [o for o in self.catalog if resources.fits(o)]


def offer(kind: str, cpus: float, mem: float, price: float, gpus: dict[str, int] | None = None,
          zone: str = "r1-a", spot: float | None = None) -> Offer:  # fmt: skip
    return Offer(backend="x", instance_type=kind, cpus=cpus, memory_gb=mem,
                 accelerators=gpus or {}, price=price, spot_price=spot,
                 region=zone[:2], zone=zone)  # fmt: skip


CLOUD_A = [
    offer("small", 2, 8, 0.10, spot=0.03),
    offer("big", 16, 64, 0.80),
    offer("gpu1", 8, 32, 1.00, {"A100": 1}),
    offer("gpu8", 96, 1152, 32.0, {"A100": 8}),
    offer("t4", 4, 16, 0.50, {"T4": 1}),
]
CLOUD_B = [
    offer("b-small", 2, 8, 0.09, zone="r2-a"),
    offer("b-small", 2, 8, 0.09, zone="r2-b"),
    offer("b-gpu1", 8, 32, 1.20, {"A100": 1}, zone="r2-a"),
]


def optimizer(*plugins: FakeCloud) -> Optimizer:
    backends = load_backends(list(plugins), entry_points=False)
    return Optimizer(
        backends,
        lambda name: BackendContext(state_dir="/nonexistent", persistent_path="/nonexistent"),
    )


def plan(opt: Optimizer, options: list[Resources], **kwargs: Any) -> list[Any]:
    async def main() -> list[Any]:
        return await opt.candidates(options, kwargs.pop("num_nodes", 1), **kwargs)

    return trio.run(main)


def names(candidates: list[Any]) -> list[str]:
    return [f"{c.offer.backend}:{c.offer.instance_type}" for c in candidates]


def test_cost_picks_the_cheapest_feasible_across_backends() -> None:
    opt = optimizer(FakeCloud("a", CLOUD_A), FakeCloud("b", CLOUD_B))
    best = plan(opt, [Resources(cpus="2+")])
    assert names(best)[:3] == ["b:b-small", "b:b-small", "a:small"]
    assert [c.offer.zone for c in best[:2]] == ["r2-a", "r2-b"]
    gpu = plan(opt, [Resources(accelerators="A100:1")])
    assert names(gpu) == ["a:gpu1", "b:b-gpu1"]


def test_cost_is_for_the_whole_cluster_and_uses_spot_prices() -> None:
    opt = optimizer(FakeCloud("a", CLOUD_A))
    (spot,) = plan(opt, [Resources(instance_type="small", use_spot=True)], num_nodes=3)
    assert spot.use_spot and spot.cost == pytest.approx(0.09)
    rows = table_rows(opt.backends, [spot])
    assert rows[0]["instance_type"] == "small [spot]" and rows[0]["chosen"]


def test_time_prefers_the_most_accelerators_then_vcpus_then_cost() -> None:
    opt = optimizer(FakeCloud("a", CLOUD_A), FakeCloud("b", CLOUD_B))
    options = [Resources(accelerators="A100:1"), Resources(accelerators="A100:8"),
               Resources(cpus="2+")]  # fmt: skip
    fast = plan(opt, options, target=OptimizeTarget.TIME)
    assert names(fast)[:3] == ["a:gpu8", "a:gpu1", "b:b-gpu1"]
    cheap = plan(opt, options, target=OptimizeTarget.COST)
    assert names(cheap)[0] == "b:b-small"


def test_ordered_keeps_the_users_order_any_of_competes_on_cost() -> None:
    opt = optimizer(FakeCloud("a", CLOUD_A))
    options = [Resources(accelerators="A100:1"), Resources(accelerators="T4:1")]
    assert names(plan(opt, options, ordered=True)) == ["a:gpu1", "a:t4"]
    assert names(plan(opt, options, ordered=False)) == ["a:t4", "a:gpu1"]


def test_infra_restricts_to_one_backend_region_and_zone() -> None:
    opt = optimizer(FakeCloud("a", CLOUD_A), FakeCloud("b", CLOUD_B))
    assert {c.offer.backend for c in plan(opt, [Resources(infra="a")])} == {"a"}
    zoned = plan(opt, [Resources(infra="b/r2/r2-b")])
    assert [c.offer.zone for c in zoned] == ["r2-b"]


def test_blocked_places_are_skipped() -> None:
    opt = optimizer(FakeCloud("a", CLOUD_A), FakeCloud("b", CLOUD_B))
    options = [Resources(cpus="2", memory="8")]
    zone = plan(opt, options, blocked=frozenset({("b", "r2", "r2-a")}))
    assert [(c.offer.backend, c.offer.zone) for c in zone] == [("b", "r2-b"), ("a", "r1-a")]
    backend = plan(opt, options, blocked=frozenset({("b", None, None)}))
    assert names(backend) == ["a:small"]
    with pytest.raises(ResourcesUnavailableError):
        plan(opt, options, blocked=frozenset({("b", None, None), ("a", "r1", None)}))


def test_nothing_fits_names_what_was_asked_and_the_nearest_offers() -> None:
    opt = optimizer(FakeCloud("a", CLOUD_A), FakeCloud("b", CLOUD_B))
    with pytest.raises(ResourcesUnavailableError) as info:
        plan(opt, [Resources(accelerators="A100:4")])
    message = str(info.value)
    assert "A100" in message.split("Nearest")[0]
    nearest = message.split("Nearest offers that exist:")[1]
    # The A100 machines come first (same accelerator), then other GPUs, then CPU-only.
    assert nearest.index("gpu8") < nearest.index("T4") < nearest.index("b-small")


def test_nearest_offers_prefers_the_same_size() -> None:
    offers = [o for o in CLOUD_A if not o.accelerators]
    assert [o.instance_type for o in nearest_offers([Resources(cpus="12")], offers)] == [
        "big", "small"]  # fmt: skip


def test_a_disabled_backend_named_in_infra_says_why() -> None:
    opt = optimizer(FakeCloud("a", CLOUD_A), FakeCloud("b", CLOUD_B, enabled=False))
    with pytest.raises(ResourcesUnavailableError, match="not enabled: no creds"):
        plan(opt, [Resources(infra="b")])
    assert {c.offer.backend for c in plan(opt, [Resources()])} == {"a"}


def test_relaunching_a_cluster_it_cannot_satisfy_is_a_mismatch() -> None:
    from skyhop_core.exceptions import ResourcesMismatchError
    from skyhop_core.models.records import ClusterHandle, NodeInfo
    from skyhop_core.models.task import Task
    from skyhop_core.ops.provisioning import matching_resources

    head = NodeInfo(rank=0, ip="10.0.0.1", instance_id="i-1", cpus=4, memory_gb=16,
                    runtime_dir="/r", home="/h", gpus={"T4": 1})  # fmt: skip
    handle = ClusterHandle(cluster_name="c", backend="a", nodes=(head,))
    fits = Task(run="true", resources=Resources(accelerators="T4:1"))
    assert matching_resources(fits, handle) == fits.resources[0]
    for too_much in (Resources(accelerators="A100:1"), Resources(cpus="8+"),
                     Resources(infra="b")):  # fmt: skip
        with pytest.raises(ResourcesMismatchError, match="cannot satisfy"):
            matching_resources(Task(run="true", resources=too_much), handle)
    with pytest.raises(ResourcesMismatchError, match="needs 2 nodes"):
        matching_resources(Task(run="true", num_nodes=2, resources=Resources()), handle)
