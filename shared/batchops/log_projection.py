"""Views fed from the event store's notification log: the embedded store's projection feed.

Saves are projected from the folds held in memory when nothing else wrote in between, else from the log; a replay
rebuilds into a fresh generation (in bulk where the store offers a `BulkRebuild`) and goes on from the log.
"""

from __future__ import annotations

import gc
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol
from uuid import UUID

from eventsourcing.domain import Aggregate
from eventsourcing.persistence import ApplicationRecorder, Mapper

from batchops.instances import Instance
from batchops.jobs import Job
from batchops.ports import Progress, ProjectionFeed
from batchops.projector import FoldsByKind, Projector
from batchops.tuning import DEFAULT_TUNING, Tuning
from batchops.views import ViewStore


@dataclass
class _Unprojected:
    """What was saved and the views do not show yet: the notification ids of the events and the folds of their
    aggregates by kind (the live folds, which include those events). No events: the projector needs only the folds,
    and the memory held stays that of the aggregates touched."""

    ids: list[int] = field(default_factory=list)
    by_kind: FoldsByKind = field(default_factory=lambda: FoldsByKind({}, {}, {}))

    def aggregates(self) -> int:
        """How many aggregates' folds are held."""
        return len(self.by_kind.jobs) + len(self.by_kind.instances) + len(self.by_kind.environments)

    def add(self, ids: list[int], aggregates: Sequence[Aggregate]) -> None:
        """Add one save's notification ids and the aggregates saved."""
        self.ids.extend(ids)
        for aggregate in aggregates:
            fold = aggregate.fold  # type: ignore[attr-defined]
            kind = (
                self.by_kind.jobs
                if isinstance(aggregate, Job)
                else self.by_kind.instances
                if isinstance(aggregate, Instance)
                else self.by_kind.environments
            )
            kind[aggregate.id] = fold


class BulkRebuild(Protocol):
    """A store's faster way to fill a fresh generation than reading the log in order (see the SQLite adapter)."""

    def __call__(self, generation: int, page: int, progress: Progress) -> int:
        """Fill a fresh `generation` from the store and track the last notification included (a generation that has a
        position already is left to the log); the events applied."""


class LogFedProjection(ProjectionFeed):
    """Views kept up to date from the notification log of an application recorder."""

    def __init__(
        self,
        recorder: ApplicationRecorder,
        mapper: Mapper[UUID],
        views: ViewStore,
        projector: Projector,
        *,
        bulk_rebuild: BulkRebuild | None = None,
        tuning: Tuning = DEFAULT_TUNING,
    ) -> None:
        self.recorder = recorder
        self.mapper = mapper
        self.views = views
        self.projector = projector
        self.bulk_rebuild = bulk_rebuild
        self.tuning = tuning
        self._unprojected = _Unprojected()

    def saved(self, ids: list[int], aggregates: Sequence[Aggregate], events: Sequence[Any]) -> None:
        """Hold the save's folds for `project_saved`; past `Tuning.folds_held_max` aggregates, project them now."""
        self._unprojected.add(ids, aggregates)
        if self._unprojected.aggregates() >= self.tuning.folds_held_max:
            self.project_saved()

    def forget(self) -> None:
        """Drop the folds held: they may include what a failed save did not store."""
        self._unprojected = _Unprojected()

    def project_saved(self) -> None:
        """From the folds in memory when the views were caught up to just before those saves (nothing else wrote in
        between), else from the log."""
        saved, self._unprojected = self._unprojected, _Unprojected()
        if not saved.ids:
            return
        position = self.views.position()
        if saved.ids == list(range(position + 1, position + 1 + len(saved.ids))):
            with self.views.session() as session:
                self.projector.apply_folds(session, saved.by_kind)
                session.track(saved.ids[-1])
        else:
            self.catch_up()

    def catch_up(self) -> int:
        """Apply to the current views whatever the log holds beyond their tracking position."""
        return self.project_into(self.views.current_generation(), page=self.tuning.catch_up_page)

    def project_into(self, generation: int, page: int, progress: Progress = None) -> int:
        """Stream the notification log from a generation's position into it; returns events applied."""
        applied = 0
        position = self.views.position(generation)
        while True:
            notifications = self.recorder.select_notifications(start=position, limit=page, inclusive_of_start=False)
            if not notifications:
                return applied
            events = map(self.mapper.to_domain_event, notifications)
            with self.views.session(generation) as session:
                applied += self.projector.apply(session, events)
                position = notifications[-1].id
                session.track(position)
            if progress is not None:
                progress(len(notifications))

    def replay(self, progress: Progress = None, *, page: int | None = None) -> int:
        """A fresh generation: bulk-filled where the store can, then the log from there; readers switch at the end."""
        page = page or self.tuning.replay_page
        # Like ingestion, replay allocates millions of short-lived acyclic objects: pause the cyclic collector.
        was_enabled = gc.isenabled()
        gc.disable()
        try:
            generation = self.views.start_generation()
            applied = 0
            if self.bulk_rebuild is not None:
                applied = self.bulk_rebuild(generation, page, progress)
            applied += self.project_into(generation, page=page, progress=progress)
            self.views.switch_generation(generation)
        finally:
            if was_enabled:
                gc.enable()
        return applied
