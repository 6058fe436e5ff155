"""Every tuning value of the pipeline in one object, passed in where the pipeline is wired (`bootstrap`).

The defaults were measured (docs/ingest-performance.md, "Tuning values"); tests pass other values to reach a
boundary (a page of two events, a worker process on a small store) instead of patching module constants.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Tuning:
    """Sizes and counts that change speed and memory, never results."""

    record_attempts: int = 5
    """Times a batch is recorded again on fresh state when another writer's saves conflict with it."""
    aggregate_cache_size: int = 5000
    """Aggregates kept in memory between batches: a store read saved per aggregate per batch while a job is active."""
    folds_held_max: int = 12_000
    """Aggregates whose folds the embedded store's views hold between two updates before they are updated anyway: in
    time order 80,000 events touch about 10,000 aggregates, out of order nearly all of them."""
    catch_up_page: int = 2000
    """Notifications read at a time when the views catch up with the log."""
    replay_page: int = 20000
    """Events read at a time by a replay (notifications, or whole aggregates in a bulk rebuild)."""
    parallel_replay_min_events: int = 50_000
    """Stored events from which a replay folds half of the jobs in a second process."""
    job_rows_queued: int = 1000
    """Job rows a writing session queues before it writes them (a job put twice before that is written once)."""
    job_writers: int = 10
    """DynamoDB job items one flush writes at once (botocore's default connection pool holds 10)."""
    history_readers: int = 10
    """DynamoDB histories an aggregator batch reads at once."""
    event_writers: int = 10
    """DynamoDB aggregates whose new events an aggregator batch writes at once."""
    stream_attempts: int = 5
    """Times a stream-fed projection that lost a race with another writer is tried again."""
    replay_segments: int = 4
    """Parallel scan segments of a replay on DynamoDB."""
    time_order_reread_share: float = 0.05
    """Share of a batch's facts whose aggregates had to be read back from the store (out of the cache) from which an
    ingest puts the rest of its input back in event-time order on disk before recording it (above 1: never)."""
    time_order_late_seconds: int = 900
    """How far behind the latest event time before it a fact of an ingest's first batch counts as out of order: the
    simulator's chaos delivers late by seconds to minutes (13% of a first batch over a minute, none over 15), a
    shuffled file nearly every fact by hours."""
    parallel_translation_min_bytes: int = 8_000_000
    """Files at least this big are decoded and translated in a second process (0 turns that off; a pipe always is)."""
    translation_chunk_lines: int = 1000
    """Lines a translating process translates and hands back at a time."""
    json_read_bytes: int = 1 << 20
    """Bytes read at a time from JSON that spans lines (pretty-printed, an array, values one after the other)."""
    json_near_end: int = 256 * 1024
    """A JSON error this close to the end of what has been read may be the value going on: more is read first (an
    EventBridge event is at most 256 KB)."""


DEFAULT_TUNING = Tuning()
