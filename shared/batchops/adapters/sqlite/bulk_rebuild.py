"""The embedded store's bulk rebuild of a fresh view generation: each aggregate folded once, jobs on two cores.

The notification log interleaves every aggregate's events; read aggregate by aggregate instead (compute environments
and instances first, so every job row joins what is finally known of them), each is folded once and its row written
once. From a size on, a worker process folds half of the jobs (`parallel_replay`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any
from uuid import UUID

import orjson
from eventsourcing.persistence import Mapper

from batchops.adapters.sqlite.event_store import PollingSQLiteApplicationRecorder
from batchops.adapters.sqlite.host_topics import HOST_TOPICS
from batchops.adapters.sqlite.parallel_replay import JobPhaseWorker, rebuild_jobs_on_two_cores
from batchops.adapters.sqlite.views import SQLiteViewStore
from batchops.ports import Progress
from batchops.projector import Projector
from batchops.tuning import DEFAULT_TUNING, Tuning


class SQLiteBulkRebuild:
    """`BulkRebuild` on the SQLite event store and view store."""

    def __init__(
        self,
        recorder: PollingSQLiteApplicationRecorder,
        mapper: Mapper[UUID],
        views: SQLiteViewStore,
        projector: Projector,
        database: str,
        tuning: Tuning = DEFAULT_TUNING,
    ) -> None:
        self.recorder = recorder
        self.mapper = mapper
        self.views = views
        self.projector = projector
        self.database = database
        self.tuning = tuning

    def __call__(self, generation: int, page: int, progress: Progress) -> int:
        """Fold each aggregate once into `generation`, index it, then track the last notification included (the log
        goes on from there). An interrupted rebuild is redone whole."""
        applied = 0
        up_to = self.recorder.max_notification_id() or 0
        fresh = self.views.position(generation) == 0  # else a rebuild tracked its end: the log goes on from there
        if fresh and up_to:
            applied = self._fold_all(generation, page, progress, up_to)
        self.views.index_generation(generation)
        if fresh and up_to:
            with self.views.session(generation) as session:
                session.track(up_to)
        return applied

    def _fold_all(self, generation: int, page: int, progress: Progress, up_to: int) -> int:
        decode = self._state_decoder()
        worker = None
        if decode is orjson.loads and up_to >= self.tuning.parallel_replay_min_events:
            # Started now, it folds its first jobs while compute environments and instances are written here.
            worker = JobPhaseWorker(self.database, generation, HOST_TOPICS, up_to, page)
        try:
            fold = self._folder(generation, page, up_to, decode, worker)
            applied = _counted(fold(False, "", None), progress)  # compute environments and instances
            if worker is None:
                return applied + _counted(fold(True, "", None), progress)
            worker.hosts_written()
            return applied + rebuild_jobs_on_two_cores(
                worker, lambda after, before: fold(True, after, before), progress
            )
        finally:
            if worker is not None:
                worker.close()

    def _folder(
        self, generation: int, page: int, up_to: int, decode: Callable[[bytes], Any], worker: JobPhaseWorker | None
    ) -> Callable[[bool, str, str | None], Iterator[int]]:
        def fold(exclude: bool, after: str, before: str | None) -> Iterator[int]:
            pages = self.recorder.select_aggregate_states(
                HOST_TOPICS, up_to=up_to, exclude=exclude, limit=page, after=after, before=before
            )
            # Jobs beside the worker are folded outside any transaction and written in this page's turn; one reading
            # session keeps its instance lookups from page to page.
            reading = self.views.reading_session(generation) if worker is not None and exclude else None
            for stored in pages:
                if reading is None or worker is None:
                    with self.views.session(generation) as session:
                        events = self.projector.rebuild(session, stored, decode)
                else:
                    folds, events = self.projector.fold_stored(stored, decode)
                    self.projector.apply_folds(reading, folds)
                    rows = reading.take_job_rows()
                    with worker.write_turn():
                        self.views.write_job_rows(generation, rows)
                yield events  # committed: the caller may write other pages in between

        return fold

    def _state_decoder(self) -> Callable[[bytes], Any]:
        """Bytes of a stored event's state to its dict: plain orjson when the store neither compresses nor encrypts
        (the folds read only JSON-native values), else the mapper's own steps."""
        mapper = self.mapper
        if mapper.cipher is None and mapper.compressor is None:
            return orjson.loads
        transcoder = mapper.transcoder

        def decode(state: bytes) -> Any:
            if mapper.cipher is not None:
                state = mapper.cipher.decrypt(state)
            if mapper.compressor is not None:
                state = mapper.compressor.decompress(state)
            return transcoder.decode(state)

        return decode


def _counted(pages: Iterator[int], progress: Progress) -> int:
    total = 0
    for events in pages:
        total += events
        if progress is not None:
            progress(events)
    return total
