"""The layout of the projections' Parquet export for Athena (docs/athena-data-path.md), without any cloud.

- Four tables, `jobs`, `instances`, `job_events` and `job_attempts`, their columns typed as Athena sees them.
- Partitions `account_id=<account>/dt=<date>`: the UTC date a finished job, a stopped attempt or a terminated
  instance ended, `9999-12-31` while it is open, the date of a state change.
- What a batch of item changes does to each partition it touches, and how a partition's rows are rewritten.

Generations (replay): every item change carries the view generation that wrote it, and every exported file
carries the generation its rows belong to. A partition follows the newest generation that is current or
being built: the first change of a newer generation empties the partition and starts it again from that
generation's rows (a replay writes every row of its generation, so the partition ends complete); changes of
an older generation than the file's are ignored, so deleting the old generation's items never deletes the
rows of the new one, while partitions the new generation never reached are emptied by those deletions.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from batchops.parquet import Column, schema_of
from batchops.projection import ATTEMPT_FIELDS, INSTANCE_FIELDS, JOB_EXTRA_FIELDS, JOB_FIELDS, TIMELINE_FIELDS

JOBS, INSTANCES, JOB_EVENTS, JOB_ATTEMPTS = "jobs", "instances", "job_events", "job_attempts"
TABLES = (JOBS, INSTANCES, JOB_EVENTS, JOB_ATTEMPTS)
OPEN_DT = "9999-12-31"
"""The partition date of a job or instance that has not ended."""
FINISHED = frozenset({"SUCCEEDED", "FAILED"})
GENERATION_KEY = "batchops.generation"
"""The Parquet footer metadata key holding the generation of a file's rows."""
PART_FILE = "part-0.parquet"

_BIGINT = frozenset({"attempts", "exit_code", "gpus", "array_index", "array_size", "jobs_run", "attempt"})
_DOUBLE = frozenset({"queue_seconds", "run_seconds", "vcpus", "memory_mib"})
_BOOLEAN = frozenset({"spot_interrupted"})


def _athena_type(name: str) -> str:
    if name in _BIGINT:
        return "bigint"
    if name in _DOUBLE:
        return "double"
    if name in _BOOLEAN:
        return "boolean"
    return "string"


COLUMNS: dict[str, tuple[Column, ...]] = {
    JOBS: schema_of((n, _athena_type(n)) for n in (*JOB_FIELDS, *JOB_EXTRA_FIELDS)),
    INSTANCES: schema_of((n, _athena_type(n)) for n in INSTANCE_FIELDS),
    JOB_EVENTS: schema_of((n, _athena_type(n)) for n in TIMELINE_FIELDS),
    JOB_ATTEMPTS: schema_of((n, _athena_type(n)) for n in ATTEMPT_FIELDS),
}
"""Each table's columns in order, with their Athena types (the Glue tables declare the same)."""
PARTITION_KEYS = (("account_id", "string"), ("dt", "date"))
"""The partition columns; account_id is also a data column (Athena shows the partition's)."""
KEY_COLUMNS = {JOBS: ("account_id", "region", "job_id"), INSTANCES: ("account_id", "region", "instance_id")}
KEY_COLUMNS[JOB_EVENTS] = KEY_COLUMNS[JOBS]  # a job's state changes are replaced together
KEY_COLUMNS[JOB_ATTEMPTS] = KEY_COLUMNS[JOBS]  # and so are its attempts


def athena_ddl_columns(table: str) -> str:
    """`name type, ...` of a table, as Athena DDL (and tests/integration/test_dashboards.py's fixture)."""
    return ", ".join(f"{c.name} {c.type}" for c in COLUMNS[table])


def _date_of(instant: str | None) -> str:
    if not instant or len(instant) < 10 or instant[4] != "-" or instant[7] != "-":
        return OPEN_DT
    return instant[:10]


def job_dt(row: Mapping[str, Any]) -> str:
    """The date a finished job ended (stopped_at, else its last event); open jobs (retries too) are 9999-12-31."""
    if row.get("status") not in FINISHED:
        return OPEN_DT
    return _date_of(row.get("stopped_at") or row.get("last_event_time"))


def instance_dt(row: Mapping[str, Any]) -> str:
    """The date an instance was terminated, 9999-12-31 while it runs."""
    return _date_of(row.get("terminated_at"))


def event_dt(row: Mapping[str, Any]) -> str:
    """The date of a state change."""
    return _date_of(row.get("event_time"))


def attempt_dt(row: Mapping[str, Any]) -> str:
    """The date an attempt stopped, 9999-12-31 while it runs (or its stop is not known yet)."""
    return _date_of(row.get("stopped_at"))


@dataclass(frozen=True, order=True)
class Partition:
    """One Hive-style partition of one table: its own Parquet object and Glue partition."""

    table: str
    account_id: str
    dt: str

    def folder(self, prefix: str) -> str:
        """`<prefix>/<table>/account_id=<a>/dt=<d>/` (the Glue partition's location below the bucket)."""
        return f"{prefix.strip('/')}/{self.table}/account_id={self.account_id}/dt={self.dt}/"

    def key(self, prefix: str) -> str:
        """The S3 key of the partition's single Parquet object."""
        return self.folder(prefix) + PART_FILE

    @property
    def values(self) -> list[str]:
        """Glue partition values, in PARTITION_KEYS order."""
        return [self.account_id, self.dt]


def row_key(table: str, row: Mapping[str, Any]) -> tuple[str, ...]:
    """The key a row is upserted or removed by (a job's state changes share the job's key)."""
    return tuple(str(row.get(c)) for c in KEY_COLUMNS[table])


def _cell(column: Column, value: Any) -> Any:
    if value is None:
        return None
    if column.type == "bigint" and isinstance(value, float) and value.is_integer():
        return int(value)
    if column.type == "double" and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if column.type == "boolean":
        return bool(value)
    return value


def export_row(table: str, values: Mapping[str, Any]) -> dict[str, Any]:
    """Exactly the table's columns of a projection row, with values of their Athena types."""
    return {c.name: _cell(c, values.get(c.name)) for c in COLUMNS[table]}


@dataclass(frozen=True)
class ItemState:
    """What one stored item (a job or an instance, one generation) contributes to the export."""

    table: str
    key: tuple[str, ...]
    rows: Mapping[Partition, Sequence[dict[str, Any]]]

    @classmethod
    def job(
        cls,
        row: Mapping[str, Any],
        timeline: Iterable[Mapping[str, Any]],
        attempts: Iterable[Mapping[str, Any]] = (),
    ) -> ItemState:
        """A job item: its row in `jobs`, its state changes in `job_events` and its attempts in `job_attempts`."""
        job = export_row(JOBS, row)
        rows: dict[Partition, list[dict[str, Any]]] = {Partition(JOBS, str(row["account_id"]), job_dt(job)): [job]}
        for change in timeline:
            event = export_row(JOB_EVENTS, change)
            rows.setdefault(Partition(JOB_EVENTS, str(event["account_id"]), event_dt(event)), []).append(event)
        for attempt in attempts:
            values = export_row(JOB_ATTEMPTS, attempt)
            rows.setdefault(Partition(JOB_ATTEMPTS, str(values["account_id"]), attempt_dt(values)), []).append(values)
        return cls(JOBS, row_key(JOBS, row), rows)

    @classmethod
    def instance(cls, row: Mapping[str, Any]) -> ItemState:
        """An instance item: its row in `instances`."""
        values = export_row(INSTANCES, row)
        partition = Partition(INSTANCES, str(row["account_id"]), instance_dt(values))
        return cls(INSTANCES, row_key(INSTANCES, row), {partition: [values]})


@dataclass(frozen=True)
class ItemChange:
    """One item's net change in a batch: its state before the batch and after it (None: absent)."""

    generation: int
    before: ItemState | None
    after: ItemState | None


@dataclass(frozen=True)
class Replacement:
    """In one partition: the rows of `key` (of `table`'s key kind) become `rows` (none: removed)."""

    generation: int
    table: str
    key: tuple[str, ...]
    rows: tuple[dict[str, Any], ...]


@dataclass
class PartitionEdits:
    """Every replacement a batch makes in one partition."""

    partition: Partition
    replacements: list[Replacement] = field(default_factory=list)


def plan(changes: Iterable[ItemChange]) -> dict[Partition, PartitionEdits]:
    """The partitions a batch touches and what it replaces in each: the row's new partition gets its new rows,
    the partitions it was in before (a job that finished moved from 9999-12-31) lose it."""
    edits: dict[Partition, PartitionEdits] = {}
    for change in changes:
        after = change.after.rows if change.after else {}
        touched = set(after)
        if change.before:
            touched |= set(change.before.rows)
        state = change.after or change.before
        assert state is not None, "an item change has a state before or after"
        for partition in sorted(touched):
            replacement = Replacement(change.generation, partition.table, state.key, tuple(after.get(partition, ())))
            edits.setdefault(partition, PartitionEdits(partition)).replacements.append(replacement)
    return edits


@dataclass(frozen=True)
class Rewrite:
    """A partition's rows after a batch, and the generation they belong to."""

    rows: list[dict[str, Any]]
    generation: int


def rewrite(
    edits: PartitionEdits, rows: Sequence[dict[str, Any]], file_generation: int, current_generation: int
) -> Rewrite | None:
    """Apply a batch's replacements to a partition's rows; None when the file stays as it is.

    `file_generation` is the generation of the existing rows (0: no file); `current_generation` the one readers
    see. A newer generation, current or being built, takes the partition over (its rows start empty); changes
    of any other generation than the partition's are ignored.
    """
    newer = [r.generation for r in edits.replacements if r.generation >= current_generation]
    target, base = file_generation, list(rows)
    if newer and max(newer) > file_generation:
        target, base = max(newer), []
    applied = [r for r in edits.replacements if r.generation == target]
    if not applied and target == file_generation:
        return None
    table = edits.partition.table
    by_key: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for row in base:
        by_key.setdefault(row_key(table, row), []).append(row)
    for replacement in applied:
        by_key[replacement.key] = list(replacement.rows)
    return Rewrite([row for key in sorted(by_key) for row in by_key[key]], target)
