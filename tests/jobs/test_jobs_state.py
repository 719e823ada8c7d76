"""The managed-job rows' decisions (SQLite): slots, priority, cancel, takeover."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from skyhop_core.jobs import state as js
from skyhop_core.state import open_store
from skyhop_core.state import servers as srv


@pytest.fixture
def store(tmp_path: Path):
    return open_store(tmp_path)


def add(store, name: str, priority: int = 0) -> int:
    return store.run_sync(
        lambda c: js.insert(
            c, name=name, user_name="u", user_hash="h", task={"run": "true"},
            resources_str="1x[local]", priority=priority, strategy="EAGER_NEXT_REGION",
            max_restarts_on_errors=0, recover_on_exit_codes=[],
        )
    )


def claim(store, launching: int = 8, alive: int = 100, owner: str = "me"):
    return store.run_sync(
        lambda c: js.claim_next(c, max_launching=launching, max_alive=alive, owner=owner,
                                lease=10)
    )


def test_rows_name_their_cluster_and_a_stable_task_id(store) -> None:
    job_id = add(store, "train")
    row = store.run_sync(js.get, job_id)
    assert row.cluster_name == f"train-{job_id}"
    assert row.task_id.startswith("sky-managed-") and row.task_id.endswith(f"_train_{job_id}")
    assert (row.status, row.schedule_state) == ("PENDING", js.WAITING)


def test_slots_bound_launches_and_running_jobs_and_priority_goes_first(store) -> None:
    low, mid, high = add(store, "low"), add(store, "mid", 5), add(store, "high", 10)
    assert claim(store, launching=1) == [(high, js.WAITING)]
    assert claim(store, launching=1) == []  # the one launch slot is taken
    store.run_sync(js.release_launch_slot, high)
    assert claim(store, launching=1, alive=1) == []  # one job alive is the limit
    assert claim(store, launching=1, alive=2) == [(mid, js.WAITING)]
    assert store.run_sync(js.get, mid).status == "STARTING"
    assert store.run_sync(js.get, low).status == "PENDING"


def test_a_recovery_gets_a_slot_before_new_jobs(store) -> None:
    running = add(store, "running")
    claim(store, alive=1)
    waiting = add(store, "waiting", 100)
    store.run_sync(js.release_launch_slot, running)
    assert store.run_sync(js.want_launch_slot, running) is False
    assert claim(store, launching=1, alive=2) == [(running, js.ALIVE_WAITING)]
    assert store.run_sync(js.want_launch_slot, running) is True  # it holds it now
    assert store.run_sync(js.get, waiting).status == "PENDING"


def test_cancel_pending_at_once_and_others_cancelling(store) -> None:
    started, pending = add(store, "a"), add(store, "b")
    claim(store, alive=1)
    done = add(store, "c")
    store.run_sync(lambda c: js.set_status(c, done, js.S.SUCCEEDED))
    at_once, cancelling = store.run_sync(js.request_cancel, [started, pending, done])
    assert (at_once, cancelling) == ([pending], [started])
    assert store.run_sync(js.get, pending).status == "CANCELLED"
    assert store.run_sync(js.get, started).status == "CANCELLING"
    assert store.run_sync(js.get, done).status == "SUCCEEDED"
    assert claim(store) == []  # a cancelled job is never scheduled


def test_terminal_statuses_stick(store) -> None:
    job_id = add(store, "x")
    store.run_sync(lambda c: js.set_status(c, job_id, js.S.CANCELLED))
    assert store.run_sync(lambda c: js.set_status(c, job_id, js.S.RUNNING)) is False
    assert store.run_sync(js.get, job_id).status == "CANCELLED"


def test_take_over_only_jobs_whose_owner_is_gone(store) -> None:
    store.run_sync(lambda c: srv.register(c, "alive", "host", os.getpid()))
    mine, orphan = add(store, "mine"), add(store, "orphan")
    claim(store, owner="alive")
    assert store.run_sync(lambda c: js.take_over(c, "other", 10)) == []
    store.run_sync(lambda c: js.update(c, orphan, owner="dead-replica"))
    taken = store.run_sync(lambda c: js.take_over(c, "other", 10))
    assert [r.job_id for r in taken] == [orphan]
    assert store.run_sync(js.get, orphan).owner == "other"
    store.run_sync(lambda c: js.update(c, mine, lease_until=0.0))  # its lease expired
    assert [r.job_id for r in store.run_sync(lambda c: js.take_over(c, "other", 10))] == [mine]
