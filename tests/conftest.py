"""Fixtures shared by the whole suite: a real API server under hypercorn on loopback."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pgserver
import pytest
from serverproc import ServerProcess, kill_processes_under

# Local nodes made by servers and backends under test share the host's network: a node
# network means a bridge on this host. The tests of node networks turn it back on with a
# bridge, subnet and address registry of their own (tests/plugins/local/netconfig.py).
os.environ.setdefault("SKYHOP_LOCAL_NETWORK", "off")
# The fake ssh hosts are namespaces on this machine: a host the tests kill is noticed in
# about 6 s instead of 15 (keep-alives 2 s apart), and refused within 5 s.
os.environ.setdefault("SKYHOP_SSH_ALIVE_INTERVAL", "2")
os.environ.setdefault("SKYHOP_SSH_CONNECT_TIMEOUT", "5")
# A test's "preemption" kills a node's processes and removes its directory within
# milliseconds: a managed job's failure is judged 1 s on, not 5.
os.environ.setdefault("SKYHOP_JOBS_FAILURE_GRACE_SECONDS", "1")


@pytest.fixture
def make_server(tmp_path: Path) -> Iterator[object]:
    """Factory: ``make_server()`` starts a server on a fresh persistent path."""
    servers: list[ServerProcess] = []

    def make(root: Path | None = None, **kwargs: object) -> ServerProcess:
        server = ServerProcess(root or tmp_path / f"state{len(servers)}", **kwargs)  # type: ignore[arg-type]
        servers.append(server)
        return server.start()

    yield make
    for server in servers:
        try:
            server.stop()
        except Exception:
            server.kill()
        kill_processes_under(server.root)


@pytest.fixture
def server(make_server: object, monkeypatch: pytest.MonkeyPatch) -> ServerProcess:
    """A running server; the SDK and CLI in this test process talk to it."""
    srv: ServerProcess = make_server()  # type: ignore[operator]
    for key in ("SKYHOP_PERSISTENT_PATH", "SKYHOP_API_SERVER_ENDPOINT", "SKYHOP_CONFIG"):
        monkeypatch.setenv(key, srv.env[key])
    return srv


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[pgserver.PostgresServer]:
    """One real PostgreSQL server for the session (see ``tests/pgserver.py``); skips with
    the reason where none can run."""
    problem = pgserver.find_problem()
    if problem:
        pytest.skip(f"PostgreSQL is unavailable: {problem}")
    with pgserver.running_server() as server:
        yield server


@pytest.fixture
def pg_url(postgres_server: pgserver.PostgresServer) -> Iterator[str]:
    """The SQLAlchemy URL of an empty database of its own, dropped after the test."""
    with pgserver.database(postgres_server) as url:
        yield url
