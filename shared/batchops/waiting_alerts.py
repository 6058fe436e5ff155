"""The conditions batchops alerts on for waiting jobs, shared by deploy.py's CloudWatch alarms and the Grafana alert
rules of `batchops dashboards push`, so that both fire on the same thing.

Each is a CloudWatch Metrics Insights query over the waiting metrics (batchops.waiting.waiting_points) with one time
series per account, region and queue (a queue created later is one more series, nothing to change), a threshold
and a number of minutes in a row the threshold must be passed.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_OLDEST_WAIT_SECONDS = 1800.0
DEFAULT_JOBS_WAITING = 100
DEFAULT_MINUTES = 5
PERIOD_SECONDS = 60
"""The waiting metrics come once a minute (the schedule's rate)."""
DIMENSIONS = ("AccountId", "Region", "JobQueue")
"""The waiting metrics' dimension set, exactly."""


@dataclass(frozen=True)
class AlarmThresholds:
    """When the waiting alerts fire: a job waiting longer than `oldest_wait_seconds`, or more than `jobs_waiting`
    jobs waiting in one queue, for `minutes` minutes in a row."""

    oldest_wait_seconds: float = DEFAULT_OLDEST_WAIT_SECONDS
    jobs_waiting: int = DEFAULT_JOBS_WAITING
    minutes: int = DEFAULT_MINUTES

    def __post_init__(self) -> None:
        if self.oldest_wait_seconds <= 0 or self.jobs_waiting < 1:
            raise ValueError("--alarm-oldest-wait must be above 0 and --alarm-jobs-waiting at least 1")
        if not 1 <= self.minutes <= 180:  # Metrics Insights alarms evaluate the last 3 hours only
            raise ValueError("--alarm-minutes must be 1..180")


@dataclass(frozen=True)
class WaitingCondition:
    """One alert: its name (after the prefix), the per-queue query, the threshold and what it means."""

    name: str
    title: str
    query: str
    threshold: float
    description: str


def per_queue_query(metric: str, namespace: str) -> str:
    """MAX of a waiting metric per account, region and queue, the largest first."""
    schema = ", ".join(sorted(DIMENSIONS))
    return (
        f'SELECT MAX({metric}) FROM SCHEMA("{namespace}", {schema}) '
        f"GROUP BY {', '.join(DIMENSIONS)} ORDER BY MAX() DESC"
    )


def waiting_conditions(thresholds: AlarmThresholds, namespace: str = "BatchOps") -> list[WaitingCondition]:
    """The two waiting alerts: a job waiting too long, jobs piling up in a queue."""
    wait, minutes = thresholds.oldest_wait_seconds, thresholds.minutes
    return [
        WaitingCondition(
            "job-waiting-too-long",
            "Batch job waiting too long",
            per_queue_query("OldestWaitingSeconds", namespace),
            wait,
            f"A job of the queue has waited (SUBMITTED to STARTING) over {wait:g} s for {minutes} min. "
            f"`batchops jobs --waiting --older-than {wait:g}s` lists them.",
        ),
        WaitingCondition(
            "jobs-piling-up",
            "Batch jobs piling up in a queue",
            per_queue_query("JobsWaiting", namespace),
            float(thresholds.jobs_waiting),
            f"Over {thresholds.jobs_waiting} jobs of the queue have been waiting for {minutes} min. "
            "`batchops jobs --waiting --queue QUEUE` lists them.",
        ),
    ]
