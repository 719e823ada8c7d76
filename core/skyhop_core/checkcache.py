"""Backend ``skyhop_check`` results, kept a short while across requests.

A check can be expensive (AWS builds a boto3 session and calls STS; ``local`` probes
its sandbox; ``ssh`` reads its pools), and every plan asks every enabled backend, so
200 managed jobs launching at once asked each backend hundreds of times. The server
keeps one :class:`CheckCache` (``Services.check_cache``) shared by every optimizer:

- an entry lives ``SKYHOP_CHECK_CACHE_SECONDS`` (default :data:`DEFAULT_TTL`; ``0``
  turns the cache off);
- it is keyed by the backend *and* its config section, so a changed config section is
  never answered from the old one's entry;
- ``skyhop check`` runs every check afresh and replaces the entries
  (:meth:`CheckCache.invalidate` then :meth:`CheckCache.put`);
- concurrent misses for the same key share one check (the others wait for it);
- a check that raised is not kept.

The optimizer never refuses on a *cached* "not enabled": it checks again first (see
:meth:`skyhop_core.optimizer.Optimizer.candidates`), so a user who just fixed their
credentials is not told to fix them for the rest of the TTL.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any

import trio

from skyhop_core.models.records import CheckResult

#: Seconds a check result is reused (SkyPilot keeps its enabled clouds until the next
#: ``sky check``; a short TTL also notices credentials that expire or appear).
DEFAULT_TTL = 30.0


def config_fingerprint(config: Any) -> str:
    """A stable text form of a backend's config section (the cache key's second part)."""
    return json.dumps(config, sort_keys=True, default=repr)


class CheckCache:
    """Check results by (backend, config fingerprint), each for ``ttl`` seconds."""

    def __init__(
        self, ttl: float | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if ttl is None:
            ttl = float(os.environ.get("SKYHOP_CHECK_CACHE_SECONDS", DEFAULT_TTL))
        self.ttl = ttl
        self._clock = clock
        #: (backend, fingerprint) -> (stored at, result)
        self._entries: dict[tuple[str, str], tuple[float, CheckResult]] = {}
        self._inflight: dict[tuple[str, str], trio.Event] = {}
        #: Bumped by every invalidation: a check that started before one is not stored.
        self._generation = 0
        #: How many checks were really run (tests and benchmarks read it).
        self.misses = 0

    def cached(self, backend: str, config: Any) -> CheckResult | None:
        """The live entry for ``backend`` with this config, if any."""
        entry = self._entries.get((backend, config_fingerprint(config)))
        if entry is None or self._clock() - entry[0] >= self.ttl:
            return None
        return entry[1]

    def put(self, backend: str, config: Any, result: CheckResult) -> None:
        if self.ttl > 0:
            self._entries[(backend, config_fingerprint(config))] = (self._clock(), result)

    def invalidate(self, backend: str | None = None) -> None:
        """Forget every entry (or ``backend``'s); checks in flight are not stored."""
        self._generation += 1
        if backend is None:
            self._entries.clear()
        else:
            for key in [k for k in self._entries if k[0] == backend]:
                del self._entries[key]

    async def get(
        self,
        backend: str,
        config: Any,
        run: Callable[[], Awaitable[CheckResult]],
        *,
        fresh: bool = False,
    ) -> tuple[CheckResult, bool]:
        """(the result, whether it came from the cache). ``run`` does the real check;
        ``fresh`` skips the cache (the result is still stored)."""
        key = (backend, config_fingerprint(config))
        while not fresh:
            hit = self.cached(backend, config)
            if hit is not None:
                return hit, True
            pending = self._inflight.get(key)
            if pending is None:
                break
            await pending.wait()  # someone is checking: take theirs (or check if it raised)
            fresh = self.cached(backend, config) is None
        done = self._inflight[key] = trio.Event()
        generation = self._generation
        try:
            self.misses += 1
            result = await run()
            if generation == self._generation:
                self.put(backend, config, result)
            return result, False
        finally:
            if self._inflight.get(key) is done:
                del self._inflight[key]
            done.set()
