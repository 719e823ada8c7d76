"""Cancelling requests: the rules ``POST /api/cancel`` and the ``api_cancel`` operation share.

``sky.api_cancel`` returns the ID of a request whose result is the list of cancelled IDs
(as SkyPilot's SDK does); ``POST /api/cancel`` answers at once with the same work done
inline. Both pick the requests here:

- named IDs (prefixes) resolve within what the caller may read: their own on a deployed
  server, anyone's on a local one — where another user's request is refused unless
  ``all_users``;
- ``all`` picks the caller's unfinished requests, ``all_users`` everyone's (an admin's
  right on a deployed server);
- the cancelling request never cancels itself.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from skyhop_core import exceptions
from skyhop_core.ops.params import CancelRequestsParams
from skyhop_core.state import requests as rq

if TYPE_CHECKING:
    from skyhop_core.requests.context import RequestContext, User
    from skyhop_core.requests.engine import Engine


def owner_scope(user: User, deploy: bool) -> str | None:
    """Whose requests ``user`` may read: their own on a deployed server (None: all — an
    admin, or anyone on a local server, which serves one person)."""
    return None if not deploy or user.is_admin else user.hash


def check_all_users(user: User, what: str, deploy: bool) -> None:
    if deploy and not user.is_admin:
        raise exceptions.PermissionDeniedError(
            f"Only an administrator can {what} other users' requests (--all-users) on "
            "this deployed API server; your token's role is 'user'."
        )


async def check_foreign(engine: Engine, ids: list[str], user: User) -> None:
    """On a local server, refuse cancelling another user's request by ID unless
    ``all_users``. (On a deployed server others' IDs do not resolve.)"""
    # Requests running here are checked in memory; only the others need their rows.
    running = {i: u for i in ids if (u := engine.running_user(i)) is not None}
    rows: list[Any] = [
        SimpleNamespace(request_id=i, user_hash=u.hash, user_name=u.name)
        for i, u in running.items()
    ]
    rows += [await engine.services.store.run(rq.get_row, i) for i in ids if i not in running]
    foreign = [r for r in rows if r is not None and r.user_hash != user.hash]
    if not foreign:
        return
    listed = ", ".join(f"{r.request_id} ({r.user_name})" for r in foreign)
    raise exceptions.PermissionDeniedError(
        f"Request(s) {listed} belong to another user; nothing was cancelled. "
        "Pass all_users (--all-users) to cancel other users' requests."
    )


async def cancel_requests(
    engine: Engine,
    body: CancelRequestsParams,
    user: User,
    *,
    deploy: bool,
    except_id: str | None = None,
    queued_is_enough: bool = False,
) -> tuple[list[str], list[str]]:
    """Cancel what ``body`` names for ``user``; returns (cancelled, already finished).
    ``queued_is_enough``: see :meth:`Engine.cancel`."""
    if body.all_users:
        check_all_users(user, "cancel", deploy)
    if body.request_ids:
        scope = owner_scope(user, deploy)
        ids = [await engine.resolve(i, scope) for i in body.request_ids]
    elif body.all or body.all_users:
        owner = None if body.all_users else user.hash
        ids = await engine.services.store.run(lambda c: rq.unfinished_ids(c, user_hash=owner))
    else:
        ids = []
    ids = [i for i in ids if i != except_id]
    if not deploy and not body.all_users:
        await check_foreign(engine, ids, user)
    return await engine.cancel(ids, queued_is_enough=queued_is_enough)


async def api_cancel(ctx: RequestContext, p: CancelRequestsParams) -> list[str]:
    """The ``api_cancel`` operation: the result is the list of cancelled request IDs."""
    engine = ctx.services.engine
    if engine is None:
        raise exceptions.ApiServerError("This server has no request engine to cancel with.")
    cancelled, finished = await cancel_requests(
        engine, p, ctx.user, deploy=ctx.services.deploy, except_id=ctx.request_id,
        queued_is_enough=True,  # this request's own row is written after theirs
    )
    if cancelled:
        ctx.log(f"Cancelled {len(cancelled)} request(s): {', '.join(cancelled)}")
    if finished:
        ctx.log(f"Already finished, not cancelled: {', '.join(finished)}")
    return cancelled
