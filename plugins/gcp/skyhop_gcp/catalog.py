"""The bundled catalog of Compute Engine machine types: sizes, GPUs and hourly prices.

``catalog.csv`` (next to this module; format in :mod:`skyhop_core.pricecatalog`) has one
row per machine type, attached GPUs and region, with the zones that offer it: E2, N2 and
C3 CPU machines; G2 (L4), A2 (A100 40 GB and 80 GB), A3 (H100), whose GPUs come with the
machine; and N1 machines with 1, 2 or 4 attachable T4 or V100 GPUs (the price includes the
GPUs). On-demand prices follow Google's public price lists for us-central1 (other regions
by their list-price ratio); spot prices are typical recent values, not live quotes.
Editing the file is how the catalog is updated.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable

from skyhop_core import pricecatalog
from skyhop_core.models.records import Offer
from skyhop_core.models.resources import Resources
from skyhop_core.pricecatalog import CatalogEntry

BACKEND = "gcp"
#: skyhop accelerator name -> Compute Engine accelerator type, for GPUs attached to N1.
ATTACHABLE = {"T4": "nvidia-tesla-t4", "V100": "nvidia-tesla-v100", "P100": "nvidia-tesla-p100"}
#: Families whose GPUs come with the machine type (no ``guestAccelerators`` needed).
BUNDLED_GPU_FAMILIES = ("g2-", "a2-", "a3-")


@functools.cache
def load_catalog() -> tuple[CatalogEntry, ...]:
    return pricecatalog.load_package_catalog("skyhop_gcp", BACKEND)


def offers_for(resources: Resources, entries: Iterable[CatalogEntry] | None = None) -> list[Offer]:
    """The catalog offers that satisfy ``resources``."""
    return pricecatalog.offers_for(resources, load_catalog() if entries is None else entries)


def regions() -> list[str]:
    return pricecatalog.regions(load_catalog())


def entry(
    instance_type: str, region: str | None, accelerators: dict[str, int] | None = None
) -> CatalogEntry | None:
    """The entry of ``instance_type`` (with these attached GPUs, if given) in ``region``."""
    for e in load_catalog():
        if (
            e.instance_type == instance_type
            and (region is None or e.region == region)
            and (accelerators is None or e.accelerators == accelerators)
        ):
            return e
    return None


def guest_accelerators(offer: Offer, zone: str) -> list[dict[str, object]]:
    """``guestAccelerators`` for an offer: only N1's attachable GPUs need them."""
    if offer.instance_type.startswith(BUNDLED_GPU_FAMILIES):
        return []
    out: list[dict[str, object]] = []
    for name, count in offer.accelerators.items():
        kind = ATTACHABLE.get(name)
        if kind is None:
            raise ValueError(f"{name} GPUs cannot be attached to {offer.instance_type}")
        out.append(
            {"acceleratorType": f"zones/{zone}/acceleratorTypes/{kind}", "acceleratorCount": count}
        )
    return out
