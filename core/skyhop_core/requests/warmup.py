"""Slow one-time set-up of the server (building the task validator imports jsonschema:
~40 ms of CPU), done on a worker thread at a moment it costs nobody anything.

Done right after start-up, it took the GIL from the first command's request: the read
that an auto-started server answers first waited ~45 ms for it. So it waits until the
server has been quiet for :data:`QUIET_SECONDS` (at most :data:`LATEST_SECONDS` after
start), and a request that needs it first (a task to validate) waits for it on the
thread instead of building it on the event loop.
"""

from __future__ import annotations

from collections.abc import Callable

import trio

#: How long without a new request counts as quiet.
QUIET_SECONDS = 0.25
#: Seconds after start by which the set-up runs however busy the server is.
LATEST_SECONDS = 10.0


class WarmUp:
    """``fn`` (blocking, idempotent) run once on a worker thread."""

    def __init__(self, fn: Callable[[], object]) -> None:
        self._fn = fn
        self._done = trio.Event()
        self._started = False

    @property
    def started(self) -> bool:
        return self._started

    @property
    def done(self) -> bool:
        return self._done.is_set()

    async def ensure(self) -> None:
        """Return once ``fn`` has run, running it if nobody has started it. A failure is
        not raised here: whoever needs what ``fn`` builds builds it again, and raises."""
        if self._started:
            await self._done.wait()
            return
        self._started = True
        try:
            await trio.to_thread.run_sync(self._fn)  # not abandoned on cancel: it finishes
        except Exception:  # noqa: S110 - see the docstring
            pass
        finally:
            self._done.set()

    async def when_quiet(
        self,
        last_request: Callable[[], float],
        quiet: float = QUIET_SECONDS,
        latest: float = LATEST_SECONDS,
    ) -> None:
        """Run ``fn`` once ``quiet`` seconds passed since ``last_request()`` (a
        ``trio.current_time()``), or ``latest`` seconds from now."""
        deadline = trio.current_time() + latest
        while not self._started and trio.current_time() < deadline:
            quiet_at = last_request() + quiet
            if trio.current_time() >= quiet_at:
                break
            await trio.sleep_until(min(quiet_at, deadline))
        await self.ensure()
