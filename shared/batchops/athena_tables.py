"""The Athena tables of the projections (Apache Iceberg, docs/athena-data-path.md) and the row operations that
carry one projection item's change into them, without any cloud.

- Four tables, `jobs`, `instances`, `job_events` and `job_attempts`: the projection contract's columns typed as
  Athena sees them, then `dt`; partitioned by `account_id` and `dt` (the UTC date a finished job, a stopped
  attempt or a terminated instance ended, `9999-12-31` while it is open, the date of a state change).
- Each table's unique key, by which the table applies an update or a delete. It ends in `dt`: Iceberg applies an
  equality delete only within its own partition, so a row that changes partition (a job that finishes) is
  deleted from the old one by a delete of its own.
- `operations`: what one item's change (its rows before, its rows after) asks of the tables.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from batchops.job_cost import COST_FIELDS
from batchops.projection import (
    ATTEMPT_FIELDS,
    INSTANCE_FIELDS,
    JOB_EXTRA_FIELDS,
    JOB_FIELDS,
    TIMELINE_FIELDS,
)

JOBS, INSTANCES, JOB_EVENTS, JOB_ATTEMPTS = "jobs", "instances", "job_events", "job_attempts"
TABLES = (JOBS, INSTANCES, JOB_EVENTS, JOB_ATTEMPTS)
OPEN_DT = "9999-12-31"
"""The partition date of a job, attempt or instance that has not ended."""
FINISHED = frozenset({"SUCCEEDED", "FAILED"})
PARTITION_COLUMNS = ("account_id", "dt")

_BIGINT = frozenset(
    {"attempts", "exit_code", "gpus", "array_index", "array_size", "jobs_run", "attempt", "scheduling_priority"}
)
_DOUBLE = frozenset(
    {
        "queue_seconds",
        "run_seconds",
        "vcpus",
        "memory_mib",
        "pending_seconds",
        "capacity_usage",
        "cost_usd",
        "wasted_cost_usd",
    }
)
_BOOLEAN = frozenset({"spot_interrupted"})
_STRING_ARRAY = frozenset({"depends_on"})
STRING_ARRAY = "array<string>"
"""The Athena type of a list of job ids (the Iceberg schema's list of string)."""


def _athena_type(name: str) -> str:
    if name in _BIGINT:
        return "bigint"
    if name in _DOUBLE:
        return "double"
    if name in _BOOLEAN:
        return "boolean"
    if name in _STRING_ARRAY:
        return STRING_ARRAY
    return "date" if name == "dt" else "string"


def _typed(names: Iterable[str]) -> tuple[tuple[str, str], ...]:
    return tuple((name, _athena_type(name)) for name in (*names, "dt"))


NOT_EXPORTED_JOB_FIELDS: frozenset[str] = frozenset()
"""Job row fields the `jobs` table does not have yet (none now): a field waits here until the central template's
Iceberg schema gains its column, with an id of its own (Iceberg finds a column in the data files by its id)."""
COLUMNS: dict[str, tuple[tuple[str, str], ...]] = {
    JOBS: _typed(f for f in (*JOB_FIELDS, *JOB_EXTRA_FIELDS, *COST_FIELDS) if f not in NOT_EXPORTED_JOB_FIELDS),
    INSTANCES: _typed(INSTANCE_FIELDS),
    JOB_EVENTS: _typed(TIMELINE_FIELDS),
    JOB_ATTEMPTS: _typed((*ATTEMPT_FIELDS, *COST_FIELDS)),
}
"""Each table's columns in order with their Athena types (the central template's Iceberg schemas are the same)."""
UNIQUE_KEYS: dict[str, tuple[str, ...]] = {
    JOBS: ("account_id", "region", "job_id", "dt"),
    INSTANCES: ("account_id", "region", "instance_id", "dt"),
    JOB_EVENTS: ("account_id", "region", "job_id", "status", "attempt", "event_time", "dt"),
    JOB_ATTEMPTS: ("account_id", "region", "job_id", "attempt", "dt"),
}
"""The columns Firehose updates and deletes a row by (the stream's DestinationTableConfigurationList)."""


def athena_ddl_columns(table: str) -> str:
    """`name type, ...` of a table without dt (tests/integration/test_dashboards.py's fixture lists the same)."""
    return ", ".join(f"{name} {kind}" for name, kind in COLUMNS[table] if name != "dt")


def _date_of(instant: str | None) -> str:
    if not instant or len(instant) < 10 or instant[4] != "-" or instant[7] != "-":
        return OPEN_DT
    return instant[:10]


def job_dt(row: Mapping[str, Any]) -> str:
    """The date a finished job ended (stopped_at, else its last event); open jobs (retries too) are 9999-12-31."""
    if row.get("status") not in FINISHED:
        return OPEN_DT
    return _date_of(row.get("stopped_at") or row.get("last_event_time"))


def _ended(field: str) -> Callable[[Mapping[str, Any]], str]:
    """The dt of a row that ends when `field` is set (an instance terminated, an attempt stopped, a change made)."""
    return lambda row: _date_of(row.get(field))


_DT: dict[str, Callable[[Mapping[str, Any]], str]] = {
    JOBS: job_dt,
    INSTANCES: _ended("terminated_at"),
    JOB_EVENTS: _ended("event_time"),
    JOB_ATTEMPTS: _ended("stopped_at"),
}


def _cell(kind: str, value: Any) -> Any:
    if value is None:
        return None
    if kind == "bigint" and isinstance(value, float) and value.is_integer():
        return int(value)
    if kind == "double" and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if kind == "boolean":
        return bool(value)
    if kind == STRING_ARRAY:
        return [str(item) for item in value]
    return value


def table_row(table: str, values: Mapping[str, Any]) -> dict[str, Any]:
    """Exactly the table's columns of a projection row, with values of their Athena types, and its dt."""
    row = {name: _cell(kind, values.get(name)) for name, kind in COLUMNS[table] if name != "dt"}
    row["dt"] = _DT[table](row)
    return row


def job_rows(
    row: Mapping[str, Any], timeline: Iterable[Mapping[str, Any]], attempts: Iterable[Mapping[str, Any]] = ()
) -> dict[str, list[dict[str, Any]]]:
    """A job item's rows: its row in `jobs`, its state changes in `job_events`, its attempts in `job_attempts`."""
    return {
        JOBS: [table_row(JOBS, row)],
        JOB_EVENTS: [table_row(JOB_EVENTS, change) for change in timeline],
        JOB_ATTEMPTS: [table_row(JOB_ATTEMPTS, attempt) for attempt in attempts],
    }


def instance_rows(row: Mapping[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """An instance item's row in `instances`."""
    return {INSTANCES: [table_row(INSTANCES, row)]}


Rows = Mapping[str, Sequence[Mapping[str, Any]]]
"""An item's rows per table."""


@dataclass(frozen=True)
class Operation:
    """One row operation on one table: `update` writes the whole row (inserting it when its key is new), `delete`
    removes the row of its key columns."""

    table: str
    operation: Literal["update", "delete"]
    row: Mapping[str, Any]


def _identity(table: str, row: Mapping[str, Any]) -> tuple[Any, ...]:
    return tuple(row.get(c) for c in UNIQUE_KEYS[table] if c != "dt")


def operations(before: Rows | None, after: Rows | None) -> list[Operation]:
    """What an item's change asks of the tables: every row that is new or changed is updated (an update is safe to
    apply twice, and Lambda may deliver a batch twice), and every row that is gone, or left its partition, is
    deleted from where it was. Unchanged rows cost nothing."""
    found: list[Operation] = []
    for table in TABLES:
        old = {_identity(table, r): r for r in (before or {}).get(table, ())}
        new = {_identity(table, r): r for r in (after or {}).get(table, ())}
        for identity, row in new.items():
            if old.get(identity) != row:
                found.append(Operation(table, "update", dict(row)))
        for identity, row in old.items():
            moved = identity in new and new[identity]["dt"] != row["dt"]
            if identity not in new or moved:
                found.append(Operation(table, "delete", {c: row.get(c) for c in UNIQUE_KEYS[table]}))
    return found
