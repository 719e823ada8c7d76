"""What one launch learns while it fails over, and the error it ends with.

A launch walks its ranked candidates (:mod:`skyhop_core.optimizer`). A backend that
answers :class:`~skyhop_core.exceptions.CapacityError` blocks that **zone** (or the region,
when the error names no zone) and a :class:`~skyhop_core.exceptions.QuotaError` blocks
the whole **region**, for every remaining candidate of the launch, whatever its instance
type: the backend is never asked for a refused place again in the same launch. A
``retry_until_up`` round starts with nothing blocked (capacity comes back), and a
managed job's relaunch shares one :class:`Failover` between its restricted first try and
the try anywhere, so a place that refused in the first is not asked again in the second.

When nothing is left, :meth:`Failover.error` is the error the user sees: one line per
attempt (place, instance type, reason), of the most specific type every attempt shares
(``CapacityError`` when all ran out of capacity, ``QuotaError`` when all hit quota, else
``ResourcesUnavailableError``), with ``attempts`` listing them for SDK callers.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar

import attrs

from skyhop_core.exceptions import CapacityError, QuotaError, ResourcesUnavailableError
from skyhop_core.optimizer import Candidate

#: (backend, region, zone); ``None`` region or zone means "all of them".
Place = tuple[str, str | None, str | None]
T = TypeVar("T")


@attrs.frozen
class Attempt:
    """One provisioning attempt that failed over: where, what, and why."""

    backend: str
    region: str | None
    zone: str | None
    instance_type: str
    error: str  #: the error's type name: CapacityError or QuotaError
    reason: str  #: the backend's message

    def where(self) -> str:
        return "/".join(p for p in (self.backend, self.region, self.zone) if p)

    def line(self) -> str:
        return f"{self.where()} {self.instance_type}: {self.error}: {self.reason}"


def blocks(place: Place, candidate: Candidate) -> bool:
    """Whether a block of ``place`` covers ``candidate``'s place."""
    backend, region, zone = candidate.place()
    b_backend, b_region, b_zone = place
    if b_backend != backend:
        return False
    return b_region is None or (b_region == region and (b_zone is None or b_zone == zone))


def refused_place(candidate: Candidate, exc: ResourcesUnavailableError) -> Place:
    """The place an error blocks: a quota error its region, a capacity error its zone.

    The error's own ``backend``/``region``/``zone`` win; what it leaves out comes from
    the candidate's offer.
    """
    offer = candidate.offer
    backend = exc.backend or offer.backend
    region = exc.region if exc.region is not None else offer.region
    if isinstance(exc, QuotaError):
        return (backend, region, None)
    if exc.region is not None and exc.zone is None:
        return (backend, region, None)  # the backend says the whole region is full
    zone = exc.zone if exc.zone is not None else offer.zone
    return (backend, region, zone)


@attrs.define
class Failover:
    """The places that refused during one launch, and every failed attempt, in order."""

    #: Places never to try in this launch (a managed job's "not where it was preempted").
    avoid: frozenset[Place] = frozenset()
    blocked: set[Place] = attrs.field(factory=set)
    attempts: list[Attempt] = attrs.field(factory=list)

    def all_blocked(self) -> frozenset[Place]:
        return frozenset(self.blocked | set(self.avoid))

    def allows(self, candidate: Candidate) -> bool:
        return not any(blocks(place, candidate) for place in self.all_blocked())

    def refused(self, candidate: Candidate, exc: ResourcesUnavailableError) -> Attempt:
        """Record that ``candidate`` failed with ``exc`` and block the place it names."""
        self.blocked.add(refused_place(candidate, exc))
        offer = candidate.offer
        attempt = Attempt(
            backend=offer.backend, region=offer.region, zone=offer.zone,
            instance_type=offer.instance_type, error=type(exc).__name__, reason=str(exc),
        )  # fmt: skip
        self.attempts.append(attempt)
        return attempt

    def new_round(self) -> None:
        """A ``retry_until_up`` round: capacity and quota may have come back everywhere."""
        self.blocked.clear()

    def error(self, cluster_name: str) -> ResourcesUnavailableError:
        """The error for a launch that ran out of candidates."""
        kinds = {a.error for a in self.attempts}
        cls: type[ResourcesUnavailableError] = ResourcesUnavailableError
        if kinds == {"CapacityError"}:
            cls = CapacityError
        elif kinds == {"QuotaError"}:
            cls = QuotaError
        n = len(self.attempts)
        lines = [a.line() for a in self.attempts]
        message = (
            f"Failed to provision cluster {cluster_name!r} after {n} attempt"
            f"{'s' if n != 1 else ''}; every place it may run refused:\n"
            + "\n".join(f"  {i}. {line}" for i, line in enumerate(lines, 1))
            + "\nTry other regions or instance types, or launch with --retry-until-up."
        )
        fields: dict[str, Any] = {
            "failover_history": lines,
            "attempts": [attrs.asdict(a) for a in self.attempts],
        }
        if len({(a.backend, a.region) for a in self.attempts}) == 1:
            only = self.attempts[0]
            fields.update(backend=only.backend, region=only.region)
            if len({a.zone for a in self.attempts}) == 1:
                fields["zone"] = only.zone
        return cls(message, **fields)


async def try_candidates(
    failover: Failover,
    candidates: Iterable[Candidate],
    attempt: Callable[[Candidate], Awaitable[T]],
    *,
    on_refused: Callable[[Candidate, Attempt], Awaitable[None]] | None = None,
) -> T | None:
    """Call ``attempt`` on each candidate ``failover`` still allows, best first.

    A ``CapacityError``/``QuotaError`` blocks its place (re-checked before every
    candidate, so a refusal also skips the place's other instance types) and moves on;
    any other error propagates. Returns the first result, or None when none succeeded.
    """
    for candidate in candidates:
        if not failover.allows(candidate):
            continue
        try:
            return await attempt(candidate)
        except (CapacityError, QuotaError) as exc:
            refusal = failover.refused(candidate, exc)
            if on_refused is not None:
                await on_refused(candidate, refusal)
    return None
