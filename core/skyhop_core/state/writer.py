"""Group commit: queued writes applied together, one transaction per batch.

Two writers share the contract below: :class:`GroupWriter` applies a batch on one
writer thread; :class:`InlineWriter` (SQLite only) on the event loop. The default for a
SQLite file is both: writes that come one at a time go inline (a hop to a thread and back
costs more than the write), writes that come together are batched on the thread (where
SQLite's own work runs beside the event loop instead of on it).

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

The thread starts at the first write it gets and exits after :data:`IDLE_SECONDS`
without work. ``SKYHOP_DB_WRITER`` picks ``thread`` or ``inline`` only (see
:func:`make_writer`).
"""

from __future__ import annotations

import collections
import contextlib
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

    def __init__(
        self, engine: sa.Engine, *, max_batch: int = MAX_BATCH, inline: InlineWriter | None = None
    ) -> None:
        self.engine = engine
        self.max_batch = max_batch
        self._queue: collections.deque[_Write] = collections.deque()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._applying = False
        #: Applies writes on the event loop while they come one at a time (see run).
        self.inline = inline
        #: Batches committed and writes applied (for tests and the benchmark).
        self.batches = 0
        self.writes = 0
        self.last_batch = 0

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Queue ``fn(connection, *args)``; return its value once its batch committed.

        With an :attr:`inline` writer, a write that comes alone — the last batch held
        one write, and this thread has nothing queued or under way — is applied on the
        event loop instead (no hop to this thread and back: a single client's read is
        two writes); as soon as writes come together, they are batched here again. Order
        is kept: a write goes inline only when nothing is pending here, and while an
        inline batch is under way every write joins it.
        """
        inline = self._quiet_inline()
        if inline is not None:
            try:
                return await inline.run(fn, *args)
            finally:
                self.last_batch = inline.last_batch  # the most recent batch, either writer
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

    async def read(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(connection, *args)`` for a short read: on the event loop, outside any
        write transaction, when a write would go inline (see :meth:`run`); else it
        joins the thread's next batch. Either way it sees every write acknowledged
        before it was called."""
        inline = self._quiet_inline()
        if inline is not None:
            return await inline.read(fn, *args)
        return await self.run(fn, *args)

    def _quiet_inline(self) -> InlineWriter | None:
        """The inline writer, when a call should go to it (see :meth:`run`)."""
        inline = self.inline
        if inline is not None and (inline.leading or (self.last_batch <= 1 and self._idle())):
            return inline
        return None

    def _idle(self) -> bool:
        with self._cond:
            return not self._queue and not self._applying and not self._closed

    def close(self, timeout: float = 10.0) -> None:
        """Apply what is queued, then stop the thread (later writes raise)."""
        if self.inline is not None:
            self.inline.close()
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
            self._applying = True
            return batch

    def _loop(self) -> None:
        while (batch := self._take()) is not None:
            self._apply(batch)
            with self._cond:
                self._applying = False
            self.batches += 1
            self.writes += len(batch)
            self.last_batch = len(batch)
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
    """Group commit on the event loop itself, for a SQLite file (no thread, no hop).

    A SQLite transaction of a few short statements commits in tens of microseconds (WAL,
    ``synchronous=NORMAL``: no fsync per commit), less than handing it to a thread costs
    — and the hand-off is worse than its CPU: the thread and the event loop then take
    turns at the GIL, twice per write. The first caller to find no batch under way leads
    one: it yields once, so that every task that can run now queues its write too, then
    applies all of them in one transaction and reschedules their callers; the others
    park until then (uncancellably, like the thread writer's callers). Same durability:
    nobody resumes before the commit that holds its write.

    The event loop never waits on the disk or on another connection: the batch runs on
    a connection of its own that takes SQLite's write lock with ``BEGIN IMMEDIATE`` and
    no busy timeout, so when another connection holds the lock (a ``Store.run``
    transaction on a worker thread, another process) the batch is applied on a worker
    thread instead, waiting there; and that connection never checkpoints the WAL on
    commit (which writes the database file and syncs it): every
    :data:`CHECKPOINT_EVERY` commits a passive checkpoint runs on a worker thread.
    """

    #: Inline commits between two WAL checkpoints (SQLite's own default is 1,000 pages).
    CHECKPOINT_EVERY = 500

    def __init__(
        self, engine: sa.Engine, *, max_batch: int = MAX_BATCH, limiter: Any = None
    ) -> None:
        self.engine = engine
        self.max_batch = max_batch
        #: Bounds the worker threads of the fallbacks (the store's: each holds one of
        #: the pool's connections); None: trio's default.
        self.limiter = limiter
        self._queue: collections.deque[_Write] = collections.deque()
        self._leading = False
        self._closed = False
        self._inline = _inline_engine(engine)
        #: The event loop's one connection, kept open between batches (a checkout and
        #: a check-in, with its reset, cost as much as a short write).
        self._conn: sa.Connection | None = None
        self._since_checkpoint = 0
        self.batches = 0
        self.writes = 0
        self.last_batch = 0
        #: Batches handed to a worker thread because SQLite's write lock was taken.
        self.deferred = 0

    @property
    def leading(self) -> bool:
        """Whether a batch is being gathered or applied (a new write joins it)."""
        return self._leading

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
                    await self._apply(batch)
                    for other in batch:
                        if other is not write:
                            lowlevel.reschedule(other.task)
            finally:
                self._leading = False
        if write.error is not None:
            raise write.error
        return write.value  # type: ignore[no-any-return]

    async def read(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(connection, *args)`` on the event loop's connection, outside a write
        transaction: a read of the committed state (WAL readers take no lock), without
        the ``BEGIN IMMEDIATE`` and commit a write costs. Writes queued but not yet
        committed (a batch being gathered) are not seen: nobody was told they happened.
        Should SQLite refuse the read at once (busy), it runs on a worker thread."""
        import trio

        if self._closed:
            raise RuntimeError("the store's writer is closed")
        conn = self._connection()
        try:
            return fn(conn, *args)
        except sa.exc.OperationalError:
            pass
        finally:
            with contextlib.suppress(Exception):
                conn.rollback()  # ends the statement's implicit transaction

        def on_thread() -> T:
            with self.engine.begin() as other:
                return fn(other, *args)

        return await trio.to_thread.run_sync(on_thread, limiter=self.limiter)

    def _connection(self) -> sa.Connection:
        if self._conn is None:
            self._conn = self._inline.connect()
        return self._conn

    def _drop_connection(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    async def _apply(self, batch: list[_Write]) -> None:
        """Apply ``batch`` here, or — the write lock taken, or the batch failed — on a
        worker thread, where it waits for the lock and each write is retried alone."""
        import trio

        applied, usable = _apply_if_unlocked(self._connection(), batch)
        if not usable:
            self._drop_connection()
        if not applied:
            self.deferred += 1
            await trio.to_thread.run_sync(apply_batch, self.engine, batch, limiter=self.limiter)
        self.batches += 1
        self.writes += len(batch)
        self.last_batch = len(batch)
        self._since_checkpoint += 1
        if self._since_checkpoint >= self.CHECKPOINT_EVERY:
            self._since_checkpoint = 0
            await trio.to_thread.run_sync(_checkpoint, self.engine, limiter=self.limiter)

    def close(self, timeout: float = 10.0) -> None:
        """Later writes raise (nothing is ever left queued: a batch is applied at once)."""
        if not self._closed:
            self._closed = True
            self._drop_connection()
            self._inline.dispose()


def _inline_engine(engine: sa.Engine) -> sa.Engine:
    """One connection to ``engine``'s SQLite file for the event loop: no busy timeout,
    no checkpoint on commit, transactions begun explicitly (``BEGIN IMMEDIATE``)."""
    from sqlalchemy.pool import StaticPool

    inline = sa.create_engine(
        engine.url, poolclass=StaticPool, connect_args={"check_same_thread": False}
    )

    def configure(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # the sqlite3 module begins nothing itself
        for pragma in ("busy_timeout=0", "wal_autocheckpoint=0", "foreign_keys=ON",
                       "synchronous=NORMAL"):
            dbapi_conn.execute(f"PRAGMA {pragma}")

    sa.event.listen(inline, "connect", configure)
    return inline


def _apply_if_unlocked(conn: sa.Connection, batch: list[_Write]) -> tuple[bool, bool]:
    """Run ``batch`` in one transaction on ``conn`` if SQLite's write lock is free at
    once. Returns (applied, usable): not applied (nothing was) if the lock is taken or
    the batch failed and rolled back; not usable if the connection should be replaced
    (a failed batch may have left it in any state)."""
    try:
        conn.exec_driver_sql("BEGIN IMMEDIATE")
    except sa.exc.OperationalError:  # SQLITE_BUSY: another connection is writing
        conn.rollback()
        return False, True
    try:
        for write in batch:
            write.value = write.fn(conn, *write.args)
        conn.commit()
    except Exception:
        with contextlib.suppress(Exception):
            conn.rollback()
        for write in batch:
            write.value = None
        return False, False
    return True, True


def _checkpoint(engine: sa.Engine) -> None:
    """Copy the WAL into the database file as far as no reader needs it (never waits)."""
    with engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")


def make_writer(
    engine: sa.Engine, kind: str | None = None, limiter: Any = None
) -> GroupWriter | InlineWriter:
    """The writer for ``engine``: ``kind``, else ``SKYHOP_DB_WRITER``, else ``auto``.
    ``limiter``: what bounds the event-loop writer's worker threads (the store's).

    ``auto``: the thread writer, which applies writes that come one at a time on the event
    loop when the database is a SQLite file (see :meth:`GroupWriter.run`); ``thread``:
    always the thread; ``inline``: always the event loop (SQLite only). A server
    database's statements wait on the network, so PostgreSQL always gets the thread.
    """
    import os

    kind = kind or os.environ.get("SKYHOP_DB_WRITER") or "auto"
    if kind not in ("auto", "inline", "thread"):
        raise ValueError(f"SKYHOP_DB_WRITER={kind!r}: use auto, inline or thread.")
    sqlite_file = engine.dialect.name == "sqlite" and engine.url.database not in (None, "", ":memory:")
    if kind == "inline" and sqlite_file:
        return InlineWriter(engine, limiter=limiter)
    if kind == "auto" and sqlite_file:
        return GroupWriter(engine, inline=InlineWriter(engine, limiter=limiter))
    return GroupWriter(engine)
