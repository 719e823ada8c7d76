"""What a refusal blocks, and the error a launch ends with (skyhop_core.failover).

The whole path (server, backend, request log) is in tests/plugins/test_failover_learns.py;
these pin the rules themselves: which place each kind of error blocks, and which type
the final error has.
"""

from __future__ import annotations

import pytest
import trio

from skyhop_core import wire
from skyhop_core.exceptions import CapacityError, QuotaError, ResourcesUnavailableError
from skyhop_core.failover import Failover, refused_place, try_candidates
from skyhop_core.models.records import Offer
from skyhop_core.optimizer import Candidate


def cand(region: str, zone: str | None, instance_type: str = "small") -> Candidate:
    return Candidate(None, Offer("cloud", instance_type, 1, 1, region=region, zone=zone), 1)


@pytest.mark.parametrize(
    ("error", "place"),
    [
        (CapacityError("full"), ("cloud", "r1", "r1a")),
        (CapacityError("full", region="r1", zone="r1a"), ("cloud", "r1", "r1a")),
        (CapacityError("the region is full", region="r1"), ("cloud", "r1", None)),
        (QuotaError("quota"), ("cloud", "r1", None)),
        (QuotaError("quota", region="r1", zone="r1a"), ("cloud", "r1", None)),
        (CapacityError("full", backend="other", region="x"), ("other", "x", None)),
    ],
)
def test_what_a_refusal_blocks(error: ResourcesUnavailableError, place: tuple) -> None:
    assert refused_place(cand("r1", "r1a"), error) == place


def test_a_refused_place_is_skipped_for_every_instance_type_and_other_errors_propagate() -> None:
    candidates = [cand("r1", "r1a"), cand("r1", "r1b"), cand("r1", "r1a", "big"),
                  cand("r2", "r2a"), cand("r2", "r2a", "big")]  # fmt: skip
    asked: list[tuple[str | None, str]] = []

    async def attempt(c: Candidate) -> str:
        asked.append((c.offer.zone, c.offer.instance_type))
        if c.offer.region == "r1":
            raise QuotaError("no quota in r1")
        if c.offer.instance_type == "small":
            raise CapacityError("no small in r2a")
        return "up"

    failover = Failover()
    assert trio.run(try_candidates, failover, candidates, attempt) is None
    # r2a's small refused on capacity: the zone is blocked for "big" too.
    assert asked == [("r1a", "small"), ("r2a", "small")]

    async def broken(c: Candidate) -> str:
        raise RuntimeError("the backend is broken")

    with pytest.raises(RuntimeError):
        trio.run(try_candidates, Failover(), candidates, broken)


def test_the_final_error_has_the_shared_type_one_line_each_and_crosses_the_wire() -> None:
    failover = Failover()
    failover.refused(cand("r1", "r1a"), CapacityError("no capacity in r1a"))
    failover.refused(cand("r1", "r1b"), CapacityError("no capacity in r1b"))
    error = failover.error("dev")
    assert type(error) is CapacityError
    assert (error.backend, error.region, error.zone) == ("cloud", "r1", None)
    assert str(error).splitlines()[1:3] == [
        "  1. cloud/r1/r1a small: CapacityError: no capacity in r1a",
        "  2. cloud/r1/r1b small: CapacityError: no capacity in r1b",
    ]
    back = wire.decode_error(wire.encode_error(error))
    assert type(back) is CapacityError and back.attempts == error.attempts
    assert back.attempts[1]["zone"] == "r1b" and str(back) == str(error)

    failover.refused(cand("r2", None), QuotaError("no quota in r2"))
    mixed = failover.error("dev")
    assert type(mixed) is ResourcesUnavailableError
    assert mixed.region is None and len(mixed.failover_history) == 3


def test_a_new_round_unblocks_but_avoid_stays() -> None:
    failover = Failover(avoid=frozenset({("cloud", "r2", None)}))
    failover.refused(cand("r1", "r1a"), CapacityError("full"))
    assert not failover.allows(cand("r1", "r1a")) and not failover.allows(cand("r2", "r2a"))
    failover.new_round()
    assert failover.allows(cand("r1", "r1a")) and not failover.allows(cand("r2", "r2a"))
    assert len(failover.attempts) == 1
