"""Waiting jobs: those not yet running (SUBMITTED, PENDING, RUNNABLE, SCHEDULED, STARTING), how long they have waited,
and why.

A wait's age cannot come from events alone: AWS Batch sends nothing while a job sits RUNNABLE. It is the time from
the job's entry into its current state (from the projection) to a moment the caller gives (now, on the CLI).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from batchops.metrics import COUNT, SECONDS, MetricPoint
from batchops.times import parse_instant
from batchops.views import JobFilter, ViewStore

WAITING_STATUSES = ("SUBMITTED", "PENDING", "RUNNABLE", "SCHEDULED", "STARTING")
"""The states of a job that has not started running (SCHEDULED: a service job handed to SageMaker, not started)."""
WAITING_FIELDS = (
    "account_id",
    "region",
    "job_id",
    "job_name",
    "queue",
    "compute_environment",
    "status",
    "waiting_since",
    "waiting_seconds",
    "reason",
)
"""The columns of `batchops jobs --waiting`, oldest wait first."""
_SINCE = {"STARTING": "starting_at", "RUNNABLE": "runnable_at", "SCHEDULED": "runnable_at"}
"""The row's time of entry into the state waited in. SCHEDULED has none of its own and can go back to RUNNABLE:
its wait is the one that began when the service job became RUNNABLE."""
_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(s|m|h|d)?")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class DurationError(ValueError):
    """A duration batchops cannot read."""


def parse_duration(text: str) -> float:
    """Seconds in `90`, `90s`, `30m`, `2h` or `1d`."""
    match = _DURATION.fullmatch(text.strip().lower())
    if match is None:
        raise DurationError(f"cannot read duration {text!r}: give a number with s, m, h or d (e.g. 30m)")
    return float(match.group(1)) * _UNIT_SECONDS[match.group(2) or "s"]


@dataclass(frozen=True)
class QueueWait:
    """Jobs waiting in one queue of one account and region, and the oldest wait."""

    account_id: str
    region: str
    queue: str
    waiting: int
    oldest_seconds: float
    oldest_job_id: str


def waiting_since(job: dict[str, Any]) -> str | None:
    """When the job entered the state it waits in: RUNNABLE and STARTING have their own times, SCHEDULED the
    RUNNABLE one, an earlier state the job's creation (else the last event seen of it)."""
    since: str | None = job.get(_SINCE.get(job.get("status") or "", ""))
    return since or job.get("created_at") or job.get("last_event_time")


def waiting_jobs(jobs: Iterable[dict[str, Any]], now_ms: int, older_than_seconds: float = 0) -> list[dict[str, Any]]:
    """The jobs of `jobs` that have waited at least `older_than_seconds` at `now_ms`, oldest wait first, with the
    columns of `WAITING_FIELDS` (the reason: the queue's blocked reason, else the job's status reason)."""
    rows: list[tuple[float, dict[str, Any]]] = []
    for job in jobs:
        if job.get("status") not in WAITING_STATUSES:
            continue
        since = waiting_since(job)
        if since is None:
            continue
        seconds = max(0.0, (now_ms - parse_instant(since)) / 1000)
        if seconds < older_than_seconds:
            continue
        row = {name: job.get(name) for name in WAITING_FIELDS}
        row.update(waiting_since=since, waiting_seconds=round(seconds, 3))
        row["reason"] = job.get("blocked_reason") or job.get("status_reason")
        rows.append((seconds, row))
    rows.sort(key=lambda r: (-r[0], r[1]["account_id"], r[1]["region"], r[1]["job_id"]))
    return [row for _, row in rows]


def queue_compute_environments(jobs: Iterable[dict[str, Any]]) -> dict[tuple[str, str, str], str]:
    """Per account, region and queue: the compute environment its latest job that has one ran in. A job that never
    ran has none of its own, and the queue's is where it waits to run."""
    latest: dict[tuple[str, str, str], tuple[str, str]] = {}
    for job in jobs:
        ce, queue = job.get("compute_environment"), job.get("queue")
        if not ce or not queue:
            continue
        key = (job["account_id"], job["region"], queue)
        seen = job.get("last_event_time") or ""
        if key not in latest or seen > latest[key][0]:
            latest[key] = (seen, ce)
    return {key: ce for key, (_, ce) in latest.items()}


def with_queue_compute_environments(
    rows: list[dict[str, Any]], known: dict[tuple[str, str, str], str]
) -> list[dict[str, Any]]:
    """`rows` (as `waiting_jobs` gives them) with the queue's compute environment where a job has none of its own."""
    for row in rows:
        if not row.get("compute_environment"):
            row["compute_environment"] = known.get((row["account_id"], row["region"], row.get("queue") or ""))
    return rows


def waits_by_queue(waiting: Iterable[dict[str, Any]]) -> list[QueueWait]:
    """Per account, region and queue: jobs waiting and the oldest wait (`waiting` as `waiting_jobs` gives it), the
    longest-waiting queue first."""
    queues: dict[tuple[str, str, str], QueueWait] = {}
    for row in waiting:
        key = (row["account_id"], row["region"], row["queue"] or "unknown")
        was = queues.get(key)
        if was is None:
            queues[key] = QueueWait(*key, 1, row["waiting_seconds"], row["job_id"])
        elif row["waiting_seconds"] > was.oldest_seconds:
            queues[key] = QueueWait(*key, was.waiting + 1, row["waiting_seconds"], row["job_id"])
        else:
            queues[key] = QueueWait(*key, was.waiting + 1, was.oldest_seconds, was.oldest_job_id)
    return sorted(queues.values(), key=lambda q: (-q.oldest_seconds, q.account_id, q.region, q.queue))


def waits_in(views: ViewStore, now_ms: int) -> list[QueueWait]:
    """The queues with jobs waiting at `now_ms` in the views, read through the jobs' by-status index account by
    account (the accounts ingestion has counted events of), never by scanning every job."""
    accounts = tuple(sorted({counter.account_id for counter in views.counters()}))
    if not accounts:
        return []
    return waits_by_queue(waiting_jobs(views.jobs(JobFilter(accounts=accounts, statuses=WAITING_STATUSES)), now_ms))


def waiting_points(queues: Iterable[QueueWait], at_ms: int) -> list[MetricPoint]:
    """`JobsWaiting` and `OldestWaitingSeconds` per account, region and queue (as many series as queues with jobs
    waiting; never a job id). A queue with none waiting sends nothing: its alarms treat missing data as fine."""
    points = []
    for queue in queues:
        dimensions = (("AccountId", queue.account_id), ("Region", queue.region), ("JobQueue", queue.queue))
        points.append(MetricPoint("JobsWaiting", COUNT, queue.waiting, dimensions, at_ms))
        points.append(MetricPoint("OldestWaitingSeconds", SECONDS, queue.oldest_seconds, dimensions, at_ms))
    return points
