"""The export layout without any cloud: dt rules, partitions a change touches, and the generation rule."""

from __future__ import annotations

from typing import Any

from batchops.export_layout import (
    OPEN_DT,
    ItemChange,
    ItemState,
    Partition,
    instance_dt,
    job_dt,
    plan,
    rewrite,
)


def job(job_id: str, status: str, stopped: str | None = None, last: str = "2025-11-13T10:00:00.000Z") -> dict[str, Any]:
    return {
        "account_id": "012345678901",
        "region": "us-east-1",
        "job_id": job_id,
        "status": status,
        "stopped_at": stopped,
        "last_event_time": last,
    }


def test_dt_is_the_end_date_of_finished_rows_and_9999_12_31_while_open() -> None:
    assert job_dt(job("a", "RUNNING")) == OPEN_DT
    assert job_dt(job("a", "RUNNABLE", stopped="2025-11-12T23:00:00.000Z")) == OPEN_DT  # retrying after a failure
    assert job_dt(job("a", "FAILED", stopped="2025-11-12T23:59:59.999Z")) == "2025-11-12"
    assert job_dt(job("a", "SUCCEEDED")) == "2025-11-13"  # no stopped_at: the last event
    assert instance_dt({"terminated_at": None}) == OPEN_DT
    assert instance_dt({"terminated_at": "2025-11-14T01:00:00.000Z"}) == "2025-11-14"


def test_a_job_that_finishes_leaves_the_open_partition_and_lands_in_its_day() -> None:
    before = ItemState.job(job("a", "RUNNING"), [])
    after = ItemState.job(job("a", "SUCCEEDED", stopped="2025-11-13T11:00:00.000Z"), [])
    edits = plan([ItemChange(1, before, after)])
    open_partition = Partition("jobs", "012345678901", OPEN_DT)
    day = Partition("jobs", "012345678901", "2025-11-13")
    assert set(edits) == {open_partition, day}
    emptied = rewrite(edits[open_partition], [before.rows[open_partition][0]], 1, 1)
    assert emptied is not None and emptied.rows == []
    filled = rewrite(edits[day], [], 1, 1)
    assert filled is not None and [r["status"] for r in filled.rows] == ["SUCCEEDED"]


def test_old_generation_deletions_never_touch_a_newer_file_but_empty_an_old_one() -> None:
    row = ItemState.job(job("a", "RUNNING"), [])
    partition = Partition("jobs", "012345678901", OPEN_DT)
    deletion = plan([ItemChange(1, row, None)])[partition]
    assert rewrite(deletion, row.rows[partition], file_generation=2, current_generation=2) is None
    emptied = rewrite(deletion, row.rows[partition], file_generation=1, current_generation=2)
    assert emptied is not None and emptied.rows == [] and emptied.generation == 1


def test_a_newer_generation_takes_a_partition_over_and_older_live_changes_are_ignored() -> None:
    partition = Partition("jobs", "012345678901", OPEN_DT)
    old_rows = [
        *ItemState.job(job("a", "RUNNING"), []).rows[partition],
        *ItemState.job(job("b", "RUNNING"), []).rows[partition],
    ]
    replayed = plan([ItemChange(2, None, ItemState.job(job("a", "RUNNABLE"), []))])[partition]
    taken = rewrite(replayed, old_rows, file_generation=1, current_generation=1)  # the replay is building 2
    assert taken is not None and taken.generation == 2 and [r["job_id"] for r in taken.rows] == ["a"]
    live = plan([ItemChange(1, None, ItemState.job(job("c", "RUNNING"), []))])[partition]
    assert rewrite(live, taken.rows, file_generation=2, current_generation=1) is None
    stale = plan([ItemChange(1, None, ItemState.job(job("c", "RUNNING"), []))])[partition]
    assert rewrite(stale, [], file_generation=0, current_generation=2) is None  # a stale generation creates nothing


def test_a_jobs_state_changes_are_replaced_together_in_their_day() -> None:
    timeline = [
        {"account_id": "012345678901", "region": "us-east-1", "job_id": "a", "status": s, "attempt": None,
         "event_time": f"2025-11-13T0{i}:00:00.000Z", "status_reason": None}
        for i, s in enumerate(["SUBMITTED", "RUNNABLE"])
    ]  # fmt: skip
    first = ItemState.job(job("a", "RUNNABLE"), timeline[:1])
    second = ItemState.job(job("a", "RUNNABLE"), timeline)
    events = Partition("job_events", "012345678901", "2025-11-13")
    done = rewrite(plan([ItemChange(1, first, second)])[events], list(first.rows[events]), 1, 1)
    assert done is not None and [r["status"] for r in done.rows] == ["SUBMITTED", "RUNNABLE"]
