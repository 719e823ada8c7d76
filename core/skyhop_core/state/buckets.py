"""Storage buckets in the state store: who owns which bucket (every function takes a
SQLAlchemy connection).

A bucket row is keyed by ``(store, name)``: names are global in a store, visibility is
per user. Functions that take ``user_hash`` only ever see that user's rows.
"""

from __future__ import annotations

import time
from typing import Any

import sqlalchemy as sa

from skyhop_core.state.db import storage_buckets as t


def get(conn: sa.Connection, store: str, name: str) -> dict[str, Any] | None:
    """The bucket's row, whoever owns it (to tell "yours" from "taken")."""
    row = conn.execute(sa.select(t).where(t.c.store == store, t.c.name == name)).first()
    return dict(row._mapping) if row is not None else None


def record(
    conn: sa.Connection,
    *,
    store: str,
    name: str,
    user_name: str,
    user_hash: str,
    persistent: bool,
    cluster_name: str | None,
    source: str | None,
    managed: bool,
) -> dict[str, Any]:
    """Insert the bucket's row, or return the existing one (unchanged)."""
    existing = get(conn, store, name)
    if existing is not None:
        return existing
    conn.execute(sa.insert(t).values(
        store=store, name=name, user_name=user_name, user_hash=user_hash,
        persistent=persistent, cluster_name=None if persistent else cluster_name,
        source=source, managed=managed, created_at=time.time(), last_use="",
    ))  # fmt: skip
    return get(conn, store, name) or {}


def touch(conn: sa.Connection, store: str, name: str, last_use: str) -> None:
    conn.execute(sa.update(t).where(t.c.store == store, t.c.name == name)
                 .values(last_use=last_use))  # fmt: skip


def list_for(conn: sa.Connection, user_hash: str | None) -> list[dict[str, Any]]:
    """The buckets of ``user_hash`` (every user's for None), oldest first."""
    query = sa.select(t).order_by(t.c.created_at)
    if user_hash is not None:
        query = query.where(t.c.user_hash == user_hash)
    return [dict(r._mapping) for r in conn.execute(query)]


def of_cluster(conn: sa.Connection, cluster_name: str) -> list[dict[str, Any]]:
    """The non-persistent buckets that go away with ``cluster_name``."""
    query = sa.select(t).where(t.c.cluster_name == cluster_name, t.c.persistent.is_(False))
    return [dict(r._mapping) for r in conn.execute(query)]


def delete(conn: sa.Connection, store: str, name: str) -> None:
    conn.execute(sa.delete(t).where(t.c.store == store, t.c.name == name))
