"""The Athena (Iceberg) tables' rows and the row operations an item's change asks for."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from batchops.athena_tables import (
    COLUMNS,
    OPEN_DT,
    TABLES,
    UNIQUE_KEYS,
    Operation,
    instance_rows,
    job_rows,
    operations,
    table_row,
)

JOB = {
    "account_id": "012345678901",
    "region": "eu-west-1",
    "job_id": "j-1",
    "status": "RUNNING",
    "attempts": 1.0,
    "queue_seconds": 3,
    "spot_interrupted": 0,
    "started_at": "2026-12-01T10:00:00.000Z",
    "stopped_at": None,
    "last_event_time": "2026-12-01T10:00:00.000Z",
}
EVENT = {"account_id": "012345678901", "region": "eu-west-1", "job_id": "j-1", "status": "RUNNING", "attempt": 1}
ATTEMPT = {"account_id": "012345678901", "region": "eu-west-1", "job_id": "j-1", "attempt": 1, "stopped_at": None}


def finished(row: dict[str, Any], day: str = "2026-12-02") -> dict[str, Any]:
    return {
        **row,
        "status": "SUCCEEDED",
        "stopped_at": f"{day}T08:00:00.000Z",
        "last_event_time": f"{day}T08:00:00.000Z",
    }


def test_every_table_ends_in_dt_and_its_unique_key_is_columns_of_it_ending_in_dt() -> None:
    for table in TABLES:
        names = [name for name, _ in COLUMNS[table]]
        assert names[-1] == "dt" and dict(COLUMNS[table])["dt"] == "date"
        assert names[0] == "account_id"
        assert set(UNIQUE_KEYS[table]) <= set(names) and UNIQUE_KEYS[table][-1] == "dt"


def test_a_row_has_the_tables_columns_with_their_types_and_its_partition_date() -> None:
    row = table_row("jobs", JOB)
    assert list(row) == [name for name, _ in COLUMNS["jobs"]]
    assert row["attempts"] == 1 and isinstance(row["attempts"], int)
    assert row["queue_seconds"] == 3.0 and isinstance(row["queue_seconds"], float)
    assert row["spot_interrupted"] is False
    assert row["dt"] == OPEN_DT  # running: the open partition
    assert table_row("jobs", finished(JOB))["dt"] == "2026-12-02"
    assert table_row("jobs", {**JOB, "status": "FAILED", "stopped_at": None})["dt"] == "2026-12-01"  # last event
    assert table_row("instances", {"terminated_at": "2026-11-30T01:00:00.000Z"})["dt"] == "2026-11-30"
    assert table_row("job_events", {"event_time": "bad"})["dt"] == OPEN_DT


def test_an_unchanged_item_asks_for_nothing() -> None:
    rows = job_rows(JOB, [EVENT], [ATTEMPT])
    assert operations(rows, job_rows(JOB, [EVENT], [ATTEMPT])) == []


def test_a_new_item_updates_every_row() -> None:
    found = operations(None, job_rows(JOB, [EVENT], [ATTEMPT]))
    assert [(o.table, o.operation) for o in found] == [
        ("jobs", "update"),
        ("job_events", "update"),
        ("job_attempts", "update"),
    ]


def test_a_row_that_changes_partition_is_deleted_from_the_old_one() -> None:
    done = finished(JOB)
    found = operations(job_rows(JOB, [EVENT], [ATTEMPT]), job_rows(done, [EVENT], [finished(ATTEMPT)]))
    jobs = [o for o in found if o.table == "jobs"]
    assert jobs == [
        Operation("jobs", "update", table_row("jobs", done)),
        Operation(
            "jobs", "delete", {"account_id": "012345678901", "region": "eu-west-1", "job_id": "j-1", "dt": OPEN_DT}
        ),
    ]
    assert [(o.operation, o.row["dt"]) for o in found if o.table == "job_attempts"] == [
        ("update", "2026-12-02"),
        ("delete", OPEN_DT),
    ]
    assert not [o for o in found if o.table == "job_events"]  # the same state change, in the same partition


def test_an_expired_item_deletes_every_row_by_its_unique_key() -> None:
    found = operations(job_rows(JOB, [EVENT], [ATTEMPT]), None)
    assert {o.operation for o in found} == {"delete"}
    for op in found:
        assert set(op.row) == set(UNIQUE_KEYS[op.table])
    assert operations(instance_rows({"account_id": "1", "region": "r", "instance_id": "i-1"}), None)[0].row == {
        "account_id": "1",
        "region": "r",
        "instance_id": "i-1",
        "dt": OPEN_DT,
    }


days = st.sampled_from([None, "2026-12-01", "2026-12-02", "2026-12-03"])


@given(before=st.lists(days, max_size=4), after=st.lists(days, max_size=4))
def test_applying_the_operations_to_the_old_rows_gives_the_new_rows(
    before: list[str | None], after: list[str | None]
) -> None:
    """Iceberg's semantics, partition by partition: whatever the attempts did, the table ends with the new rows."""

    def attempts(stops: list[str | None]) -> list[dict[str, Any]]:
        return [
            {**ATTEMPT, "attempt": n, "stopped_at": f"{d}T00:00:00.000Z" if d else None} for n, d in enumerate(stops, 1)
        ]

    old, new = job_rows(JOB, [], attempts(before)), job_rows(JOB, [], attempts(after))
    table = {tuple(r[k] for k in UNIQUE_KEYS["job_attempts"]): dict(r) for r in old["job_attempts"]}
    for op in operations(old, new):
        if op.table != "job_attempts":
            continue
        unique = tuple(op.row[k] for k in UNIQUE_KEYS["job_attempts"])
        table.pop(unique, None)
        if op.operation == "update":
            table[unique] = dict(op.row)
    assert sorted(table.values(), key=lambda r: r["attempt"]) == new["job_attempts"]
