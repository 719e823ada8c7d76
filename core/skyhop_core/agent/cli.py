"""The agent's command line: ``python -m skyhop_core.agent --root RUNTIME_DIR <command>``.

``queue``, ``status`` and ``health`` first mark jobs whose daemon died FAILED_DRIVER
(:func:`~.daemon.reconcile_if_dead`), so what they report is true at that moment.

Every command prints one JSON document on stdout, except ``tail`` (raw log bytes, and
its exit code says how the job ended). Errors go to stderr with exit code 1 (2 for bad
usage), so the caller can raise them with the message.

================  ==========================================================
start             start the daemon if needed → {"pid": N, "started": bool}
stop              stop the daemon, cancel unfinished jobs → {"stopped", "cancelled"}
submit            JobSpec JSON on stdin → {"job_id": N}
queue             [--skip-finished] → [job, ...] newest first
status            [--job-ids N ...] → {"N": "RUNNING" | null}; none given: the latest
cancel            --job-ids N ... | --all [--user-hash H] → {"cancelled": [N, ...]}
idle              → {"idle_seconds": float}
health            → {"daemon_pid": N | null, "heartbeat_age": s | null, "failed_driver": [N]}
tail              [JOB_ID] [--follow] [--tail N] → log bytes; exit 0/100/101/102/103
daemon            (internal) run the scheduler loop in the foreground
================  ==========================================================
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

from . import daemon, db, secrets
from .cluster import resources_str
from .launcher import valid_env_name
from .layout import Runtime
from .procs import kill_groups
from .tail import tail


class UsageError(Exception):
    """The command's input is invalid (exit code 2)."""


def _job_json(runtime: Runtime, row: Any) -> dict[str, Any]:
    spec = json.loads(row["spec"])
    return {
        "job_id": int(row["id"]),
        "job_name": row["name"],
        "username": row["username"],
        "user_hash": row["user_hash"],
        "submitted_at": row["submitted_at"],
        "start_at": row["start_at"],
        "end_at": row["end_at"],
        "resources": resources_str(
            int(spec.get("num_nodes") or 1), float(row["cpus"]), json.loads(row["gpus"])
        ),
        "status": row["status"],
        "log_path": runtime.log_path(int(row["id"])),
        "exit_codes": _exit_codes(runtime, int(row["id"]), row["status"]),
    }


def _exit_codes(runtime: Runtime, job_id: int, status: str) -> list[int] | None:
    if status not in (db.FAILED, db.FAILED_SETUP):
        return None
    try:
        with open(runtime.exit_codes_path(job_id)) as f:
            return [int(c) for c in json.load(f)]
    except (OSError, ValueError, TypeError):
        return None


def _check_spec(spec: Any) -> dict[str, Any]:
    if not isinstance(spec, dict):
        raise UsageError("the job spec must be a JSON object")
    for field in ("envs", "secrets"):
        bad = [k for k in (spec.get(field) or {}) if not valid_env_name(str(k))]
        if bad:
            raise UsageError(f"{field}: {bad} are not valid environment variable names")
    if int(spec.get("num_nodes") or 1) < 1:
        raise UsageError("num_nodes must be at least 1")
    if float(spec.get("cpus", 0.5)) < 0:
        raise UsageError("cpus must not be negative")
    return spec


def cmd_submit(runtime: Runtime, args: argparse.Namespace) -> Any:
    try:
        spec = _check_spec(json.loads(sys.stdin.read()))
    except json.JSONDecodeError as exc:
        raise UsageError(f"the job spec on stdin is not JSON: {exc}") from None
    # Secret values never go into agent.db: only their names; the values go to the
    # daemon's memory (see agent/secrets.py).
    values = {str(k): str(v) for k, v in (spec.pop("secrets", None) or {}).items()}
    if values:
        spec["secret_names"] = sorted(values)
    runtime.ensure()
    with db.connect(runtime.db) as conn:
        job_id = db.insert_job(conn, spec)
    if daemon.daemon_pid(runtime) is None:
        daemon.start(runtime)
    if values:
        try:
            secrets.deliver(runtime, job_id, values)
        except OSError as exc:
            with db.connect(runtime.db) as conn:
                db.transition(conn, job_id, db.FAILED_DRIVER)
            raise RuntimeError(
                f"job {job_id} failed: its secrets could not be handed to the agent daemon "
                f"({exc}); see {runtime.daemon_log}"
            ) from None
    daemon.wake(runtime)
    return {"job_id": job_id}


def _truthful(runtime: Runtime, rows: list[Any]) -> bool:
    """Reconcile if some row is active but no daemon drives it; whether anything changed."""
    active = any(r is not None and r["status"] in db.ACTIVE for r in rows)
    if active and not daemon.daemon_running(runtime):
        return bool(daemon.reconcile_if_dead(runtime))
    return False


def cmd_queue(runtime: Runtime, args: argparse.Namespace) -> Any:
    if not os.path.exists(runtime.db):
        return []
    with db.connect(runtime.db) as conn:
        rows = db.all_jobs(conn)
    if _truthful(runtime, rows):
        with db.connect(runtime.db) as conn:
            rows = db.all_jobs(conn)
    if args.skip_finished:
        rows = [r for r in rows if r["status"] not in db.TERMINAL]
    return [_job_json(runtime, r) for r in rows]


def cmd_status(runtime: Runtime, args: argparse.Namespace) -> Any:
    if not os.path.exists(runtime.db):
        return {str(i): None for i in args.job_ids or []}
    with db.connect(runtime.db) as conn:
        ids = args.job_ids
        if not ids:
            latest = db.latest_job_id(conn)
            ids = [] if latest is None else [latest]
        found = {i: db.get_job(conn, i) for i in ids}
    if _truthful(runtime, list(found.values())):
        with db.connect(runtime.db) as conn:
            found = {i: db.get_job(conn, i) for i in ids}
    return {str(i): (row["status"] if row else None) for i, row in found.items()}


def cmd_cancel(runtime: Runtime, args: argparse.Namespace) -> Any:
    if not args.job_ids and not args.all:
        raise UsageError("name the jobs to cancel with --job-ids, or pass --all")
    if not os.path.exists(runtime.db):
        return {"cancelled": []}
    cancelled, pgids = [], []
    with db.connect(runtime.db) as conn:
        for row in db.jobs_with_status(conn, db.UNFINISHED):
            if args.job_ids and int(row["id"]) not in args.job_ids:
                continue
            if args.user_hash and row["user_hash"] != args.user_hash:
                continue
            if db.transition(conn, int(row["id"]), db.CANCELLED):
                cancelled.append(int(row["id"]))
                pgids.extend(db.job_pids(row))
    kill_groups(pgids)
    for job_id in cancelled:
        os.makedirs(runtime.job_dir(job_id), exist_ok=True)
        with open(runtime.log_path(job_id), "ab") as f:
            f.write(b"skyhop: the job was cancelled.\n")
    daemon.wake(runtime)
    return {"cancelled": cancelled}


def cmd_idle(runtime: Runtime, args: argparse.Namespace) -> Any:
    if not os.path.exists(runtime.db):
        return {"idle_seconds": 0.0}
    with db.connect(runtime.db) as conn:
        if db.jobs_with_status(conn, db.UNFINISHED):
            return {"idle_seconds": 0.0}
        marks = [db.last_end(conn), float(db.get_meta(conn, "daemon_started_at") or 0) or None]
    since = max((m for m in marks if m is not None), default=None)
    return {"idle_seconds": 0.0 if since is None else max(0.0, time.time() - since)}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="skyhop-agent", description="skyhop node agent")
    parser.add_argument("--root", required=True, help="the runtime directory on this node")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("start", "stop", "submit", "idle", "health", "daemon"):
        sub.add_parser(name)
    queue = sub.add_parser("queue")
    queue.add_argument("--skip-finished", action="store_true")
    status = sub.add_parser("status")
    status.add_argument("--job-ids", type=int, nargs="*")
    cancel = sub.add_parser("cancel")
    cancel.add_argument("--job-ids", type=int, nargs="*")
    cancel.add_argument("--all", action="store_true")
    cancel.add_argument("--user-hash")
    tail_cmd = sub.add_parser("tail")
    tail_cmd.add_argument("job_id", type=int, nargs="?")
    tail_cmd.add_argument("--follow", action="store_true")
    tail_cmd.add_argument("--tail", type=int, default=0)
    return parser


COMMANDS = {
    "start": lambda rt, a: daemon.start(rt),
    "stop": lambda rt, a: daemon.stop(rt),
    "submit": cmd_submit,
    "queue": cmd_queue,
    "status": cmd_status,
    "cancel": cmd_cancel,
    "idle": cmd_idle,
    "health": lambda rt, a: daemon.health(rt),
}


def main(argv: list[str] | None = None) -> int:
    """Run one agent command; returns the process exit code."""
    args = _parser().parse_args(argv)
    runtime = Runtime(args.root)
    if args.command == "daemon":
        return daemon.run(runtime)
    if args.command == "tail":
        try:
            return tail(runtime, args.job_id, args.follow, args.tail)
        except BrokenPipeError:
            return 0
    try:
        result = COMMANDS[args.command](runtime, args)
    except UsageError as exc:
        print(f"skyhop agent: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        print(f"skyhop agent: {args.command} failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")
    return 0
