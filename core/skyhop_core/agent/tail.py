"""``agent tail``: copy a job's log to stdout, optionally following it until the job ends.

Exit codes: 0 succeeded, 100 failed (FAILED, FAILED_SETUP, FAILED_DRIVER), 101 not
finished (without ``--follow``, or the reader went away), 102 no such job, 103 cancelled.

A following tail must not outlive whoever reads it (an API server that was SIGKILLed
never kills its children): about every :data:`LIVENESS_CHECK_SECONDS` it checks that
its stdout still has a reader and that its parent is the one that started it, and
exits when not — even while the job writes nothing, when no write would fail. With
``SKYHOP_TAIL_STDIN_LIFELINE=1`` in its environment (set by runners whose transport
carries the caller's stdin, e.g. ssh) it also exits when its stdin reaches EOF.
"""

from __future__ import annotations

import os
import select
import stat
import sys
import time
from typing import BinaryIO

from . import db
from .layout import Runtime

EXIT_SUCCEEDED = 0
EXIT_FAILED = 100
EXIT_NOT_FINISHED = 101
EXIT_NOT_FOUND = 102
EXIT_CANCELLED = 103
FOLLOW_POLL_SECONDS = 0.05
#: A follower polls faster for its first second: that is when a just-submitted job's
#: first line arrives, and someone is waiting for it (``exec`` then ``logs``).
EARLY_POLL_SECONDS = 0.01
EARLY_SECONDS = 1.0
LIVENESS_CHECK_SECONDS = 1.0


def exit_code(status: str | None) -> int:
    """The tail exit code for a job status (None: no such job)."""
    if status is None:
        return EXIT_NOT_FOUND
    if status == db.SUCCEEDED:
        return EXIT_SUCCEEDED
    if status == db.CANCELLED:
        return EXIT_CANCELLED
    if status in db.TERMINAL:
        return EXIT_FAILED
    return EXIT_NOT_FINISHED


def _last_lines_offset(path: str, lines: int) -> int:
    """Offset in ``path`` where its last ``lines`` lines start."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return 0
    body = data[:-1] if data.endswith(b"\n") else data
    cut = len(body)
    for _ in range(lines):
        cut = body.rfind(b"\n", 0, cut)
        if cut < 0:
            return 0
    return cut + 1


def _copy_new(path: str, offset: int, out: BinaryIO) -> int:
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            while chunk := f.read(65536):
                out.write(chunk)
                offset += len(chunk)
    except FileNotFoundError:
        return offset
    out.flush()
    return offset


def _reader_gone(fd: int) -> bool:
    """Whether the pipe or socket ``fd`` writes to has lost its reader."""
    try:
        mode = os.fstat(fd).st_mode
    except OSError:
        return True
    if not (stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)):
        return False  # a file or a terminal: nothing to tell
    poller = select.poll()
    poller.register(fd, 0)  # POLLERR and POLLHUP are reported whatever was asked for
    gone = select.POLLERR | select.POLLHUP | select.POLLNVAL
    return any(events & gone for _, events in poller.poll(0))


def _stdin_closed() -> bool:
    """Whether stdin (a lifeline the caller holds open) has reached EOF."""
    try:
        readable, _, _ = select.select([0], [], [], 0)
        return bool(readable) and not os.read(0, 65536)
    except OSError:
        return True


class _Caller:
    """Tells whether the process that reads this tail is still there."""

    def __init__(self, out: BinaryIO) -> None:
        self.parent = os.getppid()
        try:
            self.fd: int | None = out.fileno()
        except (AttributeError, OSError, ValueError):
            self.fd = None  # an in-memory stream (tests): always there
        self.lifeline = os.environ.get("SKYHOP_TAIL_STDIN_LIFELINE") == "1"

    def gone(self) -> bool:
        if self.fd is None:
            return False
        if os.getppid() != self.parent or _reader_gone(self.fd):
            return True
        return self.lifeline and _stdin_closed()


def _status(runtime: Runtime, job_id: int) -> str | None:
    with db.connect(runtime.db) as conn:
        row = db.get_job(conn, job_id)
    return None if row is None else str(row["status"])


def tail(
    runtime: Runtime, job_id: int | None, follow: bool, lines: int, out: BinaryIO | None = None
) -> int:
    """Write the log of ``job_id`` (None: the latest job) to ``out``; return the exit code."""
    out = out or sys.stdout.buffer
    if not os.path.exists(runtime.db):
        print("no jobs on this cluster", file=sys.stderr)
        return EXIT_NOT_FOUND
    if job_id is None:
        with db.connect(runtime.db) as conn:
            job_id = db.latest_job_id(conn)
    status = None if job_id is None else _status(runtime, job_id)
    if job_id is None or status is None:
        print(f"job {job_id} not found", file=sys.stderr)
        return EXIT_NOT_FOUND
    path = runtime.log_path(job_id)
    offset = _last_lines_offset(path, lines) if lines > 0 else 0
    started = time.monotonic()
    next_liveness = started + LIVENESS_CHECK_SECONDS
    caller = _Caller(out) if follow else None
    while True:
        status = _status(runtime, job_id)
        offset = _copy_new(path, offset, out)  # after reading the status: drains the end
        if not follow or status is None or status in db.TERMINAL:
            return exit_code(status)
        if time.monotonic() > next_liveness:
            next_liveness = time.monotonic() + LIVENESS_CHECK_SECONDS
            if caller is not None and caller.gone():
                return EXIT_NOT_FINISHED
            from .daemon import daemon_running, reconcile_if_dead

            if status in db.ACTIVE and not daemon_running(runtime):
                reconcile_if_dead(runtime)
        early = time.monotonic() - started < EARLY_SECONDS
        time.sleep(EARLY_POLL_SECONDS if early else FOLLOW_POLL_SECONDS)
