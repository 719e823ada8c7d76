"""The ``ssh`` backend plugin (placeholder: declared, always disabled for now).

It implements only :func:`skyhop_backend_info` and :func:`skyhop_check`; every other
lifecycle hook is absent, so the core answers ``NotSupportedError`` for them.
"""

from __future__ import annotations

from skyhop_core.context import BackendContext
from skyhop_core.hookspecs import hookimpl
from skyhop_core.models.records import BackendInfo, CheckResult, Feature

NAME = "ssh"


@hookimpl
def skyhop_backend_info() -> BackendInfo:
    return BackendInfo(
        name=NAME,
        display_name="SSH",
        features=frozenset({Feature.MULTI_NODE, Feature.OPEN_PORTS}),
        description="Machines you list in named SSH node pools.",
    )


@hookimpl
async def skyhop_check(ctx: BackendContext) -> CheckResult:
    return CheckResult(
        backend=NAME,
        enabled=False,
        reason="The ssh backend arrives in a later release.",
    )
