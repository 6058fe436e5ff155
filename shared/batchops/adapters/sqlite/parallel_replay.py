"""Replay's job phase on two cores: a worker process folds half of the jobs while this process folds the other half.

A rebuild folds every job aggregate from its stored events and builds its row; on one core that is most of a
replay. Job aggregates are independent of each other (their rows join instances and compute environments,
which the rebuild has written and committed before), so the job id space splits in two: ids that sort before
`SPLIT` here, the rest in a worker that reads the same database file, folds with the same code and writes its own
rows. The two take turns at writing (one lock, held for a page's short transaction), so neither waits in SQLite's
busy loop, and no row crosses between the processes. Rows are upserts, so should the worker fail, its half is
simply rebuilt here.
"""

from __future__ import annotations

import gc
import multiprocessing as mp
import queue
import signal
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import orjson

SPLIT = "8"
"""Job aggregate ids are uuid5 text, uniform in their first hex digit: each process takes 8 of the 16 digits, as each
writes its own rows (this one also the compute environments and instances first, while the worker folds its first
page; measured: docs/ingest-performance.md, "Tuning values")."""
TURN_POLL_SECONDS = 0.5
"""How often a wait for the write turn checks that the worker is still alive."""


def _worker(
    database: str, generation: int, topics: Sequence[str], up_to: int, page: int, results: Any, hosts: Any, turn: Any
) -> None:  # pragma: no cover - runs in the worker process (its rows are checked by the replay tests)
    """Fold the jobs from `SPLIT` on and write their rows page by page, each in its write `turn`; put each page's
    event count on `results`, then None. Rows are built once `hosts` (an event) says the compute environments and
    instances they join are written; folding starts at once."""
    from eventsourcing.utils import Environment

    from batchops.adapters.sqlite.event_store import Factory, PollingSQLiteApplicationRecorder
    from batchops.adapters.sqlite.views import SQLiteViewStore
    from batchops.projector import Projector

    gc.disable()  # short-lived acyclic objects only, as in the rebuild itself
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole process group: the replay ends us
    views = SQLiteViewStore(database, create=False)
    views.write_unsynced(generation)
    factory = Factory(Environment("batchops", {"SQLITE_DBNAME": database, "CREATE_TABLE": "n"}))
    recorder = factory.application_recorder()
    assert isinstance(recorder, PollingSQLiteApplicationRecorder)
    projector = Projector()
    session = views.reading_session(generation)
    for stored in recorder.select_aggregate_states(topics, up_to=up_to, exclude=True, limit=page, after=SPLIT):
        folds, count = projector.fold_stored(stored, orjson.loads)
        hosts.wait()
        projector.apply_folds(session, folds)
        rows = session.take_job_rows()
        with turn:
            views.write_job_rows(generation, rows)
        results.put(count)
    results.put(None)
    factory.close()
    views.close()


class JobPhaseWorker:
    """The worker process of one rebuild's job phase: start it, then fold the first half here, writing each page in
    `write_turn()`."""

    def __init__(self, database: str, generation: int, topics: Sequence[str], up_to: int, page: int) -> None:
        # Fork would share the loaded modules, but is only safe with no other thread around (the progress
        # display has one).
        context: Any = mp.get_context("fork" if threading.active_count() == 1 else "spawn")
        self._results = context.Queue()  # a count per page: unbounded, so the worker never waits for this process
        self._hosts = context.Event()
        self._turn = context.Lock()
        self._process = context.Process(
            target=_worker,
            args=(database, generation, topics, up_to, page, self._results, self._hosts, self._turn),
            name="batchops-replay",
            daemon=True,
        )
        self._process.start()
        self.finished = False
        self._closed = False

    def hosts_written(self) -> None:
        """Tell the worker that the compute environments and instances its job rows join are committed."""
        self._hosts.set()

    @contextmanager
    def write_turn(self) -> Iterator[None]:
        """Hold the write turn that the worker takes for each of its pages. A worker that died may have died holding
        it: then nobody else writes, and this process goes on without it."""
        while not self._turn.acquire(timeout=TURN_POLL_SECONDS):
            if not self._process.is_alive():
                yield
                return
        try:
            yield
        finally:
            self._turn.release()

    def ready(self) -> Iterator[int]:
        """The event counts of the pages the worker has written so far, without waiting."""
        while not self.finished:
            try:
                item = self._results.get_nowait()
            except queue.Empty:
                return
            if item is None:
                self.finished = True
                return
            yield item

    def rest(self) -> Iterator[int]:
        """The event counts of every page still to come, waiting for each; stops early (with `finished` false) if
        the worker died."""
        while not self.finished:
            try:
                item = self._results.get(timeout=1.0)
            except queue.Empty:
                if not self._process.is_alive():
                    return
                continue
            if item is None:
                self.finished = True
                return
            yield item

    def close(self) -> None:
        """Wait for a finished worker, or stop one that is not (again: nothing)."""
        if self._closed:
            return
        self._closed = True
        if self.finished:
            self._process.join(timeout=10)
        if self._process.is_alive():
            self._process.terminate()
            self._process.join(timeout=10)
        self._results.cancel_join_thread()
        self._results.close()


def rebuild_jobs_on_two_cores(
    worker: JobPhaseWorker,
    fold_here: Callable[[str, str | None], Iterator[int]],
    progress: Callable[[int], None] | None,
) -> int:
    """Run the job phase split in two with a started worker (closed here); returns the events folded.

    `fold_here(after, before)` folds and writes the jobs whose ids sort after `after` and before `before` (no
    bound when None), each page in the worker's `write_turn()`, yielding each page's event count."""
    here = 0
    there = 0
    try:
        for events in fold_here("", SPLIT):
            here += events
            if progress is not None:
                progress(events)
            for worker_events in worker.ready():
                there += worker_events
                if progress is not None:
                    progress(worker_events)
        for worker_events in worker.rest():
            there += worker_events
            if progress is not None:
                progress(worker_events)
        finished = worker.finished
    finally:
        worker.close()
    if not finished:  # the worker died: its half again, here (upserts, so the pages it did write do no harm)
        there = 0
        for events in fold_here(SPLIT, None):
            there += events
            if progress is not None:
                progress(events)
    return here + there
