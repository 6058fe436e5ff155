"""The submitted jobs: single jobs, array jobs and dependencies, blocked and cancelled jobs, attempts and retries."""

from __future__ import annotations

import math
import random

from batchops.simulation.accounts import job_definition
from batchops.simulation.attempts import AttemptPlanner
from batchops.simulation.catalog import SECRET_VARIABLES, TEAMS
from batchops.simulation.events.batch import batch_job_event, queue_blocked_event
from batchops.simulation.events.submission import cloudtrail_submit_job
from batchops.simulation.outcomes import (
    CANCELLED,
    EXIT_NONZERO,
    OOM,
    REASON_ARRAY_CHILD_FAILED,
    REASON_CANCELLED,
    REASON_CAPACITY,
    REASON_MAX_RESOURCE,
    REASON_RESOURCE_REQUIREMENT,
    REASON_SPOT_CAPACITY,
    SPOT_RECLAIM,
    SUCCESS,
    TIMEOUT,
)
from batchops.simulation.randomness import between, cumulative, pick, uuid4
from batchops.simulation.settings import SECRET_VALUE
from batchops.simulation.timeline import Timeline
from batchops.simulation.truth import ExpectedJob, expected_job
from batchops.simulation.world import AccountRegion, ComputeEnvironment, Definition, Job, Queue

# Per-attempt failure odds and other rates of the default mix.
_P_SPOT_RECLAIM = 0.07
_P_OOM = 0.025
_P_EXIT_NONZERO = 0.05
_P_TIMEOUT = 0.015
_P_SAME_FAILURE_AGAIN = 0.6
_P_BLOCKED = 0.035
_P_CANCELLED = 0.012
_P_ARRAY = 0.06
_P_DEPENDS_ON = 0.08
_P_SECRET = 0.15
_ARRAY_SIZES = (2, 3, 4, 5, 8, 10, 16, 20, 32, 50)
_ARRAY_SIZE_WEIGHTS = (8, 8, 8, 6, 5, 4, 3, 2, 1, 1)


class Workload:
    """Plans each submitted job from submission to its final status; records its truth when asked to."""

    def __init__(
        self,
        rng: random.Random,
        timeline: Timeline,
        attempts: AttemptPlanner,
        homes: list[AccountRegion],
        truth: list[ExpectedJob] | None,
        seed: int = 0,
    ) -> None:
        self.rng = rng
        self.timeline = timeline
        self.attempts = attempts
        self.homes = homes
        # Drawn right after the accounts, before any other draw: moving it would change every run's bytes.
        self.home_weights = tuple(cumulative([rng.uniform(0.4, 1.6) for _ in homes]))
        self.truth = truth
        # The SubmitJob records' ids come from a stream of their own: the workload's draws stay as they were.
        self.trail_ids = random.Random(f"batchops-simulate-submit-job-records:{seed}")

    def submit(self, submitted_ms: int) -> None:
        rng = self.rng
        home = self.homes[pick(rng, self.home_weights)]
        queue = home.queues[pick(rng, home.queue_weights)]
        template = queue.templates[pick(rng, queue.template_weights)]
        environment = queue.environments[pick(rng, queue.environment_weights)]
        if template.gpu is not None and not environment.has_gpu:
            environment = queue.environments[0]
        definition = job_definition(rng, home, template)
        if template.array_capable and rng.random() < _P_ARRAY:
            self._submit_array(home, queue, environment, definition, submitted_ms)
            return
        depends_on: tuple[str, ...] = ()
        ready = submitted_ms + between(rng, 300, 3_000)
        if home.recent_successes and rng.random() < _P_DEPENDS_ON:
            dependency_id, dependency_end = rng.choice(home.recent_successes)
            depends_on = (dependency_id,)
            ready = max(ready, dependency_end + between(rng, 1_000, 6_000))
        job = self._new_job(home, queue, environment, definition, submitted_ms, depends_on)
        self._record_submission(job)
        if depends_on:
            self.timeline.at(
                submitted_ms + between(rng, 200, 1_500), batch_job_event, job, "PENDING", 0, -1, None, None
            )
        status, finished = self._run(job, ready, is_child=False)
        if status == "SUCCEEDED":
            home.recent_successes.append((job.job_id, finished))

    def _new_job(
        self,
        home: AccountRegion,
        queue: Queue,
        environment: ComputeEnvironment,
        definition: Definition,
        submitted_ms: int,
        depends_on: tuple[str, ...],
    ) -> Job:
        rng = self.rng
        template = definition.template
        run_number = f"{between(rng, 1, 100_000):05d}"
        parameters = tuple((key, value.format(n=run_number)) for key, value in template.parameters)
        variables = [(key, value.format(n=run_number, region=home.region)) for key, value in template.environment]
        if rng.random() < _P_SECRET:
            variables.append((rng.choice(SECRET_VARIABLES), SECRET_VALUE))
        job_id = uuid4(rng)
        arn = f"arn:aws:batch:{home.region}:{home.account}:job/{job_id}"
        tags: tuple[tuple[str, str], ...] = (("resourceArn", arn),)
        if rng.random() < 0.5:
            tags = (*tags, ("team", rng.choice(TEAMS)), ("cost-center", f"cc-{between(rng, 100, 999)}"))
        roll = rng.random()
        retry_attempts = 1 if roll < 0.35 else 2 if roll < 0.7 else 3
        suffix = str(submitted_ms // 1000) if rng.random() < 0.5 else run_number
        name = f"{template.name}-{suffix}"
        return Job(
            home=home,
            queue=queue,
            environment=environment,
            definition=definition,
            job_id=job_id,
            arn=arn,
            name=name,
            created_ms=submitted_ms,
            retry_attempts=retry_attempts,
            parameters=parameters,
            user_environment=tuple(variables),
            tags=tags,
            depends_on=depends_on,
        )

    def _submit_array(
        self,
        home: AccountRegion,
        queue: Queue,
        environment: ComputeEnvironment,
        definition: Definition,
        submitted_ms: int,
    ) -> None:
        rng = self.rng
        size = rng.choices(_ARRAY_SIZES, weights=_ARRAY_SIZE_WEIGHTS)[0]
        parent = self._new_job(home, queue, environment, definition, submitted_ms, ())
        parent.array_size = size
        self._record_submission(parent)
        self.timeline.at(submitted_ms + between(rng, 300, 1_500), batch_job_event, parent, "PENDING", 0, -1, None, None)
        finished = submitted_ms
        for index in range(size):
            child = Job(
                home=home,
                queue=queue,
                environment=environment,
                definition=definition,
                job_id=f"{parent.job_id}:{index}",
                arn=f"{parent.arn}:{index}",
                name=parent.name,
                created_ms=submitted_ms,
                retry_attempts=parent.retry_attempts,
                parameters=parent.parameters,
                user_environment=parent.user_environment,
                tags=(("resourceArn", f"{parent.arn}:{index}"), *parent.tags[1:]),
                depends_on=(),
                array_index=index,
                parent_id=parent.job_id,
            )
            status, child_finished = self._run(child, submitted_ms + between(rng, 1_000, 4_000), is_child=True)
            if status == "SUCCEEDED":
                parent.succeeded_children += 1
            else:
                parent.failed_children += 1
            finished = max(finished, child_finished)
        status = "FAILED" if parent.failed_children else "SUCCEEDED"
        stopped = finished + between(rng, 1_000, 5_000)
        reason = REASON_ARRAY_CHILD_FAILED if parent.failed_children else None
        self.timeline.at(stopped, batch_job_event, parent, status, 0, -1, reason, stopped)
        self._record(parent, status, None)

    def _record_submission(self, job: Job) -> None:
        """The CloudTrail SubmitJob record of a job the caller submitted (array children are Batch's own)."""
        if job.home.has_trail:
            ids = self.trail_ids
            self.timeline.at(job.created_ms, cloudtrail_submit_job, job, uuid4(ids), uuid4(ids))

    def _run(self, job: Job, ready: int, is_child: bool) -> tuple[str, int]:
        """Plan a job from RUNNABLE to its end; returns its final status and the time of its last event."""
        rng = self.rng
        self.timeline.at(ready, batch_job_event, job, "RUNNABLE", 0, -1, None, None)
        roll = rng.random()
        if roll < _P_BLOCKED:
            fate = rng.random()
            forever = not is_child and fate < 0.25
            cancelled = not is_child and not forever and fate < 0.45
            reason = self._blocking_reason(job, forever)
            blocked = ready + between(rng, 180_000, 720_000)
            self.timeline.at(blocked, queue_blocked_event, job, reason)
            self.timeline.at(blocked + between(rng, 50, 900), batch_job_event, job, "RUNNABLE", 0, -1, reason, None)
            if forever:
                self._record(job, "RUNNABLE", None)
                return "RUNNABLE", blocked + 900
            if cancelled:
                return self._cancel(job, blocked + between(rng, 300_000, 3_600_000))
            wanted = blocked + between(rng, 120_000, 2_700_000)
        elif not is_child and roll < _P_BLOCKED + _P_CANCELLED:
            return self._cancel(job, ready + between(rng, 20_000, 900_000))
        else:
            wanted = ready + self._scheduling_delay()
        previous_kind: str | None = None
        number = 0
        while True:
            number += 1
            kind = self._outcome(job, previous_kind)
            attempt = self.attempts.plan(job, number, kind, wanted)
            if kind == SUCCESS or number >= job.retry_attempts:
                status = "SUCCEEDED" if kind == SUCCESS else "FAILED"
                finished = attempt.stopped_ms + between(rng, 800, 5_000)
                reason = attempt.status_reason
                self.timeline.at(finished, batch_job_event, job, status, number, number - 1, reason, attempt.stopped_ms)
                self._record(job, status, None if kind == SUCCESS else kind)
                return status, finished
            retried = attempt.stopped_ms + between(rng, 800, 4_000)
            self.timeline.at(retried, batch_job_event, job, "RUNNABLE", number, -1, None, None)
            wanted = retried + self._scheduling_delay()
            previous_kind = kind

    def _cancel(self, job: Job, moment: int) -> tuple[str, int]:
        self.timeline.at(moment, batch_job_event, job, "FAILED", 0, -1, REASON_CANCELLED, moment)
        self._record(job, "FAILED", CANCELLED)
        return "FAILED", moment

    def _blocking_reason(self, job: Job, forever: bool) -> str:
        if forever:
            return REASON_RESOURCE_REQUIREMENT
        environment = job.environment
        if environment.platform == "FARGATE":
            return REASON_MAX_RESOURCE
        if environment.resource_type == "SPOT" and self.rng.random() < 0.5:
            return REASON_SPOT_CAPACITY
        return REASON_CAPACITY.format(itype=self.rng.choice(environment.instance_types).name)

    def _scheduling_delay(self) -> int:
        return min(300_000, int(self.rng.lognormvariate(math.log(6_000), 0.8)))

    def _outcome(self, job: Job, previous_kind: str | None) -> str:
        rng = self.rng
        if previous_kind in (OOM, EXIT_NONZERO, TIMEOUT) and rng.random() < _P_SAME_FAILURE_AGAIN:
            return previous_kind  # a deterministic failure tends to fail again
        roll = rng.random()
        if job.environment.resource_type == "SPOT":
            if roll < _P_SPOT_RECLAIM:
                return SPOT_RECLAIM
            roll -= _P_SPOT_RECLAIM
        if roll < _P_OOM:
            return OOM
        roll -= _P_OOM
        if roll < _P_EXIT_NONZERO:
            return EXIT_NONZERO
        roll -= _P_EXIT_NONZERO
        if job.definition.template.timeout_seconds is not None and roll < _P_TIMEOUT:
            return TIMEOUT
        return SUCCESS

    def _record(self, job: Job, status: str, failure_kind: str | None) -> None:
        if self.truth is not None:
            self.truth.append(expected_job(job, status, failure_kind))
