"""Group commit: queued writes applied together, one transaction per batch.

Two writers share the contract below: :class:`GroupWriter` (the default) applies a
batch on one writer thread; :class:`InlineWriter` (SQLite only, opt-in) on the event loop.

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
``SKYHOP_DB_WRITER=inline`` picks the inline writer for SQLite (see :func:`make_writer`).
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import sqlalchemy as sa
from trio import lowlevel

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
    return lowlevel.Abort.FAILED


def apply_batch(engine: sa.Engine, batch: list[_Write]) -> None:
    """Run ``batch`` in one transaction; if it fails, each write in one of its own."""
    try:
        with engine.begin() as conn:
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
            with engine.begin() as conn:
                write.value = write.fn(conn, *write.args)
        except BaseException as exc:
            write.error = exc


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
        apply_batch(self.engine, batch)

    @staticmethod
    def _wake(batch: list[_Write]) -> None:
        by_token: dict[Any, list[_Write]] = {}
        for write in batch:
            by_token.setdefault(write.token, []).append(write)
        for token, writes in by_token.items():

            def wake(writes: list[_Write] = writes) -> None:
                for write in writes:
                    lowlevel.reschedule(write.task)

            try:
                token.run_sync_soon(wake)
            except Exception:  # noqa: S112 - that trio run is over: nobody waits
                continue


class InlineWriter:
    """Group commit on the event loop itself, for SQLite (no thread, no hop).

    A SQLite transaction of a few short statements commits in tens of microseconds (WAL,
    ``synchronous=NORMAL``: no fsync per commit), less than handing it to a thread costs
    — and the hand-off is worse than its CPU: the thread and the event loop then take
    turns at the GIL, and a single client's read waited milliseconds for it. The first
    caller to find no batch under way leads one: it yields once, so that every task that
    can run now queues its write too, then applies all of them in one transaction and
    reschedules their callers; the others park until then (uncancellably, like the
    thread writer's callers). Same durability: nobody resumes before the commit that
    holds its write. A write that waits for a lock (another connection's transaction)
    holds up the event loop meanwhile, so ``fn`` must stay short, as for the thread
    writer.

    Opt-in (``SKYHOP_DB_WRITER=inline``): a bare write took less CPU (140 against 180 us
    for a ``status`` query), but a whole read through the server took more, and on a
    machine whose cores were oversubscribed a single client's read took 6 ms instead of
    1 (the one busy thread waits for a core; the thread writer's event loop sleeps and
    is woken first). See bench/RESULTS.md, "Request path, round 3".
    """

    def __init__(self, engine: sa.Engine, *, max_batch: int = MAX_BATCH) -> None:
        self.engine = engine
        self.max_batch = max_batch
        self._queue: collections.deque[_Write] = collections.deque()
        self._leading = False
        self._closed = False
        self.batches = 0
        self.writes = 0

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Queue ``fn(connection, *args)``; return its value once its batch committed."""
        if self._closed:
            raise RuntimeError("the store's writer is closed")
        write = _Write(fn, args, None, lowlevel.current_task())
        self._queue.append(write)
        if self._leading:
            await lowlevel.wait_task_rescheduled(_refuse_abort)
        else:
            self._leading = True
            try:
                await lowlevel.cancel_shielded_checkpoint()  # let the others queue theirs
                while self._queue:
                    count = min(len(self._queue), self.max_batch)
                    batch = [self._queue.popleft() for _ in range(count)]
                    apply_batch(self.engine, batch)
                    self.batches += 1
                    self.writes += len(batch)
                    for other in batch:
                        if other is not write:
                            lowlevel.reschedule(other.task)
            finally:
                self._leading = False
        if write.error is not None:
            raise write.error
        return write.value  # type: ignore[no-any-return]

    def close(self, timeout: float = 10.0) -> None:
        """Later writes raise (nothing is ever left queued: a batch is applied at once)."""
        self._closed = True


def make_writer(engine: sa.Engine, kind: str | None = None) -> GroupWriter | InlineWriter:
    """The writer for ``engine``: ``kind`` (``inline`` or ``thread``), else
    ``SKYHOP_DB_WRITER``, else the thread writer. Inline is for SQLite only (a server
    database's statements wait on the network: never on the event loop)."""
    import os

    kind = kind or os.environ.get("SKYHOP_DB_WRITER") or "thread"
    if kind not in ("inline", "thread"):
        raise ValueError(f"SKYHOP_DB_WRITER={kind!r}: use inline or thread.")
    if kind == "inline" and engine.dialect.name == "sqlite":
        return InlineWriter(engine)
    return GroupWriter(engine)
