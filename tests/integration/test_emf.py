"""EMF documents written by live ingestion: shape, dimensions, and counts that match the projection."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from batchops.cli import main
from batchops.simulation import SimulationSettings, simulate
from batchops.times import parse_instant

METRICS = {
    "JobStateChanges": ("Count", {"AccountId", "Region", "JobQueue", "Status"}),
    "JobQueueSeconds": ("Seconds", {"AccountId", "Region", "JobQueue"}),
    "JobRunSeconds": ("Seconds", {"AccountId", "Region", "JobQueue"}),
    "JobsFailed": ("Count", {"AccountId", "Region", "JobQueue", "FailureKind"}),
    "SpotInterruptions": ("Count", {"AccountId", "Region", "AvailabilityZone", "InstanceType"}),
    "JobsBlocked": ("Count", {"AccountId", "Region", "JobQueue"}),
    "EventsIngested": ("Count", {"AccountId", "Region"}),
    "DuplicatesDropped": ("Count", {"AccountId", "Region"}),
    "EventsRejected": ("Count", {"AccountId", "Region"}),
    "JobCost": ("None", {"AccountId", "Region", "JobQueue"}),
}


def test_emf_documents_match_the_projection(tmp_path: Path, capsys) -> None:
    events = list(simulate(SimulationSettings(accounts=2, regions=1, jobs=150, seed=3, chaos=True)))
    stream = tmp_path / "events.jsonl"
    stream.write_text("".join(json.dumps(e) + "\n" for e in events))
    emf = tmp_path / "emf.jsonl"
    store = f"sqlite:///{tmp_path / 'b.db'}"
    assert main(["--store", store, "ingest", str(stream), "--emf-out", str(emf), "--batch-size", "97"]) == 0
    capsys.readouterr()
    event_times = {parse_instant(e["time"]) for e in events}
    job_ids = {e["detail"]["jobId"] for e in events if "jobId" in e["detail"]}
    totals: Counter = Counter()
    for line in emf.read_text().splitlines():
        document = json.loads(line)
        meta = document["_aws"]
        # JobCost is stamped with its job's end (test_job_cost_metric), every other point with its event's time
        assert meta["Timestamp"] in event_times or "EventsIngested" in document or "JobCost" in document
        [directive] = meta["CloudWatchMetrics"]
        assert directive["Namespace"] == "BatchOps"
        [dimension_set] = directive["Dimensions"]
        for metric in directive["Metrics"]:
            unit, dimensions = METRICS[metric["Name"]]
            assert metric["Unit"] == unit
            assert set(dimension_set) == dimensions
            values = document[metric["Name"]]
            totals[metric["Name"]] += sum(values) if isinstance(values, list) else values
        assert not job_ids & {str(document[d]) for d in dimension_set}, "a job id must never be a dimension"

    assert main(["--store", store, "timeline", "--format", "json"]) == 0
    timeline = json.loads(capsys.readouterr().out)
    assert totals["JobStateChanges"] == len(timeline)
    assert main(["--store", store, "jobs", "--format", "json"]) == 0
    jobs = json.loads(capsys.readouterr().out)
    assert totals["JobsFailed"] == sum(1 for j in jobs if j["status"] == "FAILED" and j["array_size"] is None)
    assert totals["JobsBlocked"] == sum(1 for j in jobs if j["blocked_reason"])
    duplicates = len(events) - len({e["id"] for e in events})
    assert totals["DuplicatesDropped"] >= duplicates > 0
    assert totals["EventsIngested"] + totals["DuplicatesDropped"] == len(events) - totals["EventsRejected"]


def _within_cloudwatch_limits(line: str) -> dict[str, object]:
    """One EMF document as CloudWatch takes it: ≤ 1 MB, ≤ 100 metrics, ≤ 100 values a metric, ≤ 30 dimensions a set,
    dimension values of 1 to 1,024 characters."""
    assert len(line.encode()) <= 1_048_576
    document = json.loads(line)
    [directive] = document["_aws"]["CloudWatchMetrics"]
    assert len(directive["Metrics"]) <= 100
    for metric in directive["Metrics"]:
        values = document[metric["Name"]]
        assert len(values) <= 100 if isinstance(values, list) else isinstance(values, float | int)
    assert len(directive["Dimensions"]) <= 30
    for dimension_set in directive["Dimensions"]:
        assert 1 <= len(dimension_set) <= 30
        for name in dimension_set:
            assert 1 <= len(str(document[name])) <= 1024
    return document  # type: ignore[no-any-return]


def _failed_at_once(jobs: int, queue: str) -> list[dict[str, object]]:
    """`jobs` jobs of one queue that fail in the same second: every metric point of theirs shares its dimensions and
    timestamp, the worst case for the size of one document."""
    events = []
    for i in range(jobs):
        job_id = f"00000000-0000-4000-8000-{i:012d}"
        events.append(
            {
                "version": "0",
                "id": f"10000000-0000-4000-8000-{i:012d}",
                "detail-type": "Batch Job State Change",
                "source": "aws.batch",
                "account": "123456789012",
                "time": "2026-11-30T10:00:00Z",
                "region": "us-east-1",
                "resources": [f"arn:aws:batch:us-east-1:123456789012:job/{job_id}"],
                "detail": {
                    "jobArn": f"arn:aws:batch:us-east-1:123456789012:job/{job_id}",
                    "jobName": f"job-{i}",
                    "jobId": job_id,
                    "jobQueue": f"arn:aws:batch:us-east-1:123456789012:job-queue/{queue}",
                    "status": "FAILED",
                    "statusReason": "Essential container in task exited",
                    "createdAt": 1764496000000,
                    "startedAt": 1764496100000 + i,
                    "stoppedAt": 1764496200000 + i,
                    "attempts": [
                        {
                            "container": {"exitCode": 1},
                            "startedAt": 1764496100000 + i,
                            "stoppedAt": 1764496200000 + i,
                            "statusReason": "Essential container in task exited",
                        }
                    ],
                    "jobDefinition": "arn:aws:batch:us-east-1:123456789012:job-definition/d:1",
                    "container": {"exitCode": 1},
                },
            }
        )
    return events


def test_a_burst_of_one_queue_in_one_second_makes_documents_within_cloudwatch_limits_all_in_the_file(
    tmp_path: Path, capsys
) -> None:
    jobs = 450  # 4 metrics x 450 values of one dimension set and timestamp
    stream = tmp_path / "events.jsonl"
    stream.write_text("".join(json.dumps(e) + "\n" for e in _failed_at_once(jobs, "q" * 128)))
    emf = tmp_path / "emf.jsonl"
    store = f"sqlite:///{tmp_path / 'b.db'}"
    assert main(["--store", store, "ingest", str(stream), "--emf-out", str(emf)]) == 0
    out = capsys.readouterr().out
    assert "_aws" not in out  # powertools publishes a full set by itself on stdout: no document may get there
    totals: Counter = Counter()
    longest = 0
    for line in emf.read_text().splitlines():
        document = _within_cloudwatch_limits(line)
        for metric in document["_aws"]["CloudWatchMetrics"][0]["Metrics"]:  # type: ignore[index]
            values = document[metric["Name"]]
            totals[metric["Name"]] += len(values) if isinstance(values, list) else 1
            longest = max(longest, len(values) if isinstance(values, list) else 1)
    assert totals["JobStateChanges"] == totals["JobsFailed"] == jobs
    assert totals["JobQueueSeconds"] == totals["JobRunSeconds"] == jobs
    assert longest == 99  # the burst took several documents per metric


def test_the_worst_case_of_our_metric_points_stays_within_cloudwatch_limits() -> None:
    from batchops.emf import emf_documents
    from batchops.metrics import MetricPoint

    long_queue = "q" * 5000  # no Batch queue is named so: a forged event's
    dimensions = (("AccountId", "123456789012"), ("Region", "us-east-1"), ("JobQueue", long_queue), ("Status", " "))
    names = [f"Metric{i}" for i in range(250)]  # more distinct metrics in one set than a document takes
    points = [MetricPoint(n, "Count", 1.0, dimensions, 1764496000000) for n in names for _ in range(3)]
    points += [MetricPoint("JobRunSeconds", "Seconds", float(i), dimensions, 1764496000000) for i in range(1000)]
    documents = [json.dumps(d) for d in emf_documents(points)]
    totals: Counter = Counter()
    for line in documents:
        document = _within_cloudwatch_limits(line)
        assert document["JobQueue"] == "q" * 1024 and document["Status"] == "unknown"
        for metric in document["_aws"]["CloudWatchMetrics"][0]["Metrics"]:  # type: ignore[index]
            values = document[metric["Name"]]
            totals[metric["Name"]] += sum(values) if isinstance(values, list) else values  # type: ignore[arg-type]
    assert totals == Counter({**dict.fromkeys(names, 3), "JobRunSeconds": sum(range(1000))})
    too_many = tuple((f"D{i}", "v") for i in range(30))
    with pytest.raises(ValueError, match="30 dimensions"):
        list(emf_documents([MetricPoint("M", "Count", 1, too_many, 0)]))
