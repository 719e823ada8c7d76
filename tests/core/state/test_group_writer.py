"""The group-commit writers of the state store (on a thread, the default, or on the event
loop, SQLite's opt-in): batching, ordering, failures, durability."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest
import sqlalchemy as sa
import trio
import trio.testing

from skyhop_core.models.status import RequestStatus
from skyhop_core.state import open_store
from skyhop_core.state import requests as rq
from skyhop_core.state.writer import GroupWriter, InlineWriter, make_writer


def _row(request_id: str) -> dict:
    return dict(
        request_id=request_id, name="status", user_name="u", user_hash="h",
        cluster_name=None, schedule_type="short", body={"x": 1}, running=True, owner="me",
    )  # fmt: skip


@pytest.fixture(params=["inline", "thread", "auto"])
def store(tmp_path: Path, request):
    store = open_store(tmp_path, writer=request.param)
    yield store
    store.close()


def _ids(path: Path) -> dict[str, str]:
    """What a separate connection (another process, after a crash) reads from the file."""
    with sqlite3.connect(path / "skyhop.db") as conn:
        return dict(conn.execute("SELECT request_id, status FROM requests").fetchall())


def test_concurrent_writes_share_transactions_and_are_all_committed(store, tmp_path):
    n = 300

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            for i in range(n):
                nursery.start_soon(store.write, lambda c, i=i: rq.insert(c, **_row(f"r{i}")))

    trio.run(main)
    assert len(_ids(tmp_path)) == n
    writers = [store.writer, getattr(store.writer, "inline", None)]
    assert sum(w.writes for w in writers if w) == n
    assert sum(w.batches for w in writers if w) < n / 4, "writes queued together were not grouped"


def test_a_write_is_committed_before_its_caller_resumes(store, tmp_path):
    seen: list[dict[str, str]] = []

    async def main() -> None:
        await store.write(lambda c: rq.insert(c, **_row("first")))
        seen.append(_ids(tmp_path))  # a fresh connection: only committed data
        await store.write(
            lambda c: rq.finish(c, "first", RequestStatus.SUCCEEDED, result=[1], owner="me")
        )
        seen.append(_ids(tmp_path))

    trio.run(main)
    assert seen == [{"first": "RUNNING"}, {"first": "SUCCEEDED"}]
    assert store.run_sync(rq.get_row, "first").result == [1]


def test_one_failing_write_fails_alone(store, tmp_path):
    store.run_sync(lambda c: rq.insert(c, **_row("dup")))
    outcomes: dict[str, str] = {}

    async def one(name: str) -> None:
        try:
            await store.write(lambda c: rq.insert(c, **_row(name)))
            outcomes[name] = "ok"
        except sa.exc.IntegrityError:
            outcomes[name] = "duplicate"

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            for name in ["a", "b", "dup", "c", "d"]:
                nursery.start_soon(one, name)

    trio.run(main)
    assert outcomes == {"a": "ok", "b": "ok", "dup": "duplicate", "c": "ok", "d": "ok"}
    assert set(_ids(tmp_path)) == {"a", "b", "c", "d", "dup"}


def test_writes_apply_in_the_order_they_were_queued(store):
    async def main() -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(store.write, lambda c: rq.insert(c, **_row("o")))
            await trio.testing.wait_all_tasks_blocked()  # the insert is queued (or done)
            nursery.start_soon(
                store.write, lambda c: rq.finish(c, "o", RequestStatus.FAILED, owner="me")
            )

    trio.run(main)
    assert store.run_sync(rq.get_row, "o").status == "FAILED"


def test_a_cancelled_caller_still_gets_its_write_and_close_stops_the_writer(store, tmp_path):
    async def main() -> None:
        with trio.move_on_after(0):  # already cancelled when it starts waiting
            await store.write(lambda c: rq.insert(c, **_row("kept")))

    trio.run(main)
    assert "kept" in _ids(tmp_path)
    thread = getattr(store.writer, "_thread", None)
    if isinstance(store.writer, GroupWriter) and store.writer.inline is None:
        assert thread is not None and thread.is_alive()
    store.close()
    if thread is not None:
        thread.join(5)
        assert not thread.is_alive()
    with pytest.raises(RuntimeError, match="closed"):
        trio.run(store.write, lambda c: None)


def test_the_writer_is_a_thread_that_goes_inline_only_for_a_sqlite_file(tmp_path, monkeypatch):
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'x.db'}")
    auto = make_writer(engine)
    assert isinstance(auto, GroupWriter) and isinstance(auto.inline, InlineWriter)
    monkeypatch.setenv("SKYHOP_DB_WRITER", "thread")
    assert make_writer(engine).inline is None
    monkeypatch.setenv("SKYHOP_DB_WRITER", "inline")
    assert isinstance(make_writer(engine), InlineWriter)
    memory = make_writer(sa.create_engine("sqlite://"), "auto")
    assert memory.inline is None, "an in-memory database has no second connection"
    pytest.importorskip("psycopg")
    server_db = sa.create_engine("postgresql+psycopg://u@127.0.0.1:1/x")  # never connects
    for kind in ("auto", "inline"):
        writer = make_writer(server_db, kind)
        assert isinstance(writer, GroupWriter) and writer.inline is None, "SQLite only"
    monkeypatch.setenv("SKYHOP_DB_WRITER", "fast")
    with pytest.raises(ValueError, match="SKYHOP_DB_WRITER='fast': use auto, inline or thread"):
        make_writer(engine)
    engine.dispose()


def test_writes_that_come_alone_skip_the_thread_and_a_crowd_is_batched_there(tmp_path):
    store = open_store(tmp_path, writer="auto")
    writer = store.writer

    async def main() -> None:
        for i in range(20):  # one client: one write at a time
            await store.write(lambda c, i=i: rq.insert(c, **_row(f"a{i}")))
        assert writer.inline.writes == 20 and writer.writes == 0
        for _ in range(3):  # a crowd: 200 writes queued at once
            async with trio.open_nursery() as nursery:
                for i in range(200):
                    nursery.start_soon(
                        store.write, lambda c, i=i, n=_: rq.insert(c, **_row(f"b{n}-{i}"))
                    )
        assert writer.writes > 0, "a crowd of writes never reached the thread"
        assert writer.batches + writer.inline.batches < 600 / 4, "the crowd was not batched"

    trio.run(main)
    assert len(_ids(tmp_path)) == 620
    store.close()


def test_an_inline_write_never_waits_for_another_connections_lock(tmp_path):
    """While another connection holds SQLite's write lock, a write meant for the event
    loop is applied on a worker thread once the lock frees; the loop keeps running."""
    store = open_store(tmp_path, writer="inline")
    other = sqlite3.connect(tmp_path / "skyhop.db", isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    ticks = []

    async def main() -> None:
        async def tick() -> None:
            while True:
                ticks.append(trio.current_time())
                await trio.sleep(0.01)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(tick)
            nursery.start_soon(store.write, lambda c: rq.insert(c, **_row("late")))
            await trio.sleep(0.3)
            assert "late" not in _ids(tmp_path)
            other.execute("COMMIT")
            with trio.fail_after(10):
                while "late" not in _ids(tmp_path):
                    await trio.sleep(0.01)
            nursery.cancel_scope.cancel()

    trio.run(main)
    assert store.writer.deferred == 1
    assert len(ticks) >= 20, "the event loop was blocked while the lock was held"
    other.close()
    store.close()


def test_an_inline_batch_commits_once_for_every_task_that_could_run(tmp_path):
    store = open_store(tmp_path, writer="inline")
    threads_before = threading.active_count()

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            for i in range(100):
                nursery.start_soon(store.write, lambda c, i=i: rq.insert(c, **_row(f"i{i}")))

    trio.run(main)
    assert threading.active_count() == threads_before, "an inline write started a thread"
    assert store.writer.writes == 100 and store.writer.batches <= 2
    assert len(_ids(tmp_path)) == 100
    store.close()


def test_a_read_sees_every_acknowledged_write_and_takes_no_write_lock(store, tmp_path):
    """``Store.read``: what a write committed before it is visible; while another
    connection holds SQLite's write lock (a long transaction, another process), a read
    answers at once instead of queueing behind it."""

    async def main() -> None:
        for i in range(5):
            await store.write(lambda c, i=i: rq.insert(c, **_row(f"r{i}")))
            got = await store.read(rq.get_row, f"r{i}")
            assert got is not None and got.request_id == f"r{i}"
        if store.engine.dialect.name != "sqlite" or getattr(store.writer, "inline", 1) is None:
            return
        other = sqlite3.connect(tmp_path / "skyhop.db", isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        try:
            with trio.fail_after(2):
                assert (await store.read(rq.get_row, "r4")).request_id == "r4"
        finally:
            other.execute("COMMIT")
            other.close()

    trio.run(main)


def test_a_read_that_sqlite_refuses_at_once_runs_on_a_thread(tmp_path):
    store = open_store(tmp_path, writer="inline")
    store.run_sync(lambda c: rq.insert(c, **_row("x")))
    calls: list[str] = []

    def flaky(conn, request_id):
        calls.append(threading.current_thread().name)
        if len(calls) == 1:
            busy = sqlite3.OperationalError("database is locked")
            raise sa.exc.OperationalError("SELECT", {}, busy)
        return rq.get_row(conn, request_id)

    async def main() -> None:
        assert (await store.read(flaky, "x")).request_id == "x"
        # ...and the event loop's connection still serves the next one
        assert (await store.read(rq.get_row, "x")).request_id == "x"

    trio.run(main)
    assert calls[0] == threading.main_thread().name and calls[1] != calls[0]
    store.close()


def test_the_event_loop_writers_fallbacks_wait_for_the_stores_thread_limit(tmp_path):
    """A deferred write and a refused read go to worker threads within the store's limit
    (each holds one of the pool's connections), not trio's default of 40: with every
    slot taken they wait, and run once one frees."""
    store = open_store(tmp_path, writer="inline")
    store.run_sync(lambda c: rq.insert(c, **_row("x")))
    other = sqlite3.connect(tmp_path / "skyhop.db", isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")  # the event loop's write is deferred to a thread
    refused: list[bool] = []

    def refused_once(conn, request_id):
        if not refused:
            refused.append(True)
            raise sa.exc.OperationalError("SELECT", {}, sqlite3.OperationalError("locked"))
        return rq.get_row(conn, request_id)

    async def main() -> None:
        done: list[str] = []
        slots = [object() for _ in range(int(store.limiter.total_tokens))]
        for slot in slots:
            await store.limiter.acquire_on_behalf_of(slot)

        async def write() -> None:
            await store.write(lambda c: rq.insert(c, **_row("late")))
            done.append("write")

        async def read() -> None:
            assert (await store.read(refused_once, "x")).request_id == "x"
            done.append("read")

        async with trio.open_nursery() as nursery:
            nursery.start_soon(write)
            nursery.start_soon(read)
            await trio.testing.wait_all_tasks_blocked()  # both sent to a thread: waiting
            other.execute("COMMIT")
            await trio.sleep(0.5)
            assert done == [] and store.limiter.statistics().tasks_waiting == 2
            store.limiter.release_on_behalf_of(slots[0])
            with trio.fail_after(10):
                while len(done) < 2:
                    await trio.sleep(0.01)
        for slot in slots[1:]:
            store.limiter.release_on_behalf_of(slot)

    trio.run(main)
    assert "late" in _ids(tmp_path)
    other.close()
    store.close()
