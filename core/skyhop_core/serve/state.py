"""Service rows: every function takes a SQLAlchemy connection (see ``Store.run``).

The service row is its controller's whole state (the latest version, the blue-green
traffic switch, the autoscaler's target and counters, the next replica ID, the load
balancer's port, the owner's lease), so a restarted server or another replica resumes
the service from it. Replica IDs are taken with one conditional increment, so they are
never reused, across restarts too.
"""

from __future__ import annotations

import time
from typing import Any

import sqlalchemy as sa

from skyhop_core.models.status import ReplicaStatus, ServiceStatus
from skyhop_core.state import leases
from skyhop_core.state.db import service_replicas as sr
from skyhop_core.state.db import service_versions as sv
from skyhop_core.state.db import services as svc


def insert(conn: sa.Connection, *, name: str, user_name: str, user_hash: str, task: Any,
           resources_str: str, lb_port: int, endpoint: str, owner: str, lease: float) -> None:
    """A new service at version 1, owned by ``owner`` (its controller starts there)."""
    now = time.time()
    conn.execute(svc.insert().values(
        name=name, user_name=user_name, user_hash=user_hash,
        status=ServiceStatus.CONTROLLER_INIT.value, version=1, next_replica_id=1,
        lb_port=lb_port, endpoint=endpoint, autoscaler={}, created_at=now,
        owner=owner, lease_until=now + lease,
    ))
    add_version(conn, name, 1, task, "rolling", resources_str)


def add_version(conn: sa.Connection, name: str, version: int, task: Any, mode: str,
                resources_str: str) -> None:
    conn.execute(sv.insert().values(
        service_name=name, version=version, task=task, mode=mode,
        resources_str=resources_str, created_at=time.time(),
    ))


def get(conn: sa.Connection, name: str) -> Any:
    return conn.execute(sa.select(svc).where(svc.c.name == name)).first()


def list_rows(conn: sa.Connection, *, user_hash: str | None = None,
              names: list[str] | None = None) -> list[Any]:
    query = sa.select(svc).order_by(svc.c.created_at)
    if user_hash is not None:
        query = query.where(svc.c.user_hash == user_hash)
    if names is not None:
        query = query.where(svc.c.name.in_(names))
    return list(conn.execute(query).all())


def update(conn: sa.Connection, name: str, **values: Any) -> None:
    conn.execute(svc.update().where(svc.c.name == name).values(**values))


def finish_round(conn: sa.Connection, name: str, version: int, **values: Any) -> bool:
    """Write a controller round's outcome unless ``serve update`` moved the service past
    ``version`` meanwhile (the round's traffic switch and failed version would undo the
    update's); the next round then starts from the new row."""
    res = conn.execute(svc.update().where(svc.c.name == name, svc.c.version == version)
                       .values(**values))
    return res.rowcount == 1


def used_ports(conn: sa.Connection) -> set[int]:
    return {r.lb_port for r in conn.execute(sa.select(svc.c.lb_port))}


def version(conn: sa.Connection, name: str, number: int) -> Any:
    return conn.execute(
        sa.select(sv).where(sv.c.service_name == name, sv.c.version == number)
    ).first()


def begin_update(conn: sa.Connection, name: str, task: Any, mode: str,
                 resources_str: str) -> int:
    """Add the next version; returns its number. Blue-green keeps traffic on the version
    that serves now until the new one is ready."""
    row = get(conn, name)
    number = row.version + 1
    add_version(conn, name, number, task, mode, resources_str)
    traffic = None
    if mode == "blue_green":
        traffic = row.traffic_version if row.traffic_version is not None else row.version
    update(conn, name, version=number, traffic_version=traffic, failed_version=None,
           failure_reason=None, controller_restarts=0)
    return number


def take_replica_id(conn: sa.Connection, name: str) -> int:
    """The service's next replica ID (persisted: never reused)."""
    while True:
        current = conn.execute(
            sa.select(svc.c.next_replica_id).where(svc.c.name == name)
        ).scalar_one()
        res = conn.execute(
            svc.update().where(svc.c.name == name, svc.c.next_replica_id == current)
            .values(next_replica_id=current + 1)
        )
        if res.rowcount == 1:
            return int(current)


def controller_failed(conn: sa.Connection, name: str, reason: str) -> int:
    """Mark the service CONTROLLER_FAILED; returns how many restarts in a row it had
    before this failure."""
    restarts = conn.execute(
        sa.select(svc.c.controller_restarts).where(svc.c.name == name)
    ).scalar_one_or_none()
    update(conn, name, status=ServiceStatus.CONTROLLER_FAILED.value, failure_reason=reason)
    return int(restarts or 0)


def delete(conn: sa.Connection, name: str) -> None:
    conn.execute(sr.delete().where(sr.c.service_name == name))
    conn.execute(sv.delete().where(sv.c.service_name == name))
    conn.execute(svc.delete().where(svc.c.name == name))


# --- replicas ----------------------------------------------------------------------------


def add_replica(conn: sa.Connection, name: str, version_number: int, *,
                is_spot: bool) -> tuple[int, str]:
    """A PENDING replica of ``version_number``; returns (replica ID, cluster name)."""
    replica_id = take_replica_id(conn, name)
    cluster = f"{name}-{replica_id}"
    conn.execute(sr.insert().values(
        service_name=name, replica_id=replica_id, cluster_name=cluster,
        version=version_number, status=ReplicaStatus.PENDING.value, is_spot=is_spot,
        launched_at=time.time(),
    ))
    return replica_id, cluster


def replicas(conn: sa.Connection, name: str) -> list[Any]:
    return list(conn.execute(
        sa.select(sr).where(sr.c.service_name == name).order_by(sr.c.replica_id)
    ).all())


def replica(conn: sa.Connection, name: str, replica_id: int) -> Any:
    return conn.execute(
        sa.select(sr).where(sr.c.service_name == name, sr.c.replica_id == replica_id)
    ).first()


def update_replica(conn: sa.Connection, name: str, replica_id: int, **values: Any) -> None:
    conn.execute(
        sr.update().where(sr.c.service_name == name, sr.c.replica_id == replica_id)
        .values(**values)
    )


def probed(conn: sa.Connection, name: str, replica_id: int, was: str, **values: Any) -> bool:
    """Apply a probe's outcome unless the replica changed meanwhile (a terminate asked
    through the API wins over a probe that started before it)."""
    res = conn.execute(
        sr.update().where(sr.c.service_name == name, sr.c.replica_id == replica_id,
                          sr.c.status == was, sr.c.terminate_requested.is_(False))
        .values(**values)
    )
    return res.rowcount == 1


def relabel(conn: sa.Connection, name: str, old: int, new: int) -> int:
    """Move the alive replicas of version ``old`` to ``new`` (only ``service:``
    changed); returns how many."""
    alive = [s.value for s in ReplicaStatus if s.is_alive()]
    res = conn.execute(
        sr.update().where(sr.c.service_name == name, sr.c.version == old,
                          sr.c.status.in_(alive), sr.c.terminate_requested.is_(False))
        .values(version=new)
    )
    return int(res.rowcount)


def delete_replica(conn: sa.Connection, name: str, replica_id: int) -> None:
    conn.execute(sr.delete().where(sr.c.service_name == name, sr.c.replica_id == replica_id))


# --- ownership -------------------------------------------------------------------------


def renew(conn: sa.Connection, owner: str, lease: float) -> list[str]:
    """Extend ``owner``'s leases; returns its services someone asked to take down."""
    leases.renew(conn, svc, owner, lease)
    return [r.name for r in conn.execute(
        sa.select(svc.c.name).where(svc.c.owner == owner, svc.c.down_requested)
    )]


def take_over(conn: sa.Connection, owner: str, lease: float) -> list[str]:
    """Claim services whose owner is gone; returns their names."""
    return [str(n) for n in leases.take_over(conn, svc, svc.c.name, owner, lease)]


def owned(conn: sa.Connection, owner: str) -> list[str]:
    return [r.name for r in conn.execute(sa.select(svc.c.name).where(svc.c.owner == owner))]
