"""Pipelines: a managed job of several tasks, run in order, each on its own cluster.

The job's row keeps its tasks in ``tasks`` (a JSON list, None for a one-task job): per
task its task-YAML mapping (without secret values), recovery settings, cluster name
(``<name>-<job_id>-<index>``), task ID and — once it has run — a summary (status,
start/end, recoveries, time spent recovering, where it ran). The row's own columns
(``task``, ``cluster_name``, ``task_id``, strategy, counters) always describe the
current task, ``current_task`` its index, so the controller, its recovery and its resume
rules are the same as for a one-task job.

When a task succeeds, :func:`advance` writes its summary and makes the next task current
(STARTING, waiting for a launch slot) in one statement; the finished task's cluster is
torn down after that, and again by a resumed controller (idempotent), so a restart
between the two neither reruns the task nor leaks its cluster. A task that fails ends
the job: the tasks after it are CANCELLED (derived when the queue is read).
"""

from __future__ import annotations

import time
from typing import Any

import sqlalchemy as sa

from skyhop_core.models.status import ManagedJobStatus
from skyhop_core.state.db import managed_jobs as mj

S = ManagedJobStatus

#: The row columns copied from a task's entry when it becomes current.
TASK_COLUMNS = (
    "task", "resources_str", "strategy", "max_restarts_on_errors", "recover_on_exit_codes",
    "cluster_name", "task_id",
)


def new_entry(name: str, values: dict[str, Any]) -> dict[str, Any]:
    """A task's entry at submission (its cluster name and task ID are added once the
    job has an ID)."""
    entry = {k: values[k] for k in TASK_COLUMNS if k in values}
    entry.update(name=name, status=None, start_at=None, end_at=None,
                 recovery_count=0, restart_count=0, recovering_seconds=0.0, infra=None)
    return entry


def advance(conn: sa.Connection, job_id: int) -> Any:
    """The current task SUCCEEDED: summarise it and make the next one current; returns
    the new row (None if the job is no longer in a state to advance, e.g. cancelled)."""
    row = conn.execute(sa.select(mj).where(mj.c.job_id == job_id)).first()
    if row is None or row.tasks is None or row.current_task + 1 >= len(row.tasks):
        return None
    now = time.time()
    entries = [dict(e) for e in row.tasks]
    done = entries[row.current_task]
    done.update(
        status=S.SUCCEEDED.value, end_at=now, start_at=done.get("start_at") or row.start_at,
        recovery_count=row.recovery_count, restart_count=row.restart_count,
        recovering_seconds=row.recovering_seconds, infra=row.infra,
    )
    following = entries[row.current_task + 1]
    res = conn.execute(
        mj.update()
        .where(mj.c.job_id == job_id)
        .where(mj.c.current_task == row.current_task)
        .where(mj.c.status == S.RUNNING.value)
        .where(~mj.c.cancel_requested)
        .values(
            tasks=entries,
            current_task=row.current_task + 1,
            status=S.STARTING.value,
            schedule_state="ALIVE_WAITING",
            agent_job_id=None,
            launch_attempts=0,
            recovery_count=0,
            restart_count=0,
            recovering_seconds=0.0,
            recovering_since=None,
            region=None,
            infra=None,
            **{k: following[k] for k in TASK_COLUMNS},
        )
    )
    if res.rowcount != 1:
        return None
    return conn.execute(sa.select(mj).where(mj.c.job_id == job_id)).first()


def mark_started(conn: sa.Connection, job_id: int, index: int, when: float) -> None:
    """Record when the current task first ran (kept across its recoveries)."""
    row = conn.execute(sa.select(mj.c.tasks).where(mj.c.job_id == job_id)).first()
    if row is None or row.tasks is None or row.tasks[index].get("start_at"):
        return
    entries = [dict(e) for e in row.tasks]
    entries[index]["start_at"] = when
    conn.execute(mj.update().where(mj.c.job_id == job_id).values(tasks=entries))


def previous_cluster(row: Any) -> str | None:
    """The cluster of the task before the current one (to tear down again on resume)."""
    if row.tasks is None or row.current_task == 0:
        return None
    return str(row.tasks[row.current_task - 1]["cluster_name"])


def _recovering(row: Any, now: float) -> float:
    return float(row.recovering_seconds) + (
        max(0.0, now - row.recovering_since) if row.recovering_since else 0.0
    )


def task_records(row: Any, now: float, job: dict[str, Any]) -> list[dict[str, Any]]:
    """The queue records of a pipeline: one per task, with SkyPilot's fields (``job``
    is the job-level record, whose fields the tasks share)."""
    records = []
    job_status = S(row.status)
    for index, entry in enumerate(row.tasks):
        record = dict(job, task_id=index, task_name=entry["name"],
                      resources=entry["resources_str"], cluster_name=entry["cluster_name"],
                      strategy=entry["strategy"])  # fmt: skip
        if index < row.current_task:
            start, end = entry.get("start_at"), entry.get("end_at")
            recovering = float(entry.get("recovering_seconds") or 0.0)
            record.update(
                status=S(entry["status"]), start_at=start, end_at=end,
                recovery_count=entry.get("recovery_count", 0),
                restart_count=entry.get("restart_count", 0),
                infra=entry.get("infra"), failure_reason=None, details=None,
            )
        elif index == row.current_task:
            start = entry.get("start_at") or (row.start_at if index == 0 else None)
            end, recovering = row.end_at, _recovering(row, now)
            record.update(start_at=start, end_at=end)
        else:
            start = end = None
            recovering = 0.0
            record.update(
                status=S.CANCELLED if job_status.is_terminal() else S.PENDING,
                start_at=None, end_at=None, recovery_count=0, restart_count=0, infra=None,
                region=None, details=None,
                failure_reason="An earlier task of the pipeline did not succeed."
                if job_status.is_terminal() else None,
            )
        record["job_duration"] = max(0.0, (end or now) - start - recovering) if start else 0.0
        records.append(record)
    return records
