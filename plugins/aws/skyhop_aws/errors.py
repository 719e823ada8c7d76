"""Turning botocore errors into skyhop's typed errors, with the place they apply to.

The optimizer fails over on :class:`CapacityError` and :class:`QuotaError` and blocks the
place they name: a capacity error blocks the zone, a quota error the region (quotas are
per region). Credential errors stop the launch; anything else is re-raised as it is.
"""

from __future__ import annotations

from typing import Any

from skyhop_core.exceptions import (
    CapacityError,
    CredentialsError,
    NotSupportedError,
    QuotaError,
    SkyhopError,
)

BACKEND = "aws"

#: No capacity for the instance type in the zone right now: try another zone.
CAPACITY_CODES = frozenset(
    {
        "InsufficientInstanceCapacity",
        "InsufficientCapacity",
        "InsufficientHostCapacity",
        "InsufficientReservedInstanceCapacity",
        "InsufficientFreeAddressesInSubnet",
        "SpotMaxPriceTooLow",
        "Unsupported",  # "The requested configuration is currently not supported" (zone)
        "UnfulfillableCapacity",
        "InstanceTypeNotSupported",
    }
)
#: The account's limits in the region: try another region.
QUOTA_CODES = frozenset(
    {
        "VcpuLimitExceeded",
        "InstanceLimitExceeded",
        "MaxSpotInstanceCountExceeded",
        "SpotInstanceLimitExceeded",
        "RequestLimitExceeded",
        "AddressLimitExceeded",
        "VPCLimitExceeded",
        "SecurityGroupLimitExceeded",
    }
)
CREDENTIALS_CODES = frozenset(
    {
        "AuthFailure",
        "UnrecognizedClientException",
        "InvalidClientTokenId",
        "SignatureDoesNotMatch",
        "ExpiredToken",
        "ExpiredTokenException",
        "AccessDenied",
        "UnauthorizedOperation",
        "OptInRequired",
    }
)
UNSUPPORTED_CODES = frozenset({"UnsupportedOperation"})


def error_code(exc: BaseException) -> str | None:
    """The AWS error code of a botocore ``ClientError`` (``None`` for other errors)."""
    response: Any = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return None
    code = response.get("Error", {}).get("Code")
    return str(code) if code else None


def error_message(exc: BaseException) -> str:
    response: Any = getattr(exc, "response", None)
    if isinstance(response, dict):
        message = response.get("Error", {}).get("Message")
        if message:
            return str(message)
    return str(exc)


def translate(
    exc: BaseException, *, region: str | None = None, zone: str | None = None
) -> SkyhopError | None:
    """The skyhop error for a botocore error, or ``None`` when it has no typed meaning.

    Also maps botocore's ``NoCredentialsError`` (no credentials configured at all).
    """
    if type(exc).__name__ in {"NoCredentialsError", "PartialCredentialsError"}:
        return CredentialsError(
            f"AWS credentials are not configured ({exc}). Run `aws configure` or set "
            "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY."
        )
    code = error_code(exc)
    if code is None:
        return None
    where = zone or region or "AWS"
    text = f"{code} in {where}: {error_message(exc)}"
    if code in CAPACITY_CODES:
        return CapacityError(text, backend=BACKEND, region=region, zone=zone)
    if code in QUOTA_CODES:
        return QuotaError(text, backend=BACKEND, region=region, zone=None)
    if code in CREDENTIALS_CODES:
        return CredentialsError(f"AWS rejected the credentials: {text}")
    if code in UNSUPPORTED_CODES:
        return NotSupportedError(f"AWS does not support this: {text}")
    return None


def reraise(exc: BaseException, *, region: str | None = None, zone: str | None = None) -> None:
    """Raise the typed error for ``exc`` if it has one (chained), else return."""
    typed = translate(exc, region=region, zone=zone)
    if typed is not None:
        raise typed from exc
