"""Group commit: one writer thread applies queued writes, one transaction per batch.

Every request writes its row at least once (submitted, finished). Giving each write its
own worker thread and its own transaction costs a thread hop, a commit and — worst on a
2-core machine — the event loop waiting for the GIL while those threads run
SQLAlchemy. :class:`GroupWriter` keeps one thread per store instead: callers queue a
function of a connection and wait; the thread takes everything queued so far, runs it in
one transaction, commits, and wakes all its callers at once. Under load a batch holds
dozens of writes for the price of one commit and one wake-up.

Durability is the same as one transaction per write: a caller is woken only after the
commit that holds its write, so whatever it then acknowledges to a client is on disk
(SQLite WAL; survives a SIGKILL of the server). If a batch fails, it is rolled back and
each of its writes is retried in a transaction of its own, so one bad write fails alone.
A caller that is cancelled while waiting still has its write applied (it was queued):
waiting cannot be cancelled, as ``trio.to_thread.run_sync`` without abandoning cannot
(the caller's cancellation is delivered at its next checkpoint).

The thread starts at the first write and exits after :data:`IDLE_SECONDS` without work.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import sqlalchemy as sa

T = TypeVar("T")

#: Most writes applied in one transaction.
MAX_BATCH = 512
#: The writer thread exits after this long without writes (a new one starts on demand).
IDLE_SECONDS = 10.0


class _Write:
    __slots__ = ("fn", "args", "token", "task", "value", "error")

    def __init__(self, fn: Callable[..., Any], args: tuple[Any, ...], token: Any, task: Any):
        self.fn, self.args, self.token, self.task = fn, args, token, task
        self.value: Any = None
        self.error: BaseException | None = None


def _refuse_abort(_raise_cancel: Any) -> Any:
    """A write's caller cannot be cancelled out of its wait: its write is queued."""
    import trio

    return trio.lowlevel.Abort.FAILED


class GroupWriter:
    """Applies ``fn(connection, *args)`` calls from trio tasks in grouped transactions."""

    def __init__(self, engine: sa.Engine, *, max_batch: int = MAX_BATCH) -> None:
        self.engine = engine
        self.max_batch = max_batch
        self._queue: collections.deque[_Write] = collections.deque()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._closed = False
        #: Batches committed and writes applied (for tests and the benchmark).
        self.batches = 0
        self.writes = 0

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Queue ``fn(connection, *args)``; return its value once its batch committed."""
        from trio import lowlevel

        write = _Write(fn, args, lowlevel.current_trio_token(), lowlevel.current_task())
        with self._cond:
            if self._closed:
                raise RuntimeError("the store's writer is closed")
            self._queue.append(write)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._loop, name="skyhop-db-writer", daemon=True
                )
                self._thread.start()
            else:
                self._cond.notify()
        # Parked until the writer reschedules us, uncancellably (as a shielded wait, for
        # the price of no cancel scope and no Event: this is every request's path).
        await lowlevel.wait_task_rescheduled(_refuse_abort)
        if write.error is not None:
            raise write.error
        return write.value  # type: ignore[no-any-return]

    def close(self, timeout: float = 10.0) -> None:
        """Apply what is queued, then stop the thread (later writes raise)."""
        with self._cond:
            self._closed = True
            thread = self._thread
            self._cond.notify()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    # --- the writer thread ---------------------------------------------------------------

    def _take(self) -> list[_Write] | None:
        with self._cond:
            while not self._queue:
                if self._closed or not self._cond.wait(IDLE_SECONDS) and not self._queue:
                    self._thread = None
                    return None
            batch: list[_Write] = []
            while self._queue and len(batch) < self.max_batch:
                batch.append(self._queue.popleft())
            return batch

    def _loop(self) -> None:
        while (batch := self._take()) is not None:
            self._apply(batch)
            self.batches += 1
            self.writes += len(batch)
            self._wake(batch)

    def _apply(self, batch: list[_Write]) -> None:
        try:
            with self.engine.begin() as conn:
                for write in batch:
                    write.value = write.fn(conn, *write.args)
            return
        except BaseException as exc:
            if len(batch) == 1:
                batch[0].error = exc
                return
        for write in batch:  # the batch rolled back: each write on its own
            write.value = None
            try:
                with self.engine.begin() as conn:
                    write.value = write.fn(conn, *write.args)
            except BaseException as exc:
                write.error = exc

    @staticmethod
    def _wake(batch: list[_Write]) -> None:
        by_token: dict[Any, list[_Write]] = {}
        for write in batch:
            by_token.setdefault(write.token, []).append(write)
        for token, writes in by_token.items():

            def wake(writes: list[_Write] = writes) -> None:
                from trio.lowlevel import reschedule

                for write in writes:
                    reschedule(write.task)

            try:
                token.run_sync_soon(wake)
            except Exception:  # noqa: S112 - that trio run is over: nobody waits
                continue
