"""The simulated world as it is planned: accounts and regions, compute environments, instances, jobs, attempts."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from batchops.simulation.catalog import InstanceType, JobTemplate


@dataclass(slots=True, eq=False)
class Instance:
    instance_id: str
    arn: str
    environment: ComputeEnvironment
    instance_type: InstanceType
    availability_zone: str
    subnet: str
    container_instance_arn: str
    launched_ms: int
    ready_ms: int
    idle_ms: int
    slots: list[int]
    earliest_free: int
    busy_until: int
    warned_ms: int | None = None
    terminated_ms: int | None = None
    alive: bool = True
    # Mutated only while events are released (in time order), so versions increase with time.
    status: str = "REGISTERING"
    version: int = 1
    used_cpu: int = 0
    used_memory: int = 0


@dataclass(slots=True, eq=False)
class ComputeEnvironment:
    account: str
    region: str
    name: str
    arn: str
    resource_type: str  # EC2 | SPOT | FARGATE | FARGATE_SPOT
    platform: str  # EC2 | FARGATE
    pricing: str  # on-demand | spot | fargate
    cluster_name: str
    cluster_arn: str
    autoscaling_group: str
    autoscaling_group_arn: str
    instance_types: tuple[InstanceType, ...]
    architecture: str
    has_gpu: bool
    ami: str
    instances: list[Instance] = field(default_factory=list)


@dataclass(slots=True, eq=False)
class Queue:
    name: str
    arn: str
    environments: tuple[ComputeEnvironment, ...]
    environment_weights: tuple[float, ...]
    templates: tuple[JobTemplate, ...]
    template_weights: tuple[float, ...]
    share_identifier: str | None


@dataclass(frozen=True, slots=True)
class Definition:
    template: JobTemplate
    arn: str
    image: str
    sidecar_image: str
    image_digest: str
    execution_role: str
    job_role: str
    task_definition_arn: str
    empty_platform_capabilities: bool
    log_router_first: bool
    propagate_tags: bool
    secrets: tuple[tuple[str, str], ...]  # name, Secrets Manager ARN (a reference, not a secret)


@dataclass(slots=True, eq=False)
class AccountRegion:
    account: str
    region: str
    availability_zones: tuple[str, ...]
    subnets: tuple[str, ...]
    security_group: str
    environments: list[ComputeEnvironment]
    queues: list[Queue]
    queue_weights: tuple[float, ...]
    definitions: dict[str, Definition]
    recent_successes: deque[tuple[str, int]]
    has_trail: bool = True  # CloudTrail records of SubmitJob reach the bus only where the account has a trail


@dataclass(frozen=True, slots=True)
class NetworkInterface:
    attachment_id: str
    eni_id: str
    private_ip: str
    mac: str
    subnet: str


@dataclass(slots=True, eq=False)
class Attempt:
    number: int
    kind: str
    environment: ComputeEnvironment
    instance: Instance | None
    availability_zone: str
    task_id: str
    task_arn: str
    container_arns: tuple[str, ...]
    network: NetworkInterface | None
    starting_ms: int
    running_ms: int
    stopped_ms: int
    exit_code: int | None
    sidecar_exit_code: int | None
    status_reason: str
    container_reason: str | None
    runtime_suffix: int
    # ECS timestamps of the task, formatted once on first use: created, connectivity, pull started,
    # pull stopped, started, execution stopped, stopping.
    ecs_times: tuple[str, str, str, str, str, str, str] | None = None


@dataclass(slots=True, eq=False)
class Job:
    home: AccountRegion
    queue: Queue
    environment: ComputeEnvironment
    definition: Definition
    job_id: str
    arn: str
    name: str
    created_ms: int
    retry_attempts: int
    parameters: tuple[tuple[str, str], ...]
    user_environment: tuple[tuple[str, str], ...]
    tags: tuple[tuple[str, str], ...]
    depends_on: tuple[str, ...]
    array_size: int | None = None
    array_index: int | None = None
    parent_id: str | None = None
    attempts: list[Attempt] = field(default_factory=list)
    succeeded_children: int = 0
    failed_children: int = 0

    def log_stream(self, attempt: Attempt, container: str = "default") -> str:
        return f"{self.definition.template.name}/{container}/{attempt.task_id}"

    def sidecar_layout(self, attempt: Attempt | None) -> list[tuple[str, int | None]]:
        """The two containers of a job with a log router (name, exit code), in the definition's order."""
        main = ("main", attempt.exit_code if attempt is not None else None)
        router = ("log-router", attempt.sidecar_exit_code if attempt is not None else None)
        return [router, main] if self.definition.log_router_first else [main, router]


@dataclass(slots=True, eq=False)
class ServiceJob:
    """A SageMaker training job submitted to a Batch service job queue (SubmitServiceJob)."""

    home: AccountRegion
    queue_name: str
    queue_arn: str
    job_id: str
    arn: str
    name: str
    created_ms: int
    instances: int
    share_identifier: str | None
    training_job_arn: str
    carries_secret: bool = False  # its training environment holds the user's secret (SubmitServiceJob records it)
    scheduled_ms: int = 0  # set when its plan is made, before any of its events is built
