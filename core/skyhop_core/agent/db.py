"""The agent's SQLite store: the jobs table and a key/value metadata table.

Several processes use it at once (the daemon and its job threads, every CLI command), so
each operation opens a short-lived connection in autocommit mode with WAL and a busy
timeout; status changes are conditional updates so that a cancel racing a job's own
completion never gets overwritten.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

INIT = "INIT"
PENDING = "PENDING"
SETTING_UP = "SETTING_UP"
RUNNING = "RUNNING"
SUCCEEDED = "SUCCEEDED"
FAILED = "FAILED"
FAILED_SETUP = "FAILED_SETUP"
FAILED_DRIVER = "FAILED_DRIVER"
CANCELLED = "CANCELLED"

TERMINAL = (SUCCEEDED, FAILED, FAILED_SETUP, FAILED_DRIVER, CANCELLED)
UNFINISHED = (INIT, PENDING, SETTING_UP, RUNNING)
ACTIVE = (SETTING_UP, RUNNING)  #: statuses in which a job owns processes

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL DEFAULT '',
    username TEXT NOT NULL DEFAULT '',
    user_hash TEXT NOT NULL DEFAULT '',
    submitted_at REAL NOT NULL,
    start_at REAL,
    end_at REAL,
    status TEXT NOT NULL,
    cpus REAL NOT NULL,
    gpus TEXT NOT NULL DEFAULT '{}',
    spec TEXT NOT NULL,
    pids TEXT NOT NULL DEFAULT '[]'
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


@contextmanager
def connect(path: str) -> Iterator[sqlite3.Connection]:
    """An autocommit connection with the schema in place; closed on exit."""
    conn = sqlite3.connect(path, timeout=30, isolation_level=None)
    try:
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA journal_mode=WAL")
        conn.executescript(_SCHEMA)
        yield conn
    finally:
        conn.close()


def _placeholders(values: Iterable[Any]) -> str:
    return ",".join("?" for _ in values)


def insert_job(conn: sqlite3.Connection, spec: dict[str, Any]) -> int:
    """Queue a job (status INIT); return its ID."""
    cur = conn.execute(
        "INSERT INTO jobs (name, username, user_hash, submitted_at, status, cpus, gpus, spec)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (
            spec.get("name") or "",
            spec.get("username") or "",
            spec.get("user_hash") or "",
            time.time(),
            INIT,
            float(spec.get("cpus", 0.5)),
            json.dumps(spec.get("gpus") or {}),
            json.dumps(spec),
        ),
    )
    return int(cur.lastrowid or 0)


def get_job(conn: sqlite3.Connection, job_id: int) -> sqlite3.Row | None:
    return conn.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()


def latest_job_id(conn: sqlite3.Connection) -> int | None:
    row = conn.execute("SELECT MAX(id) FROM jobs").fetchone()
    return None if row[0] is None else int(row[0])


def jobs_with_status(conn: sqlite3.Connection, statuses: Iterable[str]) -> list[sqlite3.Row]:
    """Jobs in any of ``statuses``, oldest first (FIFO order)."""
    wanted = tuple(statuses)
    return conn.execute(
        f"SELECT * FROM jobs WHERE status IN ({_placeholders(wanted)}) ORDER BY id", wanted
    ).fetchall()


def all_jobs(conn: sqlite3.Connection) -> list[sqlite3.Row]:
    """Every job, newest first."""
    return conn.execute("SELECT * FROM jobs ORDER BY id DESC").fetchall()


def transition(
    conn: sqlite3.Connection,
    job_id: int,
    new: str,
    *,
    only_from: Iterable[str] = UNFINISHED,
    **fields: Any,
) -> bool:
    """Set ``status = new`` (and ``fields``) if the job is in one of ``only_from``.

    Returns whether the row changed. Reaching a terminal status stamps ``end_at``.
    """
    allowed = tuple(only_from)
    if new in TERMINAL:
        fields.setdefault("end_at", time.time())
    sets = ", ".join(["status = ?", *(f"{k} = ?" for k in fields)])
    cur = conn.execute(
        f"UPDATE jobs SET {sets} WHERE id = ? AND status IN ({_placeholders(allowed)})",
        (new, *fields.values(), job_id, *allowed),
    )
    return cur.rowcount > 0


def set_pids(conn: sqlite3.Connection, job_id: int, pids: list[int]) -> None:
    conn.execute("UPDATE jobs SET pids = ? WHERE id = ?", (json.dumps(pids), job_id))


def job_pids(row: sqlite3.Row) -> list[int]:
    return [int(p) for p in json.loads(row["pids"] or "[]")]


def set_meta(conn: sqlite3.Connection, key: str, value: str) -> None:
    conn.execute(
        "INSERT INTO meta (key, value) VALUES (?, ?)"
        " ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        (key, value),
    )


def get_meta(conn: sqlite3.Connection, key: str) -> str | None:
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    return None if row is None else str(row[0])


def last_end(conn: sqlite3.Connection) -> float | None:
    row = conn.execute("SELECT MAX(end_at) FROM jobs").fetchone()
    return None if row[0] is None else float(row[0])
