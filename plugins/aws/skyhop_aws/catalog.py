"""The bundled catalog of EC2 instance types: sizes, GPUs and hourly prices per region.

``catalog.csv`` (next to this module) has one row per instance type and region:
``instance_type, vcpus, memory_gb, accelerator, accelerator_count, region, zones
(';'-separated), price, spot_price``, prices in USD per hour. The on-demand prices are
taken from AWS's public price lists (Linux, shared tenancy); the spot prices are typical
recent values, not live quotes. Editing the file is how the catalog is updated.

Everything here is pure data handling: no boto3, no network.
"""

from __future__ import annotations

import csv
import functools
import importlib.resources
from collections.abc import Iterable

import attrs

from skyhop_core.models.records import Offer
from skyhop_core.models.resources import Resources

BACKEND = "aws"
CATALOG_FILE = "catalog.csv"


@attrs.frozen
class CatalogEntry:
    """One instance type in one region, available in ``zones``."""

    instance_type: str
    cpus: float
    memory_gb: float
    accelerators: dict[str, int]
    region: str
    zones: tuple[str, ...]
    price: float
    spot_price: float | None

    def offers(self) -> list[Offer]:
        """One offer per zone of this entry."""
        return [
            Offer(
                backend=BACKEND,
                instance_type=self.instance_type,
                cpus=self.cpus,
                memory_gb=self.memory_gb,
                accelerators=dict(self.accelerators),
                price=self.price,
                spot_price=self.spot_price,
                region=self.region,
                zone=zone,
            )
            for zone in self.zones
        ]


def parse_catalog(lines: Iterable[str]) -> tuple[CatalogEntry, ...]:
    """Parse catalog CSV text (with its header line) into entries."""
    entries = []
    for row in csv.DictReader(lines):
        count = int(row["accelerator_count"] or 0)
        spot = row["spot_price"].strip()
        entries.append(
            CatalogEntry(
                instance_type=row["instance_type"],
                cpus=float(row["vcpus"]),
                memory_gb=float(row["memory_gb"]),
                accelerators={row["accelerator"]: count} if count else {},
                region=row["region"],
                zones=tuple(z for z in row["zones"].split(";") if z),
                price=float(row["price"]),
                spot_price=float(spot) if spot else None,
            )
        )
    return tuple(entries)


@functools.cache
def load_catalog() -> tuple[CatalogEntry, ...]:
    """The bundled catalog (read once per process; it is immutable data)."""
    text = importlib.resources.files("skyhop_aws").joinpath(CATALOG_FILE).read_text()
    return parse_catalog(text.splitlines())


def all_offers(entries: Iterable[CatalogEntry] | None = None) -> list[Offer]:
    """Every (instance type, zone) offer of the catalog."""
    return [o for e in (load_catalog() if entries is None else entries) for o in e.offers()]


def offers_for(resources: Resources, entries: Iterable[CatalogEntry] | None = None) -> list[Offer]:
    """The catalog offers that satisfy ``resources`` (cpus, memory, GPUs, place, spot)."""
    return [o for o in all_offers(entries) if resources.fits(o)]


def regions(entries: Iterable[CatalogEntry] | None = None) -> list[str]:
    """Regions the catalog covers, in catalog order."""
    seen: dict[str, None] = {}
    for e in load_catalog() if entries is None else entries:
        seen.setdefault(e.region, None)
    return list(seen)


def entry(instance_type: str, region: str) -> CatalogEntry | None:
    """The catalog entry of ``instance_type`` in ``region``, if any."""
    for e in load_catalog():
        if e.instance_type == instance_type and e.region == region:
            return e
    return None
