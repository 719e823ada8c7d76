"""The scheduler daemon: one per runtime directory, detached from whoever started it.

Exactly one daemon runs per runtime directory: it holds an exclusive ``flock`` on
``daemon.lock`` for its whole life (the kernel drops it when the process dies, so a
crashed daemon never looks alive). It wakes on SIGUSR1 (sent by ``submit``), when a job
finishes, and every :data:`POLL_SECONDS` as a fallback.

The daemon is the driver of every job (each job runs in one of its threads), so a job
whose daemon died has no driver: it is FAILED_DRIVER, and its processes are killed.
That reconciliation runs when a daemon starts, and also in every command that reports
job statuses (``queue``, ``status``, ``health``, a following ``tail``) when they find
active jobs and no daemon: :func:`reconcile_if_dead` takes the daemon's lock itself for
the duration, so it can never race a daemon that is starting. A ``kill -9`` of the
daemon is therefore visible to the very next ``queue``.

The daemon touches ``daemon.heartbeat`` on every pass (at least every
:data:`HEARTBEAT_SECONDS`); ``health`` reports its age, so a caller can tell a daemon
that hangs from one that works.

``stop`` (the cluster is being stopped or torn down) ends the daemon and then ends every
unfinished job, as SkyPilot reports them after a stop and start: a job that was running
(SETTING_UP, RUNNING) is FAILED_DRIVER — its driver went away under it — and one still
waiting (INIT, PENDING) is CANCELLED, as it never started. The running job's log says
the cluster was stopped, so FAILED_DRIVER is not mistaken for a crash.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import sys
import time

from . import db
from .layout import Runtime
from .procs import kill_groups, pid_alive

# Every agent call is a fresh interpreter on a job's critical path (submit, tail), so
# what only the daemon itself needs (subprocess, select, the secrets socket, the port
# forwarders, the scheduler) is imported where it is used.

POLL_SECONDS = 0.2
HEARTBEAT_SECONDS = 1.0
LOCK_RETRY_SECONDS = 1.0
#: How long a start waits for the daemon to hold its lock (it gives up at once if the
#: daemon exits): on a loaded machine a fresh interpreter took over 10 s.
START_TIMEOUT = 30.0
STOP_TIMEOUT = 3.0


def daemon_running(runtime: Runtime) -> bool:
    """Whether a daemon holds the lock (a brief probe; the daemon retries around it)."""
    if not os.path.exists(runtime.lock_file):
        return False
    fd = os.open(runtime.lock_file, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing drops the probe's lock
    return False


def daemon_pid(runtime: Runtime) -> int | None:
    """The live daemon's pid, or None."""
    if not daemon_running(runtime):
        return None
    try:
        with open(runtime.pid_file) as f:
            pid = int(f.read().strip() or 0)
    except (OSError, ValueError):
        return None
    return pid if pid_alive(pid) else None


def heartbeat_age(runtime: Runtime) -> float | None:
    """Seconds since the daemon's last pass (None: no daemon ever beat here)."""
    try:
        return max(0.0, time.time() - os.stat(runtime.heartbeat_file).st_mtime)
    except FileNotFoundError:
        return None


def _beat(runtime: Runtime) -> None:
    with open(runtime.heartbeat_file, "a"):
        pass
    os.utime(runtime.heartbeat_file)


def wake(runtime: Runtime) -> None:
    """Ask the daemon for a scheduling pass now."""
    pid = daemon_pid(runtime)
    if pid is not None:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGUSR1)


def boot_argv(python: str = sys.executable, top: str | None = None) -> list[str]:
    """argv prefix that runs this package's CLI in a fresh interpreter, with the package
    found under ``top`` (default: where this copy of it is). The agent is stdlib-only, so
    ``-S`` skips site-packages and their ``.pth`` hooks (tens of milliseconds on every
    agent call)."""
    package = __package__ or "skyhop_core.agent"
    if top is None:
        top = os.path.dirname(os.path.abspath(__file__))
        for _ in package.split("."):
            top = os.path.dirname(top)
    # Importing the CLI directly rather than through runpy saves runpy's own imports, and
    # its bytecode is cached even under PYTHONDONTWRITEBYTECODE (set on some machines,
    # it made every agent call compile the agent again: ~6 ms of each ~30).
    boot = (
        f"import sys; sys.dont_write_bytecode = False; sys.path.insert(0, {top!r}); "
        f"from {package}.cli import main; sys.exit(main())"
    )
    return [python, "-S", "-c", boot]


def _boot_argv(runtime: Runtime) -> list[str]:
    return [*boot_argv(), "--root", runtime.root, "daemon"]


def start(runtime: Runtime) -> dict[str, object]:
    """Start the daemon unless one runs; wait until it holds its lock."""
    runtime.ensure()
    pid = daemon_pid(runtime)
    if pid is not None:
        return {"pid": pid, "started": False}
    import subprocess

    from .cluster import ClusterInfo

    ClusterInfo.load(runtime.cluster_json)  # fail here, clearly, if it is missing or bad
    with open(runtime.daemon_log, "ab") as log:
        proc = subprocess.Popen(
            _boot_argv(runtime),
            cwd=runtime.root,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        pid = daemon_pid(runtime)
        if pid is not None:
            return {"pid": pid, "started": pid == proc.pid}
        if proc.poll() is not None and not daemon_running(runtime):
            break
        time.sleep(0.01)
    raise RuntimeError(f"the agent daemon did not start; see {runtime.daemon_log}")


def stop(runtime: Runtime) -> dict[str, object]:
    """Stop the daemon, then cancel every unfinished job and kill its processes."""
    if not os.path.exists(runtime.db):
        return {"stopped": False, "cancelled": []}
    # While this runs, nobody reconciles: the jobs of a daemon stopped on purpose get the
    # stop's statuses and log line, not a dead daemon's (see reconcile_if_dead).
    stop_fd = os.open(runtime.stop_lock_file, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(stop_fd, fcntl.LOCK_EX)
        return _stop_locked(runtime)
    finally:
        os.close(stop_fd)


def _stop_locked(runtime: Runtime) -> dict[str, object]:
    pid = daemon_pid(runtime)
    if pid is not None:
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        while daemon_running(runtime) and time.monotonic() < deadline:
            time.sleep(0.02)
        if daemon_running(runtime):
            os.kill(pid, signal.SIGKILL)
            while daemon_running(runtime):
                time.sleep(0.02)
    cancelled, failed, pgids = [], [], []
    with db.connect(runtime.db) as conn:
        for row in db.jobs_with_status(conn, db.UNFINISHED):
            job_id = int(row["id"])
            if row["status"] in db.ACTIVE:
                if db.transition(conn, job_id, db.FAILED_DRIVER, only_from=db.ACTIVE):
                    failed.append(job_id)
                    pgids.extend(db.job_pids(row))
            elif db.transition(conn, job_id, db.CANCELLED):
                cancelled.append(job_id)
    kill_groups(pgids)
    for job_id in failed:
        os.makedirs(runtime.job_dir(job_id), exist_ok=True)
        with open(runtime.log_path(job_id), "ab") as f:
            f.write(b"skyhop: the cluster was stopped while this job ran (FAILED_DRIVER).\n")
    return {"stopped": pid is not None, "cancelled": cancelled, "failed_driver": failed}


def reconcile(runtime: Runtime) -> list[int]:
    """Mark jobs a dead daemon left active FAILED_DRIVER (and kill their processes).

    Only call while no daemon runs (at daemon start, or after checking).
    """
    failed, pgids = [], []
    with db.connect(runtime.db) as conn:
        for row in db.jobs_with_status(conn, db.ACTIVE):
            if db.transition(conn, int(row["id"]), db.FAILED_DRIVER, only_from=db.ACTIVE):
                failed.append(int(row["id"]))
                pgids.extend(db.job_pids(row))
    kill_groups(pgids)
    for job_id in failed:
        os.makedirs(runtime.job_dir(job_id), exist_ok=True)
        with open(runtime.log_path(job_id), "ab") as f:
            f.write(b"skyhop: the agent daemon died while this job ran; it was stopped.\n")
    return failed


def reconcile_if_dead(runtime: Runtime) -> list[int] | None:
    """:func:`reconcile` if no daemon runs; None when one does (or is starting).

    Holds the daemon's lock meanwhile, so a daemon starting at the same moment waits
    (it retries for :data:`LOCK_RETRY_SECONDS`) instead of having its fresh jobs failed;
    stands back (None) while ``stop`` holds ``stop.lock``.
    """
    if not os.path.exists(runtime.db):
        return []
    stop_fd = os.open(runtime.stop_lock_file, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(stop_fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return None  # a stop is under way: its jobs become CANCELLED
        lock_fd = _acquire_lock(runtime, retry=0.0)
        if lock_fd is None:
            return None
        try:
            return reconcile(runtime)
        finally:
            os.close(lock_fd)
    finally:
        os.close(stop_fd)


def health(runtime: Runtime) -> dict[str, object]:
    """The daemon's liveness and the heartbeat age; reconciles first if the daemon died."""
    failed = None
    if os.path.exists(runtime.db):
        with db.connect(runtime.db) as conn:
            active = [int(r["id"]) for r in db.jobs_with_status(conn, db.ACTIVE)]
        if active and not daemon_running(runtime):
            failed = reconcile_if_dead(runtime)
    return {
        "daemon_pid": daemon_pid(runtime),
        "heartbeat_age": heartbeat_age(runtime),
        "failed_driver": failed or [],
    }


def _acquire_lock(runtime: Runtime, retry: float = LOCK_RETRY_SECONDS) -> int | None:
    """The daemon's exclusive lock (an open fd; closing it releases), or None if held."""
    fd = os.open(runtime.lock_file, os.O_RDWR | os.O_CREAT, 0o600)
    deadline = time.monotonic() + retry
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except BlockingIOError:
            if time.monotonic() > deadline:
                os.close(fd)
                return None
            time.sleep(0.01)


def run(runtime: Runtime) -> int:
    """The daemon's main loop (``agent daemon``); returns when SIGTERM arrives."""
    import select

    from . import secrets
    from .cluster import ClusterInfo
    from .forward import start_forwarders
    from .scheduler import Scheduler

    runtime.ensure()
    lock_fd = _acquire_lock(runtime)
    if lock_fd is None:
        return 0  # another daemon runs
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    stopping = []
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGUSR1, lambda *_: None)
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    signal.signal(signal.SIGINT, lambda *_: stopping.append(True))
    reconcile(runtime)
    with db.connect(runtime.db) as conn:
        db.set_meta(conn, "daemon_started_at", repr(time.time()))
    # Listening before the pid file exists: once ``start`` returns, submitters can
    # hand over secrets.
    listener = secrets.listen(runtime)
    with open(runtime.pid_file, "w") as f:
        f.write(str(os.getpid()))
    cluster = ClusterInfo.load(runtime.cluster_json)
    loaded_mtime = os.stat(runtime.cluster_json).st_mtime_ns
    forwarding = start_forwarders(list(cluster.data.get("forwards") or []))

    def poke() -> None:
        with contextlib.suppress(BlockingIOError):
            os.write(wake_w, b"j")

    scheduler = Scheduler(runtime, cluster, poke)
    last_beat = 0.0
    while not stopping:
        try:
            if time.monotonic() - last_beat >= HEARTBEAT_SECONDS:
                _beat(runtime)
                last_beat = time.monotonic()
            mtime = os.stat(runtime.cluster_json).st_mtime_ns
            if mtime != loaded_mtime:  # setup_runtime ran again (relaunch, new ports)
                cluster = ClusterInfo.load(runtime.cluster_json)
                loaded_mtime = mtime
                scheduler.reload(cluster)
                new = [
                    f for f in cluster.data.get("forwards") or [] if f["listen"] not in forwarding
                ]
                forwarding.update(start_forwarders(new))
            scheduler.schedule_once()
        except Exception as exc:  # keep scheduling; the log tells why a pass failed
            print(
                f"scheduling pass failed: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True
            )
        readable, _, _ = select.select([wake_r, listener.fileno()], [], [], POLL_SECONDS)
        if wake_r in readable:
            os.read(wake_r, 4096)
        if listener.fileno() in readable:
            delivered = secrets.receive(listener)
            if delivered is not None:
                scheduler.secrets[delivered[0]] = delivered[1]
    listener.close()
    return 0
