"""Views fed from the events table's DynamoDB stream: the AWS store's projection feed, and its resumable replay.

What differs from the embedded store's log-fed views:
- there is no notification log: the projector Lambda reads the events table's stream (`project_stream_batch`); the
  CLI, which has no stream, projects inline from the events it just saved (`inline`);
- replay scans the events table in parallel segments, projects each aggregate's whole history once, keeps its
  progress per segment so it resumes after an interruption, and switches readers only when complete.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from uuid import UUID

import orjson
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import Mapper, StoredEvent

from batchops.adapters.dynamodb.event_store import DynamoDBAggregateRecorder
from batchops.adapters.dynamodb.views import ConcurrentViewUpdate, DynamoDBViewStore, to_item
from batchops.ports import Progress, ProjectionFeed
from batchops.projector import Projector
from batchops.tuning import DEFAULT_TUNING, Tuning

STREAM_MARKER_SECONDS = 2 * 24 * 3600
"""How long a stream batch's in-progress marker is kept (TTL): beyond the 24 hours a stream keeps its records."""


class StreamFedProjection(ProjectionFeed):
    """Views kept up to date from the events table's stream (or inline, for a writer that has no stream)."""

    def __init__(
        self,
        recorder: DynamoDBAggregateRecorder,
        mapper: Mapper[UUID],
        views: DynamoDBViewStore,
        projector: Projector,
        *,
        inline: bool,
        tuning: Tuning = DEFAULT_TUNING,
    ) -> None:
        self.recorder = recorder
        self.mapper = mapper
        self.views = views
        self.projector = projector
        self.inline = inline
        self.tuning = tuning
        self._lock = threading.Lock()

    def saved(self, ids: list[int], aggregates: Sequence[Aggregate], events: Sequence[Any]) -> None:
        """Project the save now when inline; else the stream brings it to the projector."""
        if self.inline:
            self._project(events, {a.id: a.fold for a in aggregates})  # type: ignore[attr-defined]

    def project_saved(self) -> None:
        """Nothing held: every save was projected inline or reaches the stream."""

    def forget(self) -> None:
        """Nothing held."""

    def catch_up(self) -> int:
        """Stream-fed views need no catching up from a notification log."""
        return 0

    def _project(
        self,
        events: Sequence[Any],
        folds: dict[Any, dict[str, Any]] | None = None,
        generation: int | None = None,
        *,
        redelivered: bool = False,
    ) -> int:
        changed: set[Any] = set()  # carried over retries: what a failed attempt changed still has to reach its jobs
        for attempt in range(self.tuning.stream_attempts):
            try:
                with self.views.session(generation) as session:
                    # Performance only: the stored items this batch's events need, read ahead in batches.
                    session.prefetch(events, folds)
                    return self.projector.apply(session, events, folds, changed=changed, assume_changed=redelivered)
            except ConcurrentViewUpdate:
                if attempt == self.tuning.stream_attempts - 1:
                    raise
        raise AssertionError("unreachable")

    def project_stored(self, stored_events: Sequence[StoredEvent], generation: int | None = None) -> int:
        """Project stored events (from the events table's stream or a scan) into the views."""
        return self._project([self.mapper.to_domain_event(s) for s in stored_events], generation=generation)

    def project_stream_batch(self, batch_id: str, stored_events: Sequence[StoredEvent]) -> int:
        """Project one batch of the events table's stream, knowing whether it is delivered again.

        A projector that crashed or timed out mid-batch may have written an instance before the jobs that ran on
        it; the batch comes again and, the instance now looking unchanged, its news would never reach those jobs.
        A marker item (batch id = first sequence number) lives while a batch is in progress: when it is already
        there, this is a redelivery and every instance and compute environment of the batch is passed on.
        """
        key = to_item({"pk": "projecting", "sk": batch_id})
        # A batch that ends in the dead-letter queue never deletes its marker: TTL does, once the stream could no
        # longer deliver the batch again (stream records live 24 hours).
        marker = {**key, "expires_at": {"N": str(int(time.time()) + STREAM_MARKER_SECONDS)}}
        client = self.views.client
        try:
            client.put_item(
                TableName=self.views.meta_table, Item=marker, ConditionExpression="attribute_not_exists(pk)"
            )
            redelivered = False
        except client.exceptions.ConditionalCheckFailedException:
            redelivered = True
        events = [self.mapper.to_domain_event(s) for s in stored_events]
        # A replay scans the events table once: what is saved behind its scan reaches the generation it builds only
        # from here. Both are read after the batch was saved, the building one first: either the replay had not
        # started (its scan sees these events), or it builds `building`, or it has switched and `current` is new.
        building = self.views.meta_item("generation", "building")
        current = self.views.current_generation()
        count = self._project(events, generation=current, redelivered=redelivered)
        if building and int(building["generation"]) != current:
            # The replay may not have reached these aggregates yet: give it their whole histories (idempotent).
            ids = dict.fromkeys(s.originator_id for s in stored_events)
            histories = [e for i in ids for e in self.recorder.select_events(i)]
            self._project(
                [self.mapper.to_domain_event(s) for s in histories],
                generation=int(building["generation"]),
                redelivered=redelivered,
            )
        client.delete_item(TableName=self.views.meta_table, Key=key)
        return count

    def replay(self, progress: Progress = None, *, page: int = 0, segments: int | None = None) -> int:
        """Rebuild the views into a fresh generation from a parallel scan; resumable; switch when complete.

        `page` bounds the items of a scan page (0: DynamoDB's 1 MB pages); progress is kept after each page.
        """
        segments = segments or self.tuning.replay_segments
        generation = self.views.start_generation()
        applied = [0]

        def run(segment: int) -> None:
            done = self._segment_state(generation, segment, segments)
            if done.get("finished"):
                return
            for events_page in self.recorder.scan_events(
                segment, segments, start_key=done.get("next_key"), page_size=page or None, consistent_read=True
            ):
                for first in (e for e in events_page.events if e.originator_version == 1):
                    count = self.project_stored(self.recorder.select_events(first.originator_id), generation)
                    with self._lock:
                        applied[0] += count
                    if progress is not None:
                        progress(count)
                self._save_segment_state(generation, segment, segments, events_page.next_key)

        with ThreadPoolExecutor(max_workers=segments) as pool:
            list(pool.map(run, range(segments)))
        self.views.switch_generation(generation)
        for item in self.views._query_meta(f"replay#{generation}"):
            self.views.client.delete_item(TableName=self.views.meta_table, Key={"pk": item["pk"], "sk": item["sk"]})
        return applied[0]

    def _segment_state(self, generation: int, segment: int, segments: int) -> dict[str, Any]:
        # Keyed by segment and number of segments: a scan key (or "finished") of segment 0 of 4 says nothing about
        # segment 0 of 1, so a replay resumed with another number of segments scans again (projections are idempotent).
        found = self.views.meta_item(f"replay#{generation}", f"{segment}/{segments}")
        if not found:
            return {}
        return {
            "finished": bool(found.get("finished")),
            "next_key": orjson.loads(found["next_key"]) if found.get("next_key") else None,
        }

    def _save_segment_state(
        self, generation: int, segment: int, segments: int, next_key: dict[str, Any] | None
    ) -> None:
        self.views.client.put_item(
            TableName=self.views.meta_table,
            Item=to_item(
                {
                    "pk": f"replay#{generation}",
                    "sk": f"{segment}/{segments}",
                    "finished": next_key is None,
                    "next_key": orjson.dumps(next_key).decode() if next_key else None,
                }
            ),
        )


def stream_fed(app: Any) -> StreamFedProjection:
    """The stream-fed projection of an application wired to DynamoDB (`BATCHOPS_STORE=dynamodb://PREFIX`)."""
    feed = app.projection
    if not isinstance(feed, StreamFedProjection):
        raise TypeError(
            "this needs the DynamoDB store: set BATCHOPS_STORE=dynamodb://PREFIX (tables PREFIX-events, ...)"
        )
    return feed
