"""The ``kubernetes`` backend plugin (placeholder: declared, disabled until it is implemented).

It implements only :func:`skyhop_backend_info` and :func:`skyhop_check`. The check looks
for the SDK without importing it (:mod:`skyhop_core.sdkcheck`), so loading this
plugin stays cheap and works without the ``kubernetes`` extra installed.
"""

from __future__ import annotations

from skyhop_core.context import BackendContext
from skyhop_core.hookspecs import hookimpl
from skyhop_core.models.records import BackendInfo, CheckResult, Feature
from skyhop_core.sdkcheck import missing_sdk_result

NAME = "kubernetes"
#: Importable modules the backend needs, each with the distribution that provides it.
SDK_MODULES = {"lightkube": "lightkube"}


@hookimpl
def skyhop_backend_info() -> BackendInfo:
    return BackendInfo(
        name=NAME,
        display_name="Kubernetes",
        features=frozenset({Feature.MULTI_NODE, Feature.OPEN_PORTS}),
        description="Pods on a Kubernetes cluster.",
    )


@hookimpl
async def skyhop_check(ctx: BackendContext) -> CheckResult:
    missing = missing_sdk_result(NAME, SDK_MODULES, NAME)
    if missing is not None:
        return missing
    return CheckResult(
        backend=NAME,
        enabled=False,
        reason="The Kubernetes backend is not yet available in this release.",
    )
