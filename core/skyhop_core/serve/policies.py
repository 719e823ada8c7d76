"""Load-balancing policies: which ready replica gets the next request.

``round_robin`` cycles through the ready replicas. ``least_load`` picks the replica with
the fewest requests in flight; ties rotate, so equal replicas share the load instead of
the first one taking it all. In-flight counts are kept by the load balancer with
:meth:`Policy.acquire` / :meth:`Policy.release` around every proxied request, on every
path (errors and cancellation included), so they never leak or go negative.
"""

from __future__ import annotations

from collections.abc import Collection


class Policy:
    """Chooses among ready replica IDs; counts requests in flight per replica."""

    def __init__(self) -> None:
        self.in_flight: dict[int, int] = {}
        self._turn = 0

    def choose(self, ready: list[int], exclude: Collection[int] = ()) -> int | None:
        """A replica ID from ``ready`` (minus ``exclude``), or None."""
        candidates = [r for r in ready if r not in exclude]
        if not candidates:
            return None
        return self._pick(candidates)

    def _pick(self, candidates: list[int]) -> int:
        choice = candidates[self._turn % len(candidates)]
        self._turn += 1
        return choice

    def acquire(self, replica_id: int) -> None:
        self.in_flight[replica_id] = self.in_flight.get(replica_id, 0) + 1

    def release(self, replica_id: int) -> None:
        left = self.in_flight.get(replica_id, 0) - 1
        if left > 0:
            self.in_flight[replica_id] = left
        else:
            self.in_flight.pop(replica_id, None)

    def load(self, replica_id: int) -> int:
        return self.in_flight.get(replica_id, 0)


class RoundRobin(Policy):
    pass


class LeastLoad(Policy):
    def _pick(self, candidates: list[int]) -> int:
        # Rotate the starting point, then take the first with the least load: ties go
        # round the replicas.
        start = self._turn % len(candidates)
        self._turn += 1
        rotated = candidates[start:] + candidates[:start]
        return min(rotated, key=self.load)


def make_policy(name: str) -> Policy:
    if name == "round_robin":
        return RoundRobin()
    if name == "least_load":
        return LeastLoad()
    raise ValueError(f"Unknown load_balancing_policy {name!r}: use round_robin or least_load.")
