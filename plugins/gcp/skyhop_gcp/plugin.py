"""The ``gcp`` backend plugin (placeholder: declared, disabled until it is implemented).

It implements only :func:`skyhop_backend_info` and :func:`skyhop_check`. The check looks
for the SDK with :func:`importlib.util.find_spec` and never imports it, so loading this
plugin stays cheap and works without the ``gcp`` extra installed.
"""

from __future__ import annotations

import importlib.util

from skyhop_core.context import BackendContext
from skyhop_core.hookspecs import hookimpl
from skyhop_core.models.records import BackendInfo, CheckResult, Feature

NAME = "gcp"
#: Importable modules the backend needs, each with the distribution that provides it.
SDK_MODULES = {"google.auth": "google-auth", "googleapiclient": "google-api-python-client"}
INSTALL_FIX = "pip install 'skyhop[gcp]'"


@hookimpl
def skyhop_backend_info() -> BackendInfo:
    return BackendInfo(
        name=NAME,
        display_name="GCP",
        features=frozenset(
            {Feature.STOP, Feature.AUTOSTOP, Feature.SPOT, Feature.MULTI_NODE, Feature.OPEN_PORTS}
        ),
        description="Google Cloud Compute Engine instances.",
    )


def _importable(module: str) -> bool:
    # find_spec imports a dotted name's parent (e.g. the ``google`` namespace), never the
    # module itself; a missing parent raises instead of returning None.
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def missing_sdk() -> list[str]:
    """Distributions of the SDK that are not installed (without importing them)."""
    return [dist for module, dist in SDK_MODULES.items() if not _importable(module)]


@hookimpl
async def skyhop_check(ctx: BackendContext) -> CheckResult:
    missing = missing_sdk()
    if missing:
        return CheckResult(
            backend=NAME,
            enabled=False,
            reason=f"{' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} not installed.",
            fix=INSTALL_FIX,
        )
    return CheckResult(
        backend=NAME,
        enabled=False,
        reason="The GCP backend is not yet available in this release.",
    )
