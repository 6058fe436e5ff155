"""Builders of the aws.batch service job events: Batch Service Job State Change and Batch Service Job Queue Blocked
(DescribeServiceJob's shape, without tags and serviceRequestPayload, as AWS sends them)."""

from __future__ import annotations

from typing import Any

from batchops.simulation.events.envelope import (
    BATCH_SERVICE_JOB_QUEUE_BLOCKED,
    BATCH_SERVICE_JOB_STATE_CHANGE,
    envelope,
)
from batchops.simulation.world import ServiceJob

_TERMINAL = ("SUCCEEDED", "FAILED")


def _detail(
    job: ServiceJob, status: str, reason: str | None, started: int | None, stopped: int | None
) -> dict[str, Any]:
    attempted = status in ("STARTING", "RUNNING", *_TERMINAL) and started is not None
    resource = {"name": "TrainingJobArn", "value": job.training_job_arn}
    attempt: dict[str, Any] = {"serviceResourceId": resource}
    if started is not None and status in ("RUNNING", *_TERMINAL):
        attempt["startedAt"] = started
    if stopped is not None and status in _TERMINAL:
        attempt["stoppedAt"] = stopped
        attempt["statusReason"] = reason
    detail: dict[str, Any] = {
        "attempts": [attempt] if status in _TERMINAL and attempted else [],
        "capacityUsage": [{"capacityUnit": "NUM_INSTANCES", "quantity": job.instances}],
        "createdAt": job.created_ms,
        "isTerminated": False,
        "jobArn": job.arn,
        "jobId": job.job_id,
        "jobName": job.name,
        "jobQueue": job.queue_arn,
    }
    handed_over = status != "RUNNABLE"  # from SCHEDULED on, SageMaker has the training job
    if handed_over:
        detail["latestAttempt"] = {"serviceResourceId": resource}
    detail["retryStrategy"] = {"attempts": 1, "evaluateOnExit": []}
    if handed_over:
        detail["scheduledAt"] = job.scheduled_ms
    if job.share_identifier is not None:
        detail["schedulingPriority"] = 1
        detail["shareIdentifier"] = job.share_identifier
    detail["serviceJobType"] = "SAGEMAKER_TRAINING"
    if started is not None and status in ("RUNNING", *_TERMINAL):
        detail["startedAt"] = started
    detail["status"] = status
    if reason is not None:
        detail["statusReason"] = reason
    if stopped is not None and status in _TERMINAL:
        detail["stoppedAt"] = stopped
    detail["timeoutConfig"] = {"attemptDurationSeconds": 86_400}
    return detail


def service_job_event(
    event_id: str,
    epoch_ms: int,
    job: ServiceJob,
    status: str,
    reason: str | None,
    started: int | None,
    stopped: int | None,
) -> dict[str, Any]:
    """A service job's state change (`started`, `stopped`: its training's, shown from RUNNING and at the end)."""
    home = job.home
    detail = _detail(job, status, reason, started, stopped)
    return envelope(
        event_id, BATCH_SERVICE_JOB_STATE_CHANGE, "aws.batch", home.account, epoch_ms, home.region, [job.arn], detail
    )


def service_queue_blocked_event(event_id: str, epoch_ms: int, job: ServiceJob, reason: str) -> dict[str, Any]:
    """The service job at the head of its queue, RUNNABLE and blocking it, with the reason."""
    home = job.home
    detail = _detail(job, "RUNNABLE", reason, None, None)
    return envelope(
        event_id, BATCH_SERVICE_JOB_QUEUE_BLOCKED, "aws.batch", home.account, epoch_ms, home.region, [job.arn], detail
    )
