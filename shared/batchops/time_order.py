"""Facts put back in event-time order on disk, in flat memory, before they are recorded.

Recording is fast while the aggregates a batch touches are still in the aggregate cache, which holds in time order:
a job's events arrive close together. Out of order (an archive replay, an export read by prefix, a backfill merged
from several accounts) nearly every fact needs its aggregate read back from the store and rebuilt, once per fact.
Sorting the facts by event time first costs a write and a read of each fact in a temporary SQLite file (SQLite sorts
in bounded memory, spilling to disk), far less than those rebuilds (docs/ingest-performance.md, "Arrival order").
"""

from __future__ import annotations

import marshal
import sqlite3
import tempfile
from collections.abc import Iterator
from pathlib import Path

from batchops.facts import Parsed

_INSERT_EVERY = 10_000
"""Facts buffered in memory between two inserts into the spill file."""
_READ_PAGE = 5_000
"""Sorted rows fetched at a time."""


class TimeOrderSpill:
    """A temporary file of facts, read back sorted by event time (arrival order among equal times); removed on
    `close`. The facts are marshalled: only this process writes and reads the file."""

    def __init__(self, directory: str | None = None) -> None:
        self._directory = tempfile.TemporaryDirectory(prefix="batchops-time-order-", dir=directory)
        self._db = sqlite3.connect(Path(self._directory.name) / "facts.db", isolation_level=None)
        # A scratch file: nothing to recover after a crash, so no journal and no syncs.
        self._db.execute("PRAGMA journal_mode=OFF")
        self._db.execute("PRAGMA synchronous=OFF")
        self._db.execute("CREATE TABLE facts (at INTEGER NOT NULL, arrival INTEGER NOT NULL, fact BLOB NOT NULL)")
        self._buffer: list[tuple[int, int, bytes]] = []
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def add(self, parsed: Parsed) -> None:
        """Keep one fact for later."""
        row = (parsed.kind, parsed.account, parsed.region, parsed.key, parsed.fact)
        self._buffer.append((int(parsed.fact["at"]), self._count, marshal.dumps(row)))
        self._count += 1
        if len(self._buffer) >= _INSERT_EVERY:
            self._insert()

    def in_time_order(self) -> Iterator[Parsed]:
        """Every fact kept, oldest event first."""
        self._insert()
        rows = self._db.execute("SELECT fact FROM facts ORDER BY at, arrival")
        while page := rows.fetchmany(_READ_PAGE):
            for (fact,) in page:
                yield Parsed(*marshal.loads(fact))

    def close(self) -> None:
        """Remove the file."""
        self._db.close()
        self._directory.cleanup()

    def _insert(self) -> None:
        if self._buffer:
            self._db.execute("BEGIN")
            self._db.executemany("INSERT INTO facts VALUES (?, ?, ?)", self._buffer)
            self._db.execute("COMMIT")
            self._buffer = []
