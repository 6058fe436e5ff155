"""The stored event topics of the aggregates job rows join (compute environments and instances).

A rebuild folds these first, so that every job row joins what is finally known of them. They are a few percent of a
store, so the events table keeps a partial index of them (`event_store`): the rebuild reads them without scanning the
rest.
"""

from __future__ import annotations

from eventsourcing.utils import get_topic

from batchops.compute_environments import ComputeEnvironment
from batchops.instances import Instance

HOST_TOPICS = tuple(
    get_topic(cls)
    for cls in (ComputeEnvironment.Tracked, ComputeEnvironment.Configured, Instance.Tracked, Instance.Observed)
)


def topics_sql(topics: tuple[str, ...]) -> str:
    """`(topic = 'a' OR topic = 'b')`, the topics as literals: SQLite uses a partial index only for a query whose WHERE
    repeats the index's own terms, and a bound parameter is not known when the query is planned. (An `IN` list costs
    every insert a temporary table to test against: measured, 15% slower inserts against 0-6% for this.)"""
    return "(" + " OR ".join("topic = '" + topic.replace("'", "''") + "'" for topic in topics) + ")"
