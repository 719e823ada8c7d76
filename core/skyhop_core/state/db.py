"""Engine creation, the table definitions, and the thread-offloading :class:`Store`."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa

T = TypeVar("T")

metadata = sa.MetaData()

clusters = sa.Table(
    "clusters",
    metadata,
    sa.Column("name", sa.String(128), primary_key=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("backend", sa.String(64), nullable=False),
    sa.Column("handle", sa.JSON, nullable=True),
    sa.Column("resources", sa.JSON, nullable=True),
    sa.Column("resources_str", sa.Text, nullable=False, default=""),
    sa.Column("num_nodes", sa.Integer, nullable=False, default=1),
    sa.Column("launched_at", sa.Float, nullable=True),
    sa.Column("last_use", sa.Text, nullable=False, default=""),
    sa.Column("autostop", sa.Integer, nullable=False, default=-1),
    sa.Column("to_down", sa.Boolean, nullable=False, default=False),
    sa.Column("autostop_set_at", sa.Float, nullable=True),
    sa.Column("user_hash", sa.String(64), nullable=False),
    sa.Column("user_name", sa.String(128), nullable=False),
    sa.Column("metadata", sa.JSON, nullable=False, default=dict),
)

#: Clusters that were torn down (``skyhop cost-report``): what each cost, a row written in
#: the transaction that deletes its ``clusters`` row (only clusters that were ever UP).
cluster_history = sa.Table(
    "cluster_history",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(128), nullable=False),
    sa.Column("backend", sa.String(64), nullable=False),
    sa.Column("resources_str", sa.Text, nullable=False, default=""),
    sa.Column("num_nodes", sa.Integer, nullable=False, default=1),
    sa.Column("launched_at", sa.Float, nullable=True),
    sa.Column("terminated_at", sa.Float, nullable=False, index=True),
    sa.Column("uptime_s", sa.Float, nullable=False),
    sa.Column("price_per_hour", sa.Float, nullable=False),
    sa.Column("cost", sa.Float, nullable=False),
    sa.Column("user_hash", sa.String(64), nullable=False, index=True),
    sa.Column("user_name", sa.String(128), nullable=False),
)

requests = sa.Table(
    "requests",
    metadata,
    sa.Column("request_id", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(64), nullable=False),
    sa.Column("user_name", sa.String(128), nullable=False),
    sa.Column("user_hash", sa.String(64), nullable=False),
    # The submitter's role (user/admin), so a resumed request runs with the same rights.
    sa.Column("user_role", sa.String(16), nullable=False, server_default="user"),
    sa.Column("cluster_name", sa.String(128), nullable=True, index=True),
    sa.Column("status", sa.String(16), nullable=False, index=True),
    sa.Column("schedule_type", sa.String(16), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False, index=True),
    sa.Column("started_at", sa.Float, nullable=True),
    sa.Column("finished_at", sa.Float, nullable=True),
    sa.Column("body", sa.JSON, nullable=False),
    sa.Column("result", sa.JSON, nullable=True),
    sa.Column("error", sa.JSON, nullable=True),
    # The API server replica that runs the request (its lease is in ``servers``).
    sa.Column("owner", sa.String(64), nullable=True, index=True),
    # Set by a replica that does not own the request; the owner cancels it.
    sa.Column("cancel_requested", sa.Boolean, nullable=False, server_default=sa.false()),
)
# What each replica polls for (``requests.cancel_requested_ids``, five times a second):
# indexed on its own, as the owner's index would have it read every request that
# replica ever ran.
sa.Index(
    "ix_requests_cancel_pending",
    requests.c.owner,
    sqlite_where=requests.c.cancel_requested.is_(True),
    postgresql_where=requests.c.cancel_requested.is_(True),
)

#: Live API server replicas and their leases: a replica whose heartbeat is older than
#: the lease (or, on the same host, whose process is gone) is dead, and another replica
#: takes over its requests.
servers = sa.Table(
    "servers",
    metadata,
    sa.Column("server_id", sa.String(64), primary_key=True),
    sa.Column("host", sa.String(255), nullable=False),
    sa.Column("pid", sa.Integer, nullable=False),
    sa.Column("started_at", sa.Float, nullable=False),
    sa.Column("heartbeat_at", sa.Float, nullable=False),
)

#: Who is running a lifecycle operation (launch/start/stop/down) on a cluster: one row per
#: busy cluster, held by one request on one replica and renewed while it runs, so
#: replicas serialise operations on a cluster as one server does (see
#: ``skyhop_core.state.cluster_leases``).
cluster_leases = sa.Table(
    "cluster_leases",
    metadata,
    sa.Column("cluster_name", sa.String(128), primary_key=True),
    sa.Column("request_id", sa.String(64), nullable=False),
    sa.Column("operation", sa.String(64), nullable=False),
    sa.Column("server_id", sa.String(64), nullable=False),
    sa.Column("host", sa.String(255), nullable=False),
    sa.Column("acquired_at", sa.Float, nullable=False),
    sa.Column("lease_until", sa.Float, nullable=False),
)

#: Service-account tokens of a deployed server (see ``skyhop_core.state.tokens``). Only a
#: sha256 of each token is stored; ``token_id`` (part of the token) finds its row.
api_tokens = sa.Table(
    "api_tokens",
    metadata,
    sa.Column("token_id", sa.String(32), primary_key=True),
    sa.Column("name", sa.String(128), nullable=False, index=True),
    sa.Column("user_hash", sa.String(64), nullable=False),
    sa.Column("token_hash", sa.String(64), nullable=False),
    # ``user`` or ``admin`` (an admin sees and acts on every user's objects).
    sa.Column("role", sa.String(16), nullable=False, server_default="user"),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("last_used_at", sa.Float, nullable=True),
    sa.Column("revoked_at", sa.Float, nullable=True),
)


#: Managed jobs (``skyhop jobs``): every piece of a controller's state is in its row, so
#: a restarted server, or another replica once ``lease_until`` has passed, resumes it
#: (see ``skyhop_core.jobs``).
managed_jobs = sa.Table(
    "managed_jobs",
    metadata,
    sa.Column("job_id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(128), nullable=False),
    sa.Column("user_name", sa.String(128), nullable=False),
    sa.Column("user_hash", sa.String(64), nullable=False, index=True),
    # The task-YAML mapping without secret values (those are in a 0600 file).
    sa.Column("task", sa.JSON, nullable=False),
    sa.Column("resources_str", sa.Text, nullable=False, default=""),
    sa.Column("priority", sa.Integer, nullable=False, default=0),
    sa.Column("status", sa.String(24), nullable=False, index=True),
    # WAITING (to launch), LAUNCHING (holds a launch slot), ALIVE, ALIVE_WAITING (a
    # running job that waits for a launch slot to recover), DONE.
    sa.Column("schedule_state", sa.String(16), nullable=False, index=True),
    # The current task's cluster (indexed: ``status`` leaves live job clusters out).
    sa.Column("cluster_name", sa.String(128), nullable=False, index=True),
    sa.Column("task_id", sa.String(255), nullable=False),
    sa.Column("strategy", sa.String(32), nullable=False),
    sa.Column("max_restarts_on_errors", sa.Integer, nullable=False, default=0),
    sa.Column("recover_on_exit_codes", sa.JSON, nullable=False, default=list),
    sa.Column("recovery_count", sa.Integer, nullable=False, default=0),
    sa.Column("restart_count", sa.Integer, nullable=False, default=0),
    sa.Column("launch_attempts", sa.Integer, nullable=False, default=0),
    sa.Column("agent_job_id", sa.Integer, nullable=True),
    sa.Column("region", sa.String(128), nullable=True),
    sa.Column("infra", sa.String(255), nullable=True),
    sa.Column("output_offset", sa.Integer, nullable=False, default=0),
    sa.Column("submitted_at", sa.Float, nullable=False),
    sa.Column("start_at", sa.Float, nullable=True),
    sa.Column("end_at", sa.Float, nullable=True),
    sa.Column("recovering_since", sa.Float, nullable=True),
    sa.Column("recovering_seconds", sa.Float, nullable=False, default=0.0),
    sa.Column("failure_reason", sa.Text, nullable=True),
    sa.Column("cancel_requested", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("owner", sa.String(64), nullable=True, index=True),
    sa.Column("lease_until", sa.Float, nullable=True),
    # A pipeline's tasks (None for a one-task job), see skyhop_core.jobs.pipeline; the
    # columns above (task, cluster_name, task_id, strategy, counters) are the current
    # task's, ``current_task`` its index.
    sa.Column("tasks", sa.JSON, nullable=True),
    sa.Column("current_task", sa.Integer, nullable=False, server_default="0"),
)


#: Storage buckets (``file_mounts`` storage entries): who owns each, and which cluster a
#: ``persistent: false`` bucket goes away with. A second user never sees yours.
storage_buckets = sa.Table(
    "storage_buckets",
    metadata,
    sa.Column("store", sa.String(32), primary_key=True),
    sa.Column("name", sa.String(255), primary_key=True),
    sa.Column("user_name", sa.String(128), nullable=False),
    sa.Column("user_hash", sa.String(64), nullable=False, index=True),
    sa.Column("persistent", sa.Boolean, nullable=False, default=True),
    # The cluster a non-persistent bucket is deleted with (None: kept until deleted).
    sa.Column("cluster_name", sa.String(128), nullable=True),
    sa.Column("source", sa.Text, nullable=True),
    # Whether skyhop created the bucket (a bucket named by URI is only borrowed).
    sa.Column("managed", sa.Boolean, nullable=False, default=True),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("last_use", sa.Text, nullable=False, default=""),
)


#: Services (``skyhop serve``, see ``skyhop_core.serve``): the service row holds its
#: controller's state (version, traffic switch, autoscaler counters, next replica ID,
#: the load balancer's port, the lease); a version row per ``serve up``/``update`` holds
#: that version's task; a replica row per replica cluster ``<service>-<id>``.
services = sa.Table(
    "services",
    metadata,
    sa.Column("name", sa.String(128), primary_key=True),
    sa.Column("user_name", sa.String(128), nullable=False),
    sa.Column("user_hash", sa.String(64), nullable=False, index=True),
    sa.Column("status", sa.String(24), nullable=False),
    # The latest version; replicas of older ones are replaced by the update mode.
    sa.Column("version", sa.Integer, nullable=False),
    # Blue-green: the only version that gets traffic (None: every READY replica).
    sa.Column("traffic_version", sa.Integer, nullable=True),
    # A version that could not come up: nothing more of it is launched.
    sa.Column("failed_version", sa.Integer, nullable=True),
    sa.Column("next_replica_id", sa.Integer, nullable=False),
    sa.Column("lb_port", sa.Integer, nullable=False),
    sa.Column("endpoint", sa.String(255), nullable=False),
    # The autoscaler's target and the times demand was first higher/lower than it.
    sa.Column("autoscaler", sa.JSON, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("failure_reason", sa.Text, nullable=True),
    sa.Column("down_requested", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("purge", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("owner", sa.String(64), nullable=True, index=True),
    sa.Column("lease_until", sa.Float, nullable=True),
    # Failed controllers its server restarted in a row (reset once one runs stably).
    sa.Column("controller_restarts", sa.Integer, nullable=False, server_default="0"),
)

service_versions = sa.Table(
    "service_versions",
    metadata,
    sa.Column("service_name", sa.String(128), primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True),
    # The task-YAML mapping without secret values (those are in a 0600 file).
    sa.Column("task", sa.JSON, nullable=False),
    sa.Column("mode", sa.String(16), nullable=False),
    sa.Column("resources_str", sa.Text, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
)

service_replicas = sa.Table(
    "service_replicas",
    metadata,
    sa.Column("service_name", sa.String(128), primary_key=True),
    sa.Column("replica_id", sa.Integer, primary_key=True),
    sa.Column("cluster_name", sa.String(128), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("status", sa.String(24), nullable=False),
    sa.Column("is_spot", sa.Boolean, nullable=False, server_default=sa.false()),
    # host:port the load balancer sends to (what the cluster record maps the port to).
    sa.Column("endpoint", sa.String(255), nullable=True),
    sa.Column("launched_at", sa.Float, nullable=False),
    sa.Column("starting_since", sa.Float, nullable=True),
    sa.Column("not_ready_since", sa.Float, nullable=True),
    sa.Column("first_ready_at", sa.Float, nullable=True),
    # Terminating: no new traffic; torn down once idle or at this time.
    sa.Column("drain_until", sa.Float, nullable=True),
    sa.Column("terminate_requested", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("failure_reason", sa.Text, nullable=True),
)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


def _private_sqlite_file(path: Path) -> None:
    """Create the SQLite file 0600 (in a 0700 directory) before SQLite does: SQLite gives
    its -wal and -shm files the mode of the database file, so they are private too."""
    from skyhop_core.paths import open_private, private_dir

    private_dir(path.parent)
    open_private(path, "ab").close()


def create_engine(persistent_path: Path) -> sa.Engine:
    """The engine for ``SKYHOP_DB_URL``, else SQLite at ``<persistent_path>/skyhop.db``.

    A server database (PostgreSQL: ``postgresql+psycopg://user:pass@host/db``) gets a
    pool that checks each connection before use, so a restarted database or a dropped
    idle connection costs a reconnect, not a failed request.
    """
    url = os.environ.get("SKYHOP_DB_URL") or f"sqlite:///{persistent_path / 'skyhop.db'}"
    parsed = sa.engine.make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            _private_sqlite_file(Path(parsed.database))
        engine = sa.create_engine(url)
        sa.event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    # Store.run uses up to 8 worker threads; the pool holds as many connections.
    return sa.create_engine(url, pool_pre_ping=True, pool_size=8, max_overflow=4)


class Store:
    """The database plus a limiter for the worker threads that talk to it, and the
    group-commit writer for the request rows (see :mod:`skyhop_core.state.writer`)."""

    def __init__(self, engine: sa.Engine, max_threads: int = 8, writer: str | None = None) -> None:
        self.engine = engine
        import trio  # here, so the tables import without trio (the CLI's token commands)

        from skyhop_core.state.writer import make_writer

        self.limiter = trio.CapacityLimiter(max_threads)
        self.writer = make_writer(engine, writer, self.limiter)

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(connection, *args)`` in a transaction on a worker thread."""

        def work() -> T:
            with self.engine.begin() as conn:
                return fn(conn, *args)

        import trio

        return await trio.to_thread.run_sync(work, limiter=self.limiter)

    async def write(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(connection, *args)`` in one transaction with the other calls queued
        meanwhile (on the store's writer thread; see :mod:`skyhop_core.state.writer`);
        returns once it committed. For the short writes and reads of the request path
        (``fn`` must be quick: it holds up the others in its batch); under load, a
        batch costs one commit for all of them."""
        return await self.writer.run(fn, *args)

    async def read(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(connection, *args)``, a short read of the request path (``fn`` must
        not write): on the event loop when the store is quiet (SQLite), else with the
        writer's next batch; it sees everything written before it was called."""
        return await self.writer.read(fn, *args)

    def close(self) -> None:
        """Apply queued writes, stop the writer thread and close the connections."""
        self.writer.close()
        self.engine.dispose()

    def run_sync(self, fn: Callable[..., T], *args: Any) -> T:
        """The same, from synchronous code (start-up, tests)."""
        with self.engine.begin() as conn:
            return fn(conn, *args)


def open_store(persistent_path: Path, *, writer: str | None = None) -> Store:
    """Open the state store, upgrading its schema in place first. ``writer``: see
    :func:`skyhop_core.state.writer.make_writer`."""
    from skyhop_core.state.migrate import upgrade

    engine = create_engine(persistent_path)
    upgrade(engine)
    return Store(engine, writer=writer)
