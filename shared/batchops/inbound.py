"""Inbound EventBridge events: tolerant pydantic readers and their translation into facts.

The models ignore unknown fields and accept the old and new shapes AWS sends (legacy container
vcpus/memory, resourceRequirements as strings, multi-container `ecsProperties` jobs with no
`container`, sparse EKS jobs). Only what the projections need is read, so user environment values,
parameters and commands are never copied out of an event.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

from pydantic import BaseModel, ConfigDict, ValidationError

from batchops.facts import (
    AttemptFact,
    ComputeEnvironmentFact,
    InstanceFact,
    JobObservation,
    Parsed,
    TaskFact,
    compact,
    fingerprint,
)
from batchops.names import cluster_of, compute_environment_of_cluster
from batchops.redaction import BATCH_VARIABLE_PREFIX
from batchops.times import parse_instant

JOB_STATE_CHANGE = "Batch Job State Change"
JOB_QUEUE_BLOCKED = "Batch Job Queue Blocked"
ECS_TASK_STATE_CHANGE = "ECS Task State Change"
ECS_CONTAINER_INSTANCE_STATE_CHANGE = "ECS Container Instance State Change"
EC2_STATE_CHANGE = "EC2 Instance State-change Notification"
EC2_SPOT_INTERRUPTION = "EC2 Spot Instance Interruption Warning"
EC2_REBALANCE = "EC2 Instance Rebalance Recommendation"
ASG_LAUNCH_OK = "EC2 Instance Launch Successful"
ASG_LAUNCH_FAILED = "EC2 Instance Launch Unsuccessful"
ASG_TERMINATE_OK = "EC2 Instance Terminate Successful"
ASG_TERMINATE_FAILED = "EC2 Instance Terminate Unsuccessful"
CLOUDTRAIL_CALL = "AWS API Call via CloudTrail"

DETAIL_TYPES = frozenset(
    {
        JOB_STATE_CHANGE,
        JOB_QUEUE_BLOCKED,
        ECS_TASK_STATE_CHANGE,
        ECS_CONTAINER_INSTANCE_STATE_CHANGE,
        EC2_STATE_CHANGE,
        EC2_SPOT_INTERRUPTION,
        EC2_REBALANCE,
        ASG_LAUNCH_OK,
        ASG_LAUNCH_FAILED,
        ASG_TERMINATE_OK,
        ASG_TERMINATE_FAILED,
        CLOUDTRAIL_CALL,
    }
)


class _Tolerant(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class ResourceRequirement(_Tolerant):
    """A VCPU / MEMORY / GPU requirement; values arrive as strings."""

    type: str | None = None
    value: str | float | int | None = None


class LogConfiguration(_Tolerant):
    """A container's log driver settings (only the awslogs group is read)."""

    logDriver: str | None = None
    options: dict[str, Any] | None = None


class AttemptContainer(_Tolerant):
    """`attempts[].container` of a single-container job."""

    containerInstanceArn: str | None = None
    taskArn: str | None = None
    exitCode: int | None = None
    reason: str | None = None
    logStreamName: str | None = None


class AttemptTaskContainer(_Tolerant):
    """One container of an attempt of a multi-container job."""

    name: str | None = None
    exitCode: int | None = None
    reason: str | None = None
    logStreamName: str | None = None


class AttemptTask(_Tolerant):
    """`attempts[].taskProperties[]` of a multi-container job."""

    containerInstanceArn: str | None = None
    taskArn: str | None = None
    containers: list[AttemptTaskContainer] = []


class JobAttempt(_Tolerant):
    """One entry of a job's `attempts[]`."""

    container: AttemptContainer | None = None
    taskProperties: list[AttemptTask] = []
    startedAt: int | None = None
    stoppedAt: int | None = None
    statusReason: str | None = None


class JobContainer(_Tolerant):
    """`detail.container` of a single-container job (legacy and current shapes)."""

    vcpus: float | None = None
    memory: float | None = None
    resourceRequirements: list[ResourceRequirement] = []
    exitCode: int | None = None
    reason: str | None = None
    containerInstanceArn: str | None = None
    taskArn: str | None = None
    logStreamName: str | None = None
    logConfiguration: LogConfiguration | None = None


class EcsContainer(_Tolerant):
    """A container of a multi-container (`ecsProperties`) job."""

    name: str | None = None
    essential: bool | None = None
    exitCode: int | None = None
    reason: str | None = None
    logStreamName: str | None = None
    resourceRequirements: list[ResourceRequirement] = []
    logConfiguration: LogConfiguration | None = None


class EcsTask(_Tolerant):
    """`ecsProperties.taskProperties[]`."""

    containerInstanceArn: str | None = None
    taskArn: str | None = None
    containers: list[EcsContainer] = []


class EcsProperties(_Tolerant):
    """`detail.ecsProperties` of a multi-container job."""

    taskProperties: list[EcsTask] = []


class ArrayProperties(_Tolerant):
    """`detail.arrayProperties`: size on a parent, index on a child."""

    size: int | None = None
    index: int | None = None


class BatchJob(_Tolerant):
    """`detail` of Batch Job State Change and Batch Job Queue Blocked."""

    jobArn: str | None = None
    jobName: str | None = None
    jobId: str
    jobQueue: str | None = None
    status: str
    statusReason: str | None = None
    attempts: list[JobAttempt] = []
    createdAt: int | None = None
    startedAt: int | None = None
    stoppedAt: int | None = None
    jobDefinition: str | None = None
    container: JobContainer | None = None
    ecsProperties: EcsProperties | None = None
    eksProperties: dict[str, Any] | None = None
    eksAttempts: list[Any] = []
    platformCapabilities: list[str] = []
    arrayProperties: ArrayProperties | None = None


class NameValue(_Tolerant):
    """A `{name, value}` pair (environment variables, ECS attributes)."""

    name: str | None = None
    value: str | None = None


class ContainerOverride(_Tolerant):
    """`overrides.containerOverrides[]`: only the environment is read, and only AWS_BATCH_* of it."""

    environment: list[NameValue] = []


class TaskOverrides(_Tolerant):
    """`detail.overrides` of an ECS task."""

    containerOverrides: list[ContainerOverride] = []


class EcsTaskDetail(_Tolerant):
    """`detail` of ECS Task State Change."""

    clusterArn: str | None = None
    containerInstanceArn: str | None = None
    taskArn: str | None = None
    lastStatus: str | None = None
    availabilityZone: str | None = None
    launchType: str | None = None
    version: int | None = None
    startedAt: str | None = None
    stoppedAt: str | None = None
    stopCode: str | None = None
    stoppedReason: str | None = None
    overrides: TaskOverrides | None = None


class RegisteredResource(_Tolerant):
    """`registeredResources[]` of a container instance."""

    name: str | None = None
    integerValue: int | None = None


class ContainerInstanceDetail(_Tolerant):
    """`detail` of ECS Container Instance State Change."""

    clusterArn: str | None = None
    containerInstanceArn: str | None = None
    ec2InstanceId: str | None = None
    status: str | None = None
    attributes: list[NameValue] = []
    registeredResources: list[RegisteredResource] = []


class Ec2InstanceDetail(_Tolerant):
    """`detail` of the EC2 instance events (state change, spot warning, rebalance)."""

    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)
    instance_id: str | None = None
    state: str | None = None

    @classmethod
    def read(cls, detail: dict[str, Any]) -> Ec2InstanceDetail:
        """Read the hyphenated keys EC2 uses."""
        return cls(instance_id=detail.get("instance-id"), state=detail.get("state"))


class AutoScalingDetail(_Tolerant):
    """`detail` of the Auto Scaling launch/terminate events."""

    EC2InstanceId: str | None = None
    Details: dict[str, Any] | None = None
    StatusCode: str | None = None


class ComputeResources(_Tolerant):
    """`computeResources` of a CreateComputeEnvironment request."""

    type: str | None = None
    allocationStrategy: str | None = None


class CloudTrailRequest(_Tolerant):
    """`requestParameters` of Create/UpdateComputeEnvironment."""

    computeEnvironmentName: str | None = None
    computeEnvironment: str | None = None
    computeResources: ComputeResources | None = None


class CloudTrailResponse(_Tolerant):
    """`responseElements` of Create/UpdateComputeEnvironment."""

    computeEnvironmentName: str | None = None
    computeEnvironmentArn: str | None = None


class CloudTrailDetail(_Tolerant):
    """`detail` of an AWS API Call via CloudTrail record."""

    eventName: str | None = None
    eventSource: str | None = None
    errorCode: str | None = None
    requestParameters: CloudTrailRequest | None = None
    responseElements: CloudTrailResponse | None = None


@dataclass(frozen=True, slots=True)
class Unusable:
    """An event that yields no fact: rejected (bad or unknown) or ignored (known, but not about Batch)."""

    rejected: bool
    reason: str
    detail_type: str | None
    account: str | None
    region: str | None


class EnvelopeError(ValueError):
    """The event is not an EventBridge envelope batchops can read."""


def translate(event: Any) -> Parsed | Unusable:
    """Turn one EventBridge event (a decoded JSON value) into a routed fact, or say why not."""
    if not isinstance(event, dict):
        return Unusable(True, f"not a JSON object but {type(event).__name__}", None, None, None)
    detail_type = event.get("detail-type")
    account = event.get("account")
    region = event.get("region")
    account_s = account if isinstance(account, str) else None
    region_s = region if isinstance(region, str) else None
    try:
        if not isinstance(detail_type, str):
            raise EnvelopeError("no 'detail-type': not an EventBridge event")
        if detail_type not in DETAIL_TYPES:
            return Unusable(True, f"unknown detail-type {detail_type!r}", detail_type, account_s, region_s)
        if not account_s or not region_s:
            raise EnvelopeError("envelope lacks 'account' or 'region'")
        time = event.get("time")
        if not isinstance(time, str):
            raise EnvelopeError("envelope lacks 'time'")
        at = parse_instant(time)
        detail = event.get("detail")
        if not isinstance(detail, dict):
            raise EnvelopeError("envelope lacks a 'detail' object")
        resources = event.get("resources")
        return _translate_detail(
            detail_type,
            account_s,
            region_s,
            at,
            detail,
            resources if isinstance(resources, list) else [],
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        return Unusable(
            True,
            f"invalid {detail_type}: {where}: {first.get('msg')}",
            _str(detail_type),
            account_s,
            region_s,
        )
    except (EnvelopeError, ValueError, TypeError) as exc:
        return Unusable(True, str(exc), _str(detail_type), account_s, region_s)


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _translate_detail(
    detail_type: str, account: str, region: str, at: int, detail: dict[str, Any], resources: list[Any]
) -> Parsed | Unusable:
    if detail_type in (JOB_STATE_CHANGE, JOB_QUEUE_BLOCKED):
        job = BatchJob.model_validate(detail)
        observation = job_observation(job, at, blocked=detail_type == JOB_QUEUE_BLOCKED)
        return Parsed("job_state", account, region, job.jobId, dict(observation))
    if detail_type == ECS_TASK_STATE_CHANGE:
        return _task(EcsTaskDetail.model_validate(detail), account, region, at)
    if detail_type == ECS_CONTAINER_INSTANCE_STATE_CHANGE:
        return _container_instance(ContainerInstanceDetail.model_validate(detail), account, region, at)
    if detail_type in (EC2_STATE_CHANGE, EC2_SPOT_INTERRUPTION, EC2_REBALANCE):
        return _ec2(detail_type, Ec2InstanceDetail.read(detail), resources, account, region, at)
    if detail_type == CLOUDTRAIL_CALL:
        return _cloudtrail(CloudTrailDetail.model_validate(detail), account, region, at)
    return _auto_scaling(detail_type, AutoScalingDetail.model_validate(detail), account, region, at)


def _number(value: str | float | int | None) -> float | None:
    if value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _resources(requirements: list[ResourceRequirement]) -> dict[str, float]:
    totals: dict[str, float] = {}
    for requirement in requirements:
        amount = _number(requirement.value)
        if requirement.type and amount is not None:
            kind = requirement.type.upper()
            totals[kind] = totals.get(kind, 0.0) + amount
    return totals


def _name_of(arn: str | None) -> str | None:
    """The last path element of an ARN (queue name from a queue ARN, definition name:revision)."""
    if not arn:
        return None
    return arn.rsplit("/", 1)[-1] if "/" in arn else arn


def _attempt_of(entry: JobAttempt, n: int, essential: str | None) -> AttemptFact:
    fact: dict[str, Any] = {
        "n": n,
        "started": entry.startedAt,
        "stopped": entry.stoppedAt,
        "reason": entry.statusReason,
    }
    if entry.container is not None:
        c = entry.container
        fact.update(
            exit=c.exitCode,
            container_reason=c.reason or None,
            ci=c.containerInstanceArn,
            task=c.taskArn,
            stream=c.logStreamName,
        )
    elif entry.taskProperties:
        task = entry.taskProperties[0]
        chosen = _essential_container(task.containers, essential)
        fact.update(ci=task.containerInstanceArn, task=task.taskArn)
        if chosen is not None:
            fact.update(exit=chosen.exitCode, container_reason=chosen.reason or None, stream=chosen.logStreamName)
    if entry.stoppedAt is None:
        fact["exit"] = None  # an open attempt has no exit code yet, whatever its containers report
    return cast(AttemptFact, compact(fact))


def _essential_container(containers: list[AttemptTaskContainer], essential: str | None) -> AttemptTaskContainer | None:
    if not containers:
        return None
    for container in containers:
        if essential is not None and container.name == essential:
            return container
    for container in containers:
        if container.exitCode not in (None, 0):
            return container
    return containers[0]


def _is_open(entry: JobAttempt) -> bool:
    return entry.startedAt is not None and entry.stoppedAt is None


def job_observation(job: BatchJob, at: int, *, blocked: bool = False) -> JobObservation:
    """Normalise a Batch job event's detail (no environment, parameters or command survive)."""
    essential: str | None = None
    requirements: dict[str, float] = {}
    log_group: str | None = None
    current: dict[str, Any] = {}
    exit_code: int | None = None
    if job.container is not None:
        c = job.container
        requirements = _resources(c.resourceRequirements)
        if c.vcpus is not None:
            requirements.setdefault("VCPU", c.vcpus)
        if c.memory is not None:
            requirements.setdefault("MEMORY", c.memory)
        if c.logConfiguration and c.logConfiguration.options:
            log_group = c.logConfiguration.options.get("awslogs-group")
        current = {"ci": c.containerInstanceArn, "task": c.taskArn, "stream": c.logStreamName}
        exit_code = c.exitCode
    elif job.ecsProperties is not None and job.ecsProperties.taskProperties:
        tasks = job.ecsProperties.taskProperties
        for task in tasks:
            for container in task.containers:
                for kind, amount in _resources(container.resourceRequirements).items():
                    requirements[kind] = requirements.get(kind, 0.0) + amount
                if container.essential and essential is None:
                    essential = container.name
                    exit_code = container.exitCode
                    current["stream"] = container.logStreamName
                if log_group is None and container.logConfiguration and container.logConfiguration.options:
                    log_group = container.logConfiguration.options.get("awslogs-group")
        current.update(ci=tasks[0].containerInstanceArn, task=tasks[0].taskArn)
        if essential is None and tasks[0].containers:
            first = tasks[0].containers[0]
            exit_code = first.exitCode
            current["stream"] = first.logStreamName
    if "FARGATE" in job.platformCapabilities:
        platform = "FARGATE"
    elif job.eksProperties is not None or job.eksAttempts or "EKS" in job.platformCapabilities:
        platform = "EKS"
    else:
        platform = "EC2"
    attempts = [_attempt_of(entry, i + 1, essential) for i, entry in enumerate(job.attempts)]
    done = sum(1 for entry in job.attempts if not _is_open(entry))
    parent: str | None = None
    index: int | None = None
    size: int | None = None
    if job.arrayProperties is not None:
        size = job.arrayProperties.size
        index = job.arrayProperties.index
    if ":" in job.jobId:
        parent, _, raw_index = job.jobId.rpartition(":")
        if index is None and raw_index.isdigit():
            index = int(raw_index)
    status = job.status.upper()
    live: AttemptFact | None = None
    if status in ("STARTING", "RUNNING"):
        live_values = compact({**current, "n": done + 1})
        if status == "RUNNING" and job.startedAt is not None:
            live_values["started"] = job.startedAt
        live = cast(AttemptFact, live_values)
    if status not in ("SUCCEEDED", "FAILED"):
        exit_code = None
    observation: dict[str, Any] = compact(
        {
            "at": at,
            "status": status,
            "reason": job.statusReason or None,
            "blocked": True if blocked else None,
            "arn": job.jobArn,
            "name": job.jobName,
            "queue": _name_of(job.jobQueue),
            "definition": job.jobDefinition,
            "platform": platform,
            "created": job.createdAt,
            "started": job.startedAt,
            "stopped": job.stoppedAt,
            "exit": exit_code,
            "vcpus": requirements.get("VCPU"),
            "memory": requirements.get("MEMORY"),
            "gpus": int(requirements["GPU"]) if "GPU" in requirements else None,
            "parent": parent,
            "index": index,
            "size": size,
            "log_group": log_group,
            "done": done,
            "attempts": attempts or None,
            "current": live,
        }
    )
    observation["fp"] = fingerprint(observation)
    return cast(JobObservation, observation)


def _batch_variables(detail: EcsTaskDetail) -> dict[str, str]:
    found: dict[str, str] = {}
    if detail.overrides is None:
        return found
    for override in detail.overrides.containerOverrides:
        for variable in override.environment:
            if variable.name and variable.value is not None and variable.name.startswith(BATCH_VARIABLE_PREFIX):
                found.setdefault(variable.name, variable.value)
    return found


def _task(detail: EcsTaskDetail, account: str, region: str, at: int) -> Parsed | Unusable:
    variables = _batch_variables(detail)
    job_id = variables.get("AWS_BATCH_JOB_ID")
    if not job_id:
        return Unusable(
            False,
            "ECS task not launched by AWS Batch (no AWS_BATCH_JOB_ID)",
            ECS_TASK_STATE_CHANGE,
            account,
            region,
        )
    attempt = variables.get("AWS_BATCH_JOB_ATTEMPT", "")
    array_index = variables.get("AWS_BATCH_JOB_ARRAY_INDEX")
    if array_index is not None and ":" not in job_id and array_index.isdigit():
        job_id = f"{job_id}:{array_index}"
    cluster = cluster_of(detail.clusterArn) or cluster_of(detail.taskArn)
    fact: dict[str, Any] = compact(
        {
            "at": at,
            "n": int(attempt) if attempt.isdigit() else None,
            "task": detail.taskArn,
            "ci": detail.containerInstanceArn,
            "az": detail.availabilityZone,
            "ce": variables.get("AWS_BATCH_CE_NAME") or compute_environment_of_cluster(cluster),
            "status": detail.lastStatus,
            "launch": detail.launchType,
            "started": parse_instant(detail.startedAt) if detail.startedAt else None,
            "stopped": parse_instant(detail.stoppedAt) if detail.stoppedAt else None,
            "stop_code": detail.stopCode,
            "stopped_reason": detail.stoppedReason,
        }
    )
    fact["fp"] = fingerprint(fact)
    return Parsed("job_task", account, region, job_id, dict(TaskFact(**fact)))  # type: ignore[typeddict-item]


def _container_instance(detail: ContainerInstanceDetail, account: str, region: str, at: int) -> Parsed | Unusable:
    if not detail.ec2InstanceId:
        return Unusable(
            False,
            "container instance without ec2InstanceId (not an EC2 instance)",
            ECS_CONTAINER_INSTANCE_STATE_CHANGE,
            account,
            region,
        )
    attributes = {a.name: a.value for a in detail.attributes if a.name}
    registered = {r.name: r.integerValue for r in detail.registeredResources if r.name}
    status = (detail.status or "").upper()
    cpu = registered.get("CPU")
    fact: dict[str, Any] = compact(
        {
            "at": at,
            "kind": "deregistered" if status in ("INACTIVE", "DEREGISTERING") else "registered",
            "ci": detail.containerInstanceArn,
            "ce": compute_environment_of_cluster(cluster_of(detail.clusterArn)),
            "type": attributes.get("ecs.instance-type"),
            "az": attributes.get("ecs.availability-zone"),
            "arch": attributes.get("ecs.cpu-architecture"),
            "vcpus": cpu / 1024 if cpu is not None else None,
            "memory": registered.get("MEMORY"),
            "state": status or None,
        }
    )
    fact["fp"] = fingerprint(fact)
    return Parsed("instance", account, region, detail.ec2InstanceId, dict(InstanceFact(**fact)))  # type: ignore[typeddict-item]


def _az_in_arn(resources: list[Any]) -> str | None:
    """Spot warnings put the AZ where the region goes: arn:aws:ec2:us-east-1a:instance/i-…"""
    for resource in resources:
        if isinstance(resource, str) and resource.startswith("arn:aws:ec2:"):
            slot = resource.split(":")[3]
            if slot and slot[-1].isalpha():
                return slot
    return None


def _ec2(
    detail_type: str, detail: Ec2InstanceDetail, resources: list[Any], account: str, region: str, at: int
) -> Parsed | Unusable:
    if not detail.instance_id:
        return Unusable(True, f"invalid {detail_type}: detail.instance-id missing", detail_type, account, region)
    if detail_type == EC2_STATE_CHANGE:
        values: dict[str, Any] = {"at": at, "kind": "state", "state": detail.state}
    elif detail_type == EC2_SPOT_INTERRUPTION:
        values = {"at": at, "kind": "spot_warning", "az": _az_in_arn(resources)}
    else:
        values = {"at": at, "kind": "rebalance", "az": _az_in_arn(resources)}
    fact = compact(values)
    fact["fp"] = fingerprint(fact)
    return Parsed("instance", account, region, detail.instance_id, fact)


def _auto_scaling(detail_type: str, detail: AutoScalingDetail, account: str, region: str, at: int) -> Parsed | Unusable:
    if not detail.EC2InstanceId:
        return Unusable(False, f"{detail_type} names no EC2 instance", detail_type, account, region)
    kind = {
        ASG_LAUNCH_OK: "launched",
        ASG_LAUNCH_FAILED: "launch_failed",
        ASG_TERMINATE_OK: "terminated",
        ASG_TERMINATE_FAILED: "terminate_failed",
    }[detail_type]
    az = (detail.Details or {}).get("Availability Zone")
    fact = compact({"at": at, "kind": kind, "az": az if isinstance(az, str) else None})
    fact["fp"] = fingerprint(fact)
    return Parsed("instance", account, region, detail.EC2InstanceId, fact)


def _cloudtrail(detail: CloudTrailDetail, account: str, region: str, at: int) -> Parsed | Unusable:
    call = detail.eventName
    if call not in ("CreateComputeEnvironment", "UpdateComputeEnvironment"):
        return Unusable(
            False,
            f"CloudTrail call {call!r} is not about compute environments",
            CLOUDTRAIL_CALL,
            account,
            region,
        )
    if detail.errorCode:
        return Unusable(False, f"{call} failed ({detail.errorCode})", CLOUDTRAIL_CALL, account, region)
    request = detail.requestParameters or CloudTrailRequest()
    response = detail.responseElements or CloudTrailResponse()
    name = response.computeEnvironmentName or request.computeEnvironmentName or _name_of(request.computeEnvironment)
    if not name:
        return Unusable(True, f"{call} record names no compute environment", CLOUDTRAIL_CALL, account, region)
    resources = request.computeResources
    fact: dict[str, Any] = compact(
        {
            "at": at,
            "call": call,
            "type": resources.type.upper() if resources and resources.type else None,
            "strategy": resources.allocationStrategy if resources else None,
            "arn": response.computeEnvironmentArn,
        }
    )
    fact["fp"] = fingerprint(fact)
    return Parsed("compute_environment", account, region, name, dict(ComputeEnvironmentFact(**fact)))  # type: ignore[typeddict-item]
