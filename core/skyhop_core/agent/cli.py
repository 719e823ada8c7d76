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
idle              [--ssh] → {"idle_seconds": float}; --ssh: SSH sessions are activity
health            → {"daemon_pid": N | null, "heartbeat_age": s | null, "failed_driver": [N]}
tail              [JOB_ID] [--follow] [--tail N] → log bytes; exit 0/100/101/102/103
daemon            (internal) run the scheduler loop in the foreground
================  ==========================================================
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import TYPE_CHECKING, Any

from . import daemon, db
from .layout import Runtime

if TYPE_CHECKING:
    import argparse

# Each call is a fresh interpreter on a job's critical path (``submit``, ``tail``): a
# command imports what only it needs, and well-formed command lines skip argparse.


class UsageError(Exception):
    """The command's input is invalid (exit code 2)."""


def _resources_str(num_nodes: int, cpus: float, gpus: dict[str, float]) -> str:
    from .cluster import resources_str

    return resources_str(num_nodes, cpus, gpus)


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
        "resources": _resources_str(
            int(spec.get("num_nodes") or 1), float(row["cpus"]), json.loads(row["gpus"])
        ),
        "status": row["status"],
        "log_path": runtime.log_path(int(row["id"])),
        "exit_codes": _exit_codes(runtime, int(row["id"]), row["status"]),
    }


def valid_env_name(name: str) -> bool:
    """Whether ``name`` can be an environment variable: ``[A-Za-z_][A-Za-z0-9_]*``."""
    return (
        name.isascii()
        and name.replace("_", "a").isalnum()
        and not name[0].isdigit()
    )


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
        from . import secrets

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
    from .procs import kill_groups

    kill_groups(pgids)
    for job_id in cancelled:
        os.makedirs(runtime.job_dir(job_id), exist_ok=True)
        with open(runtime.log_path(job_id), "ab") as f:
            f.write(b"skyhop: the job was cancelled.\n")
    daemon.wake(runtime)
    return {"cancelled": cancelled}


def cmd_idle(runtime: Runtime, args: argparse.Namespace) -> Any:
    """Seconds since the last job ended (0 while one is pending or running). With
    ``--ssh``, an interactive SSH session is activity too: 0 while one is open, and
    the time since the last one was seen once it closed."""
    if not os.path.exists(runtime.db):
        return {"idle_seconds": 0.0}
    now = time.time()
    with db.connect(runtime.db) as conn:
        if db.jobs_with_status(conn, db.UNFINISHED):
            return {"idle_seconds": 0.0}
        marks = [db.last_end(conn), float(db.get_meta(conn, "daemon_started_at") or 0) or None]
        if getattr(args, "ssh", False):
            from .sessions import active

            if active():
                db.set_meta(conn, "ssh_session_seen_at", repr(now))
                return {"idle_seconds": 0.0}
            marks.append(float(db.get_meta(conn, "ssh_session_seen_at") or 0) or None)
    since = max((m for m in marks if m is not None), default=None)
    return {"idle_seconds": 0.0 if since is None else max(0.0, now - since)}


def _options(command: str, parser: argparse.ArgumentParser) -> None:
    """Add ``command``'s options (:data:`OPTIONS`) to its subparser."""
    if command == "tail":
        parser.add_argument("job_id", type=int, nargs="?")
    for flag, (attr, kind, default) in OPTIONS.get(command, {}).items():
        if kind == "flag":
            parser.add_argument(flag, dest=attr, action="store_true")
        elif kind == "ints":
            parser.add_argument(flag, dest=attr, type=int, nargs="*")
        else:
            parser.add_argument(flag, dest=attr, type=int if kind == "int" else str,
                                default=default)


NAMES = ("start", "stop", "submit", "queue", "status", "cancel", "idle", "health", "tail",
         "daemon")


#: Each command's options: flag → (attribute, kind, default); kind "flag" is a switch,
#: "int"/"str" take one value, "ints" the integers that follow. ``tail`` also takes an
#: optional positional job ID.
OPTIONS: dict[str, dict[str, tuple[str, str, Any]]] = {
    "queue": {"--skip-finished": ("skip_finished", "flag", False)},
    "status": {"--job-ids": ("job_ids", "ints", None)},
    "cancel": {
        "--job-ids": ("job_ids", "ints", None),
        "--all": ("all", "flag", False),
        "--user-hash": ("user_hash", "str", None),
    },
    "tail": {"--follow": ("follow", "flag", False), "--tail": ("tail", "int", 0)},
    "idle": {"--ssh": ("ssh", "flag", False)},
}


def _fast_parse(argv: list[str]) -> Any:
    """Parse the well-formed command lines the runners send without argparse (whose
    import, with gettext, locale and shutil, costs more than the command itself); None
    for anything else, which argparse then parses or rejects with its usual message."""
    from types import SimpleNamespace

    if len(argv) < 3 or argv[0] != "--root" or argv[2] not in NAMES:
        return None
    command, rest = argv[2], argv[3:]
    options = OPTIONS.get(command, {})
    args = SimpleNamespace(root=argv[1], command=command,
                           **{attr: default for attr, _, default in options.values()})
    if command == "tail":
        args.job_id = None
    i = 0
    while i < len(rest):
        word = rest[i]
        if word not in options:
            if command == "tail" and args.job_id is None and word.isdigit():
                args.job_id = int(word)
                i += 1
                continue
            return None
        attr, kind, _ = options[word]
        if kind == "flag":
            setattr(args, attr, True)
            i += 1
        elif kind == "ints":
            values = []
            i += 1
            while i < len(rest) and rest[i].isdigit():
                values.append(int(rest[i]))
                i += 1
            setattr(args, attr, values)
        else:
            value = rest[i + 1] if i + 1 < len(rest) else ""
            if not value or value.startswith("-") or (kind == "int" and not value.isdigit()):
                return None
            setattr(args, attr, int(rest[i + 1]) if kind == "int" else rest[i + 1])
            i += 2
    return args


def _parser() -> argparse.ArgumentParser:
    """The full parser: for ``--help`` and for what :func:`_fast_parse` does not take."""
    import argparse

    parser = argparse.ArgumentParser(prog="skyhop-agent", description="skyhop node agent")
    parser.add_argument("--root", required=True, help="the runtime directory on this node")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in NAMES:
        _options(name, sub.add_parser(name))
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
    argv = sys.argv[1:] if argv is None else argv
    args = _fast_parse(argv) or _parser().parse_args(argv)
    runtime = Runtime(args.root)
    if args.command == "daemon":
        return daemon.run(runtime)
    if args.command == "tail":
        from .tail import tail

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
