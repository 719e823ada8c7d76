"""Service-account tokens of a deployed API server.

A token looks like ``skyhop_<token_id>.<secret>``: ``token_id`` (12 hex digits) finds its
row, and only the sha256 of the whole token is stored, so the database never holds a
usable credential. The plaintext is returned once, by :func:`create`.

The identity a token carries is its ``name`` (the user name) and the row's ``user_hash``.
A new token for a name that had one before reuses that name's user hash, so rotating a
token (revoke, create) keeps ownership of the user's clusters and requests.

Each token has a role: ``user`` (sees and acts on only its own requests and clusters) or
``admin`` (everyone's; ``-u`` / ``all_users`` works). Whoever can run
``skyhop api tokens create NAME --role admin`` on the server machine (so can open its
state store) is by definition an administrator; the API itself never creates tokens.

Every function takes a SQLAlchemy connection (see ``Store.run``).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from typing import Any

import attrs
import sqlalchemy as sa

from skyhop_core.state.db import api_tokens

ROLES = ("user", "admin")

TOKEN_PREFIX = "skyhop_"
NAME_RE = re.compile(r"^[a-zA-Z0-9][-_.@a-zA-Z0-9]{0,127}$")
#: ``last_used_at`` is written at most this often per token (seconds).
LAST_USED_RESOLUTION = 60.0


@attrs.frozen
class TokenRecord:
    """A token's row, without anything secret."""

    token_id: str
    name: str
    user_hash: str
    created_at: float
    role: str = "user"
    last_used_at: float | None = None
    revoked_at: float | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


def _to_record(row: Any) -> TokenRecord:
    return TokenRecord(
        token_id=row.token_id,
        name=row.name,
        user_hash=row.user_hash,
        created_at=row.created_at,
        role=row.role,
        last_used_at=row.last_used_at,
        revoked_at=row.revoked_at,
    )


def hash_token(token: str) -> str:
    """The sha256 (hex) stored for a token."""
    return hashlib.sha256(token.encode()).hexdigest()


def parse_token(token: str) -> str | None:
    """The token ID of a well-formed token, else None."""
    if not token.startswith(TOKEN_PREFIX):
        return None
    token_id, dot, secret = token[len(TOKEN_PREFIX) :].partition(".")
    if not dot or not secret or not re.fullmatch(r"[0-9a-f]{12}", token_id):
        return None
    return token_id


def validate_name(name: str) -> None:
    if not NAME_RE.match(name):
        raise ValueError(
            f"Token name {name!r} is invalid: use 1-128 letters, digits, '-', '_', '.' or '@', "
            "starting with a letter or digit."
        )


def validate_role(role: str) -> None:
    if role not in ROLES:
        raise ValueError(f"Token role {role!r} is invalid: use one of {', '.join(ROLES)}.")


def create(conn: sa.Connection, name: str, role: str = "user") -> tuple[str, TokenRecord]:
    """A new token for ``name`` with ``role``: (the plaintext token, shown once; its record).

    Raises ValueError if ``name`` or ``role`` is invalid or ``name`` already has an active
    token.
    """
    validate_name(name)
    validate_role(role)
    rows = conn.execute(
        sa.select(api_tokens).where(api_tokens.c.name == name).order_by(api_tokens.c.created_at)
    ).all()
    if any(r.revoked_at is None for r in rows):
        raise ValueError(
            f"{name!r} already has an active token. Revoke it first: "
            f"skyhop api tokens revoke {name}"
        )
    user_hash = rows[0].user_hash if rows else secrets.token_hex(4)
    token_id = secrets.token_hex(6)
    token = f"{TOKEN_PREFIX}{token_id}.{secrets.token_urlsafe(32)}"
    record = TokenRecord(
        token_id=token_id, name=name, user_hash=user_hash, created_at=time.time(), role=role
    )
    conn.execute(
        api_tokens.insert().values(
            token_id=token_id,
            name=name,
            user_hash=user_hash,
            token_hash=hash_token(token),
            role=role,
            created_at=record.created_at,
        )
    )
    return token, record


def list_tokens(conn: sa.Connection, *, include_revoked: bool = False) -> list[TokenRecord]:
    query = sa.select(api_tokens).order_by(api_tokens.c.name, api_tokens.c.created_at)
    if not include_revoked:
        query = query.where(api_tokens.c.revoked_at.is_(None))
    return [_to_record(r) for r in conn.execute(query).all()]


def revoke(conn: sa.Connection, name: str) -> int:
    """Revoke ``name``'s active tokens; returns how many were revoked."""
    result = conn.execute(
        api_tokens.update()
        .where(api_tokens.c.name == name, api_tokens.c.revoked_at.is_(None))
        .values(revoked_at=time.time())
    )
    return int(result.rowcount)


#: Built once: every request to a deployed server looks its token up.
_BY_ID = sa.select(api_tokens).where(api_tokens.c.token_id == sa.bindparam("token_id"))


def authenticate(conn: sa.Connection, token: str) -> TokenRecord | None:
    """The active token record matching ``token``, else None (constant-time comparison)."""
    token_id = parse_token(token)
    if token_id is None:
        return None
    row = conn.execute(_BY_ID, {"token_id": token_id}).first()
    if row is None or not hmac.compare_digest(row.token_hash, hash_token(token)):
        return None
    if row.revoked_at is not None:
        return None
    now = time.time()
    if row.last_used_at is None or now - row.last_used_at > LAST_USED_RESOLUTION:
        conn.execute(
            api_tokens.update().where(api_tokens.c.token_id == token_id).values(last_used_at=now)
        )
    return _to_record(row)
