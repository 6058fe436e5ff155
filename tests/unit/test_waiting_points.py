"""The waiting metrics' points (batchops.waiting.waiting_points): per queue, whatever order the views give the jobs,
bounded by the queues, never a job id."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from batchops.times import iso_ms, parse_instant
from batchops.waiting import waiting_jobs, waiting_points, waits_by_queue

NOW = parse_instant("2026-12-04T12:00:00Z")
WAITING = ("SUBMITTED", "PENDING", "RUNNABLE", "SCHEDULED", "STARTING")
"""Not started yet (SCHEDULED: a service job SageMaker has taken but not started)."""
STATUSES = (*WAITING, "RUNNING", "SUCCEEDED", "FAILED")

jobs = st.lists(
    st.fixed_dictionaries(
        {
            "account_id": st.sampled_from(["111111111111", "222222222222"]),
            "region": st.sampled_from(["eu-west-1", "us-east-1"]),
            "queue": st.sampled_from(["cpu", "gpu", None]),
            "status": st.sampled_from(STATUSES),
            "age": st.integers(min_value=0, max_value=86_400 * 3),
        }
    ),
    max_size=40,
).map(lambda drawn: [_job(i, **d) for i, d in enumerate(drawn)])


def _job(index: int, *, age: int, **fields: Any) -> dict[str, Any]:
    since = iso_ms(NOW - age * 1000)
    return {"job_id": f"job-{index:04d}", "job_name": f"n{index}", "created_at": since, "runnable_at": since, **fields}


def _points(rows: list[dict[str, Any]]) -> dict[tuple[tuple[str, str], ...], dict[str, float]]:
    found: dict[tuple[tuple[str, str], ...], dict[str, float]] = {}
    for point in waiting_points(waits_by_queue(waiting_jobs(rows, NOW)), NOW):
        assert point.name not in found.get(point.dimensions, {}), "one value of each metric per queue"
        found.setdefault(point.dimensions, {})[point.name] = point.value
    return found


@given(jobs, st.randoms(use_true_random=False))
def test_the_points_depend_on_the_jobs_not_their_order_and_count_each_waiting_job_once(
    rows: list[dict[str, Any]], random: Any
) -> None:
    points = _points(rows)
    shuffled = list(rows)
    random.shuffle(shuffled)
    assert _points(shuffled) == points
    waiting = [r for r in rows if r["status"] in WAITING]
    assert sum(v["JobsWaiting"] for v in points.values()) == len(waiting)
    queues = {(r["account_id"], r["region"], r["queue"] or "unknown") for r in waiting}
    assert {tuple(value for _, value in dims) for dims in points} == queues, "a series per queue with jobs waiting"
    for dims, values in points.items():
        assert [name for name, _ in dims] == ["AccountId", "Region", "JobQueue"]
        ages = [
            (NOW - parse_instant(r["created_at"])) / 1000
            for r in waiting
            if (r["account_id"], r["region"], r["queue"] or "unknown") == tuple(v for _, v in dims)
        ]
        assert values["OldestWaitingSeconds"] == max(ages)
    job_ids = {r["job_id"] for r in rows}
    assert not {value for dims in points for _, value in dims} & job_ids, "no job id is a dimension"
