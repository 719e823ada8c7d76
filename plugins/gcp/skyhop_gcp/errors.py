"""Compute API errors -> skyhop's typed errors, with the place they apply to.

The optimizer fails over on :class:`CapacityError` (blocks the zone: Google has no
machines of that kind there right now) and :class:`QuotaError` (blocks the region:
quotas are regional). Rejected credentials, a project we may not use and a disabled
Compute API are a :class:`CredentialsError`; anything else is re-raised as it is.
"""

from __future__ import annotations

from skyhop_core.exceptions import CapacityError, CredentialsError, QuotaError, SkyhopError
from skyhop_gcp.compute import GcpApiError

BACKEND = "gcp"

#: Operation error codes (and HTTP reasons) meaning "no capacity in this zone now".
CAPACITY_CODES = frozenset({
    "ZONE_RESOURCE_POOL_EXHAUSTED",
    "ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS",
    "RESOURCE_POOL_EXHAUSTED",
    "STOCKOUT",
    "resourcePoolExhausted",
    "UNSUPPORTED_OPERATION",  # e.g. the machine type is not offered in this zone
})  # fmt: skip
#: The project's limits in the region.
QUOTA_CODES = frozenset({"QUOTA_EXCEEDED", "quotaExceeded", "REGION_QUOTA_EXCEEDED"})
CREDENTIALS_CODES = frozenset({"authError", "forbidden", "insufficientPermissions",
                               "accessNotConfigured", "SERVICE_DISABLED", "UNAUTHENTICATED",
                               "PERMISSION_DENIED"})  # fmt: skip


def translate(
    exc: GcpApiError, *, region: str | None = None, zone: str | None = None
) -> SkyhopError | None:
    """The skyhop error for ``exc``, or None when it has no typed meaning."""
    where = zone or region or "GCP"
    text = f"{exc.code or exc.status} in {where}: {exc.message}"
    if exc.code in CAPACITY_CODES:
        return CapacityError(text, backend=BACKEND, region=region, zone=zone)
    if exc.code in QUOTA_CODES:
        return QuotaError(text, backend=BACKEND, region=region, zone=None)
    if exc.status == 401 or exc.code in CREDENTIALS_CODES:
        hint = (" Enable the Compute Engine API for the project."
                if exc.code in ("accessNotConfigured", "SERVICE_DISABLED") else "")  # fmt: skip
        return CredentialsError(f"GCP refused the request: {text}.{hint}")
    return None


def reraise(exc: BaseException, *, region: str | None = None, zone: str | None = None) -> None:
    """Raise the typed error for a :class:`GcpApiError` (chained) if it has one."""
    if isinstance(exc, GcpApiError):
        typed = translate(exc, region=region, zone=zone)
        if typed is not None:
            raise typed from exc
