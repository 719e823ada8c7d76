"""Helpers for the managed-jobs tests, through the SDK of the current client.

Importable as ``jobcalls`` from any test (tests/ is on sys.path), like ``apicalls``.
"""

from __future__ import annotations

import time
from typing import Any

import skyhop as sky


class Capture:
    """A text stream the SDK's log functions write into."""

    def __init__(self) -> None:
        self.text = ""

    def write(self, data: str) -> int:
        self.text += data
        return len(data)

    def flush(self) -> None:
        pass


def record(job_id: int) -> dict[str, Any]:
    (row,) = sky.get(sky.jobs.queue(refresh=False, job_ids=[job_id]))
    return dict(row)


def controller_log(job_id: int) -> str:
    out = Capture()
    sky.jobs.tail_logs(job_id=job_id, controller=True, follow=False, output_stream=out)  # type: ignore[arg-type]
    return out.text


def wait_status(job_id: int, *wanted: str, timeout: float = 60) -> dict[str, Any]:
    """Poll the job's row until its status is one of ``wanted`` (never past a terminal
    status it was not waiting for)."""
    deadline = time.monotonic() + timeout
    while True:
        row = record(job_id)
        if row["status"].value in wanted:
            return row
        assert not row["status"].is_terminal(), (row, controller_log(job_id))
        assert time.monotonic() < deadline, (
            f"job {job_id} is {row['status']}, not {wanted}; its controller's log:\n"
            + controller_log(job_id)
        )
        time.sleep(0.1)
