"""The service layer's two ports beyond the library's recorder: the event store's extras and the projection feed.

Each store's adapter implements both (`batchops.adapters.sqlite`, `batchops.adapters.dynamodb`); `bootstrap` picks
them when it wires an application, so the service layer never asks which store it runs on.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate
from eventsourcing.persistence import IntegrityError, StoredEvent

Progress = Callable[[int], Any] | None
"""Called with the number of events each step of a long operation applied."""


class PartlyAppended(IntegrityError):
    """An append that stored the events of some aggregates and not those of `failed` (another writer saved those
    first): a store that writes each aggregate on its own says which, so only their facts are recorded again."""

    def __init__(self, failed: frozenset[UUID], message: str) -> None:
        super().__init__(message)
        self.failed = failed


class EventStore(ABC):
    """What the application asks of its event store besides the library's recorder."""

    @abstractmethod
    def append(self, events: Sequence[Any]) -> list[int]:
        """Store new events of several aggregates at once; their notification ids (none where a store has no
        notification log). A conflicting version raises the library's IntegrityError: one that stores nothing, or
        `PartlyAppended` where each aggregate's events are stored on their own (all of one aggregate or none)."""

    @abstractmethod
    def histories(self, ids: Sequence[UUID]) -> dict[UUID, list[StoredEvent]]:
        """Every stored event of each aggregate among `ids` that has any, in version order, read in as few round
        trips as the store allows (an aggregate with no events is absent from the result)."""

    def newer_events(self, versions: Mapping[UUID, int]) -> dict[UUID, list[StoredEvent]]:
        """The events stored after `versions[id]` of each aggregate (those with none are absent), for a store that
        several writers share at once: an aggregate one writer cached may have been moved on by another since. A
        store written by one process at a time trusts its cache and reads nothing (a conflict is still caught by
        the save and retried on fresh state)."""
        return {}

    @abstractmethod
    def stored_events(self) -> int:
        """How many events the store holds (an estimate where the store only has one)."""


class ProjectionFeed(ABC):
    """How saved events reach the views: from the store's notification log, or from a change stream."""

    @abstractmethod
    def saved(self, ids: list[int], aggregates: Sequence[Aggregate], events: Sequence[Any]) -> None:
        """One save's notification ids, the aggregates saved (their folds include the save) and its events."""

    @abstractmethod
    def project_saved(self) -> None:
        """Bring the views up to date with what was saved since the last call."""

    @abstractmethod
    def forget(self) -> None:
        """Drop what is held for `project_saved` after a failed save (the views catch up from the store instead)."""

    @abstractmethod
    def catch_up(self) -> int:
        """Apply whatever the store holds beyond the views' position; the events applied."""

    @abstractmethod
    def replay(self, progress: Progress = None) -> int:
        """Rebuild every projection from the event store into a fresh generation, then switch readers to it."""
