"""Static price catalogs of cloud backends: one CSV per backend, read into offers.

A backend ships ``catalog.csv`` in its package with one row per instance type (plus
attached accelerators) and region: ``instance_type, vcpus, memory_gb, accelerator,
accelerator_count, region, zones (';'-separated), price, spot_price`` in USD per hour
(``spot_price`` empty where there is no spot market). ``aws`` and ``gcp`` use it; the
rows of one instance type may repeat with different accelerators (GCP's N1 machines take
1, 2 or 4 T4s). Pure data handling: no cloud SDK, no network.
"""

from __future__ import annotations

import csv
import importlib.resources
from collections.abc import Iterable

import attrs

from skyhop_core.models.records import Offer
from skyhop_core.models.resources import Resources


@attrs.frozen
class CatalogEntry:
    """One instance type (with its accelerators) in one region, available in ``zones``."""

    backend: str
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
                backend=self.backend,
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


def parse_catalog(lines: Iterable[str], backend: str) -> tuple[CatalogEntry, ...]:
    """Parse catalog CSV text (with its header line) into ``backend``'s entries."""
    entries = []
    for row in csv.DictReader(lines):
        count = int(row["accelerator_count"] or 0)
        spot = row["spot_price"].strip()
        entries.append(
            CatalogEntry(
                backend=backend,
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


def load_package_catalog(
    package: str, backend: str, name: str = "catalog.csv"
) -> tuple[CatalogEntry, ...]:
    """The catalog file ``name`` shipped inside ``package``."""
    text = importlib.resources.files(package).joinpath(name).read_text()
    return parse_catalog(text.splitlines(), backend)


def all_offers(entries: Iterable[CatalogEntry]) -> list[Offer]:
    """Every (instance type, zone) offer of the entries."""
    return [o for e in entries for o in e.offers()]


def offers_for(resources: Resources, entries: Iterable[CatalogEntry]) -> list[Offer]:
    """The offers that satisfy ``resources`` (cpus, memory, GPUs, place, spot)."""
    return [o for o in all_offers(entries) if resources.fits(o)]


def regions(entries: Iterable[CatalogEntry]) -> list[str]:
    """Regions the entries cover, in catalog order."""
    seen: dict[str, None] = {}
    for e in entries:
        seen.setdefault(e.region, None)
    return list(seen)
