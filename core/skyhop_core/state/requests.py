"""Request records: every function takes a SQLAlchemy connection (see ``Store.run``)."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Sequence
from typing import Any

import sqlalchemy as sa

from skyhop_core.exceptions import AmbiguousRequestIdError, RequestNotFoundError
from skyhop_core.models.records import RequestRecord
from skyhop_core.models.status import RequestStatus
from skyhop_core.state.db import requests

UNFINISHED = (RequestStatus.PENDING.value, RequestStatus.RUNNING.value)

# The request path's statements, built once with bound parameters: SQLAlchemy then reuses
# their compiled form instead of building and hashing a new statement for every row
# (about 0.4 ms of CPU per write otherwise).
_INSERT = requests.insert()
_GET_ROW = sa.select(requests).where(requests.c.request_id == sa.bindparam("rid"))
_SET_RUNNING = (
    requests.update()
    .where(
        requests.c.request_id == sa.bindparam("rid"),
        requests.c.owner == sa.bindparam("own"),
        requests.c.status == RequestStatus.PENDING.value,
    )
    .values(status=RequestStatus.RUNNING.value, started_at=sa.bindparam("now"))
)
_FINISH_VALUES = dict(
    status=sa.bindparam("st"),
    finished_at=sa.bindparam("now"),
    result=sa.bindparam("res", type_=requests.c.result.type),
    error=sa.bindparam("err", type_=requests.c.error.type),
)
_FINISH_BY_ID = requests.update().where(requests.c.request_id == sa.bindparam("rid"))
#: (only while owned, with a new body) -> the finishing UPDATE.
_FINISH = {
    (owned, new_body): (
        _FINISH_BY_ID.where(requests.c.owner == sa.bindparam("own")) if owned else _FINISH_BY_ID
    ).values(
        **_FINISH_VALUES,
        **({"body": sa.bindparam("body", type_=requests.c.body.type)} if new_body else {}),
    )
    for owned in (False, True)
    for new_body in (False, True)
}


def to_record(row: Any) -> RequestRecord:
    error = row.error or None
    return RequestRecord(
        request_id=row.request_id,
        name=row.name,
        user_name=row.user_name,
        user_hash=row.user_hash,
        status=RequestStatus(row.status),
        created_at=row.created_at,
        cluster_name=row.cluster_name,
        started_at=row.started_at,
        finished_at=row.finished_at,
        schedule_type=row.schedule_type,
        error=f"{error['type']}: {error['message']}" if error else None,
    )


def insert(
    conn: sa.Connection,
    *,
    request_id: str,
    name: str,
    user_name: str,
    user_hash: str,
    cluster_name: str | None,
    schedule_type: str,
    body: dict[str, Any],
    running: bool = False,
    owner: str | None = None,
    user_role: str = "user",
    created_at: float | None = None,
) -> None:
    """Insert a new request, PENDING (or RUNNING when it already holds a slot), owned by
    the replica ``owner``; ``created_at`` defaults to now."""
    now = time.time() if created_at is None else created_at
    conn.execute(
        _INSERT,
        dict(
            request_id=request_id,
            name=name,
            user_name=user_name,
            user_hash=user_hash,
            user_role=user_role,
            cluster_name=cluster_name,
            status=(RequestStatus.RUNNING if running else RequestStatus.PENDING).value,
            schedule_type=schedule_type,
            created_at=now,
            started_at=now if running else None,
            finished_at=None,
            body=body,
            result=None,
            error=None,
            owner=owner,
            cancel_requested=False,
        ),
    )


def insert_finished(
    conn: sa.Connection,
    row: dict[str, Any],
    status: RequestStatus,
    *,
    result: Any = None,
    error: dict[str, Any] | None = None,
    body: Callable[[Any], Any] | None = None,
) -> None:
    """Insert a request that already ran (``row``: :func:`insert`'s arguments, written
    nowhere yet), with its outcome: one write for a short request's whole life."""
    now = time.time()
    conn.execute(
        _INSERT,
        dict(
            request_id=row["request_id"],
            name=row["name"],
            user_name=row["user_name"],
            user_hash=row["user_hash"],
            user_role=row.get("user_role", "user"),
            cluster_name=row.get("cluster_name"),
            status=status.value,
            schedule_type=row["schedule_type"],
            created_at=row.get("created_at", now),
            started_at=row.get("created_at", now),
            finished_at=now,
            body=row["body"] if body is None else body(row["body"]),
            result=result,
            error=error,
            owner=row.get("owner"),
            cancel_requested=False,
        ),
    )


def get_row(conn: sa.Connection, request_id: str) -> Any:
    return conn.execute(_GET_ROW, {"rid": request_id}).first()


def resolve_prefix(conn: sa.Connection, prefix: str, *, user_hash: str | None = None) -> str:
    """The full ID of the one request whose ID starts with ``prefix`` (among
    ``user_hash``'s requests only, when given: others' are invisible, not forbidden)."""
    prefix = prefix.strip()
    if not prefix:
        raise RequestNotFoundError("An empty request ID matches nothing.")
    escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    query = sa.select(requests.c.request_id).where(
        requests.c.request_id.like(escaped + "%", escape="\\")
    )
    if user_hash is not None:
        query = query.where(requests.c.user_hash == user_hash)
    rows = conn.execute(query.limit(11)).all()
    ids = [r.request_id for r in rows]
    if prefix in ids:
        return prefix
    if not ids:
        raise RequestNotFoundError(
            f"No request with an ID starting with {prefix!r}. Run `skyhop api status -a` to list requests."
        )
    if len(ids) > 1:
        shown = ", ".join(ids[:10])
        raise AmbiguousRequestIdError(
            f"The request ID prefix {prefix!r} matches {len(ids)}{'+' if len(ids) > 10 else ''} "
            f"requests: {shown}. Give more characters.",
            matches=ids[:10],
        )
    return ids[0]


def _owned(request_id: str, owner: str | None) -> list[Any]:
    conditions = [requests.c.request_id == request_id]
    if owner is not None:
        conditions.append(requests.c.owner == owner)
    return conditions


def set_running(conn: sa.Connection, request_id: str, owner: str | None = None) -> bool:
    """PENDING -> RUNNING (only while ``owner`` owns it); False when the request is no
    longer PENDING or no longer ours."""
    if owner is None:
        res = conn.execute(
            requests.update()
            .where(requests.c.request_id == request_id,
                   requests.c.status == RequestStatus.PENDING.value)
            .values(status=RequestStatus.RUNNING.value, started_at=time.time())
        )  # fmt: skip
    else:
        res = conn.execute(_SET_RUNNING, {"rid": request_id, "own": owner, "now": time.time()})
    return res.rowcount == 1


def finish(
    conn: sa.Connection,
    request_id: str,
    status: RequestStatus,
    *,
    result: Any = None,
    error: dict[str, Any] | None = None,
    owner: str | None = None,
    body: Callable[[Any], Any] | None = None,
) -> None:
    """Record the outcome (only while ``owner`` still owns the request, when given);
    ``body`` rewrites the stored body at the same time (to drop its secrets)."""
    params: dict[str, Any] = dict(
        rid=request_id, st=status.value, now=time.time(), res=result, err=error
    )
    if body is not None:
        row = conn.execute(
            sa.select(requests.c.body).where(*_owned(request_id, owner))
        ).first()
        if row is not None:
            params["body"] = body(row.body)
    if owner is not None:
        params["own"] = owner
    conn.execute(_FINISH[owner is not None, "body" in params], params)


def list_records(
    conn: sa.Connection,
    *,
    include_finished: bool,
    user_hash: str | None,
    request_ids: Sequence[str] | None = None,
    limit: int | None = None,
) -> list[RequestRecord]:
    query = _list_query(
        not include_finished, user_hash is not None, bool(request_ids), bool(limit)
    )
    params: dict[str, Any] = {"user_hash": user_hash, "ids": list(request_ids or ()), "n": limit}
    return [to_record(r) for r in conn.execute(query, params).all()]


@functools.cache
def _list_query(unfinished: bool, by_user: bool, by_ids: bool, limited: bool) -> sa.Select[Any]:
    """:func:`list_records`'s statement for one shape, built once with bound parameters
    (``api status`` of one request: 120 -> 57 us of CPU)."""
    query = sa.select(requests).order_by(requests.c.created_at.desc())
    if unfinished:
        query = query.where(
            requests.c.status.in_([sa.literal_column(f"'{s}'") for s in UNFINISHED])
        )
    if by_user:
        query = query.where(requests.c.user_hash == sa.bindparam("user_hash"))
    if by_ids:
        query = query.where(requests.c.request_id.in_(sa.bindparam("ids", expanding=True)))
    if limited:
        query = query.limit(sa.bindparam("n"))
    return query


def unfinished_ids(
    conn: sa.Connection, *, cluster_name: str | None = None, user_hash: str | None = None
) -> list[str]:
    query = sa.select(requests.c.request_id).where(requests.c.status.in_(UNFINISHED))
    if cluster_name is not None:
        query = query.where(requests.c.cluster_name == cluster_name)
    if user_hash is not None:
        query = query.where(requests.c.user_hash == user_hash)
    return [r.request_id for r in conn.execute(query).all()]


def take_over(
    conn: sa.Connection,
    dead_owner: str | None,
    me: str,
    error: dict[str, Any],
    scrub: Callable[[Any], Any] | None = None,
) -> list[str]:
    """Take over a dead replica's requests (``None``: requests from before replicas had
    leases): its RUNNING ones FAIL with ``error`` (their bodies rewritten by ``scrub``:
    they never run again), its PENDING ones become ``me``'s.

    Each PENDING row is claimed with a conditional update, so when several replicas reap
    the same dead one, every request gets exactly one new owner. Returns the claimed IDs.
    """
    owned = requests.c.owner.is_(None) if dead_owner is None else requests.c.owner == dead_owner
    interrupted = conn.execute(
        sa.select(requests.c.request_id, requests.c.body).where(
            owned, requests.c.status == RequestStatus.RUNNING.value
        )
    ).all()
    for row in interrupted:
        values: dict[str, Any] = dict(
            status=RequestStatus.FAILED.value, finished_at=time.time(), error=error
        )
        if scrub is not None:
            values["body"] = scrub(row.body)
        conn.execute(
            requests.update()
            .where(requests.c.request_id == row.request_id, owned,
                   requests.c.status == RequestStatus.RUNNING.value)
            .values(**values)
        )  # fmt: skip
    pending = conn.execute(
        sa.select(requests.c.request_id)
        .where(owned, requests.c.status == RequestStatus.PENDING.value)
        .order_by(requests.c.created_at)
    ).all()
    claimed = []
    for row in pending:
        res = conn.execute(
            requests.update()
            .where(requests.c.request_id == row.request_id, owned)
            .values(owner=me)
        )
        if res.rowcount == 1:
            claimed.append(row.request_id)
    return claimed


def request_cancel(conn: sa.Connection, request_ids: Sequence[str]) -> list[str]:
    """Flag unfinished requests for their owner to cancel; returns the flagged IDs."""
    if not request_ids:
        return []
    query = requests.c.request_id.in_(list(request_ids)), requests.c.status.in_(UNFINISHED)
    ids = [r.request_id for r in conn.execute(sa.select(requests.c.request_id).where(*query))]
    if ids:
        conn.execute(
            requests.update().where(requests.c.request_id.in_(ids)).values(cancel_requested=True)
        )
    return ids


@functools.cache
def cancel_requested_ids_query() -> sa.Select[Any]:
    """Unfinished requests of ``:owner`` flagged for cancelling (read through the
    partial index ``ix_requests_cancel_pending``)."""
    return sa.select(requests.c.request_id).where(
        requests.c.owner == sa.bindparam("owner"),
        requests.c.cancel_requested.is_(True),
        requests.c.status.in_(UNFINISHED),
    )


def cancel_requested_ids(conn: sa.Connection, owner: str) -> list[str]:
    """What another replica asked this one (``owner``) to cancel."""
    rows = conn.execute(cancel_requested_ids_query(), {"owner": owner}).all()
    return [r.request_id for r in rows]


def expired_ids(conn: sa.Connection, older_than: float) -> list[str]:
    rows = conn.execute(
        sa.select(requests.c.request_id).where(
            requests.c.status.not_in(UNFINISHED), requests.c.finished_at < older_than
        )
    ).all()
    return [r.request_id for r in rows]


def delete(conn: sa.Connection, request_ids: Sequence[str]) -> None:
    if request_ids:
        conn.execute(requests.delete().where(requests.c.request_id.in_(list(request_ids))))
