"""Metric points derived from what ingestion learned (no cloud here: `emf` turns points into EMF).

Each distinct state change counts once, also one that arrives late; a duplicate never counts, since
points come from the difference a recorded fact made to a fold. Job ids are never a dimension.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from batchops.projection import failure_kind, instance_spot_signal
from batchops.times import seconds_between

COUNT = "Count"
SECONDS = "Seconds"


@dataclass(frozen=True, slots=True)
class MetricPoint:
    """One value of one metric with its dimensions, at the time of the event that caused it."""

    name: str
    unit: str
    value: float
    dimensions: tuple[tuple[str, str], ...]
    timestamp_ms: int


@dataclass(frozen=True, slots=True)
class JobMetricState:
    """The parts of a job fold that metrics are computed from."""

    transitions: frozenset[str]
    queue_seconds: float | None
    finished_attempts: frozenset[int]
    blocked: bool


def _batch_run_seconds(fold: dict[str, Any]) -> dict[int, float]:
    """Run time of every attempt that Batch itself reported as finished (ECS task times never count)."""
    runs: dict[int, float] = {}
    for number, sources in fold["attempts"].items():
        batch = sources.get("b", {})
        run = seconds_between(batch.get("started"), batch.get("stopped"))
        if run is not None:
            runs[int(number)] = run
    return runs


def job_metric_state(fold: dict[str, Any]) -> JobMetricState:
    """Snapshot what metrics compare before and after a fact is recorded.

    Only Batch's own timestamps feed metric values (JobQueueSeconds: createdAt → the first attempt's startedAt;
    JobRunSeconds: attempts Batch reported as finished), so a value and its JobQueue dimension are the same
    whichever order the events arrive in. (The projection's queue_seconds, first RUNNABLE → first STARTING,
    is refined as late events arrive; a metric point, once emitted, cannot be.)
    """
    first_attempt = fold["attempts"].get("1", {})
    started = first_attempt.get("b", {}).get("started") or first_attempt.get("l", {}).get("started")
    return JobMetricState(
        transitions=frozenset(fold["transitions"]),
        queue_seconds=seconds_between(fold["static"].get("created"), started),
        finished_attempts=frozenset(_batch_run_seconds(fold)),
        blocked=fold["blocked"] is not None,
    )


def job_points(before: JobMetricState, fold: dict[str, Any], at: int) -> list[MetricPoint]:
    """Points for what a newly recorded job fact changed."""
    after = job_metric_state(fold)
    base = (("AccountId", fold["account"]), ("Region", fold["region"]))
    queue = fold["static"].get("queue") or "unknown"
    with_queue = (*base, ("JobQueue", queue))
    points: list[MetricPoint] = []
    for transition in sorted(after.transitions - before.transitions):
        status = transition.partition("#")[0]
        points.append(MetricPoint("JobStateChanges", COUNT, 1, (*with_queue, ("Status", status)), at))
        is_array_parent = fold["static"].get("size") is not None
        if status == "FAILED" and not is_array_parent and not any(t.startswith("FAILED#") for t in before.transitions):
            kind = failure_kind("FAILED", fold["reason"], fold["exit"], False) or "other"
            points.append(MetricPoint("JobsFailed", COUNT, 1, (*with_queue, ("FailureKind", kind)), at))
    if before.queue_seconds is None and after.queue_seconds is not None:
        points.append(MetricPoint("JobQueueSeconds", SECONDS, after.queue_seconds, with_queue, at))
    new_finished = after.finished_attempts - before.finished_attempts
    if new_finished:
        runs = _batch_run_seconds(fold)
        for number in sorted(new_finished):
            points.append(MetricPoint("JobRunSeconds", SECONDS, runs[number], with_queue, at))
    if after.blocked and not before.blocked:
        points.append(MetricPoint("JobsBlocked", COUNT, 1, with_queue, at))
    return points


def instance_points(was_interrupted: bool, fold: dict[str, Any], at: int) -> list[MetricPoint]:
    """A SpotInterruptions point the first time an instance gets an interruption warning."""
    if was_interrupted or "spot_warning" not in fold["first"]:
        return []
    fixed = fold["fixed"]
    dims = (
        ("AccountId", fold["account"]),
        ("Region", fold["region"]),
        ("AvailabilityZone", fixed.get("az") or "unknown"),
        ("InstanceType", fixed.get("type") or "unknown"),
    )
    return [MetricPoint("SpotInterruptions", COUNT, 1, dims, at)]


def pipeline_points(
    account: str, region: str, ingested: int, duplicates: int, rejected: int, at: int
) -> list[MetricPoint]:
    """The pipeline's own counters for one account and region."""
    dims = (("AccountId", account), ("Region", region))
    points = []
    for name, value in (
        ("EventsIngested", ingested),
        ("DuplicatesDropped", duplicates),
        ("EventsRejected", rejected),
    ):
        if value:
            points.append(MetricPoint(name, COUNT, value, dims, at))
    return points


__all__ = [
    "MetricPoint",
    "instance_points",
    "instance_spot_signal",
    "job_metric_state",
    "job_points",
    "pipeline_points",
]
