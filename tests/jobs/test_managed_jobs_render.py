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
