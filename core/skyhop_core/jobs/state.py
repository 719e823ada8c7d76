"""Managed-job rows: every function takes a SQLAlchemy connection (see ``Store.run``).

A job's row is its controller's whole state: status, where it runs, counters, the
owning replica and its lease, and the cancel flag. Writes that decide something (a slot
taken, a job claimed, PENDING jobs cancelled) are single conditional statements, so two
replicas racing for the same job cannot both win.
"""

from __future__ import annotations

import time
from typing import Any

import sqlalchemy as sa

from skyhop_core.models.status import ManagedJobStatus
from skyhop_core.state import leases
from skyhop_core.state.db import managed_jobs as mj

S = ManagedJobStatus
TERMINAL = S.terminal_values()

#: Schedule states (see the table's comment in ``skyhop_core.state.db``).
WAITING, LAUNCHING, ALIVE, ALIVE_WAITING, DONE = (
    "WAITING", "LAUNCHING", "ALIVE", "ALIVE_WAITING", "DONE",
)


def insert(conn: sa.Connection, **values: Any) -> int:
    """A new PENDING job; returns its ID (the row's ``cluster_name``/``task_id`` are
    completed from it)."""
    now = time.time()
    res = conn.execute(
        mj.insert().values(
            status=S.PENDING.value,
            schedule_state=WAITING,
            cluster_name="",
            task_id="",
            submitted_at=now,
            **values,
        )
    )
    job_id = int(res.inserted_primary_key[0])  # type: ignore[index]
    stamp = time.strftime("%Y-%m-%d-%H-%M-%S", time.gmtime(now))
    name = values["name"]
    names: dict[str, Any] = {
        "cluster_name": f"{name}-{job_id}",
        "task_id": f"sky-managed-{stamp}_{name}_{job_id}",
    }
    if values.get("tasks") is not None:
        # SkyPilot's pipeline task IDs: <timestamp>_<pipeline>_<task>_<job_id>-<index>.
        entries = [
            {**e, "cluster_name": f"{name}-{job_id}-{i}",
             "task_id": f"sky-managed-{stamp}_{name}_{e['name']}_{job_id}-{i}"}
            for i, e in enumerate(values["tasks"])
        ]  # fmt: skip
        names = {"tasks": entries, **{k: entries[0][k] for k in names}}
    conn.execute(mj.update().where(mj.c.job_id == job_id).values(**names))
    return job_id


def get(conn: sa.Connection, job_id: int) -> Any:
    return conn.execute(sa.select(mj).where(mj.c.job_id == job_id)).first()


def list_rows(
    conn: sa.Connection,
    *,
    user_hash: str | None = None,
    job_ids: list[int] | None = None,
    name: str | None = None,
    skip_finished: bool = False,
) -> list[Any]:
    """Rows, newest first, filtered as ``jobs queue`` asks."""
    query = sa.select(mj).order_by(mj.c.job_id.desc())
    if user_hash is not None:
        query = query.where(mj.c.user_hash == user_hash)
    if job_ids is not None:
        query = query.where(mj.c.job_id.in_(job_ids))
    if name is not None:
        query = query.where(mj.c.name == name)
    if skip_finished:
        query = query.where(mj.c.status.not_in(TERMINAL))
    return list(conn.execute(query).all())


def update(conn: sa.Connection, job_id: int, **values: Any) -> None:
    conn.execute(mj.update().where(mj.c.job_id == job_id).values(**values))


def set_status(
    conn: sa.Connection, job_id: int, status: ManagedJobStatus, **values: Any
) -> bool:
    """Move a job to ``status`` unless it is already terminal (a cancelled job stays
    cancelled); False if it was."""
    if status.is_terminal():
        values.setdefault("end_at", time.time())
        values.setdefault("schedule_state", DONE)
    res = conn.execute(
        mj.update()
        .where(mj.c.job_id == job_id)
        .where(mj.c.status.not_in(TERMINAL))
        .values(status=status.value, **values)
    )
    return res.rowcount == 1


def start_recovering(conn: sa.Connection, job_id: int, *, restart: bool) -> None:
    """RUNNING → RECOVERING: count it and start the clock of time spent recovering."""
    values: dict[str, Any] = {
        "status": S.RECOVERING.value,
        "recovery_count": mj.c.recovery_count + 1,
        "recovering_since": time.time(),
        "agent_job_id": None,
    }
    if restart:
        values["restart_count"] = mj.c.restart_count + 1
    conn.execute(
        mj.update().where(mj.c.job_id == job_id).where(mj.c.status.not_in(TERMINAL)).values(**values)
    )


def stop_recovering(conn: sa.Connection, job_id: int) -> None:
    """Add the time since ``recovering_since`` to ``recovering_seconds``."""
    row = get(conn, job_id)
    if row is None or row.recovering_since is None:
        return
    update(
        conn,
        job_id,
        recovering_seconds=row.recovering_seconds + max(0.0, time.time() - row.recovering_since),
        recovering_since=None,
    )


# --- cancelling ------------------------------------------------------------------------


def request_cancel(conn: sa.Connection, job_ids: list[int]) -> tuple[list[int], list[int]]:
    """Flag jobs for cancelling. PENDING (never scheduled) ones become CANCELLED in one
    statement; the others become CANCELLING for their controllers to finish.

    Returns (cancelled at once, now CANCELLING). Each update re-checks its condition, so
    a job the scheduler claims meanwhile is CANCELLING, never left PENDING.
    """
    if not job_ids:
        return [], []
    open_ids = [
        r.job_id
        for r in conn.execute(
            sa.select(mj.c.job_id)
            .where(mj.c.job_id.in_(job_ids))
            .where(mj.c.status.not_in(TERMINAL))
        )
    ]
    if not open_ids:
        return [], []
    conn.execute(
        mj.update()
        .where(mj.c.job_id.in_(open_ids))
        .where(mj.c.status == S.PENDING.value)
        .where(mj.c.schedule_state == WAITING)
        .values(
            status=S.CANCELLED.value, schedule_state=DONE, end_at=time.time(),
            cancel_requested=True,
        )
    )
    conn.execute(
        mj.update()
        .where(mj.c.job_id.in_(open_ids))
        .where(mj.c.status.not_in(TERMINAL))
        .values(status=S.CANCELLING.value, cancel_requested=True)
    )
    rows = conn.execute(
        sa.select(mj.c.job_id, mj.c.status).where(mj.c.job_id.in_(open_ids))
    ).all()
    pending = sorted(r.job_id for r in rows if r.status == S.CANCELLED.value)
    return pending, sorted(r.job_id for r in rows if r.status != S.CANCELLED.value)


def want_launch_slot(conn: sa.Connection, job_id: int) -> bool:
    """Ask for a launch slot to recover (ALIVE_WAITING); True if the job holds one
    already (the scheduler granted it, or it held one before a restart)."""
    conn.execute(
        mj.update()
        .where(mj.c.job_id == job_id)
        .where(mj.c.schedule_state.in_([ALIVE, ALIVE_WAITING]))
        .values(schedule_state=ALIVE_WAITING)
    )
    row = conn.execute(sa.select(mj.c.schedule_state).where(mj.c.job_id == job_id)).first()
    return row is not None and row.schedule_state == LAUNCHING


# --- scheduling and ownership ------------------------------------------------------------


def counts(conn: sa.Connection) -> tuple[int, int]:
    """(jobs holding a launch slot, jobs alive: scheduled and not finished), across
    every replica."""
    rows = conn.execute(
        sa.select(mj.c.schedule_state, sa.func.count())
        .where(mj.c.schedule_state.in_([LAUNCHING, ALIVE, ALIVE_WAITING]))
        .group_by(mj.c.schedule_state)
    ).all()
    by = {r[0]: int(r[1]) for r in rows}
    return by.get(LAUNCHING, 0), sum(by.values())


def claim_next(
    conn: sa.Connection, *, max_launching: int, max_alive: int, owner: str, lease: float
) -> list[tuple[int, str]]:
    """Give launch slots to waiting jobs: recoveries of alive jobs first, then new jobs
    by priority (high first), then age. Returns ``(job_id, previous schedule state)``.
    """
    launching, alive = counts(conn)
    free = max_launching - launching
    taken: list[tuple[int, str]] = []
    if free <= 0:
        return taken
    recovering = conn.execute(
        sa.select(mj.c.job_id)
        .where(mj.c.schedule_state == ALIVE_WAITING)
        .where(mj.c.owner == owner)
        .order_by(mj.c.priority.desc(), mj.c.job_id)
        .limit(free)
    ).all()
    for (job_id,) in recovering:
        res = conn.execute(
            mj.update()
            .where(mj.c.job_id == job_id)
            .where(mj.c.schedule_state == ALIVE_WAITING)
            .values(schedule_state=LAUNCHING)
        )
        if res.rowcount == 1:
            taken.append((job_id, ALIVE_WAITING))
    free -= len(taken)
    new = min(free, max_alive - alive)
    if new <= 0:
        return taken
    waiting = conn.execute(
        sa.select(mj.c.job_id)
        .where(mj.c.schedule_state == WAITING)
        .where(mj.c.status == S.PENDING.value)
        .order_by(mj.c.priority.desc(), mj.c.job_id)
        .limit(new)
    ).all()
    for (job_id,) in waiting:
        res = conn.execute(
            mj.update()
            .where(mj.c.job_id == job_id)
            .where(mj.c.schedule_state == WAITING)
            .where(mj.c.status == S.PENDING.value)
            .values(
                schedule_state=LAUNCHING,
                status=S.STARTING.value,
                owner=owner,
                lease_until=time.time() + lease,
            )
        )
        if res.rowcount == 1:
            taken.append((job_id, WAITING))
    return taken


def renew(conn: sa.Connection, owner: str, lease: float) -> list[int]:
    """Extend the lease of every unfinished job ``owner`` holds; returns the IDs of those
    among them that someone asked to cancel (perhaps through another replica)."""
    leases.renew(conn, mj, owner, lease, mj.c.status.not_in(TERMINAL))
    return [
        r.job_id
        for r in conn.execute(
            sa.select(mj.c.job_id)
            .where(mj.c.owner == owner)
            .where(mj.c.status.not_in(TERMINAL))
            .where(mj.c.cancel_requested)
        )
    ]


def take_over(conn: sa.Connection, owner: str, lease: float) -> list[Any]:
    """Claim unfinished, scheduled jobs whose owner is gone (see
    :func:`skyhop_core.state.leases.take_over`). Returns their rows."""
    ids = leases.take_over(
        conn, mj, mj.c.job_id, owner, lease,
        mj.c.status.not_in(TERMINAL), mj.c.schedule_state != WAITING,
    )
    return [get(conn, job_id) for job_id in ids]


def release_launch_slot(conn: sa.Connection, job_id: int) -> None:
    conn.execute(
        mj.update()
        .where(mj.c.job_id == job_id)
        .where(mj.c.schedule_state == LAUNCHING)
        .values(schedule_state=ALIVE)
    )
