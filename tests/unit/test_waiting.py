"""Waiting jobs: their age at a given moment, the order, the reason, and the durations the CLI reads."""

from __future__ import annotations

import pytest

from batchops.times import iso_ms, parse_instant
from batchops.waiting import DurationError, parse_duration, waiting_jobs, waits_by_queue

NOW = parse_instant("2026-12-03T12:00:00Z")


def _job(job_id: str, status: str, *, queue: str = "q", **times: str | None) -> dict:
    return {
        "account_id": "111111111111",
        "region": "eu-west-1",
        "job_id": job_id,
        "job_name": job_id,
        "queue": queue,
        "compute_environment": None,
        "status": status,
        "status_reason": None,
        "blocked_reason": None,
        "created_at": None,
        "runnable_at": None,
        "starting_at": None,
        "last_event_time": None,
        **times,
    }


def _ago(seconds: int) -> str | None:
    return iso_ms(NOW - seconds * 1000)


def test_a_wait_is_measured_from_the_entry_into_the_state_the_job_waits_in_and_the_oldest_comes_first() -> None:
    jobs = [
        _job("ran", "RUNNING", created_at=_ago(9000)),
        _job("runnable", "RUNNABLE", created_at=_ago(7200), runnable_at=_ago(3600), status_reason="CAPACITY:x"),
        _job("starting", "STARTING", runnable_at=_ago(5000), starting_at=_ago(60)),
        _job("submitted", "SUBMITTED", created_at=_ago(5400)),
        _job("done", "SUCCEEDED", created_at=_ago(100)),
    ]
    rows = waiting_jobs(jobs, NOW)
    assert [(r["job_id"], r["waiting_seconds"]) for r in rows] == [
        ("submitted", 5400),
        ("runnable", 3600),
        ("starting", 60),
    ]
    assert rows[1]["reason"] == "CAPACITY:x"
    assert [r["job_id"] for r in waiting_jobs(jobs, NOW, older_than_seconds=30 * 60)] == ["submitted", "runnable"]


def test_a_blocked_queue_is_the_reason_before_the_jobs_own_and_queues_count_their_waits() -> None:
    jobs = [
        _job("a", "RUNNABLE", queue="gpu", runnable_at=_ago(100), blocked_reason="MISCONFIGURATION:y"),
        _job("b", "RUNNABLE", queue="gpu", runnable_at=_ago(900), status_reason="z"),
        _job("c", "PENDING", queue="cpu", created_at=_ago(50)),
    ]
    rows = waiting_jobs(jobs, NOW)
    assert {r["job_id"]: r["reason"] for r in rows} == {"a": "MISCONFIGURATION:y", "b": "z", "c": None}
    queues = waits_by_queue(rows)
    assert [(q.queue, q.waiting, q.oldest_seconds, q.oldest_job_id) for q in queues] == [
        ("gpu", 2, 900, "b"),
        ("cpu", 1, 50, "c"),
    ]


def test_a_scheduled_service_job_waits_since_it_became_runnable_and_counts_in_its_queue() -> None:
    """SCHEDULED: SageMaker has the service job but has not started it, and it can go back to RUNNABLE."""
    jobs = [
        _job("scheduled", "SCHEDULED", queue="ml", created_at=_ago(7200), runnable_at=_ago(1800)),
        _job("runnable", "RUNNABLE", queue="ml", runnable_at=_ago(600)),
        _job("started", "RUNNING", queue="ml", runnable_at=_ago(9000)),
    ]
    rows = waiting_jobs(jobs, NOW)
    assert [(r["job_id"], r["status"], r["waiting_seconds"]) for r in rows] == [
        ("scheduled", "SCHEDULED", 1800),
        ("runnable", "RUNNABLE", 600),
    ]
    assert rows[0]["waiting_since"] == _ago(1800)
    [queue] = waits_by_queue(rows)
    assert (queue.queue, queue.waiting, queue.oldest_job_id) == ("ml", 2, "scheduled")


@pytest.mark.parametrize(("text", "seconds"), [("90", 90), ("90s", 90), ("30m", 1800), ("2h", 7200), ("1.5d", 129600)])
def test_durations_read_with_their_unit(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "m", "30 minutes", "-5m", "1w"])
def test_a_duration_batchops_cannot_read_says_how_to_write_one(text: str) -> None:
    with pytest.raises(DurationError, match="give a number with s, m, h or d"):
        parse_duration(text)
