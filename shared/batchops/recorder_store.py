"""`EventStore` on any of the library's aggregate recorders: what a store without faster paths does."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

from eventsourcing.persistence import AggregateRecorder, ApplicationRecorder, Mapper, StoredEvent

from batchops.ports import EventStore


class RecorderEventStore(EventStore):
    """Appends through `insert_events`, reads an aggregate's history with `select_events`, one after another."""

    def __init__(self, recorder: AggregateRecorder, mapper: Mapper[UUID]) -> None:
        self.recorder = recorder
        self.mapper = mapper

    def append(self, events: Sequence[Any]) -> list[int]:
        """The library's insert of the mapped events."""
        ids = self.recorder.insert_events([self.mapper.to_stored_event(event) for event in events])
        return list(ids or [])

    def histories(self, ids: Sequence[UUID]) -> dict[UUID, list[StoredEvent]]:
        """One `select_events` per aggregate."""
        found = {key: list(self.recorder.select_events(key)) for key in ids}
        return {key: events for key, events in found.items() if events}

    def stored_events(self) -> int:
        """The last notification id (the log has no gaps that matter to a count shown to a user)."""
        if isinstance(self.recorder, ApplicationRecorder):
            return self.recorder.max_notification_id() or 0
        return 0
