"""Paged, filtered reads of requests and managed jobs, straight from the state store.

The database pages (``LIMIT``/``OFFSET`` plus one ``COUNT``) and only the columns a table
shows are read (a request's body and result can be large), so a page costs the same
with ten rows or a hundred thousand. Ownership follows the API: ``user_hash`` None only
where the API would let the caller pass all_users.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from skyhop_core.dashboard.fmt import Paging
from skyhop_core.state.db import managed_jobs as mj
from skyhop_core.state.db import requests as rq

#: The request columns the requests table shows.
REQUEST_COLUMNS = (
    rq.c.request_id, rq.c.name, rq.c.user_name, rq.c.user_hash, rq.c.cluster_name,
    rq.c.status, rq.c.created_at, rq.c.started_at, rq.c.finished_at, rq.c.error,
)


def requests_page(
    conn: sa.Connection,
    *,
    user_hash: str | None,
    statuses: list[str],
    user_name: str,
    name: str,
    query: Any,
) -> tuple[Paging, list[Any]]:
    """The page ``query`` asks for (``page``, ``per_page``), and its rows newest first."""
    where = []
    if user_hash is not None:
        where.append(rq.c.user_hash == user_hash)
    if statuses:
        where.append(rq.c.status.in_(statuses))
    if user_name:
        where.append(rq.c.user_name == user_name)
    if name:
        where.append(rq.c.name.contains(name, autoescape=True))
    total = conn.execute(sa.select(sa.func.count()).select_from(rq).where(*where)).scalar_one()
    paging = Paging.from_query(query, int(total))
    rows = conn.execute(
        sa.select(*REQUEST_COLUMNS).where(*where)
        .order_by(rq.c.created_at.desc()).offset(paging.offset).limit(paging.per_page)
    ).all()
    return paging, list(rows)


def request_row(conn: sa.Connection, request_id: str) -> Any:
    return conn.execute(sa.select(*REQUEST_COLUMNS).where(rq.c.request_id == request_id)).first()


def managed_page(
    conn: sa.Connection,
    *,
    user_hash: str | None,
    statuses: list[str],
    query: Any,
    job_id: int | None = None,
) -> tuple[Paging, list[Any]]:
    """The page of managed jobs ``query`` asks for, and their rows newest first."""
    where = [] if job_id is None else [mj.c.job_id == job_id]
    if user_hash is not None:
        where.append(mj.c.user_hash == user_hash)
    if statuses:
        where.append(mj.c.status.in_(statuses))
    total = conn.execute(sa.select(sa.func.count()).select_from(mj).where(*where)).scalar_one()
    paging = Paging.from_query(query, int(total))
    rows = conn.execute(
        sa.select(mj).where(*where).order_by(mj.c.job_id.desc())
        .offset(paging.offset).limit(paging.per_page)
    ).all()
    return paging, list(rows)
