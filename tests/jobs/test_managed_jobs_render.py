"""The ``skyhop jobs queue`` table, from plain records."""

from __future__ import annotations

from skyhop.cli.managed_jobs import QUEUE_COLUMNS, render_queue
from skyhop_core.models.status import ManagedJobStatus


def rec(**kw):
    base = {
        "job_id": 7, "job_name": "train", "resources": "1x[local]", "submitted_at": 1000.0,
        "start_at": 1010.0, "end_at": None, "duration": 300.0, "job_duration": 200.0,
        "recovery_count": 2, "status": ManagedJobStatus.RUNNING, "infra": "aws/us-east-1",
        "cluster_name": "train-7", "details": None, "failure_reason": None,
        "user_name": "alice",
    }
    return {**base, **kw}


def test_the_columns_are_skypilots_and_durations_are_shown() -> None:
    text = render_queue([rec(), rec(job_id=8, start_at=None, status=ManagedJobStatus.PENDING,
                                    details="Waiting for a launch slot.")], now=1300.0)
    header, first, second = text.splitlines()
    assert header.split("  ")[0] == "ID"
    for column in QUEUE_COLUMNS:
        assert column in header
    assert "5m 0s" in first and "3m 20s" in first and "RUNNING" in first
    assert second.split()[0] == "8" and "PENDING" in second
    at = header.index("JOB DURATION")
    assert second[at:].split()[0] == "-"  # JOB DURATION of a job that never started
    assert first[at:].split()[:2] == ["3m", "20s"]


def test_verbose_and_all_users_add_columns() -> None:
    text = render_queue([rec(failure_reason="The job's run\nfailed")], verbose=True,
                        show_user=True, now=1300.0)
    header, row = text.splitlines()
    assert "USER" in header and "INFRA" in header and "FAILURE" in header
    assert "alice" in row and "aws/us-east-1" in row and "train-7" in row
    assert "The job's run failed" in row  # one line


def test_no_jobs() -> None:
    assert render_queue([]) == "No managed jobs."


def test_a_pipeline_is_its_row_then_one_row_per_task() -> None:
    tasks = [
        rec(job_name="pipe", task_id=0, task_name="prep", status=ManagedJobStatus.SUCCEEDED,
            job_duration=60.0, recovery_count=1),
        rec(job_name="pipe", task_id=1, task_name="train", status=ManagedJobStatus.FAILED,
            job_duration=30.0, recovery_count=0, failure_reason="The job's run failed"),
        rec(job_name="pipe", task_id=2, task_name="eval", status=ManagedJobStatus.CANCELLED,
            start_at=None, job_duration=0.0, recovery_count=0),
    ]
    text = render_queue([rec(job_id=9), *tasks], now=1300.0)
    header, single, head, prep, train, evaluate = text.splitlines()
    assert single.split()[0] == "9"
    assert head.split()[:3] == ["7", "-", "pipe"]
    assert "FAILED" in head  # the first task that did not succeed
    at = header.index("JOB DURATION")
    assert head[at:].split()[:2] == ["1m", "30s"]  # the tasks' job durations added up
    assert "↳ prep" in prep and "SUCCEEDED" in prep
    assert "↳ train" in train and "FAILED" in train
    assert "↳ eval" in evaluate and "CANCELLED" in evaluate
    assert prep.split()[0] == "0"  # task rows show the task's index, not the job ID
