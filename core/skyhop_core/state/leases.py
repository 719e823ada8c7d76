"""Owner leases on controller rows, shared by managed jobs and services.

A controller's object (a managed job, a service) is a row with ``owner`` (the API
server replica that runs its controller) and ``lease_until``. The owner renews the
lease while it lives; any replica that finds the owner gone — the lease expired, or the
replica is no longer registered in ``servers`` (declared dead, or a previous life of
this server) — claims the row with one conditional update per row, so when several
replicas race only one wins each object. What the new owner then does is the object's
own resume rule (see ``skyhop_core.jobs.controller`` and ``skyhop_core.serve.controller``).
"""

from __future__ import annotations

import time
from typing import Any

import sqlalchemy as sa

from skyhop_core.state.db import servers


def renew(conn: sa.Connection, table: sa.Table, owner: str, lease: float,
          *alive: Any) -> None:
    """Extend the lease of every row ``owner`` holds that matches ``alive``."""
    conn.execute(
        table.update().where(table.c.owner == owner, *alive)
        .values(lease_until=time.time() + lease)
    )


def take_over(
    conn: sa.Connection, table: sa.Table, key: sa.Column[Any], owner: str, lease: float,
    *alive: Any,
) -> list[Any]:
    """Claim the rows matching ``alive`` whose owner is gone; returns their keys."""
    now = time.time()
    registered = sa.select(servers.c.server_id).where(servers.c.server_id == table.c.owner)
    orphaned = sa.or_(
        table.c.owner.is_(None), table.c.lease_until.is_(None), table.c.lease_until < now,
        ~sa.exists(registered),
    )
    candidates = conn.execute(
        sa.select(key, table.c.owner)
        .where(*alive)
        .where(table.c.owner.is_distinct_from(owner))
        .where(orphaned)
    ).all()
    claimed = []
    for value, old_owner in candidates:
        query = table.update().where(key == value).where(
            table.c.owner.is_(None) if old_owner is None else table.c.owner == old_owner
        )
        if conn.execute(query.values(owner=owner, lease_until=now + lease)).rowcount == 1:
            claimed.append(value)
    return claimed
