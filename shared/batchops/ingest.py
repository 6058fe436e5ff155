"""Ingestion: read EventBridge events from a stream, translate, record in batches, keep what is unusable.

Input is JSON Lines (one event per line; a line may also hold a JSON array of events), or JSON spanning lines: a
pretty-printed event, an array of events, or values one after the other as `jq` prints them (`batchops.json_values`).
Either is read a bounded piece at a time, so memory stays flat on any file size; gzip-compressed input is
decompressed as it is read.
"""

from __future__ import annotations

import gc
import os
import re
import stat
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import orjson

from batchops.application import BatchOpsApplication
from batchops.batch_recording import BatchOutcome
from batchops.compressed import UnreadableInput, decompressed
from batchops.facts import Parsed
from batchops.json_values import json_values
from batchops.metrics import MetricPoint
from batchops.time_order import TimeOrderSpill
from batchops.translation import READ_LINE_BYTES, RawEvent, bounded_lines, decode_line, translate_raw
from batchops.translation_workers import RestOrder, translate_fed, translate_in_worker
from batchops.tuning import DEFAULT_TUNING, Tuning
from batchops.views import RejectedEvent

BATCH_SIZE = 10_000
"""Events per save: each save is one transaction, flushed to disk; fewer, larger saves cost less time and a little
more memory (measured: docs/ingest-performance.md, "Tuning values")."""
FIRST_BATCH_SIZE = 2_000
"""Events of the first save, which also tells whether the input is in time order: out of order, a batch touches
nearly a job per fact, and a small first one leaves less behind in memory (at 10,000 the peak stayed ~35 MiB up)."""
PROJECT_EVERY = 80_000
"""Events recorded between two updates of the views: a job touched by several batches has its row written once, and
the folds of every aggregate touched since the last update stay in memory, so this trades time for memory
(measured: docs/ingest-performance.md, "Tuning values")."""
UTF8_BOM = b"\xef\xbb\xbf"
REASONS_KEPT = 100
"""Distinct reasons a summary counts one by one; any further ones are counted together as `OTHER_REASONS`, so that
the summary's memory stays flat whatever a file holds (each rejected event keeps its own reason in the store)."""
OTHER_REASONS = "other reasons (see them with `batchops rejected`)"
_LINE_PREFIX = re.compile(r"^line \d+: ")
_POSITION = re.compile(r"(?:: line \d+ column \d+ \(char \d+\)| at line \d+ column \d+)$")


@dataclass
class IngestSummary:
    """What `ingest` did: events read, new, duplicates, rejected (bad or unknown), ignored (not about Batch)."""

    read: int = 0
    new: int = 0
    duplicates: int = 0
    rejected: int = 0
    ignored: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    time_ordered: int = 0
    """Events put back in event-time order on disk before they were recorded (the input was out of order)."""

    def count_reason(self, reason: str) -> None:
        """Count one unusable event under its reason, without the line number and position that make the reason of
        every undecodable line different (so that `invalid JSON: unexpected character` counts them all)."""
        key = _POSITION.sub("", _LINE_PREFIX.sub("", reason))
        if key not in self.reasons and len(self.reasons) >= REASONS_KEPT:
            key = OTHER_REASONS
        self.reasons[key] = self.reasons.get(key, 0) + 1

    def as_dict(self) -> dict[str, Any]:
        """Plain dict for JSON output."""
        return {
            "read": self.read,
            "new": self.new,
            "duplicates": self.duplicates,
            "rejected": self.rejected,
            "ignored": self.ignored,
            "time_ordered": self.time_ordered,
            "reasons": dict(sorted(self.reasons.items(), key=lambda kv: -kv[1])),
        }


class EventReader(Iterator[RawEvent]):
    """The events of a stream, decoded lazily (what `read_events` returns).

    Iterating decodes in this process. An `Ingestor` given a reader over a large regular file of JSON Lines
    decodes and translates it in a second process instead (`translated`), overlapping with recording. A
    gzip-compressed stream is decompressed as it is read (see `batchops.compressed`). `tuning` gives the sizes read
    at a time and the file size from which a second process is worthwhile.
    """

    def __init__(self, stream: IO[bytes], tuning: Tuning = DEFAULT_TUNING) -> None:
        self.tuning = tuning
        self.stream = decompressed(stream)
        self.compressed = self.stream is not stream
        self._events: Iterator[RawEvent] | None = None

    def __iter__(self) -> EventReader:
        return self

    def __next__(self) -> RawEvent:
        if self._events is None:
            self._events = _read(self.stream, self.tuning)
        return next(self._events)

    def parallel_worthwhile(self) -> bool:
        """True, on a machine with a second core, for an untouched stream that is either a big regular file opened by
        a path (the worker opens it too) or a pipe (this process feeds the worker its lines)."""
        min_bytes = self.tuning.parallel_translation_min_bytes
        if self._events is not None or min_bytes <= 0 or (os.cpu_count() or 1) < 2:
            return False
        if self._is_pipe():
            return True
        size = self._reopenable_size()
        return size is not None and size - self.stream.tell() >= min_bytes

    def _reopenable_size(self) -> int | None:
        """The file's size, if the stream is a seekable file that its name opens again; else None."""
        try:
            if not self.stream.seekable():
                return None
            opened = os.fstat(self.stream.fileno())
            name = getattr(self.stream, "name", None)
            if not isinstance(name, str) or not os.path.samestat(opened, Path(name).stat()):
                return None
        except (OSError, AttributeError, ValueError):
            return None
        return opened.st_size

    def _is_pipe(self) -> bool:
        try:
            return stat.S_ISFIFO(os.fstat(self.stream.fileno()).st_mode)
        except (OSError, AttributeError, ValueError):
            return False

    def translated(self, order: RestOrder | None = None) -> Iterator[Parsed | RejectedEvent]:
        """Every event translated by a worker process (JSON Lines only; anything else here), in file order; a plain
        file's rest in event-time order once `order` is asked (see `translation_workers.RestOrder`)."""
        stream = self.stream
        piped = self._is_pipe()
        start = None if piped else stream.tell()
        first = _first_line(stream)
        self._events = iter(())
        if not first or _spans_lines(first) or not _is_json(first):
            # Empty, or not JSON Lines: the sequential reader knows every other shape.
            if start is not None:
                stream.seek(start)
            yield from map(translate_raw, _read(stream, self.tuning, first if start is None else None))
            return
        yield from map(translate_raw, decode_line(1, first))
        chunk_lines = self.tuning.translation_chunk_lines
        if piped:
            yield from translate_fed(stream, 2, chunk_lines)
        else:
            yield from translate_in_worker(stream, 2, self.compressed, chunk_lines, order)


def read_events(stream: IO[bytes], tuning: Tuning = DEFAULT_TUNING) -> EventReader:
    """Decode events from JSON Lines (or one JSON document spanning lines) without loading big files; gzip-compressed
    input is decompressed as it is read."""
    return EventReader(stream, tuning)


def _first_line(stream: IO[bytes]) -> bytes:
    """The first line that is not blank, without the UTF-8 byte order mark some Windows tools write at the start of a
    file (as the first event's bytes it is not JSON)."""
    first = stream.readline(READ_LINE_BYTES).removeprefix(UTF8_BOM)
    while first and not first.strip():
        first = stream.readline(READ_LINE_BYTES)
    return first


def _is_json(line: bytes) -> bool:
    try:
        orjson.loads(line)
    except orjson.JSONDecodeError:
        return False
    return True


def _spans_lines(first: bytes) -> bool:
    """True when the first line is only the start of a value: pretty-printed JSON, a big array, values as `jq` prints
    them (or a line too long to be read whole)."""
    if first.lstrip()[:1] not in (b"{", b"["):
        return False
    if len(first) >= READ_LINE_BYTES and not first.endswith(b"\n"):
        return True
    try:
        orjson.loads(first)
    except orjson.JSONDecodeError as error:
        return error.pos >= len(first.rstrip())
    return False


def _read(stream: IO[bytes], tuning: Tuning, first: bytes | None = None) -> Iterator[RawEvent]:
    """The events of a stream; `first` is its first line when the caller has read it already (from a pipe)."""
    if first is None:
        first = _first_line(stream)
    if not first:
        return
    if _spans_lines(first):
        yield from json_values(stream, first, tuning)
        return
    yield from decode_line(1, first)
    for number, line in enumerate(bounded_lines(stream), start=2):
        if line.strip():
            yield from decode_line(number, line)


class Ingestor:
    """Feeds decoded events to the application in batches and keeps counts and metric points."""

    def __init__(
        self,
        app: BatchOpsApplication,
        *,
        batch_size: int = BATCH_SIZE,
        project_every: int = PROJECT_EVERY,
        on_points: Callable[[list[MetricPoint]], None] | None = None,
        on_progress: Callable[[int], None] | None = None,
    ) -> None:
        self.app = app
        self.batch_size = batch_size
        self.project_every = project_every
        self._unprojected = 0
        self.on_points = on_points
        self.on_progress = on_progress
        self.summary = IngestSummary()
        self._batch: list[Parsed | RejectedEvent] = []
        self._last = BatchOutcome()
        self._late = 0

    def ingest(self, events: Iterable[RawEvent]) -> IngestSummary:
        """Ingest every event; unusable ones are kept aside with their reason and never stop the batch."""
        # Ingestion allocates millions of short-lived acyclic dicts: the cyclic collector would rescan the
        # aggregate cache over and over for nothing (measured: a third of the time). Reference counting frees
        # them; the collector is paused for the run.
        was_enabled = gc.isenabled()
        gc.disable()
        try:
            return self._ingest(events)
        finally:
            if was_enabled:
                gc.enable()

    def _ingest(self, events: Iterable[RawEvent]) -> IngestSummary:
        self.app.catch_up()
        results: Iterable[Parsed | RejectedEvent]
        order = RestOrder()
        if isinstance(events, EventReader) and events.parallel_worthwhile():
            results = events.translated(order)
        else:
            results = map(self._translate, events)
        self._batch = []
        spill: TimeOrderSpill | None = None
        try:
            try:
                for result in results:
                    if spill is not None and isinstance(result, Parsed):
                        spill.add(result)
                    elif self._add(result) and not order.asked and spill is None and self._out_of_order():
                        if order.sortable:
                            order.ask()  # a plain file's lines: sorted by position, translated in that order
                        else:
                            spill = TimeOrderSpill()  # anything else: its facts sorted here
                            self._project()  # the folds held for the views go before the spill
            except UnreadableInput:  # what was read before the break is recorded; the caller reports the break
                self._record_rest(spill, order)
                raise
            self._record_rest(spill, order)
        finally:
            if spill is not None:
                spill.close()
        return self.summary

    def _record_rest(self, spill: TimeOrderSpill | None, order: RestOrder) -> None:
        """Record what the spill holds and the last batch, and bring the views up to date."""
        self.summary.time_ordered = order.time_ordered
        if spill is not None:
            self.summary.time_ordered = len(spill)
            for parsed in spill.in_time_order():
                self._add(parsed)
        self._flush()
        self.app.project_saved()
        if self.on_points is not None:
            self.on_points(self.app.job_cost_points())

    def _add(self, result: Parsed | RejectedEvent) -> bool:
        """Add one result to the batch; True when that recorded the batch."""
        self._batch.append(result)
        if len(self._batch) < (self.batch_size if self.summary.read else min(self.batch_size, FIRST_BATCH_SIZE)):
            return False
        self._flush()
        return True

    def _project(self) -> None:
        self.app.project_saved()
        self._unprojected = 0

    def _out_of_order(self) -> bool:
        """True when the batch just recorded read back from the store (out of the cache) so many of its aggregates
        that the rest of the input is better put back in time order first (`batchops.time_order`). The first batch
        has nearly nothing to read back (its aggregates are new, and the cache holds what it made), so there it is
        the share of its facts that came well after later ones (`Tuning.time_order_late_seconds`)."""
        outcome = self._last
        facts = outcome.new + outcome.duplicates
        if facts == 0:
            return False
        share = self.app.tuning.time_order_reread_share
        return outcome.reread >= facts * share or self._late >= facts * share

    def _count_late(self, batch: list[Parsed | RejectedEvent]) -> int:
        """Facts of the batch whose event time is more than `time_order_late_seconds` before the latest before them."""
        late_ms = self.app.tuning.time_order_late_seconds * 1000
        latest = 0
        late = 0
        for result in batch:
            if isinstance(result, Parsed):
                at = result.fact["at"]
                if at < latest - late_ms:
                    late += 1
                elif at > latest:
                    latest = at
        return late

    def _translate(self, raw: RawEvent) -> Parsed | RejectedEvent:
        return translate_raw(raw)

    def _flush(self) -> None:
        batch, self._batch = self._batch, []
        self._late = self._count_late(batch) if self.summary.read == 0 else 0
        outcome = self._last = self.app.record_batch(batch, project=False, pipeline_time=_latest_point_time_or_now)
        summary = self.summary
        summary.read += len(batch)  # once recorded (an interrupted run reports what is stored)
        summary.new += outcome.new
        summary.duplicates += outcome.duplicates
        summary.rejected += outcome.rejected
        summary.ignored += outcome.ignored
        for result in batch:
            if isinstance(result, RejectedEvent):
                summary.count_reason(result.reason)
        self._unprojected += outcome.new + outcome.duplicates
        if self._unprojected >= self.project_every:
            self._project()
        if self.on_points is not None:
            # JobCost of the jobs the views now show ended and priced (projected during or before this save)
            self.on_points([*outcome.points, *self.app.job_cost_points()])
        if self.on_progress is not None:
            self.on_progress(len(batch))


def _latest_point_time_or_now(facts: Sequence[Parsed], points: Sequence[MetricPoint]) -> int:
    """When a file's batch is stamped: its latest metric point, else now."""
    return max((p.timestamp_ms for p in points), default=0) or _now_ms()


def _now_ms() -> int:
    return int(datetime.now(tz=UTC).timestamp() * 1000)
