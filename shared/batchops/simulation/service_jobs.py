"""SageMaker training jobs that AWS Batch schedules (service jobs): RUNNABLE, sometimes blocked, SCHEDULED, STARTING,
RUNNING, then SUCCEEDED or FAILED, planned with a random stream of their own so the container workload stays as it
was drawn."""

from __future__ import annotations

import random

from batchops.simulation.events.service import service_job_event, service_queue_blocked_event
from batchops.simulation.events.submission import cloudtrail_submit_service_job
from batchops.simulation.randomness import between, hex_digits, uuid4
from batchops.simulation.timeline import Timeline
from batchops.simulation.truth import ExpectedJob
from batchops.simulation.world import AccountRegion, ServiceJob

EVERY_NTH_SUBMISSION = 20
"""One service job follows every 20th container job submission (the 4th, the 24th, ...), in a home drawn for it."""
_FIRST = 3
_P_BLOCKED = 0.3
_P_BLOCKED_FOREVER = 0.25
_P_FAILED = 0.12
_INSTANCE_COUNTS = (1, 1, 1, 2, 2, 4, 8)
REASON_SERVICE_CAPACITY = (
    "CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY - Service environment(s) associated with the job queue do not have"
    " enough capacity for the job yet."
)
REASON_SERVICE_MAX_RESOURCE = (
    "MISCONFIGURATION:SERVICE_ENVIRONMENT_MAX_RESOURCE - Service environment(s) associated with the job queue"
    " cannot meet the capacity requirement of the job."
)
REASON_TRAINED = "Received status from SageMaker: Training job completed"
REASON_TRAINING_FAILED = "Received status from SageMaker: AlgorithmError: training script exited with status 1"


class ServiceJobs:
    """Plans service jobs in the homes' SageMaker queues; records their truth when asked to."""

    def __init__(
        self, seed: int, timeline: Timeline, homes: list[AccountRegion], truth: list[ExpectedJob] | None
    ) -> None:
        self.rng = random.Random(f"batchops-simulate-service-jobs:{seed}")
        self.timeline = timeline
        self.homes = homes
        self.truth = truth
        self.submissions = 0

    def after_submission(self, submitted_ms: int) -> None:
        """Count a container job's submission; every `EVERY_NTH_SUBMISSION`th is followed by a service job."""
        self.submissions += 1
        if self.submissions % EVERY_NTH_SUBMISSION == _FIRST + 1:
            self._plan(self._new_job(submitted_ms + between(self.rng, 50, 400)))

    def _new_job(self, submitted_ms: int) -> ServiceJob:
        rng = self.rng
        home = self.homes[rng.randrange(len(self.homes))]
        job_id = uuid4(rng)
        name = f"train-{rng.choice(('forecast', 'ranker', 'embeddings', 'vision'))}-{submitted_ms // 1000}"
        training = f"AWSBatch{name}{hex_digits(rng, 32)}"
        return ServiceJob(
            home=home,
            queue_name="sagemaker-training",
            queue_arn=f"arn:aws:batch:{home.region}:{home.account}:job-queue/sagemaker-training",
            job_id=job_id,
            arn=f"arn:aws:batch:{home.region}:{home.account}:service-job/{job_id}",
            name=name,
            created_ms=submitted_ms,
            instances=rng.choice(_INSTANCE_COUNTS),
            share_identifier="ml" if rng.random() < 0.5 else None,
            training_job_arn=f"arn:aws:sagemaker:{home.region}:{home.account}:training-job/{training.lower()}",
            carries_secret=rng.random() < 0.2,
        )

    def _plan(self, job: ServiceJob) -> None:
        rng, at = self.rng, self.timeline.at
        if job.home.has_trail:
            at(job.created_ms, cloudtrail_submit_service_job, job, uuid4(rng), uuid4(rng))
        runnable = job.created_ms + between(rng, 1_000, 5_000)
        at(runnable, service_job_event, job, "RUNNABLE", None, None, None)
        ready = runnable
        if rng.random() < _P_BLOCKED:
            forever = rng.random() < _P_BLOCKED_FOREVER
            reason = REASON_SERVICE_MAX_RESOURCE if forever else REASON_SERVICE_CAPACITY
            blocked = runnable + between(rng, 60_000, 600_000)
            at(blocked, service_queue_blocked_event, job, reason)
            at(blocked + between(rng, 50, 900), service_job_event, job, "RUNNABLE", reason, None, None)
            if forever:
                self._record(job, "RUNNABLE", 0)
                return
            ready = blocked + between(rng, 120_000, 1_800_000)
        scheduled = job.scheduled_ms = ready + between(rng, 2_000, 30_000)
        starting = scheduled + between(rng, 30_000, 240_000)
        started = starting + between(rng, 60_000, 300_000)
        stopped = started + between(rng, 300_000, 3_600_000)
        failed = rng.random() < _P_FAILED
        at(scheduled, service_job_event, job, "SCHEDULED", None, None, None)
        at(starting, service_job_event, job, "STARTING", None, None, None)
        at(started + between(rng, 100, 2_000), service_job_event, job, "RUNNING", None, started, None)
        status, reason = ("FAILED", REASON_TRAINING_FAILED) if failed else ("SUCCEEDED", REASON_TRAINED)
        at(stopped + between(rng, 500, 5_000), service_job_event, job, status, reason, started, stopped)
        self._record(job, status, 1)

    def _record(self, job: ServiceJob, status: str, attempts: int) -> None:
        if self.truth is None:
            return
        self.truth.append(
            ExpectedJob(
                account_id=job.home.account,
                region=job.home.region,
                job_id=job.job_id,
                queue=job.queue_name,
                compute_environment=None,
                platform="SAGEMAKER",
                status=status,
                attempts=attempts,
                exit_code=None,
                pricing="unknown",  # a SageMaker training job runs on no compute environment of the account's
                instance_id=None,
                array_parent_id=None,
                array_index=None,
                array_size=None,
                failure_kind="other" if status == "FAILED" else None,
            )
        )
