"""Cancelling a hook call after a given number of its scheduling steps, for the suite.

A trio task runs in *steps*: from one checkpoint (an ``await`` that yields: I/O, a
sleep, a thread finishing) to the next. :func:`call_cancelled_after` runs a hook call in
its own task, counts the steps that task and its children take, and cancels the call
right after step ``n``. Counting first how many steps a whole call takes
(:func:`count_steps`) lets the suite cancel it "right away", "mid-way" and "just before it
returns" without knowing anything about the backend, and repeatably enough: a cloud
call running in a thread when the cancel comes finishes there (its result is thrown
away), which is exactly the "create call cancelled in flight" case a backend must clean
up after.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import trio


class _StepCounter(trio.abc.Instrument):
    """Counts the steps of one task and its descendants; cancels ``scope`` at ``limit``."""

    def __init__(self, limit: int | None, scope: trio.CancelScope) -> None:
        self.root: trio.lowlevel.Task | None = None
        self.limit = limit
        self.scope = scope
        self.steps = 0

    def _ours(self, task: trio.lowlevel.Task) -> bool:
        current: trio.lowlevel.Task | None = task
        while current is not None:
            if current is self.root:
                return True
            nursery = current.parent_nursery
            current = nursery.parent_task if nursery is not None else None
        return False

    def after_task_step(self, task: trio.lowlevel.Task) -> None:
        if self.root is None or not self._ours(task):
            return
        self.steps += 1
        if self.limit is not None and self.steps >= self.limit:
            self.scope.cancel()


async def _run(
    call: Callable[[], Awaitable[Any]], limit: int | None
) -> tuple[Any, bool, int]:
    """(result or None, whether it was cancelled, steps counted)."""
    scope = trio.CancelScope()
    counter = _StepCounter(limit, scope)
    box: list[Any] = []

    async def body() -> None:
        counter.root = trio.lowlevel.current_task()
        with scope:
            if limit is not None and limit <= 0:
                scope.cancel()
            box.append(await call())

    trio.lowlevel.add_instrument(counter)
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(body)
    finally:
        trio.lowlevel.remove_instrument(counter)
    if box:
        return box[0], False, counter.steps
    return None, True, counter.steps


async def count_steps(call: Callable[[], Awaitable[Any]]) -> tuple[Any, int]:
    """Run ``call`` to the end; return its result and the number of steps it took."""
    result, _, steps = await _run(call, None)
    return result, steps


async def call_cancelled_after(
    call: Callable[[], Awaitable[Any]], steps: int
) -> tuple[Any, bool]:
    """Run ``call``, cancelling it after ``steps`` steps (0: before it starts).

    Returns ``(result, False)`` when it finished first, ``(None, True)`` when cancelled.
    """
    result, cancelled, _ = await _run(call, steps)
    return result, cancelled
