"""Kubernetes resource quantities (``500m``, ``2``, ``16Gi``, ``1e3``) as numbers."""

from __future__ import annotations

import re
from typing import Any

_SUFFIX = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60,
           "n": 1e-9, "u": 1e-6, "m": 1e-3, "": 1.0, "k": 1e3, "M": 1e6, "G": 1e9,
           "T": 1e12, "P": 1e15, "E": 1e18}  # fmt: skip
_QUANTITY = re.compile(r"^([+-]?[0-9.]+(?:[eE][+-]?[0-9]+)?)([A-Za-z]*)$")


def parse(value: Any) -> float:
    """The quantity as a float (bytes for memory, cores for CPU); 0 for an empty value."""
    text = str(value if value is not None else "").strip()
    if not text:
        return 0.0
    match = _QUANTITY.match(text)
    if not match or match.group(2) not in _SUFFIX:
        raise ValueError(f"not a Kubernetes quantity: {value!r}")
    return float(match.group(1)) * _SUFFIX[match.group(2)]
