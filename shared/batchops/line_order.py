"""The rest of a plain JSON Lines file, its lines put in event-time order on disk before they are translated.

Out of order, nearly every fact would need its aggregate read back from the store and rebuilt (see
`batchops.time_order`). A file that can be read again at any offset need not be translated before it is sorted:
each line's event time is found in its text (the envelope's `"time"`), the (time, line number, offset, length) of
every line goes to a temporary SQLite table (sorted in bounded memory at any size), and a translating process
then reads the lines in that order from the file itself, while the ingesting process records what it hands back:
the two overlap as they do on a file in time order (docs/ingest-performance.md, "Arrival order").
"""

from __future__ import annotations

import os
import re
import sqlite3
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from batchops import translation

_TIME = re.compile(rb'"time"\s*:\s*"([^"\\]{1,64})"')
"""The first `"time"` of a line, the envelope's as EventBridge writes it. A line without one sorts first; a wrong
guess costs speed, never results (the views do not depend on the order events come in)."""
_INSERT_EVERY = 10_000
"""Lines' positions buffered in memory between two inserts."""

Position = tuple[int, int, int]
"""A line's number, offset and length in bytes; the length is negative for a line too long to be read whole (its
size, as `translation.OversizedLine` gives it)."""


class SortedLines:
    """Where the lines of a file's rest are, read back sorted by event time (file order among equal times); a
    temporary file, removed on `close`."""

    def __init__(self, directory: str | None = None) -> None:
        self._directory = tempfile.TemporaryDirectory(prefix="batchops-line-order-", dir=directory)
        self._db = sqlite3.connect(Path(self._directory.name) / "lines.db", isolation_level=None)
        # A scratch file: nothing to recover after a crash, so no journal and no syncs.
        self._db.execute("PRAGMA journal_mode=OFF")
        self._db.execute("PRAGMA synchronous=OFF")
        self._db.execute(
            "CREATE TABLE lines (number INTEGER PRIMARY KEY, at BLOB NOT NULL, offset INTEGER NOT NULL,"
            " length INTEGER NOT NULL)"
        )
        self._count = 0

    def __enter__(self) -> SortedLines:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __len__(self) -> int:
        return self._count

    def scan(self, stream: IO[bytes], number: int) -> None:
        """Note where every line of `stream` is, from its position (line `number` there) to its end; blank lines
        are left out."""
        find = _TIME.search
        offset = stream.tell()
        rows: list[tuple[int, bytes, int, int]] = []
        for line in translation.bounded_lines(stream):
            if isinstance(line, translation.OversizedLine):
                rows.append((number, b"", offset, -line.size))
                offset = stream.tell()
            else:
                found = find(line)
                if found is not None:
                    rows.append((number, found[1], offset, len(line)))
                elif line.strip():
                    rows.append((number, b"", offset, len(line)))
                offset += len(line)
            number += 1
            if len(rows) >= _INSERT_EVERY:
                self._insert(rows)
                rows = []
        self._insert(rows)

    def chunks(self, size: int) -> Iterator[list[Position]]:
        """The lines' positions, oldest event first, `size` at a time."""
        rows = self._db.execute("SELECT number, offset, length FROM lines ORDER BY at, number")
        while chunk := rows.fetchmany(size):
            yield chunk

    def close(self) -> None:
        """Remove the file."""
        self._db.close()
        self._directory.cleanup()

    def _insert(self, rows: list[tuple[int, bytes, int, int]]) -> None:
        if rows:
            self._db.execute("BEGIN")
            self._db.executemany("INSERT INTO lines VALUES (?, ?, ?, ?)", rows)
            self._db.execute("COMMIT")
            self._count += len(rows)


class PositionedLines:
    """Translates chunks of positions: reads each line from the file at its offset, and translates them with their
    own numbers (`translation.translate_numbered`). The file is opened on first use, in the process that uses it."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._fd: int | None = None

    def __call__(self, chunk: list[Position]) -> bytes:
        if self._fd is None:
            self._fd = os.open(self.path, os.O_RDONLY)
        fd = self._fd
        numbered: list[tuple[int, bytes]] = []
        for number, offset, length in chunk:
            if length >= 0:
                numbered.append((number, os.pread(fd, length, offset)))
            else:  # as `bounded_lines` gives it: the first bytes, and the size
                long = translation.OversizedLine(os.pread(fd, translation.MAX_EVENT_BYTES + 1, offset))
                long.size = -length
                numbered.append((number, long))
        return translation.translate_numbered(numbered)

    def close(self) -> None:
        """Close the file, if this process opened it."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __getstate__(self) -> dict[str, object]:
        return {"path": self.path, "_fd": None}  # a spawned process opens the file itself
