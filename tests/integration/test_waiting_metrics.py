"""The scheduled waiting-metrics Lambda on moto's DynamoDB: the projection rows of a simulated Organization caught
mid-flight, read back as JobsWaiting / OldestWaitingSeconds EMF per account, region and queue."""

from __future__ import annotations

import json
from typing import Any

import pytest

from batchops.bootstrap import Settings, build_application
from batchops.entrypoints import waiting_lambda
from batchops.simulation import SimulationSettings, simulate
from batchops.times import parse_instant
from batchops.waiting import waiting_jobs, waits_by_queue
from conftest import ingest

METRICS = {"JobsWaiting", "OldestWaitingSeconds"}


def mid_flight() -> list[dict[str, Any]]:
    """The first half, in time, of a simulated Organization's events: many jobs are still waiting."""
    events = sorted(simulate(SimulationSettings(accounts=2, regions=2, jobs=60, seed=3)), key=lambda e: e["time"])
    return events[: len(events) // 2]


def emf_lines(out: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.splitlines() if line.startswith('{"_aws"')]


def published(documents: list[dict[str, Any]]) -> dict[tuple[str, str, str], dict[str, float]]:
    """(account, region, queue) -> metric values, as CloudWatch reads the EMF documents."""
    found: dict[tuple[str, str, str], dict[str, float]] = {}
    for document in documents:
        [directive] = document["_aws"]["CloudWatchMetrics"]
        assert directive["Dimensions"] == [["AccountId", "Region", "JobQueue"]]
        assert directive["Namespace"] == "BatchOps"
        key = (document["AccountId"], document["Region"], document["JobQueue"])
        assert key not in found, f"{key}: one document per queue"
        for metric in directive["Metrics"]:
            [value] = document[metric["Name"]]  # one value per metric and minute
            found.setdefault(key, {})[metric["Name"]] = value
    return found


@pytest.fixture
def projected(aws: None, make_app: Any, monkeypatch: pytest.MonkeyPatch) -> tuple[list[dict[str, Any]], int]:
    """The events projected into DynamoDB views (the central stack's store); the job rows an SQLite store makes of
    the same events, and the moment an hour after the last event."""
    monkeypatch.setenv("BATCHOPS_STORE", "dynamodb://wait")
    events = mid_flight()
    ingest(build_application(Settings.from_environment(), project_inline=True), events)
    local = make_app()
    ingest(local, events)
    waiting_lambda.waiting_views.cache_clear()
    return list(local.views.jobs()), parse_instant(events[-1]["time"]) + 3_600_000


def test_every_queue_with_jobs_waiting_gets_its_count_and_oldest_wait(
    projected: tuple[list[dict[str, Any]], int], capsys: pytest.CaptureFixture[str]
) -> None:
    jobs, now = projected
    expected = waits_by_queue(waiting_jobs(jobs, now))
    assert len(expected) >= 3 and sum(q.waiting for q in expected) >= 10, "the workload should leave jobs waiting"

    sent = waiting_lambda.publish_waiting_metrics(waiting_lambda.waiting_views(), "BatchOps", now)
    documents = emf_lines(capsys.readouterr().out)

    assert sent == {"queues": len(expected), "jobs_waiting": sum(q.waiting for q in expected)}
    values = published(documents)
    assert values == {
        (q.account_id, q.region, q.queue): {"JobsWaiting": q.waiting, "OldestWaitingSeconds": q.oldest_seconds}
        for q in expected
    }
    assert {d["_aws"]["Timestamp"] for d in documents} == {now}
    job_ids = {job["job_id"] for job in jobs}
    assert not [text for d in documents for text in map(str, d.values()) if text in job_ids], "no job id is sent"


def test_the_oldest_wait_grows_with_time_and_finished_jobs_never_count(
    projected: tuple[list[dict[str, Any]], int], capsys: pytest.CaptureFixture[str]
) -> None:
    jobs, now = projected
    views = waiting_lambda.waiting_views()
    waiting_lambda.publish_waiting_metrics(views, "BatchOps", now)
    first = published(emf_lines(capsys.readouterr().out))
    waiting_lambda.publish_waiting_metrics(views, "BatchOps", now + 600_000)
    later = published(emf_lines(capsys.readouterr().out))
    assert set(first) == set(later)
    for queue, values in first.items():
        assert later[queue]["JobsWaiting"] == values["JobsWaiting"]
        assert later[queue]["OldestWaitingSeconds"] == pytest.approx(values["OldestWaitingSeconds"] + 600)
    counted = sum(v["JobsWaiting"] for v in first.values())
    waiting = ("SUBMITTED", "PENDING", "RUNNABLE", "SCHEDULED", "STARTING")
    assert counted == sum(1 for job in jobs if job["status"] in waiting)
    assert any(job["status"] == "SCHEDULED" for job in jobs), "a service job SageMaker has not started counts too"
    assert counted < len(jobs), "running and finished jobs are in the views but not counted"


def test_the_handler_reads_its_store_and_namespace_from_the_environment(
    projected: tuple[list[dict[str, Any]], int], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """What Lambda calls: the Scheduler's event is ignored, now is the clock's (the simulated events are old, so
    every wait is at least as long as it was an hour after the last event)."""
    _, then = projected
    monkeypatch.setenv("BATCHOPS_NAMESPACE", "Ops")

    class Context:
        function_name, memory_limit_in_mb, aws_request_id = "wait-waiting-metrics", 512, "r-1"
        invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:wait-waiting-metrics"

    event = {"version": "0", "source": "aws.scheduler", "detail-type": "Scheduled Event", "detail": {}}
    sent = waiting_lambda.waiting_metrics(event, Context())  # type: ignore[arg-type]
    documents = emf_lines(capsys.readouterr().out)
    assert sent["queues"] == len(documents) >= 3
    assert {d["_aws"]["CloudWatchMetrics"][0]["Namespace"] for d in documents} == {"Ops"}
    assert min(d["_aws"]["Timestamp"] for d in documents) > then


def test_a_store_that_is_not_dynamodb_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BATCHOPS_STORE", "sqlite:///./x.db")
    waiting_lambda.waiting_views.cache_clear()
    with pytest.raises(ValueError, match="dynamodb://PREFIX"):
        waiting_lambda.waiting_views()
