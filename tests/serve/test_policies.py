"""Load-balancing policies and the autoscaler's decisions (pure logic)."""

from __future__ import annotations

from collections import Counter

from skyhop_core.models.service_spec import parse_service
from skyhop_core.serve import autoscaler
from skyhop_core.serve.policies import LeastLoad, RoundRobin


def test_round_robin_cycles_through_ready_replicas() -> None:
    policy = RoundRobin()
    picks = [policy.choose([1, 2, 3]) for _ in range(6)]
    assert picks == [1, 2, 3, 1, 2, 3]
    assert policy.choose([1, 2], exclude={1, 2}) is None


def test_least_load_picks_the_idlest_and_rotates_ties() -> None:
    policy = LeastLoad()
    policy.acquire(1)
    policy.acquire(1)
    policy.acquire(2)
    assert policy.choose([1, 2, 3]) == 3
    policy.release(1)
    policy.release(1)
    policy.release(2)
    # All idle: ties go round, not always to the first.
    assert Counter(policy.choose([1, 2, 3]) for _ in range(30)) == {1: 10, 2: 10, 3: 10}


def test_in_flight_counts_never_go_negative() -> None:
    policy = LeastLoad()
    policy.release(7)  # a release without acquire (must not happen, must not hurt)
    assert policy.load(7) == 0
    policy.acquire(7)
    policy.release(7)
    policy.release(7)
    assert policy.load(7) == 0 and policy.in_flight == {}


def _policy(**kw: object):  # type: ignore[no-untyped-def]
    base = {"min_replicas": 1, "max_replicas": 5, "target_qps_per_replica": 2,
            "upscale_delay_seconds": 10, "downscale_delay_seconds": 20}
    return parse_service({"readiness_probe": "/",
                          "replica_policy": {**base, **kw}}).replica_policy


def test_fixed_services_want_their_replicas() -> None:
    fixed = parse_service({"readiness_probe": "/", "replicas": 3}).replica_policy
    assert autoscaler.decide(fixed, {}, qps=100, now=0)["target"] == 3


def test_upscale_waits_for_consistently_higher_demand() -> None:
    policy = _policy()
    state = autoscaler.decide(policy, {}, qps=7, now=0)  # wants ceil(7/2) = 4
    assert state["target"] == 1 and state["upscale_since"] == 0
    state = autoscaler.decide(policy, state, qps=7, now=5)
    assert state["target"] == 1
    state = autoscaler.decide(policy, state, qps=7, now=10)
    assert state["target"] == 4
    # A dip resets the clock.
    state = autoscaler.decide(policy, state, qps=20, now=11)
    state = autoscaler.decide(policy, state, qps=8, now=12)  # wants 4 = target
    assert state["upscale_since"] is None
    state = autoscaler.decide(policy, state, qps=20, now=13)
    assert autoscaler.decide(policy, state, qps=20, now=22)["target"] == 4
    assert autoscaler.decide(policy, state, qps=20, now=23)["target"] == 5  # clipped to max


def test_downscale_waits_longer_and_from_zero_is_at_once() -> None:
    policy = _policy(min_replicas=0)
    state = {"target": 3}
    state = autoscaler.decide(policy, state, qps=0, now=0)
    assert autoscaler.decide(policy, state, qps=0, now=19)["target"] == 3
    state = autoscaler.decide(policy, state, qps=0, now=20)
    assert state["target"] == 0
    assert autoscaler.decide(policy, state, qps=0.1, now=21)["target"] == 1
    assert autoscaler.launch_target(_policy(num_overprovision=2), {"target": 1}) == 3
