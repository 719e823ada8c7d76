"""Cluster leases: which request, on which replica, is running a lifecycle operation on a
cluster (every function takes a SQLAlchemy connection).

A lease is one row per busy cluster. It is free when there is no row, when its
``lease_until`` has passed (its replica stopped renewing it: dead or paused), or when its
replica is no longer registered in ``servers`` (another replica declared it dead). Taking
a lease is one conditional write, so of two replicas racing for a cluster exactly one
wins: an insert for a free cluster (the primary key refuses the second), an update that
only matches an expired or orphaned row otherwise.
"""

from __future__ import annotations

import time

import attrs
import sqlalchemy as sa

from skyhop_core.state.db import cluster_leases, servers


@attrs.frozen
class Holder:
    """Who holds a cluster's lease (what a waiting operation tells its user)."""

    request_id: str
    operation: str
    server_id: str
    host: str


def acquire(
    conn: sa.Connection,
    cluster_name: str,
    *,
    request_id: str,
    operation: str,
    server_id: str,
    host: str,
    lease: float,
) -> Holder | None:
    """Take the cluster's lease for ``request_id``; None when taken, else who holds it.

    A request that already holds the lease (a nested operation, e.g. a launch that starts
    a stopped cluster) takes it again.
    """
    now = time.time()
    values = dict(
        request_id=request_id,
        operation=operation,
        server_id=server_id,
        host=host,
        acquired_at=now,
        lease_until=now + lease,
    )
    row = conn.execute(
        sa.select(cluster_leases).where(cluster_leases.c.cluster_name == cluster_name)
    ).first()
    if row is None:
        try:
            with conn.begin_nested():
                conn.execute(cluster_leases.insert().values(cluster_name=cluster_name, **values))
            return None
        except sa.exc.IntegrityError:  # another replica inserted it first
            row = conn.execute(
                sa.select(cluster_leases).where(cluster_leases.c.cluster_name == cluster_name)
            ).first()
            if row is None:
                return acquire(
                    conn, cluster_name, request_id=request_id, operation=operation,
                    server_id=server_id, host=host, lease=lease,
                )
    registered = sa.select(servers.c.server_id).where(
        servers.c.server_id == cluster_leases.c.server_id
    )
    taken = conn.execute(
        cluster_leases.update()
        .where(cluster_leases.c.cluster_name == cluster_name)
        .where(
            sa.or_(
                cluster_leases.c.request_id == request_id,
                cluster_leases.c.lease_until < now,
                ~sa.exists(registered),
            )
        )
        .values(**values)
    )
    if taken.rowcount == 1:
        return None
    return Holder(row.request_id, row.operation, row.server_id, row.host)


def renew(conn: sa.Connection, cluster_name: str, request_id: str, lease: float) -> bool:
    """Extend the lease; False if the request no longer holds it (it expired and another
    request took it)."""
    res = conn.execute(
        cluster_leases.update()
        .where(cluster_leases.c.cluster_name == cluster_name)
        .where(cluster_leases.c.request_id == request_id)
        .values(lease_until=time.time() + lease)
    )
    return res.rowcount == 1


def release(conn: sa.Connection, cluster_name: str, request_id: str) -> None:
    """Free the lease if ``request_id`` still holds it."""
    conn.execute(
        cluster_leases.delete()
        .where(cluster_leases.c.cluster_name == cluster_name)
        .where(cluster_leases.c.request_id == request_id)
    )


def holder(conn: sa.Connection, cluster_name: str) -> Holder | None:
    """Who holds the lease now (expired or not), for messages and tests."""
    row = conn.execute(
        sa.select(cluster_leases).where(cluster_leases.c.cluster_name == cluster_name)
    ).first()
    return None if row is None else Holder(row.request_id, row.operation, row.server_id, row.host)
