"""One attempt of a job: how long it runs and how it ends, where it runs, and its Batch and ECS events."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from batchops.simulation.catalog import JobTemplate
from batchops.simulation.events.batch import batch_job_event
from batchops.simulation.events.ec2 import rebalance_recommendation
from batchops.simulation.events.ecs import container_instance_event, ecs_task_event
from batchops.simulation.fleet import Fleet
from batchops.simulation.outcomes import (
    EXIT_NONZERO,
    OOM,
    REASON_ESSENTIAL_EXITED,
    REASON_OOM,
    REASON_TIMEOUT,
    SPOT_RECLAIM,
    TIMEOUT,
)
from batchops.simulation.randomness import between, hex_digits, uuid4
from batchops.simulation.timeline import Timeline
from batchops.simulation.world import AccountRegion, Attempt, Instance, Job, NetworkInterface

_P_SKIP_RUNNING_WHEN_FAST = 0.6


@dataclass(slots=True)
class _Ending:
    """How long an attempt runs and how it ends."""

    run: int  # ms from RUNNING to the end
    warn_after: int  # ms from RUNNING to the spot interruption warning (spot reclaims only)
    exit_code: int | None
    sidecar_exit_code: int | None
    reason: str
    container_reason: str | None


def _ending(rng: random.Random, template: JobTemplate, kind: str) -> _Ending:
    median = template.median_seconds * 1000
    work = int(min(8 * 3_600_000, max(3_000, rng.lognormvariate(math.log(median), 0.9))))
    timeout_ms = None if template.timeout_seconds is None else template.timeout_seconds * 1000
    warn_after = 0
    exit_code: int | None = None
    sidecar_exit: int | None = None
    container_reason: str | None = None
    if kind == TIMEOUT and timeout_ms is not None:
        run = timeout_ms + between(rng, 200, 3_000)
        reason = REASON_TIMEOUT
    elif kind == SPOT_RECLAIM:
        warn_after = max(1_000, int(work * rng.uniform(0.1, 0.9)))
        run = warn_after + 120_000 + between(rng, 2_000, 20_000)
        reason = ""  # filled in once the instance is known
    elif kind in (OOM, EXIT_NONZERO):
        run = max(2_000, int(work * rng.uniform(0.05, 0.9)))
        if kind == OOM:
            exit_code, reason, container_reason = 137, REASON_OOM, REASON_OOM
        else:
            exit_code = rng.choice((1, 1, 1, 2, 3, 127, 139, 255))
            reason = REASON_ESSENTIAL_EXITED
    else:
        run = work if timeout_ms is None else min(work, int(timeout_ms * 0.95))
        exit_code, reason = 0, REASON_ESSENTIAL_EXITED
    if template.sidecar and exit_code is not None:
        # The log router is stopped with the task: SIGTERM gives 143, a clean shutdown 0.
        sidecar_exit = 143 if rng.random() < 0.5 else 0
    return _Ending(run, warn_after, exit_code, sidecar_exit, reason, container_reason)


class AttemptPlanner:
    """Places and plans one attempt: Batch STARTING/RUNNING, ECS task changes, and a spot reclaim."""

    def __init__(self, rng: random.Random, timeline: Timeline, fleet: Fleet) -> None:
        self.rng = rng
        self.timeline = timeline
        self.fleet = fleet

    def plan(self, job: Job, number: int, kind: str, wanted: int) -> Attempt:
        rng = self.rng
        fargate = job.environment.platform == "FARGATE"
        ending = _ending(rng, job.definition.template, kind)
        if fargate:
            # ENI provisioning, then the image pull.
            provisioned_after = between(rng, 8_000, 25_000)
            running_after = provisioned_after + between(rng, 5_000, 40_000)
        else:
            provisioned_after = 0
            running_after = between(rng, 3_000, 40_000)
        stop_tail = between(rng, 500, 3_000)
        occupancy = running_after + ending.run + stop_tail + 1_000
        instance: Instance | None = None
        network: NetworkInterface | None = None
        if fargate:
            starting = wanted  # Fargate capacity is not modelled: the task starts when scheduled
            zone, network = self._fargate_network(job.home)
        else:
            terminate_after = running_after + ending.warn_after + 120_000 if kind == SPOT_RECLAIM else None
            instance, starting = self.fleet.place(job.environment, job.home, wanted, occupancy, terminate_after)
            zone = instance.availability_zone
            if kind == SPOT_RECLAIM:
                ending.reason = f"Host EC2 (instance {instance.instance_id}) terminated."
        attempt = self._attempt(job, number, kind, instance, zone, network, starting, starting + running_after, ending)
        job.attempts.append(attempt)
        index = number - 1
        running = attempt.running_ms
        self.timeline.at(starting, batch_job_event, job, "STARTING", index, index, None, None)
        skip_running = ending.run < 30_000 and rng.random() < _P_SKIP_RUNNING_WHEN_FAST
        if not skip_running:
            self.timeline.at(
                running + between(rng, 200, 1_500), batch_job_event, job, "RUNNING", index, index, None, None
            )
        if attempt.instance is None:
            self._plan_fargate_task(job, attempt, provisioned_after, stop_tail)
        else:
            self._plan_ec2_task(job, attempt, attempt.instance, running + ending.warn_after, stop_tail, occupancy)
        return attempt

    def _fargate_network(self, home: AccountRegion) -> tuple[str, NetworkInterface]:
        """The availability zone and elastic network interface of a Fargate task."""
        rng = self.rng
        zone_index = between(rng, 0, len(home.availability_zones))
        network = NetworkInterface(
            attachment_id=uuid4(rng),
            eni_id=f"eni-{hex_digits(rng, 17)}",
            private_ip=f"10.0.{between(rng, 0, 255)}.{between(rng, 4, 254)}",
            mac=":".join(f"{between(rng, 0, 256):02x}" for _ in range(6)),
            subnet=home.subnets[zone_index],
        )
        return home.availability_zones[zone_index], network

    def _attempt(
        self,
        job: Job,
        number: int,
        kind: str,
        instance: Instance | None,
        zone: str,
        network: NetworkInterface | None,
        starting: int,
        running: int,
        ending: _Ending,
    ) -> Attempt:
        rng = self.rng
        environment = job.environment
        home = job.home
        containers = 2 if job.definition.template.sidecar else 1
        task_id = hex_digits(rng, 32)
        return Attempt(
            number=number,
            kind=kind,
            environment=environment,
            instance=instance,
            availability_zone=zone,
            task_id=task_id,
            task_arn=f"arn:aws:ecs:{home.region}:{home.account}:task/{environment.cluster_name}/{task_id}",
            container_arns=tuple(
                f"arn:aws:ecs:{home.region}:{home.account}:container/{environment.cluster_name}/{task_id}/{uuid4(rng)}"
                for _ in range(containers)
            ),
            network=network,
            starting_ms=starting,
            running_ms=running,
            stopped_ms=running + ending.run,
            exit_code=ending.exit_code,
            sidecar_exit_code=ending.sidecar_exit_code,
            status_reason=ending.reason,
            container_reason=ending.container_reason,
            runtime_suffix=between(rng, 1_000_000_000, 4_000_000_000),
        )

    def _plan_fargate_task(self, job: Job, attempt: Attempt, provisioned_after: int, stop_tail: int) -> None:
        rng = self.rng
        starting, stopped = attempt.starting_ms, attempt.stopped_ms
        self.timeline.at(starting + between(rng, 100, 800), ecs_task_event, job, attempt, "PROVISIONING", 1)
        self.timeline.at(starting + provisioned_after, ecs_task_event, job, attempt, "PENDING", 2)
        self.timeline.at(attempt.running_ms, ecs_task_event, job, attempt, "RUNNING", 3)
        self.timeline.at(stopped + between(rng, 100, stop_tail), ecs_task_event, job, attempt, "DEPROVISIONING", 4)
        self.timeline.at(stopped + stop_tail + between(rng, 10_000, 30_000), ecs_task_event, job, attempt, "STOPPED", 5)

    def _plan_ec2_task(
        self, job: Job, attempt: Attempt, host: Instance, warned: int, stop_tail: int, occupancy: int
    ) -> None:
        """The task on its container instance: placement, ECS changes, and the end of the host on a reclaim."""
        rng = self.rng
        template = job.definition.template
        starting = attempt.starting_ms
        stopped_event = attempt.stopped_ms + stop_tail
        cpu = int(float(template.vcpu) * 1024)
        memory = int(template.memory)
        self.timeline.at(starting + between(rng, 50, 400), container_instance_event, host, None, cpu, memory)
        self.timeline.at(starting + between(rng, 400, 900), ecs_task_event, job, attempt, "PENDING", 1)
        self.timeline.at(attempt.running_ms, ecs_task_event, job, attempt, "RUNNING", 2)
        self.timeline.at(stopped_event, ecs_task_event, job, attempt, "STOPPED", 3)
        if attempt.kind == SPOT_RECLAIM:
            self.fleet.reclaim(host, warned, warned + 120_000, starting)
            return
        self.timeline.at(stopped_event + between(rng, 100, 900), container_instance_event, host, None, -cpu, -memory)
        if host.environment.resource_type == "SPOT" and rng.random() < 0.02:
            # Rebalance recommendations also come for instances that are never interrupted.
            self.timeline.at(starting + between(rng, 0, occupancy), rebalance_recommendation, host)
