"""The conformance suite's failure paths: cancelled provisioning, refusals, idempotency.

:class:`FailurePathTests` is mixed into
:class:`~skyhop_core.testing.conformance.BackendConformance`, so every backend runs it.
What a backend can *simulate* it declares through the ``conformance_simulation``
fixture, returning a :class:`Simulation`; a test that needs something the backend did
not declare is skipped, naming the field to fill in::

    from skyhop_core.testing.failure_paths import Simulation

    class TestMyBackend(BackendConformance):
        backend_name = "mybackend"

        @pytest.fixture
        def conformance_simulation(self, my_fake_cloud):
            return Simulation(
                refuse=my_fake_cloud.refuse,        # (kind, offer) -> None
                lift=my_fake_cloud.lift_refusals,   # () -> None
                leftovers=my_fake_cloud.leftovers,  # cluster name -> [what still exists]
            )
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import attrs
import pytest

if TYPE_CHECKING:
    from skyhop_core.models.records import ClusterHandle, Offer
    from skyhop_core.testing.harness import BackendHarness


@attrs.define
class Simulation:
    """What the backend under test lets the suite simulate; every field is optional.

    ``refuse(kind, offer)``: from now on, provisioning at ``offer``'s place fails the way
    the real service fails there: ``kind`` ``"capacity"`` makes the offer's **zone** (its
    region when it has no zone) raise ``CapacityError``, ``"quota"`` makes its **region**
    raise ``QuotaError``, for every instance type. The errors must come from the
    backend's own error mapping (inject the service's error, not skyhop's exception),
    which is what the test proves.

    ``lift()``: take every refusal back (called after each test that refused).

    ``leftovers(cluster_name)``: what still exists of that cluster in the service
    (instances, volumes, security groups, directories, pods), as readable strings; ``[]``
    when nothing does. May be ``async``. Without it the suite can only check that
    ``skyhop_down`` succeeds, not that it removed everything.
    """

    refuse: Callable[[str, Offer], Any] | None = None
    lift: Callable[[], Any] | None = None
    leftovers: Callable[[str], Any] | None = None


async def _maybe_await(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


class FailurePathTests:
    """Tests of what happens when provisioning is cancelled or refused; see the module."""

    @pytest.fixture
    def conformance_simulation(self) -> Simulation:
        """What the backend can simulate (:class:`Simulation`); by default nothing."""
        return Simulation()

    # --- helpers ---------------------------------------------------------------------

    async def _assert_nothing_left(
        self, conformance: BackendHarness, simulation: Simulation, name: str, what: str
    ) -> None:
        if simulation.leftovers is None:
            return
        left = await _maybe_await(simulation.leftovers(name))
        assert not left, (
            f"skyhop_down: after {what}, cluster {name!r} still has {left}. `down` must find "
            "everything a provision made for the cluster's name, even when the handle it is "
            "given has no nodes (docs/plugin_hooks.md, skyhop_down)."
        )

    async def _down_after_cancel(
        self, conformance: BackendHarness, name: str, offer: Offer,
        handle: ClusterHandle | None, previous: ClusterHandle | None,
    ) -> None:  # fmt: skip
        """Down the cluster the way the core would: with the handle the provision
        returned, else the previous one, else a node-less handle."""
        await conformance.down(handle or previous or conformance.node_less_handle(name, offer))

    # --- cancellation ----------------------------------------------------------------

    def test_cancelled_provision_leaves_nothing_down_cannot_remove(
        self, conformance: BackendHarness, conformance_simulation: Simulation
    ) -> None:
        import trio

        trio.run(self._cancelled_provision, conformance, conformance_simulation)

    async def _cancelled_provision(
        self, conformance: BackendHarness, simulation: Simulation
    ) -> None:
        from skyhop_core.testing.cancelling import call_cancelled_after, count_steps

        async with conformance.cleanup():
            offer = await conformance.best_offer()
            name = conformance.cluster_name("full")
            handle, steps = await count_steps(lambda: conformance.provision_offer(name, offer))
            await conformance.down(handle)
            await self._assert_nothing_left(conformance, simulation, name, "a whole provision")
            points = {"right away": 1, "mid-way": max(1, steps // 2),
                      "just before it returns": max(1, steps - 1)}  # fmt: skip
            any_cancelled = False
            for when, step in points.items():
                name = conformance.cluster_name("cxl")
                conformance.expect(name, offer)
                result, cancelled = await call_cancelled_after(
                    functools.partial(conformance.provision_offer, name, offer), step
                )
                any_cancelled = any_cancelled or cancelled
                await self._down_after_cancel(conformance, name, offer, result, None)
                await self._assert_nothing_left(
                    conformance, simulation, name,
                    f"a provision cancelled {when} (after step {step} of {steps})"
                    + ("" if cancelled else ", which finished first"),
                )  # fmt: skip
            assert any_cancelled or steps <= 1, (
                f"skyhop_provision took {steps} steps, yet no cancellation point cancelled "
                "it: a provision must be cancellable at its awaits (docs/plugin_hooks.md)."
            )
            # Re-provisioning an existing cluster, cancelled mid-way: `down` of the
            # previous handle still removes everything.
            name = conformance.cluster_name("cxlprev")
            previous = await conformance.provision_offer(name, offer)
            _, again = await count_steps(
                lambda: conformance.provision_offer(name, offer, previous=previous)
            )
            await call_cancelled_after(
                lambda: conformance.provision_offer(name, offer, previous=previous),
                max(1, again // 2),
            )
            await conformance.down(previous)
            await self._assert_nothing_left(
                conformance, simulation, name,
                "re-provisioning cancelled mid-way and `down` of the previous handle",
            )  # fmt: skip

    # --- refusals ----------------------------------------------------------------------

    def test_capacity_error_fails_over_and_is_not_asked_again(
        self, conformance: BackendHarness, conformance_simulation: Simulation
    ) -> None:
        import trio

        trio.run(self._refused, conformance, conformance_simulation, "capacity")

    def test_quota_error_blocks_the_region(
        self, conformance: BackendHarness, conformance_simulation: Simulation
    ) -> None:
        import trio

        trio.run(self._refused, conformance, conformance_simulation, "quota")

    async def _refused(
        self, conformance: BackendHarness, simulation: Simulation, kind: str
    ) -> None:
        from skyhop_core.exceptions import CapacityError, QuotaError
        from skyhop_core.failover import Failover, blocks, try_candidates
        from skyhop_core.optimizer import Candidate

        if simulation.refuse is None:
            pytest.skip(
                "the backend declares no way to refuse provisioning: return "
                "Simulation(refuse=...) from the `conformance_simulation` fixture"
            )
        offers = sorted(await conformance.offers(), key=lambda o: (o.price, o.cpus))
        candidates = [Candidate(conformance.resources, o, 1) for o in offers]
        refused = candidates[0]
        name = conformance.cluster_name(kind[:3])
        asked: list[Offer] = []

        async def attempt(candidate: Candidate) -> ClusterHandle:
            asked.append(candidate.offer)
            conformance.expect(name, candidate.offer)
            return await conformance.provision_offer(name, candidate.offer)

        failover = Failover()
        expected = CapacityError if kind == "capacity" else QuotaError
        try:
            async with conformance.cleanup():
                await _maybe_await(simulation.refuse(kind, refused.offer))
                handle = await try_candidates(failover, candidates, attempt)
                assert failover.attempts and failover.attempts[0].error == expected.__name__, (
                    f"skyhop_provision: refusing {kind} at {refused.place()} must raise "
                    f"{expected.__name__}; the attempts were {failover.attempts}."
                )
                (place,) = failover.blocked
                wanted = "region" if kind == "quota" else ("zone" if refused.offer.zone
                                                           else "region")  # fmt: skip
                assert place[1] == refused.offer.region and (
                    place[2] is None if wanted == "region" else place[2] == refused.offer.zone
                ), (
                    f"skyhop_provision: the {expected.__name__} must name the {wanted} it "
                    f"applies to ({refused.offer.region}/{refused.offer.zone}); it blocked "
                    f"{place} (set region=/zone= on the error)."
                )
                again = [o for o in asked[1:] if blocks(place, Candidate(None, o, 1))]
                assert not again, f"the failover asked again for the refused place: {again}"
                elsewhere = [c for c in candidates if not blocks(place, c)]
                if elsewhere:
                    assert handle is not None, "failover found no other place that worked"
                    assert not blocks(place, Candidate(None, asked[-1], 1))
                    await conformance.down(handle)
                else:
                    assert handle is None
                    assert isinstance(failover.error(name), expected)
                    await conformance.down(conformance.node_less_handle(name, refused.offer))
                await self._assert_nothing_left(
                    conformance, simulation, name, f"a {kind} refusal and failover"
                )
        finally:
            if simulation.lift is not None:
                await _maybe_await(simulation.lift())

    # --- node-less handles and idempotency ----------------------------------------------

    def test_down_of_a_handle_without_nodes(
        self, conformance: BackendHarness, conformance_simulation: Simulation
    ) -> None:
        import trio

        trio.run(self._node_less, conformance, conformance_simulation)

    async def _node_less(self, conformance: BackendHarness, simulation: Simulation) -> None:
        from skyhop_core.models.records import NodeState

        async with conformance.cleanup():
            offer = await conformance.best_offer()
            # A launch that failed before any node existed: nothing to find, no error.
            never = conformance.cluster_name("never")
            await conformance.down(conformance.node_less_handle(never, offer))
            # A launch that made nodes but died before the core stored the handle.
            name = conformance.cluster_name("lost")
            handle = await conformance.provision_offer(name, offer)
            await conformance.down(conformance.node_less_handle(name, offer))
            await self._assert_nothing_left(
                conformance, simulation, name, "`down` of a handle without nodes"
            )
            await conformance.wait_for_nodes(handle, NodeState.TERMINATED, gone_ok=True)

    def test_provision_down_and_stop_are_idempotent(
        self, conformance: BackendHarness, conformance_simulation: Simulation
    ) -> None:
        import trio

        trio.run(self._idempotent, conformance, conformance_simulation)

    async def _idempotent(self, conformance: BackendHarness, simulation: Simulation) -> None:
        from skyhop_core.models.records import Feature, NodeState

        async with conformance.cleanup():
            offer = await conformance.best_offer()
            name = conformance.cluster_name("idem")
            first = await conformance.provision_offer(name, offer)
            again = await conformance.provision_offer(name, offer, previous=first)
            assert [n.instance_id for n in again.nodes] == [n.instance_id for n in first.nodes], (
                "skyhop_provision: provisioning an existing cluster must reuse its nodes; "
                f"got {again.nodes!r} after {first.nodes!r}."
            )
            if conformance.info.supports(Feature.STOP):
                await conformance.stop(again)
                await conformance.wait_for_nodes(again, NodeState.STOPPED)
                await conformance.stop(again)  # stopping a stopped cluster succeeds
                await conformance.wait_for_nodes(again, NodeState.STOPPED)
            await conformance.down(again)
            await conformance.down(again)  # downing a gone cluster succeeds
            await conformance.wait_for_nodes(again, NodeState.TERMINATED, gone_ok=True)
            await self._assert_nothing_left(conformance, simulation, name, "down, twice")


__all__ = ["FailurePathTests", "Simulation"]
