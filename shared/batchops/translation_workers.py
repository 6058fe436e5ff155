"""Processes that decode and translate events ahead of the ingesting process: for a file, a worker that opens the
file itself (the ingesting process neither reads nor ships its lines); for a pipe, a worker that the ingesting
process feeds chunk by chunk. Either way results come back in order, a few chunks ahead, and should a worker fail,
the ingesting process translates the rest itself."""

from __future__ import annotations

import gc
import itertools
import multiprocessing as mp
import queue
import signal
import threading
from collections import deque
from collections.abc import Iterator
from typing import IO, Any

from batchops import translation
from batchops.compressed import UnreadableInput, open_events_file
from batchops.facts import Parsed
from batchops.views import RejectedEvent

PARALLEL_DEPTH = 8
"""Chunks a worker may translate ahead: more than a batch, so that it keeps working while a batch is recorded
(with 4, it stalled a thousand lines short of each batch and ingest waited for it)."""


def line_chunks(stream: IO[bytes], chunk_lines: int) -> Iterator[list[bytes]]:
    """The stream's lines, `chunk_lines` at a time. Where compressed data breaks off, the lines read before
    the break come first, then the break (`UnreadableInput`)."""
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


def _settle_in() -> None:
    """What a translating process does first."""
    gc.disable()  # short-lived acyclic objects only, as in the ingestor
    # Ctrl-C reaches the whole process group: the ingesting process ends this one.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _worker(path: str, offset: int, number: int, results: Any, compressed: bool, chunk_lines: int) -> None:
    """The second process: read the file from `offset` (line `number` there) and translate it chunk by chunk, each
    result with the offset and line number after it; then None. The bounded queue keeps it a few chunks ahead.

    Compressed data that breaks off ends it with exit status 3 and no None: the ingesting process then reads on from
    the last chunk itself, and reports the break where it finds it."""
    _settle_in()
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
    stream: IO[bytes], number: int, compressed: bool, chunk_lines: int
) -> Iterator[Parsed | RejectedEvent]:
    """Translate the rest of a JSON Lines file (from the stream's position, line `number`) in a worker process that
    reads the file itself, `chunk_lines` at a time, a few chunks ahead of the caller: this process neither reads nor
    ships the lines.

    Should the worker fail (or not start), the rest is translated here from the last offset it reported."""
    # Fork shares the loaded modules (instant start) but is only safe with no other thread around.
    context: Any = mp.get_context("fork" if threading.active_count() == 1 else "spawn")
    results = context.Queue(maxsize=PARALLEL_DEPTH)
    _widen_pipe(results)
    offset = stream.tell()
    worker = context.Process(
        target=_worker,
        args=(stream.name, offset, number, results, compressed, chunk_lines),
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
            yield from translation.from_wire(data)
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
    yield from _translate_here(line_chunks(stream, chunk_lines), number)


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
        for queue_ in (to_worker, results):
            queue_.cancel_join_thread()
            queue_.close()
    for start, lines in handed:  # nothing, unless the worker failed
        yield from translation.from_wire(translation.translate_lines(start, lines))
    if broken is not None:
        raise broken
    yield from _translate_here(lines_of, number)  # nothing, unless the worker failed before the end


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
