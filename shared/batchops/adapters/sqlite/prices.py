"""Price entries in the SQLite store's file: a `prices` table and the refresh's daily checks, beside the views."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from pathlib import Path

from batchops.prices import PriceChecks, PriceEntry

_SCHEMA = """
CREATE TABLE IF NOT EXISTS prices (
    kind TEXT NOT NULL, location TEXT NOT NULL, item TEXT NOT NULL, as_of TEXT NOT NULL,
    source TEXT NOT NULL, price_values TEXT NOT NULL,
    PRIMARY KEY (kind, location, item, as_of)
);
CREATE TABLE IF NOT EXISTS price_checks (
    one INTEGER PRIMARY KEY CHECK (one = 1), day TEXT NOT NULL, keys TEXT NOT NULL
);
"""


class SQLitePriceStore:
    """`prices.PriceStore` in a SQLite file (the local store's own file: prices outlive every view generation)."""

    def __init__(self, path: Path | str) -> None:
        self.connection = sqlite3.connect(str(path), timeout=30)
        self.connection.executescript(_SCHEMA)

    def close(self) -> None:
        """Close the connection."""
        self.connection.close()

    def price_entries(self) -> list[PriceEntry]:
        """Every stored entry, by key and day."""
        rows = self.connection.execute(
            "SELECT kind, location, item, as_of, source, price_values FROM prices ORDER BY kind, location, item, as_of"
        )
        return [
            PriceEntry(kind, location, item, as_of, source, tuple(sorted(json.loads(values).items())))
            for kind, location, item, as_of, source, values in rows
        ]

    def save_price_entries(self, entries: Iterable[PriceEntry]) -> int:
        """Insert or replace the entries in one transaction."""
        rows = [(e.kind, e.location, e.item, e.as_of, e.source, json.dumps(dict(e.values))) for e in entries]
        with self.connection:
            self.connection.executemany("INSERT OR REPLACE INTO prices VALUES (?, ?, ?, ?, ?, ?)", rows)
        return len(rows)

    def price_checks(self) -> PriceChecks | None:
        """The last refresh day's checks."""
        found = self.connection.execute("SELECT day, keys FROM price_checks").fetchone()
        return PriceChecks(found[0], frozenset(json.loads(found[1]))) if found else None

    def save_price_checks(self, checks: PriceChecks) -> None:
        """Replace the checks."""
        with self.connection:
            self.connection.execute(
                "INSERT OR REPLACE INTO price_checks VALUES (1, ?, ?)", (checks.day, json.dumps(sorted(checks.keys)))
            )
