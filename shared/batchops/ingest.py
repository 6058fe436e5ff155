"""Ingestion: read EventBridge events from a stream, translate, record in batches, keep what is unusable.

Input is JSON Lines (one event per line; a line may also hold a JSON array of events) or one JSON
document (an object or an array). Reading streams line by line, so memory stays flat on any file size.
"""

from __future__ import annotations

import gc
import io
import itertools
import marshal
import multiprocessing as mp
import os
import queue
import re
import signal
import stat
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import orjson

from batchops.application import BatchOpsApplication, RecordOutcome, pipeline_metric_points
from batchops.compressed import UnreadableInput, decompressed, open_events_file
from batchops.facts import Parsed
from batchops.inbound import Unusable, translate
from batchops.metrics import MetricPoint
from batchops.redaction import redact
from batchops.views import RejectedEvent

BATCH_SIZE = 10_000
"""Events per save: each save is one transaction, flushed to disk. On the full bench stream, 10,000 took 11.5-12.2 s
at 172 MB peak against 12.5-12.6 s at 145 MB with 5,000."""
PROJECT_EVERY = 80_000
"""Events recorded between two updates of the views: a job touched by several batches has its row written once. The
folds of every aggregate touched since the last update stay in memory. Full bench stream, 6 interleaved pairs (since
the views write queued job rows every 1,000): 40,000 took 10.6-11.9 s (mean 11.4) at a 157 MiB peak, 80,000 took
10.2-11.3 s (mean 10.8) at 186 MiB; 60,000, 10.9-12.0 s at 172 MiB. Before that bound, 80,000 peaked at 240 MB."""
PARALLEL_MIN_BYTES = 8_000_000
"""Files at least this big are decoded and translated in a second process (0 turns that off)."""
PARALLEL_CHUNK_LINES = 1000
PARALLEL_DEPTH = 8
"""Chunks the worker may translate ahead: more than a batch, so that it keeps working while a batch is recorded
(with 4, it stalled a thousand lines short of each batch and ingest waited for it)."""
UTF8_BOM = b"\xef\xbb\xbf"
REASONS_KEPT = 100
"""Distinct reasons a summary counts one by one; any further ones are counted together as `OTHER_REASONS`, so that
the summary's memory stays flat whatever a file holds (each rejected event keeps its own reason in the store)."""
OTHER_REASONS = "other reasons (see them with `batchops rejected`)"
_LINE_PREFIX = re.compile(r"^line \d+: ")
_POSITION = re.compile(r": line \d+ column \d+ \(char \d+\)$")
_VALUE_IN_TEXT = re.compile(r'("(?:value|Value|command|parameters)"\s*:\s*)("(?:[^"\\]|\\.)*"|\[[^\]]*\]|\{[^}]*\})')


@dataclass
class IngestSummary:
    """What `ingest` did: events read, new, duplicates, rejected (bad or unknown), ignored (not about Batch)."""

    read: int = 0
    new: int = 0
    duplicates: int = 0
    rejected: int = 0
    ignored: int = 0
    reasons: dict[str, int] = field(default_factory=dict)

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
            "reasons": dict(sorted(self.reasons.items(), key=lambda kv: -kv[1])),
        }


@dataclass(frozen=True, slots=True)
class RawEvent:
    """One decoded event, or the text and error of a line that could not be decoded."""

    value: Any
    line: int
    error: str | None = None
    text: str | None = None


class EventReader(Iterator[RawEvent]):
    """The events of a stream, decoded lazily (what `read_events` returns).

    Iterating decodes in this process. An `Ingestor` given a reader over a large regular file of JSON Lines
    decodes and translates it in a second process instead (`translated`), overlapping with recording. A
    gzip-compressed stream is decompressed as it is read (see `batchops.compressed`).
    """

    def __init__(self, stream: IO[bytes]) -> None:
        self.stream = decompressed(stream)
        self.compressed = self.stream is not stream
        self._events: Iterator[RawEvent] | None = None

    def __iter__(self) -> EventReader:
        return self

    def __next__(self) -> RawEvent:
        if self._events is None:
            self._events = _read(self.stream)
        return next(self._events)

    def parallel_worthwhile(self) -> bool:
        """True, on a machine with a second core, for an untouched stream that is either a big regular file opened by
        a path (the worker opens it too) or a pipe (this process feeds the worker its lines)."""
        if self._events is not None or PARALLEL_MIN_BYTES <= 0 or (os.cpu_count() or 1) < 2:
            return False
        if self._is_pipe():
            return True
        size = self._reopenable_size()
        return size is not None and size - self.stream.tell() >= PARALLEL_MIN_BYTES

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

    def translated(self) -> Iterator[Parsed | RejectedEvent]:
        """Every event translated, in order, by a worker process (JSON Lines only; anything else here)."""
        stream = self.stream
        piped = self._is_pipe()
        start = None if piped else stream.tell()
        first = _first_line(stream)
        try:
            head = orjson.loads(first) if first else None
        except orjson.JSONDecodeError:
            head = None
        self._events = iter(())
        if head is None:  # empty, or not JSON Lines: the sequential reader knows every other shape
            if start is not None:
                stream.seek(start)
            yield from map(translate_raw, _read(stream, first if start is None else None))
            return
        yield from map(translate_raw, _expand(head, 1))
        if piped:
            yield from _translate_fed(stream, 2)
        else:
            yield from _translate_in_worker(stream, 2, self.compressed)


def read_events(stream: IO[bytes]) -> EventReader:
    """Decode events from JSON Lines (or one JSON document spanning lines) without loading big files; gzip-compressed
    input is decompressed as it is read."""
    return EventReader(stream)


def _first_line(stream: IO[bytes]) -> bytes:
    """The first line that is not blank, without the UTF-8 byte order mark some Windows tools write at the start of a
    file (as the first event's bytes it is not JSON)."""
    first = stream.readline().removeprefix(UTF8_BOM)
    while first and not first.strip():
        first = stream.readline()
    return first


def _read(stream: IO[bytes], first: bytes | None = None) -> Iterator[RawEvent]:
    """The events of a stream; `first` is its first line when the caller has read it already (from a pipe)."""
    if first is None:
        first = _first_line(stream)
    if not first:
        return
    try:
        head = orjson.loads(first)
    except orjson.JSONDecodeError:
        head = None
        stripped = first.lstrip()
        if stripped[:1] in (b"{", b"["):
            # Perhaps one pretty-printed JSON document; if not, it was JSON Lines with a bad first line.
            rest = stream.read()
            try:
                whole = orjson.loads(first + rest)
            except orjson.JSONDecodeError:
                pass
            else:
                yield from _expand(whole, 1)
                return
            stream = io.BytesIO(rest)
        yield RawEvent(None, 1, "invalid JSON", first[:4000].decode("utf-8", "replace"))
    else:
        yield from _expand(head, 1)
    for number, line in enumerate(stream, start=2):
        if not line.strip():
            continue
        try:
            value = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            yield RawEvent(None, number, f"invalid JSON: {exc}", line[:4000].decode("utf-8", "replace"))
            continue
        yield from _expand(value, number)


def _expand(value: Any, line: int) -> Iterator[RawEvent]:
    if isinstance(value, list):
        for item in value:
            yield RawEvent(item, line)
    else:
        yield RawEvent(value, line)


def scrub_text(text: str) -> str:
    """Best-effort redaction of text that is not valid JSON: blank every value, command and parameter."""
    return _VALUE_IN_TEXT.sub(lambda m: m.group(1) + '"<redacted>"', text)


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
        batch: list[Parsed] = []
        unusable: list[RejectedEvent] = []
        unusable_counts: dict[tuple[str, str], list[int]] = {}
        results: Iterable[Parsed | RejectedEvent]
        if isinstance(events, EventReader) and events.parallel_worthwhile():
            results = events.translated()
        else:
            results = map(self._translate, events)
        pending = 0
        limit = self.batch_size
        try:
            for result in results:
                if isinstance(result, Parsed):
                    batch.append(result)
                else:
                    unusable.append(result)
                    slot = 2 if result.rejected else 3
                    key = (result.account_id or "unknown", result.region or "unknown")
                    unusable_counts.setdefault(key, [0, 0, 0, 0])[slot] += 1
                pending += 1
                if pending >= limit:
                    self._flush(batch, unusable, unusable_counts)
                    batch, unusable, unusable_counts, pending = [], [], {}, 0
        except UnreadableInput:  # what was read before the break is recorded; the caller reports the break
            self._flush(batch, unusable, unusable_counts)
            self.app.project_saved()
            raise
        self._flush(batch, unusable, unusable_counts)
        self.app.project_saved()
        return self.summary

    def _translate(self, raw: RawEvent) -> Parsed | RejectedEvent:
        return translate_raw(raw)

    def _flush(
        self,
        batch: list[Parsed],
        unusable: list[RejectedEvent],
        unusable_counts: dict[tuple[str, str], list[int]],
    ) -> None:
        outcome = self.app.record_with_retry(batch, project=False) if batch else RecordOutcome()
        self.summary.read += len(batch) + len(unusable)  # once recorded (an interrupted run reports what is stored)
        self._unprojected += len(batch)
        if self._unprojected >= self.project_every:
            self.app.project_saved()
            self._unprojected = 0
        for event in unusable:
            if event.rejected:
                self.summary.rejected += 1
            else:
                self.summary.ignored += 1
            self.summary.count_reason(event.reason)
        if unusable:
            self.app.views.keep_rejected(unusable)
        self.summary.new += outcome.new
        self.summary.duplicates += outcome.duplicates
        self.app.save_counters(outcome, unusable_counts)
        if self.on_points is not None:
            at = max((p.timestamp_ms for p in outcome.points), default=0) or _now_ms()
            merged = dict(outcome.counters)
            for key, values in unusable_counts.items():
                slot = merged.setdefault(key, [0, 0, 0, 0])
                merged[key] = [a + b for a, b in zip(slot, values, strict=True)]
            self.on_points([*outcome.points, *pipeline_metric_points(merged, at)])
        if self.on_progress is not None:
            self.on_progress(len(batch) + len(unusable))


def translate_raw(raw: RawEvent) -> Parsed | RejectedEvent:
    """A decoded event's fact, or the redacted record of why it cannot be used."""
    if raw.error is not None:
        return RejectedEvent(
            reason=f"line {raw.line}: {raw.error}",
            rejected=True,
            detail_type=None,
            account_id=None,
            region=None,
            body=scrub_text(raw.text or ""),
            received_at=_now(),
        )
    result = translate(raw.value)
    if isinstance(result, Parsed):
        return result
    return kept_aside(result, raw)


def _translate_lines(start: int, lines: list[bytes]) -> bytes:
    """Decode and translate lines numbered from `start`; the results marshalled (see `_from_wire`).

    `marshal`, not JSON, between the worker and this process: the results are plain lists, dicts and scalars, made
    and read by the same Python, and `marshal.loads` takes 1.1 µs an event on the bench stream where orjson takes 2.3
    (marshal is not for data from elsewhere: only the worker's own output is read this way)."""
    out: list[list[Any]] = []
    for number, line in enumerate(lines, start=start):
        if not line.strip():
            continue
        try:
            value = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            raws: Iterable[RawEvent] = (
                RawEvent(None, number, f"invalid JSON: {exc}", line[:4000].decode("utf-8", "replace")),
            )
        else:
            raws = _expand(value, number)
        for raw in raws:
            result = translate_raw(raw)
            if isinstance(result, Parsed):
                out.append([result.kind, result.account, result.region, result.key, result.fact])
            else:
                out.append(
                    [
                        result.reason,
                        result.rejected,
                        result.detail_type,
                        result.account_id,
                        result.region,
                        result.body,
                        result.received_at,
                    ]
                )
    return marshal.dumps(out)


def _from_wire(data: bytes) -> Iterator[Parsed | RejectedEvent]:
    for item in marshal.loads(data):
        if len(item) == 5:
            yield Parsed(*item)
        else:
            yield RejectedEvent(*item)


def _chunks(stream: IO[bytes]) -> Iterator[list[bytes]]:
    """The stream's lines, `PARALLEL_CHUNK_LINES` at a time. Where compressed data breaks off, the lines read before
    the break come first, then the break (`UnreadableInput`)."""
    while True:
        lines: list[bytes] = []
        try:
            lines.extend(itertools.islice(stream, PARALLEL_CHUNK_LINES))
        except UnreadableInput:
            if lines:
                yield lines
            raise
        if not lines:
            return
        yield lines


def _worker(path: str, offset: int, number: int, results: Any, compressed: bool) -> None:
    """The second process: read the file from `offset` (line `number` there) and translate it chunk by chunk, each
    result with the offset and line number after it; then None. The bounded queue keeps it a few chunks ahead.

    Compressed data that breaks off ends it with exit status 3 and no None: the ingesting process then reads on from
    the last chunk itself, and reports the break where it finds it."""
    gc.disable()  # short-lived acyclic objects only, as in the ingestor
    signal.signal(
        signal.SIGINT, signal.SIG_IGN
    )  # Ctrl-C reaches the whole process group: the ingesting process ends us
    with open_events_file(path, compressed) as stream:
        stream.seek(offset)
        try:
            for lines in _chunks(stream):
                data = _translate_lines(number, lines)
                number += len(lines)
                results.put((stream.tell(), number, data))
        except UnreadableInput:
            results.close()
            results.join_thread()  # the chunks before the break reach the ingesting process first
            raise SystemExit(3) from None
    results.put(None)


def _translate_in_worker(stream: IO[bytes], number: int, compressed: bool) -> Iterator[Parsed | RejectedEvent]:
    """Translate the rest of a JSON Lines file (from the stream's position, line `number`) in a worker process that
    reads the file itself, a few chunks ahead of the caller: this process neither reads nor ships the lines.

    Should the worker fail (or not start), the rest is translated here from the last offset it reported."""
    # Fork shares the loaded modules (instant start) but is only safe with no other thread around.
    context: Any = mp.get_context("fork" if threading.active_count() == 1 else "spawn")
    results = context.Queue(maxsize=PARALLEL_DEPTH)
    _widen_pipe(results)
    offset = stream.tell()
    worker = context.Process(
        target=_worker,
        args=(stream.name, offset, number, results, compressed),
        name="batchops-translate",
        daemon=True,
    )
    finished = False
    try:
        worker.start()
        while True:
            item = _get(results, worker)
            if item is None:
                finished = not worker.is_alive() and worker.exitcode == 0
                break
            offset, number, data = item
            yield from _from_wire(data)
    finally:
        if worker.is_alive():
            worker.terminate()
        worker.join(timeout=10)
        results.cancel_join_thread()
        results.close()
    if finished:
        return
    # The worker failed: translate the rest here, from the end of the last chunk it handed over.
    stream.seek(offset)
    for lines in _chunks(stream):
        yield from _from_wire(_translate_lines(number, lines))
        number += len(lines)


def _fed_worker(chunks: Any, results: Any) -> None:
    """A translating process fed by the ingesting process: (first line number, lines) in, their results out, in
    order, until None."""
    gc.disable()  # short-lived acyclic objects only, as in the ingestor
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the process group: the ingesting process ends us
    while (chunk := chunks.get()) is not None:
        start, lines = chunk
        results.put(_translate_lines(start, lines))


def _translate_fed(stream: IO[bytes], number: int) -> Iterator[Parsed | RejectedEvent]:
    """Translate the rest of a stream that cannot be opened again (a pipe: standard input) in a worker process that
    this process feeds, chunk by chunk, `PARALLEL_DEPTH` chunks ahead of the results it takes.

    Should the worker fail, the chunks it was handed and did not give back are translated here, then the rest of
    the stream. A break in compressed input is raised once the results of the chunks before it are taken."""
    context: Any = mp.get_context("fork" if threading.active_count() == 1 else "spawn")
    chunks = context.Queue()  # no bound of its own: at most PARALLEL_DEPTH chunks are handed over and not given back
    results = context.Queue()
    _widen_pipe(results)
    worker = context.Process(target=_fed_worker, args=(chunks, results), name="batchops-translate", daemon=True)
    lines_of = _chunks(stream)
    handed: deque[tuple[int, list[bytes]]] = deque()
    ended = False
    broken: UnreadableInput | None = None

    def feed() -> None:
        nonlocal number, ended, broken
        while not ended and len(handed) < PARALLEL_DEPTH:
            try:
                lines = next(lines_of)
            except StopIteration:
                ended = True
            except UnreadableInput as error:
                ended, broken = True, error
            else:
                handed.append((number, lines))
                chunks.put((number, lines))
                number += len(lines)
                continue
            chunks.put(None)  # once: the loop ends with the stream

    try:
        worker.start()
        feed()
        while handed and (data := _get(results, worker)) is not None:
            handed.popleft()
            yield from _from_wire(data)
            feed()
    finally:
        if worker.is_alive():
            worker.terminate()
        worker.join(timeout=10)
        for queue_ in (chunks, results):
            queue_.cancel_join_thread()
            queue_.close()
    for start, lines in handed:  # nothing, unless the worker failed
        yield from _from_wire(_translate_lines(start, lines))
    if broken is not None:
        raise broken
    for lines in lines_of:  # nothing, unless the worker failed before the end
        yield from _from_wire(_translate_lines(number, lines))
        number += len(lines)


def _widen_pipe(results: Any) -> None:
    """Give the results queue's pipe 1 MiB where the system allows it (Linux): a chunk's results are about 600 KB,
    and through the default 64 KiB the worker's sending thread and this process take turns ten times per chunk
    (on the bench stream this process spent 0.8-0.9 s receiving, 0.6 s with 1 MiB). Anywhere else, nothing."""
    try:
        import fcntl

        size = getattr(fcntl, "F_SETPIPE_SZ", None)
        if size is not None:
            fcntl.fcntl(results._reader.fileno(), size, 1 << 20)  # the queue's own pipe: no public way to reach it
    except (ImportError, AttributeError, OSError):
        pass


def _get(results: Any, worker: Any) -> Any:
    """The next result; None at the end, or once the worker is gone without one."""
    while True:
        try:
            return results.get(timeout=1.0)  # type: ignore[no-any-return]
        except queue.Empty:
            if not worker.is_alive():
                return None


def kept_aside(result: Unusable, raw: RawEvent) -> RejectedEvent:
    """An unusable event as it is kept: redacted, with its reason."""
    return RejectedEvent(
        reason=result.reason,
        rejected=result.rejected,
        detail_type=result.detail_type,
        account_id=result.account,
        region=result.region,
        body=orjson.dumps(redact(raw.value)).decode(),
        received_at=_now(),
    )


def _now() -> str:
    return datetime.now(tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _now_ms() -> int:
    return int(datetime.now(tz=UTC).timestamp() * 1000)
