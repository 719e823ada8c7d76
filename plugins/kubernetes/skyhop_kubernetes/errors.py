"""Turning lightkube and HTTP errors into skyhop's typed errors, naming the context.

Failover moves to the next context on :class:`CapacityError` (the scheduler cannot place
the pods, the API server cannot be reached) and :class:`QuotaError` (a ResourceQuota is
exhausted); rejected credentials and RBAC refusals are :class:`CredentialsError`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from skyhop_core.exceptions import (
    CapacityError,
    CredentialsError,
    QuotaError,
    SkyhopError,
    TaskValidationError,
)

BACKEND = "kubernetes"


def translate(exc: BaseException, context: str) -> SkyhopError | None:
    import httpx2
    from lightkube import ApiError

    if isinstance(exc, ApiError):
        code, message = exc.status.code, exc.status.message or str(exc)
        if code == 401:
            return CredentialsError(f"Kubernetes context {context!r} rejected the "
                                    f"credentials: {message}")  # fmt: skip
        if code == 403 and "exceeded quota" in message:
            return QuotaError(f"{context}: {message}", backend=BACKEND, region=context)
        if code == 403:
            return CredentialsError(f"Kubernetes context {context!r} forbids this (RBAC): "
                                    f"{message}")  # fmt: skip
        if code == 422:
            return TaskValidationError(f"The Kubernetes API of context {context!r} rejected a "
                                       f"manifest: {message}")  # fmt: skip
        return None
    if isinstance(exc, httpx2.TransportError):
        return CapacityError(f"Cannot reach the Kubernetes API of context {context!r}: "
                             f"{type(exc).__name__}: {exc}", backend=BACKEND,
                             region=context)  # fmt: skip
    return None


@contextlib.contextmanager
def typed(context: str) -> Iterator[None]:
    """Re-raise lightkube/HTTP errors inside the block as typed skyhop errors."""
    try:
        yield
    except SkyhopError:
        raise
    except Exception as exc:
        typed_exc = translate(exc, context)
        if typed_exc is not None:
            raise typed_exc from exc
        raise


def is_not_found(exc: BaseException) -> bool:
    from lightkube import ApiError

    return isinstance(exc, ApiError) and exc.status.code == 404


def is_conflict(exc: BaseException) -> bool:
    from lightkube import ApiError

    return isinstance(exc, ApiError) and exc.status.code == 409
