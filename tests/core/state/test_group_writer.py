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


@pytest.fixture(params=["inline", "thread"])
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
    assert store.writer.writes == n
    assert store.writer.batches < n / 4, "writes queued together were not grouped"


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
    if isinstance(store.writer, GroupWriter):
        assert thread is not None and thread.is_alive()
    store.close()
    if thread is not None:
        thread.join(5)
        assert not thread.is_alive()
    with pytest.raises(RuntimeError, match="closed"):
        trio.run(store.write, lambda c: None)


def test_the_writer_is_a_thread_unless_sqlite_opts_in(tmp_path, monkeypatch):
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'x.db'}")
    assert isinstance(make_writer(engine), GroupWriter)
    monkeypatch.setenv("SKYHOP_DB_WRITER", "inline")
    assert isinstance(make_writer(engine), InlineWriter)
    pytest.importorskip("psycopg")
    server_db = sa.create_engine("postgresql+psycopg://u@127.0.0.1:1/x")  # never connects
    assert isinstance(make_writer(server_db), GroupWriter), "inline is for SQLite only"
    monkeypatch.setenv("SKYHOP_DB_WRITER", "fast")
    with pytest.raises(ValueError, match="SKYHOP_DB_WRITER='fast': use inline or thread"):
        make_writer(engine)
    engine.dispose()


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
