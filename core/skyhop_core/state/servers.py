"""API server replicas and their leases (every function takes a SQLAlchemy connection).

A replica registers itself at start and renews its heartbeat; one whose heartbeat is
older than the lease — or which ran on this host and whose process is gone — is dead.
"""

from __future__ import annotations

import os
import time

import sqlalchemy as sa

from skyhop_core.state.db import servers


def register(conn: sa.Connection, server_id: str, host: str, pid: int) -> None:
    now = time.time()
    conn.execute(
        servers.insert().values(
            server_id=server_id, host=host, pid=pid, started_at=now, heartbeat_at=now
        )
    )


def heartbeat(conn: sa.Connection, server_id: str) -> bool:
    """Renew the lease; False when another replica already declared this one dead."""
    res = conn.execute(
        servers.update().where(servers.c.server_id == server_id).values(heartbeat_at=time.time())
    )
    return res.rowcount == 1


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def dead(conn: sa.Connection, *, me: str, host: str, lease: float) -> list[str]:
    """Replicas other than ``me`` whose lease expired, or that were on this host and died."""
    cutoff = time.time() - lease
    found = []
    for row in conn.execute(sa.select(servers).where(servers.c.server_id != me)).all():
        if row.heartbeat_at < cutoff or (row.host == host and not _process_alive(row.pid)):
            found.append(row.server_id)
    return found


def live(conn: sa.Connection, *, lease: float) -> list[str]:
    cutoff = time.time() - lease
    rows = conn.execute(
        sa.select(servers.c.server_id).where(servers.c.heartbeat_at >= cutoff)
    ).all()
    return sorted(r.server_id for r in rows)


def remove(conn: sa.Connection, server_id: str) -> None:
    conn.execute(servers.delete().where(servers.c.server_id == server_id))
