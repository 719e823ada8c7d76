"""The bundled catalog of EC2 instance types: sizes, GPUs and hourly prices per region.

``catalog.csv`` (next to this module) has one row per instance type and region:
``instance_type, vcpus, memory_gb, accelerator, accelerator_count, region, zones
(';'-separated), price, spot_price``, prices in USD per hour. The on-demand prices are
taken from AWS's public price lists (Linux, shared tenancy); the spot prices are typical
recent values, not live quotes. Editing the file is how the catalog is updated.

The parsing is shared with the other cloud catalogs (:mod:`skyhop_core.pricecatalog`).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable

from skyhop_core import pricecatalog
from skyhop_core.models.records import Offer
from skyhop_core.models.resources import Resources
from skyhop_core.pricecatalog import CatalogEntry

BACKEND = "aws"
CATALOG_FILE = "catalog.csv"

__all__ = ["CatalogEntry", "all_offers", "entry", "load_catalog", "offers_for", "parse_catalog",
           "regions"]  # fmt: skip


def parse_catalog(lines: Iterable[str]) -> tuple[CatalogEntry, ...]:
    """Parse catalog CSV text (with its header line) into entries."""
    return pricecatalog.parse_catalog(lines, BACKEND)


@functools.cache
def load_catalog() -> tuple[CatalogEntry, ...]:
    """The bundled catalog (read once per process; it is immutable data)."""
    return pricecatalog.load_package_catalog("skyhop_aws", BACKEND, CATALOG_FILE)


def all_offers(entries: Iterable[CatalogEntry] | None = None) -> list[Offer]:
    """Every (instance type, zone) offer of the catalog."""
    return pricecatalog.all_offers(load_catalog() if entries is None else entries)


def offers_for(resources: Resources, entries: Iterable[CatalogEntry] | None = None) -> list[Offer]:
    """The catalog offers that satisfy ``resources`` (cpus, memory, GPUs, place, spot)."""
    return pricecatalog.offers_for(resources, load_catalog() if entries is None else entries)


def regions(entries: Iterable[CatalogEntry] | None = None) -> list[str]:
    """Regions the catalog covers, in catalog order."""
    return pricecatalog.regions(load_catalog() if entries is None else entries)


def entry(instance_type: str, region: str) -> CatalogEntry | None:
    """The catalog entry of ``instance_type`` in ``region``, if any."""
    for e in load_catalog():
        if e.instance_type == instance_type and e.region == region:
            return e
    return None
