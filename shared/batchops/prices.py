"""Price entries and the price book costing reads them through (`job_cost.PriceLookup`), dated so replay is stable.

A price entry is one price of one thing somewhere as of a day: an instance type's size (`shape`), its on-demand price
in a region, its spot price in an availability zone, Fargate's (or Fargate Spot's) rates in a region. The store keeps
every dated entry a refresh found changed; an attempt is costed at the entry in effect on the day it started (the
latest on or before it, else the earliest known, which its basis names by date), so a later refresh never changes
the cost of an earlier day and a replay from the same events and entries gives the same rows.
"""

from __future__ import annotations

import bisect
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, Protocol

from batchops.job_cost import FargateRates, HourlyPrice, InstanceShape

KINDS = ("shape", "on-demand", "spot", "fargate", "fargate-spot")
TABLE_SOURCE = "price-table"
"""The source named in a cost basis for the packaged illustrative table."""


@dataclass(frozen=True, slots=True, order=True)
class PriceEntry:
    """One dated price: `location` is a region (or an availability zone for spot, `*` for a shape), `item` the
    instance type (empty for Fargate); `values` hold usd_per_hour, usd_per_vcpu_hour/usd_per_gb_hour, or the shape."""

    kind: str
    location: str
    item: str
    as_of: str
    source: str = field(compare=False)
    values: tuple[tuple[str, float], ...] = field(compare=False)

    @property
    def key(self) -> tuple[str, str, str]:
        """What the entry prices, without its date."""
        return (self.kind, self.location, self.item)

    def value(self, name: str) -> float:
        """One of the entry's numbers."""
        return dict(self.values)[name]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able form (the store's and `prices show`'s)."""
        return {
            "kind": self.kind,
            "location": self.location,
            "item": self.item,
            "as_of": self.as_of,
            "source": self.source,
            **dict(self.values),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PriceEntry:
        """The inverse of `to_dict`."""
        fixed = {"kind", "location", "item", "as_of", "source"}
        values = tuple(sorted((k, float(v)) for k, v in data.items() if k not in fixed))
        return cls(data["kind"], data["location"], data["item"], data["as_of"], data["source"], values)


def entry(kind: str, location: str, item: str, as_of: str, source: str, **values: float) -> PriceEntry:
    """A price entry from keyword values."""
    if kind not in KINDS:
        raise ValueError(f"unknown price kind {kind!r}")
    return PriceEntry(kind, location, item, as_of, source, tuple(sorted((k, float(v)) for k, v in values.items())))


@dataclass(frozen=True, slots=True)
class PriceChecks:
    """Which prices a refresh asked for on a day (`on-demand#region#type`, `spot#region#type`, `fargate#region`):
    the daily cache, so that a second refresh on the same day asks AWS nothing it asked already."""

    day: str
    keys: frozenset[str]


class PriceStore(Protocol):
    """Where the central store keeps price entries."""

    def price_entries(self) -> list[PriceEntry]:
        """Every stored entry."""

    def save_price_entries(self, entries: Iterable[PriceEntry]) -> int:
        """Store the entries (an entry of the same key and day replaces it); returns how many were written."""

    def price_checks(self) -> PriceChecks | None:
        """The last refresh day's checks, None before the first refresh."""

    def save_price_checks(self, checks: PriceChecks) -> None:
        """Replace the checks."""


class PriceSource(Protocol):
    """Where fresh prices come from (AWS: adapters.aws_prices.AwsPriceSource)."""

    def on_demand(self, region: str, instance_type: str, day: str) -> list[PriceEntry]:
        """The type's shape and on-demand price in the region, [] when there is none."""

    def spot(self, region: str, instance_types: Iterable[str], day: str) -> list[PriceEntry]:
        """The types' spot prices in each availability zone of the region."""

    def fargate(self, region: str, day: str) -> list[PriceEntry]:
        """Fargate's and Fargate Spot's rates in the region."""


class PriceBook:
    """The price lookup of a set of dated entries: the entry in effect on a day for each key."""

    def __init__(self, entries: Iterable[PriceEntry]) -> None:
        by_key: dict[tuple[str, str, str], dict[str, PriceEntry]] = {}
        for price in entries:
            by_key.setdefault(price.key, {})[price.as_of] = price
        self._dated = {key: [days[d] for d in sorted(days)] for key, days in by_key.items()}
        self._days = {key: [e.as_of for e in dated] for key, dated in self._dated.items()}

    def __len__(self) -> int:
        return sum(len(d) for d in self._dated.values())

    def entries(self) -> Iterator[PriceEntry]:
        """Every entry, by key and day."""
        for key in sorted(self._dated):
            yield from self._dated[key]

    def latest(self, kind: str, location: str, item: str) -> PriceEntry | None:
        """The newest entry of a key."""
        dated = self._dated.get((kind, location, item))
        return dated[-1] if dated else None

    def _on(self, kind: str, location: str, item: str, day: str) -> PriceEntry | None:
        key = (kind, location, item)
        dated = self._dated.get(key)
        if not dated:
            return None
        index = bisect.bisect_right(self._days[key], day) - 1
        return dated[max(index, 0)]

    def shape(self, instance_type: str) -> InstanceShape | None:
        """The instance type's size (shapes do not change: the newest entry)."""
        found = self.latest("shape", "*", instance_type)
        if found is None:
            return None
        return InstanceShape(found.value("vcpus"), found.value("memory_mib"), int(found.value("gpus")))

    def on_demand(self, region: str, instance_type: str, day: str) -> HourlyPrice | None:
        """The on-demand price in effect on the day."""
        found = self._on("on-demand", region, instance_type, day)
        return HourlyPrice(found.value("usd_per_hour"), found.as_of, found.source) if found else None

    def spot(self, availability_zone: str, instance_type: str, day: str) -> HourlyPrice | None:
        """The availability zone's spot price in effect on the day."""
        found = self._on("spot", availability_zone, instance_type, day)
        return HourlyPrice(found.value("usd_per_hour"), found.as_of, found.source) if found else None

    def fargate(self, region: str, spot: bool, day: str) -> FargateRates | None:
        """Fargate's (or Fargate Spot's) rates in effect on the day."""
        found = self._on("fargate-spot" if spot else "fargate", region, "", day)
        if found is None:
            return None
        return FargateRates(found.value("usd_per_vcpu_hour"), found.value("usd_per_gb_hour"), found.as_of, found.source)


def changed_entries(book: PriceBook, fresh: Iterable[PriceEntry]) -> list[PriceEntry]:
    """The fresh entries whose value differs from their key's newest stored one (a daily refresh writes only these)."""
    return [e for e in fresh if (old := book.latest(*e.key)) is None or old.values != e.values]


def table_entries() -> list[PriceEntry]:
    """The packaged illustrative price table (the simulator's instance types and regions) as entries."""
    text = resources.files("batchops").joinpath("price_table.json").read_text()
    return entries_of_table(json.loads(text))


def entries_of_table(table: dict[str, Any]) -> list[PriceEntry]:
    """Entries of a price table document (see price_table.json)."""
    day = table["as_of"]
    found = [
        entry("shape", "*", t, day, TABLE_SOURCE, vcpus=v, memory_mib=m, gpus=g)
        for t, (v, m, g) in table["shapes"].items()
    ]
    for kind, section in (("on-demand", "on_demand"), ("spot", "spot")):
        for location, types in table[section].items():
            found += [entry(kind, location, t, day, TABLE_SOURCE, usd_per_hour=p) for t, p in types.items()]
    for kind, section in (("fargate", "fargate"), ("fargate-spot", "fargate_spot")):
        for region, (vcpu, gb) in table[section].items():
            found.append(entry(kind, region, "", day, TABLE_SOURCE, usd_per_vcpu_hour=vcpu, usd_per_gb_hour=gb))
    return found


def wanted_prices(job_rows: Iterable[dict[str, Any]]) -> set[str]:
    """The price checks the jobs call for: the on-demand price (and size) of every EC2 type a job ran on, the spot
    prices of the types spot jobs ran on, Fargate's rates in the regions of Fargate jobs."""
    wanted: set[str] = set()
    for row in job_rows:
        region, instance_type = row.get("region"), row.get("instance_type")
        if row.get("platform") == "FARGATE":
            wanted.add(f"fargate#{region}")
        elif instance_type:
            wanted.add(f"on-demand#{region}#{instance_type}")
            if row.get("pricing") == "spot":
                wanted.add(f"spot#{region}#{instance_type}")
    return wanted


@dataclass(frozen=True, slots=True)
class RefreshReport:
    """What a refresh did: checks asked of the source, skipped as done today, entries found and written."""

    asked: int
    cached: int
    found: int
    written: int


def refresh_prices(store: PriceStore, source: PriceSource, wanted: set[str], day: str) -> RefreshReport:
    """Ask the source for the wanted prices not yet checked today; store the entries that changed."""
    previous = store.price_checks()
    done = previous.keys if previous is not None and previous.day == day else frozenset()
    to_ask = sorted(wanted - done)
    fresh: list[PriceEntry] = []
    spot_types: dict[str, list[str]] = {}
    for key in to_ask:
        kind, region, *rest = key.split("#")
        if kind == "on-demand":
            fresh += source.on_demand(region, rest[0], day)
        elif kind == "spot":
            spot_types.setdefault(region, []).append(rest[0])
        elif kind == "fargate":
            fresh += source.fargate(region, day)
    for region, types in sorted(spot_types.items()):
        fresh += source.spot(region, types, day)
    # Every region's on-demand answer carries the type's shape: one entry per key and day.
    unique = list({(e.key, e.as_of): e for e in fresh}.values())
    changed = changed_entries(PriceBook(store.price_entries()), unique)
    written = store.save_price_entries(changed) if changed else 0
    store.save_price_checks(PriceChecks(day, done | frozenset(to_ask)))
    return RefreshReport(asked=len(to_ask), cached=len(wanted & done), found=len(unique), written=written)


def price_book(store: PriceStore | None, *, with_table: bool) -> PriceBook:
    """The prices costing uses: the stored entries, over the packaged table where `with_table` (local stores)."""
    entries = table_entries() if with_table else []
    if store is not None:
        entries += store.price_entries()
    return PriceBook(entries)
