"""The ground truth of a simulation: what happened to every job, to check what batchops derives."""

from __future__ import annotations

from dataclasses import dataclass

from batchops.simulation.world import Job


@dataclass(frozen=True)
class ExpectedJob:
    """Ground truth of one simulated job (array parents and each array child are one each)."""

    account_id: str
    region: str
    job_id: str  # array children: "<parent id>:<index>"
    queue: str  # the job queue's name
    compute_environment: str | None  # CE of the last attempt; None when the job never started
    platform: str  # EC2 | FARGATE | SAGEMAKER (a service job)
    status: str  # final: SUCCEEDED | FAILED, or RUNNABLE for a job left blocked
    attempts: int  # length of attempts[] in the job's last event (0 for array parents)
    exit_code: int | None  # of the last attempt (essential container); None without one
    pricing: str  # on-demand | spot | fargate (never started: of the CE it was headed for) | unknown (service job)
    instance_id: str | None  # EC2 instance of the last attempt; None on Fargate or when never started
    array_parent_id: str | None  # set on array children
    array_index: int | None  # set on array children
    array_size: int | None  # set on array parents
    failure_kind: str | None  # spot_reclaim | oom | exit_nonzero | timeout | cancelled; None otherwise


def expected_job(job: Job, status: str, failure_kind: str | None) -> ExpectedJob:
    """The truth of a job that has reached its final status."""
    last = job.attempts[-1] if job.attempts else None
    instance = last.instance if last is not None else None
    return ExpectedJob(
        account_id=job.home.account,
        region=job.home.region,
        job_id=job.job_id,
        queue=job.queue.name,
        compute_environment=last.environment.name if last is not None else None,
        platform=job.environment.platform,
        status=status,
        attempts=len(job.attempts),
        exit_code=last.exit_code if last is not None else None,
        pricing=job.environment.pricing,
        instance_id=instance.instance_id if instance is not None else None,
        array_parent_id=job.parent_id,
        array_index=job.array_index,
        array_size=job.array_size,
        failure_kind=failure_kind,
    )
