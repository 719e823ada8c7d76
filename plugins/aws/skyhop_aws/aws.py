"""Running boto3 from trio: clients from an injectable factory, calls in worker threads.

boto3 is imported only inside :func:`default_client_factory`. It honours the standard
environment (``AWS_PROFILE``, ``AWS_ACCESS_KEY_ID``, ``AWS_ENDPOINT_URL``, …), so the same
code talks to AWS or to an emulator such as moto's server.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import trio
from trio.lowlevel import RunVar

from skyhop_aws import errors
from skyhop_core.exceptions import SkyhopError

T = TypeVar("T")

#: ``factory(service, region)`` returns a boto3 client (``"ec2"``, ``"sts"``).
ClientFactory = Callable[[str, str], Any]

#: How many boto3 calls may run at once (per trio run).
MAX_THREADS = 8
_LIMITER: RunVar[trio.CapacityLimiter] = RunVar("skyhop_aws_limiter")


def default_client_factory(service: str, region: str) -> Any:
    """A boto3 client from a fresh session (the standard credential chain)."""
    import boto3

    return boto3.session.Session().client(service, region_name=region)  # type: ignore[call-overload]


def limiter() -> trio.CapacityLimiter:
    """The limiter of boto3 worker threads for the current trio run."""
    try:
        return _LIMITER.get()
    except LookupError:
        created = trio.CapacityLimiter(MAX_THREADS)
        _LIMITER.set(created)
        return created


async def in_thread(
    fn: Callable[..., T],
    *args: Any,
    place: tuple[str | None, str | None] = (None, None),
    **kwargs: Any,
) -> T:
    """Run a blocking boto3 step in a worker thread; botocore errors become typed errors.

    ``place`` is the ``(region, zone)`` a capacity or quota error is attributed to. The
    thread is never abandoned: a cancelled call returns after the AWS call did, so a
    resource it created is always tagged and found again by ``down``.
    """
    try:
        return await trio.to_thread.run_sync(
            functools.partial(fn, *args, **kwargs), limiter=limiter()
        )
    except SkyhopError:
        raise
    except Exception as exc:
        errors.reraise(exc, region=place[0], zone=place[1])
        raise
