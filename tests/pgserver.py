"""A real PostgreSQL server for tests: ``initdb`` in a temporary directory, started on
loopback and a free port, stopped (``pg_ctl stop -m immediate``, then by PID) at the end.

Importable as ``pgserver`` from any test (tests/ is on sys.path). PostgreSQL refuses to
run as root, so as root the server runs as the ``postgres`` OS user (``runuser``). Where
it cannot be had, :func:`find_problem` says why and the fixtures skip with that reason.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

from serverproc import free_port

START_TIMEOUT = 30.0


def bin_dir() -> Path | None:
    """The newest installed PostgreSQL server's ``bin`` directory (initdb, pg_ctl)."""
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: (
            int(Path(p).parent.parent.name) if Path(p).parent.parent.name.isdigit() else 0
        ),
    )
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def run_as() -> list[str]:
    """The command prefix that runs a server binary as a user PostgreSQL accepts."""
    if os.geteuid() != 0:
        return []
    return ["runuser", "-u", "postgres", "--"]


def find_problem() -> str | None:
    """Why a PostgreSQL server cannot be started here, or None when it can."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return "psycopg is not installed (pip install 'skyhop[postgres]')"
    if bin_dir() is None:
        return "PostgreSQL server binaries not found (apt-get install postgresql)"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root and there is no 'postgres' user to run the server as"
        if shutil.which("runuser") is None:
            return "running as root and runuser is missing"
    return None


class PostgresServer:
    """One PostgreSQL cluster in a temporary directory, trusting loopback connections."""

    def __init__(self) -> None:
        self.port = free_port()
        self.base = Path(tempfile.mkdtemp(prefix="skyhop-pg-"))
        self.data = self.base / "data"
        self.sockets = self.base / "sockets"
        self.logfile = self.base / "server.log"
        bindir = bin_dir()
        assert bindir is not None
        self.bin = bindir
        self.pid: int | None = None

    def _run(self, *argv: str, timeout: float = 60) -> None:
        done = subprocess.run(
            [*run_as(), *argv], capture_output=True, timeout=timeout, cwd=self.base
        )
        if done.returncode != 0:
            raise RuntimeError(
                f"{' '.join(argv)} failed ({done.returncode}): "
                f"{done.stdout.decode(errors='replace')}{done.stderr.decode(errors='replace')}"
            )

    def start(self) -> PostgresServer:
        self.sockets.mkdir()
        if os.geteuid() == 0:
            user = pwd.getpwnam("postgres")
            for path in (self.base, self.sockets):
                os.chown(path, user.pw_uid, user.pw_gid)
        self._run(
            str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres",
            "--auth=trust", "-E", "UTF8", "--no-sync",
        )  # fmt: skip
        options = f"-h 127.0.0.1 -p {self.port} -k {self.sockets} -F -c max_connections=200"
        self._run(
            str(self.bin / "pg_ctl"), "start", "-D", str(self.data), "-w",
            "-t", str(int(START_TIMEOUT)), "-l", str(self.logfile), "-o", options,
        )  # fmt: skip
        self.pid = int((self.data / "postmaster.pid").read_text().split()[0])
        return self

    def url(self, database: str = "postgres") -> str:
        """A SQLAlchemy URL for ``database`` (psycopg 3 driver)."""
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def _admin(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(
            f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres", autocommit=True
        ) as conn:
            conn.execute(sql.encode())

    def create_database(self) -> str:
        """A new empty database; returns its name."""
        name = f"t_{uuid.uuid4().hex[:16]}"
        self._admin(f'CREATE DATABASE "{name}"')
        return name

    def drop_database(self, name: str) -> None:
        """Drop ``name``, disconnecting whoever still uses it."""
        self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def stop(self) -> None:
        """Stop at once (no checkpoint: the data is thrown away) and remove the directory."""
        with contextlib.suppress(Exception):
            self._run(str(self.bin / "pg_ctl"), "stop", "-D", str(self.data), "-m", "immediate",
                      "-w", timeout=20)  # fmt: skip
        if self.pid is not None:
            deadline = time.monotonic() + 10
            while _alive(self.pid) and time.monotonic() < deadline:
                with contextlib.suppress(OSError):
                    os.kill(self.pid, signal.SIGKILL)
                time.sleep(0.05)
        shutil.rmtree(self.base, ignore_errors=True)

    def log(self) -> str:
        try:
            return self.logfile.read_text(errors="replace")
        except OSError:
            return ""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextlib.contextmanager
def running_server() -> Iterator[PostgresServer]:
    """Start a server for the block; it is stopped afterwards even when the block fails."""
    server = PostgresServer()
    try:
        yield server.start()
    finally:
        server.stop()


@contextlib.contextmanager
def database(server: PostgresServer) -> Iterator[str]:
    """A fresh database for the block (its SQLAlchemy URL), dropped afterwards."""
    name = server.create_database()
    try:
        yield server.url(name)
    finally:
        with contextlib.suppress(Exception):
            server.drop_database(name)
