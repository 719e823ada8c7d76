"""For backend plugins: report a missing third-party SDK without importing it.

Cloud backends keep their SDK behind a pip extra. Their ``skyhop_check`` uses
:func:`missing_sdk_result` so ``skyhop check`` says what is missing and the exact
``pip install`` that fixes it, while loading the plugin stays cheap.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping

from skyhop_core.models.records import CheckResult


def importable(module: str) -> bool:
    """Whether ``module`` can be imported, found without importing it.

    ``find_spec`` imports a dotted name's parent package (e.g. the ``google``
    namespace); a missing parent raises instead of returning None.
    """
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def missing_distributions(modules: Mapping[str, str]) -> list[str]:
    """The distributions (values) whose modules (keys) are not importable."""
    return [dist for module, dist in modules.items() if not importable(module)]


def missing_sdk_result(backend: str, modules: Mapping[str, str], extra: str) -> CheckResult | None:
    """A disabled CheckResult naming what to install, or None when everything is there."""
    missing = missing_distributions(modules)
    if not missing:
        return None
    verb = "is" if len(missing) == 1 else "are"
    return CheckResult(
        backend=backend,
        enabled=False,
        reason=f"{' and '.join(missing)} {verb} not installed.",
        fix=f"pip install 'skyhop[{extra}]'",
    )
