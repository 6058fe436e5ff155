"""Processes that decode and translate events ahead of the ingesting process: for a file, a worker that opens the
file itself (the ingesting process neither reads nor ships its lines); for a pipe, a worker that the ingesting
process feeds chunk by chunk. Either way results come back in order, a few chunks ahead, and should a worker fail,
the ingesting process translates the rest itself."""

from __future__ import annotations

import contextlib
import gc
import itertools
import multiprocessing as mp
import queue
import signal
import threading
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from batchops import translation
from batchops.compressed import UnreadableInput, open_events_file
from batchops.facts import Parsed
from batchops.views import RejectedEvent

PARALLEL_DEPTH = 8
"""Chunks a worker may translate ahead: more than a batch, so that it keeps working while a batch is recorded
(with 4, it stalled a thousand lines short of each batch and ingest waited for it)."""


def line_chunks(stream: IO[bytes], chunk_lines: int, limit: _Limit | None = None) -> Iterator[list[bytes]]:
    """The stream's lines (those before `limit.end`, if given), `chunk_lines` at a time. Where compressed data breaks
    off, the lines read before the break come first, then the break (`UnreadableInput`)."""
    source = translation.bounded_lines(stream) if limit is None else _lines_within(stream, limit)
    while True:
        lines: list[bytes] = []
        try:
            lines.extend(itertools.islice(source, chunk_lines))
        except UnreadableInput:
            if lines:
                yield lines
            raise
        if not lines:
            return
        yield lines


def _settle_in() -> None:
    """What a translating process does first."""
    gc.disable()  # short-lived acyclic objects only, as in the ingestor
    # Ctrl-C reaches the whole process group: the ingesting process ends this one.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@dataclass
class _Limit:
    """Where a worker's part of the file ends: None for the end of the file, until the part is split."""

    end: int | None = None


def _lines_within(stream: IO[bytes], limit: _Limit) -> Iterator[bytes]:
    """The stream's lines that start before `limit.end` (a line boundary), read as needed."""
    lines = translation.bounded_lines(stream)
    while limit.end is None or stream.tell() < limit.end:
        line = next(lines, None)
        if line is None:
            return
        yield line


def _split_point(path: str, position: int, number: int, min_bytes: int) -> tuple[int, int] | None:
    """The line boundary nearest past the middle of the file's rest from `position` (line `number` there), and the
    number of the line that starts there; None when the rest is shorter than `min_bytes`."""
    size = Path(path).stat().st_size
    middle = position + (size - position) // 2
    if size - position < min_bytes:
        return None
    with Path(path).open("rb") as stream:
        stream.seek(position)
        while position < middle and (block := stream.read(min(1 << 20, middle - position))):
            number += block.count(b"\n")
            position += len(block)
        while rest := stream.readline(1 << 20):  # to the end of the line the middle falls in
            if rest.endswith(b"\n"):
                return stream.tell(), number + 1
    return None


def _worker(
    path: str, part: tuple[int, int | None, int], results: Any, compressed: bool, sizes: tuple[int, int], split: Any
) -> None:
    """A translating process: read the file from `offset` (line `number` there) to `end` (None: the end of the file)
    and translate it chunk by chunk, each result with the offset and line number after it; then None. The bounded
    queue keeps it a few chunks ahead. Once `split` is set (the caller no longer needs file order), it hands the second
    half of its rest to another worker (a rest of `split_min_bytes` at least): it ends its part there and says so
    with ("split", offset, number). `sizes`: lines a chunk, and that least rest.

    Compressed data that breaks off ends it with exit status 3 and no None: the ingesting process then reads on from
    the last chunk itself, and reports the break where it finds it."""
    _settle_in()
    offset, end, number = part
    chunk_lines, split_min_bytes = sizes
    limit = _Limit(end)
    with open_events_file(path, compressed) as stream:
        stream.seek(offset)
        try:
            for lines in line_chunks(stream, chunk_lines, limit):
                data = translation.translate_lines(number, lines)
                number += len(lines)
                results.put((stream.tell(), number, data))
                if limit.end is None and split is not None and split.is_set():
                    point = _split_point(path, stream.tell(), number, split_min_bytes)
                    if point is not None:
                        limit.end = point[0]
                        results.put(("split", *point))
        except UnreadableInput:
            results.close()
            results.join_thread()  # the chunks before the break reach the ingesting process first
            raise SystemExit(3) from None
    results.put(None)


def _standby(path: str, handed: Any, results: Any, compressed: bool, sizes: tuple[int, int]) -> None:
    """A second translating process, forked at the start while the ingesting process is small (forked later, it
    would start with the ingest's memory as its own): it waits for the part the first worker hands over, or None."""
    _settle_in()
    part = handed.recv()
    handed.close()
    if part is not None:
        offset, number = part
        _worker(path, (offset, None, number), results, compressed, sizes, None)


@dataclass
class _Part:
    """A worker translating one part of the file, and how far its results have come."""

    worker: Any
    results: Any
    offset: int
    number: int
    end: int | None = None
    finished: bool = False


class OrderNeed:
    """Whether the consumer of a translation still needs the results in file order. One that sorts them itself
    (`batchops.time_order`) waives it, and the rest of a plain file is then translated by two processes at once."""

    def __init__(self) -> None:
        self.needed = True

    def waive(self) -> None:
        """From now on, results may come in any order."""
        self.needed = False


class _FileTranslation:
    """The worker processes translating a file, their parts, and the results taken from them."""

    def __init__(self, stream: IO[bytes], compressed: bool, sizes: tuple[int, int], order: OrderNeed | None) -> None:
        # Fork shares the loaded modules (instant start) but is only safe with no other thread around.
        self.context: Any = mp.get_context("fork" if threading.active_count() == 1 else "spawn")
        self.path = str(stream.name)
        self.compressed = compressed
        self.sizes = sizes
        self.order = order
        # Compressed data cannot be entered in the middle: such a file stays with one process.
        self.split = self.context.Event() if order is not None and not compressed else None
        self.parts: list[_Part] = []
        self.standby: tuple[Any, Any, Any] | None = None  # process, its results, the end that hands it a part

    def start_standby(self, offset: int) -> None:
        """Where the file's rest from `offset` may be split, start the second worker now, waiting (see `_standby`);
        elsewhere the first worker is never asked to split."""
        if self.split is None or Path(self.path).stat().st_size - offset < self.sizes[1]:
            self.split = None
            return
        results = self.context.Queue(maxsize=PARALLEL_DEPTH)
        _widen_pipe(results)
        receiving, handing = self.context.Pipe(duplex=False)
        process = self.context.Process(
            target=_standby,
            args=(self.path, receiving, results, self.compressed, self.sizes),
            name="batchops-translate",
            daemon=True,
        )
        process.start()
        receiving.close()  # the standby has its own
        self.standby = (process, results, handing)

    def hand_over(self, offset: int, number: int) -> None:
        """Give the standby worker the file's rest from `offset` (line `number`) to its end."""
        assert self.standby is not None, "only a file with a standby worker is split"
        process, results, handing = self.standby
        self.standby = None
        handing.send((offset, number))
        handing.close()
        self.parts.append(_Part(process, results, offset, number))

    def dismiss_standby(self) -> None:
        """End a standby worker that was never handed a part."""
        if self.standby is not None:
            process, results, handing = self.standby
            self.standby = None
            with contextlib.suppress(OSError):
                handing.send(None)
            handing.close()
            self.stop(_Part(process, results, 0, 0))

    def start(self, offset: int, number: int) -> None:
        """The first worker, for the file from `offset` (line `number`) to its end; split once, into two, if asked."""
        results = self.context.Queue(maxsize=PARALLEL_DEPTH)
        _widen_pipe(results)
        worker = self.context.Process(
            target=_worker,
            args=(self.path, (offset, None, number), results, self.compressed, self.sizes, self.split),
            name="batchops-translate",
            daemon=True,
        )
        self.parts.append(_Part(worker, results, offset, number))
        worker.start()

    def results(self) -> Iterator[bytes]:
        """Marshalled chunks of results: the first part's in order, or once order is waived, one chunk from each
        part in turn. A part whose worker failed is left for `rest`."""
        turn = 0
        while live := [p for p in self.parts if p.worker is not None]:
            if self.split is not None and not self.split.is_set() and self.order is not None and not self.order.needed:
                self.split.set()
            part = live[turn % len(live)]  # one part, unless order was waived and the rest split
            turn += 1
            item = _get(part.results, part.worker)
            if item is None:
                part.finished = not part.worker.is_alive() and part.worker.exitcode == 0
                self.stop(part)
            elif isinstance(item[0], str):  # ("split", offset, number): its part ends there, a second one starts
                part.end = item[1]
                self.hand_over(item[1], item[2])
            else:
                part.offset, part.number, data = item
                yield data

    def stop(self, part: _Part) -> None:
        """End a part's worker (done or failed) and close its queue."""
        if part.worker.is_alive():
            part.worker.terminate()
        part.worker.join(timeout=10)
        part.results.cancel_join_thread()
        part.results.close()
        part.worker = None

    def rest(self, stream: IO[bytes]) -> Iterator[Parsed | RejectedEvent]:
        """What failed workers left, translated here, part by part."""
        for part in self.parts:
            if not part.finished:
                stream.seek(part.offset)
                yield from _translate_here(line_chunks(stream, self.sizes[0], _Limit(part.end)), part.number)


def translate_in_worker(
    stream: IO[bytes], number: int, compressed: bool, sizes: tuple[int, int], order: OrderNeed | None = None
) -> Iterator[Parsed | RejectedEvent]:
    """Translate the rest of a JSON Lines file (from the stream's position, line `number`) in a worker process that
    reads the file itself, a chunk of lines at a time, a few chunks ahead of the caller: this process neither reads
    nor ships the lines. Once `order` is waived, a plain file's rest is split between two workers. `sizes`: lines a
    chunk, and the least rest worth a second worker.

    Should a worker fail (or not start), its part is translated here from the last offset it reported."""
    translating = _FileTranslation(stream, compressed, sizes, order)
    try:
        translating.start_standby(stream.tell())
        translating.start(stream.tell(), number)
        for data in translating.results():
            yield from translation.from_wire(data)
    finally:
        translating.dismiss_standby()
        for part in translating.parts:
            if part.worker is not None:
                translating.stop(part)
    yield from translating.rest(stream)


def _fed_worker(handed: Any, results: Any) -> None:
    """A translating process fed by the ingesting process: (first line number, lines) in, their results out, in
    order, until None."""
    _settle_in()
    while (chunk := handed.get()) is not None:
        start, lines = chunk
        results.put(translation.translate_lines(start, lines))


def translate_fed(stream: IO[bytes], number: int, chunk_lines: int) -> Iterator[Parsed | RejectedEvent]:
    """Translate the rest of a stream that cannot be opened again (a pipe: standard input) in a worker process that
    this process feeds, `chunk_lines` at a time, `PARALLEL_DEPTH` chunks ahead of the results it takes.

    Should the worker fail, the chunks it was handed and did not give back are translated here, then the rest of
    the stream. A break in compressed input is raised once the results of the chunks before it are taken."""
    context: Any = mp.get_context("fork" if threading.active_count() == 1 else "spawn")
    to_worker = context.Queue()  # no bound of its own: at most PARALLEL_DEPTH chunks are handed and not given back
    results = context.Queue()
    _widen_pipe(results)
    worker = context.Process(target=_fed_worker, args=(to_worker, results), name="batchops-translate", daemon=True)
    lines_of = line_chunks(stream, chunk_lines)
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
                to_worker.put((number, lines))
                number += len(lines)
                continue
            to_worker.put(None)  # once: the loop ends with the stream

    try:
        worker.start()
        feed()
        while handed and (data := _get(results, worker)) is not None:
            handed.popleft()
            yield from translation.from_wire(data)
            feed()
    finally:
        if worker.is_alive():
            worker.terminate()
        worker.join(timeout=10)
        if worker.exitcode != 0:  # it did not read all it was handed
            _drain(to_worker)
        for queue_ in (to_worker, results):
            queue_.cancel_join_thread()
            queue_.close()
    for start, lines in handed:  # nothing, unless the worker failed
        yield from translation.from_wire(translation.translate_lines(start, lines))
    if broken is not None:
        raise broken
    yield from _translate_here(lines_of, number)  # nothing, unless the worker failed before the end


def _drain(handed: Any) -> None:
    """Take back what a worker that is gone was handed and did not read: until then this process's thread that sends
    it stays blocked on the full pipe, and a process with a thread can no longer fork (the next worker is spawned)."""
    try:
        while True:
            handed.get(timeout=0.2)
    except (queue.Empty, OSError, EOFError, ValueError):
        pass


def _translate_here(chunks: Iterator[list[bytes]], number: int) -> Iterator[Parsed | RejectedEvent]:
    """Translate chunks of lines in this process (what a failed worker left), the first numbered `number`."""
    for lines in chunks:
        yield from translation.from_wire(translation.translate_lines(number, lines))
        number += len(lines)


def _widen_pipe(results: Any) -> None:
    """Give the results queue's pipe 1 MiB where the system allows it (Linux): a chunk's results are about 600 KB,
    and through the default 64 KiB the worker's sending thread and this process take turns ten times per chunk.
    Anywhere else, nothing."""
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
