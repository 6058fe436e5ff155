"""Processes that decode and translate events ahead of the ingesting process: for a file, a worker that opens the
file itself (the ingesting process neither reads nor ships its lines); for a pipe, a worker that the ingesting
process feeds chunk by chunk. Either way results come back in order, a few chunks ahead, and should a worker fail,
the ingesting process translates the rest itself.

Once the ingesting process finds a plain file out of event-time order, it asks for the rest sorted (`RestOrder`):
the lines' positions are sorted on disk (`batchops.line_order`) and a worker fed those positions reads and
translates the lines in that order."""

from __future__ import annotations

import gc
import itertools
import multiprocessing as mp
import queue
import signal
import threading
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

from batchops import translation
from batchops.compressed import UnreadableInput, open_events_file
from batchops.facts import Parsed
from batchops.line_order import PositionedLines, SortedLines
from batchops.views import RejectedEvent

PARALLEL_DEPTH = 8
"""Chunks a worker may translate ahead: more than a batch, so that it keeps working while a batch is recorded
(with 4, it stalled a thousand lines short of each batch and ingest waited for it)."""
SORTED_DEPTH = 24
"""Chunks the worker that reads a file in event-time order is handed ahead: it is fed one chunk per chunk taken
back, not kept full by a queue of results as a file's worker is (16 more than `PARALLEL_DEPTH` took a forced sorted
ingest of the time-ordered bench stream from 13.6 to 12.8 s, one pair)."""

Chunk = Any
"""What a fed worker translates at a time: (first line number, lines) of a pipe, or the positions of a file's
lines (`batchops.line_order.Position`)."""


def line_chunks(stream: IO[bytes], chunk_lines: int) -> Iterator[list[bytes]]:
    """The stream's lines, `chunk_lines` at a time. Where compressed data breaks off, the lines read before the break
    come first, then the break (`UnreadableInput`)."""
    source = translation.bounded_lines(stream)
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


class RestOrder:
    """Between an ingest and the translation of its file: whether the rest can be handed over in event-time order
    (a plain file, translated by a worker), whether the ingest asked for that, and how many results came sorted."""

    def __init__(self) -> None:
        self.sortable = False
        self.asked = False
        self.time_ordered = 0

    def ask(self) -> None:
        """From the next chunk on, hand over the rest of the file sorted by event time."""
        assert self.sortable, "only a plain file translated by a worker is sorted by its translation"
        self.asked = True


def _settle_in() -> None:
    """What a translating process does first."""
    gc.disable()  # short-lived acyclic objects only, as in the ingestor
    # Ctrl-C reaches the whole process group: the ingesting process ends this one.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _context() -> Any:
    # Fork shares the loaded modules (instant start) but is only safe with no other thread around.
    return mp.get_context("fork" if threading.active_count() == 1 else "spawn")


def _worker(path: str, part: tuple[int, int], results: Any, compressed: bool, chunk_lines: int) -> None:
    """A translating process: read the file from `offset` (line `number` there) and translate it chunk by chunk,
    each result with the offset and line number after it; then None. The bounded queue keeps it a few chunks ahead.

    Compressed data that breaks off ends it with exit status 3 and no None: the ingesting process then reads on from
    the last chunk itself, and reports the break where it finds it."""
    _settle_in()
    offset, number = part
    with open_events_file(path, compressed) as stream:
        stream.seek(offset)
        try:
            for lines in line_chunks(stream, chunk_lines):
                data = translation.translate_lines(number, lines)
                number += len(lines)
                results.put((stream.tell(), number, data))
        except UnreadableInput:
            results.close()
            results.join_thread()  # the chunks before the break reach the ingesting process first
            raise SystemExit(3) from None
    results.put(None)


def translate_in_worker(
    stream: IO[bytes], number: int, compressed: bool, chunk_lines: int, order: RestOrder | None = None
) -> Iterator[Parsed | RejectedEvent]:
    """Translate the rest of a JSON Lines file (from the stream's position, line `number`) in a worker process that
    reads the file itself, a chunk of lines at a time, a few chunks ahead of the caller: this process neither reads
    nor ships the lines. Once `order` is asked (a plain file only), the rest from the next chunk on comes sorted by
    event time (`_translate_sorted`).

    Should the worker fail (or not start), the rest is translated here from the last offset it reported."""
    if order is not None:
        order.sortable = not compressed  # compressed data cannot be entered in the middle
    path = str(stream.name)
    context = _context()
    results = context.Queue(maxsize=PARALLEL_DEPTH)
    _widen_pipe(results)
    offset = stream.tell()
    worker = context.Process(
        target=_worker,
        args=(path, (offset, number), results, compressed, chunk_lines),
        name="batchops-translate",
        daemon=True,
    )
    try:
        worker.start()
        while (item := _get(results, worker)) is not None:
            offset, number, data = item
            yield from translation.from_wire(data)
            if order is not None and order.asked:
                break
    finally:
        _stop(worker, results)
    if order is not None and order.asked:
        yield from _translate_sorted(path, (offset, number), chunk_lines, order)
        return
    stream.seek(offset)  # the end of the file, unless the worker failed
    yield from _translate_here(line_chunks(stream, chunk_lines), number)


def _translate_sorted(
    path: str, part: tuple[int, int], chunk_lines: int, order: RestOrder
) -> Iterator[Parsed | RejectedEvent]:
    """The file's lines from `offset` (line `number` there) translated in event-time order, each with its own line
    number: their positions sorted on disk first, then read and translated by a fed worker."""
    offset, number = part
    with SortedLines() as lines:
        with Path(path).open("rb") as stream:
            stream.seek(offset)
            lines.scan(stream, number)
        read = PositionedLines(path)
        try:
            for result in _translate_chunks(lines.chunks(chunk_lines), read, SORTED_DEPTH):
                order.time_ordered += 1
                yield result
        finally:
            read.close()


def _stop(worker: Any, results: Any) -> None:
    """End a worker (done or failed) and close its queue."""
    if worker.is_alive():
        worker.terminate()
    worker.join(timeout=10)
    results.cancel_join_thread()
    results.close()


def _fed_worker(handed: Any, results: Any, translate: Callable[[Chunk], bytes]) -> None:
    """A translating process fed by the ingesting process: chunks in, their results out, in order, until None."""
    _settle_in()
    while (chunk := handed.get()) is not None:
        results.put(translate(chunk))


def _numbered_chunks(stream: IO[bytes], number: int, chunk_lines: int) -> Iterator[tuple[int, list[bytes]]]:
    """The stream's lines, `chunk_lines` at a time, each chunk with the number of its first line."""
    for lines in line_chunks(stream, chunk_lines):
        yield number, lines
        number += len(lines)


def _translate_numbered_chunk(chunk: tuple[int, list[bytes]]) -> bytes:
    return translation.translate_lines(*chunk)


def translate_fed(stream: IO[bytes], number: int, chunk_lines: int) -> Iterator[Parsed | RejectedEvent]:
    """Translate the rest of a stream that cannot be opened again (a pipe: standard input) in a worker process that
    this process feeds, `chunk_lines` at a time (the first numbered `number`)."""
    return _translate_chunks(_numbered_chunks(stream, number, chunk_lines), _translate_numbered_chunk)


def _translate_chunks(
    chunks: Iterator[Chunk], translate: Callable[[Chunk], bytes], depth: int = PARALLEL_DEPTH
) -> Iterator[Parsed | RejectedEvent]:
    """Translate chunks in a worker process that this process feeds, `depth` chunks ahead of the results it takes,
    with `translate` (a module-level function or a picklable object: a spawned worker gets it pickled).

    Should the worker fail, the chunks it was handed and did not give back are translated here, then the rest. A
    break in compressed input is raised once the results of the chunks before it are taken."""
    context = _context()
    to_worker = context.Queue()  # no bound of its own: at most `depth` chunks are handed and not given back
    results = context.Queue()
    _widen_pipe(results)
    worker = context.Process(
        target=_fed_worker, args=(to_worker, results, translate), name="batchops-translate", daemon=True
    )
    handed: deque[Chunk] = deque()
    ended = False
    broken: UnreadableInput | None = None

    def feed() -> None:
        nonlocal ended, broken
        while not ended and len(handed) < depth:
            try:
                chunk = next(chunks)
            except StopIteration:
                ended = True
            except UnreadableInput as error:
                ended, broken = True, error
            else:
                handed.append(chunk)
                to_worker.put(chunk)
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
    for chunk in handed:  # nothing, unless the worker failed
        yield from translation.from_wire(translate(chunk))
    if broken is not None:
        raise broken
    for chunk in chunks:  # nothing, unless the worker failed before the end
        yield from translation.from_wire(translate(chunk))


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
