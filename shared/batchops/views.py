"""The view store port: where projections live and how readers query them.

Two implementations share one contract test suite: SQLite (local, `views_sqlite`) and DynamoDB (AWS).
Views come in generations: live ingestion writes the current one; replay builds a fresh one and
switches readers to it only when it is complete.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol

from batchops.projector import ProjectionSession


@dataclass(frozen=True)
class JobFilter:
    """What `batchops jobs` may ask for; empty means everything."""

    accounts: tuple[str, ...] = ()
    regions: tuple[str, ...] = ()
    statuses: tuple[str, ...] = ()
    queues: tuple[str, ...] = ()
    compute_environments: tuple[str, ...] = ()
    limit: int | None = None


ALL_JOBS = JobFilter()


@dataclass(frozen=True)
class PipelineCounters:
    """What ingestion did, per account and region: events accepted, duplicates dropped, rejected, ignored."""

    account_id: str
    region: str
    ingested: int = 0
    duplicates: int = 0
    rejected: int = 0
    ignored: int = 0


@dataclass
class RejectedEvent:
    """An event batchops could not use, kept (redacted) with the reason."""

    reason: str
    rejected: bool
    detail_type: str | None
    account_id: str | None
    region: str | None
    body: str
    received_at: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class ViewStore(Protocol):
    """Projections (jobs, instances, timelines, attempts), their tracking position, and what ingestion kept aside."""

    def close(self) -> None:
        """Release connections."""

    def session(self, generation: int | None = None) -> AbstractContextManager[TrackedSession]:
        """A unit of work on a generation (default: the current one), committed atomically on exit."""

    def position(self, generation: int | None = None) -> int:
        """The last notification id applied to a generation (0 when none)."""

    def current_generation(self) -> int:
        """The generation readers see."""

    def start_generation(self) -> int:
        """Create an empty generation for a rebuild (or return the unfinished one to resume)."""

    def switch_generation(self, generation: int) -> None:
        """Make a complete generation the one readers see, and drop the old one."""

    def jobs(self, query: JobFilter = ALL_JOBS) -> Iterator[dict[str, Any]]:
        """Job rows in (account, region, created) order."""

    def job(self, job_id: str, account: str | None = None) -> list[dict[str, Any]]:
        """Every job with that id (one per account/region unless `account` narrows it), with attempts."""

    def instances(self) -> Iterator[dict[str, Any]]:
        """Compute-instance rows."""

    def timeline(self) -> Iterator[dict[str, Any]]:
        """Job state-change rows (the drilldown's timeline)."""

    def attempts(self) -> Iterator[dict[str, Any]]:
        """Every job's attempts, one row each with the instance it ran on (ATTEMPT_FIELDS)."""

    def add_counters(self, counters: list[PipelineCounters]) -> None:
        """Add ingestion counters."""

    def counters(self) -> list[PipelineCounters]:
        """Ingestion counters per account and region."""

    def keep_rejected(self, events: list[RejectedEvent]) -> int:
        """Keep unusable events (already redacted); returns how many were not already kept."""

    def rejected(self, limit: int = 100) -> list[RejectedEvent]:
        """The most recent unusable events."""


class TrackedSession(ProjectionSession, Protocol):
    """A projection session that also records the position it reached."""

    def track(self, notification_id: int) -> None:
        """Record the notification id the views now include."""
