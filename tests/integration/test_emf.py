"""EMF documents written by live ingestion: shape, dimensions, and counts that match the projection."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from batchops.cli import main
from batchops.simulate import SimulationSettings, simulate
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
        assert meta["Timestamp"] in event_times or document.get("EventsIngested") is not None
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
