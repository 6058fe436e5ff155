"""Inbound EventBridge events: their translation into facts, read through the tolerant pydantic models of
`batchops.inbound_models` (whose public names are importable from here too).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, NamedTuple, cast

from pydantic import ValidationError

from batchops.facts import (
    SERVICE_PLATFORM,
    AttemptFact,
    ComputeEnvironmentFact,
    InstanceFact,
    JobObservation,
    Parsed,
    TaskFact,
    compact,
    content_json,
    fingerprint_of,
)
from batchops.inbound_models import (  # noqa: F401 (importable from here, as before the models moved)
    EARLIEST_MS,
    LATEST_MS,
    PRINTABLE,
    Amount,
    ArrayProperties,
    AttemptContainer,
    AttemptTask,
    AttemptTaskContainer,
    AutoScalingDetail,
    BatchJob,
    CapacityUsage,
    CloudTrailDetail,
    CloudTrailRequest,
    CloudTrailResponse,
    ComputeResources,
    ContainerInstanceDetail,
    ContainerOverride,
    Count,
    Ec2InstanceDetail,
    EcsContainer,
    EcsProperties,
    EcsTask,
    EcsTaskDetail,
    EpochMs,
    ExitCode,
    Id,
    JobAttempt,
    JobContainer,
    JobDependency,
    LogConfiguration,
    NameValue,
    RegisteredResource,
    ResourceRequirement,
    TaskOverrides,
    Text,
    UserIdentity,
)
from batchops.names import cluster_of, compute_environment_of_cluster
from batchops.redaction import BATCH_VARIABLE_PREFIX
from batchops.times import parse_instant

JOB_STATE_CHANGE = "Batch Job State Change"
JOB_QUEUE_BLOCKED = "Batch Job Queue Blocked"
SERVICE_JOB_STATE_CHANGE = "Batch Service Job State Change"
SERVICE_JOB_QUEUE_BLOCKED = "Batch Service Job Queue Blocked"
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
SUBMIT_JOB = "SubmitJob"
SUBMIT_SERVICE_JOB = "SubmitServiceJob"
COMPUTE_ENVIRONMENT_CALLS = frozenset({"CreateComputeEnvironment", "UpdateComputeEnvironment"})

DETAIL_TYPES = frozenset(
    {
        JOB_STATE_CHANGE,
        JOB_QUEUE_BLOCKED,
        SERVICE_JOB_STATE_CHANGE,
        SERVICE_JOB_QUEUE_BLOCKED,
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


JOB_STATES = frozenset({"SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING", "SUCCEEDED", "FAILED"})
"""AWS Batch job states."""
SERVICE_JOB_STATES = JOB_STATES | {"SCHEDULED"}
"""AWS Batch service job states (SageMaker training jobs submitted through Batch)."""
KNOWN_STATES = JOB_STATES | SERVICE_JOB_STATES
_ACCOUNT = re.compile(r"[0-9]{12}")
_REGION = re.compile(r"[a-z]{2}(?:-[a-z]+)+-[0-9]{1,2}")


class FieldError(ValueError):
    """A field read from an event has an impossible value; the message starts with the field's path."""


@lru_cache(maxsize=4096)
def valid_account(account: str) -> bool:
    """True for an AWS account id (12 digits)."""
    return _ACCOUNT.fullmatch(account) is not None


@lru_cache(maxsize=4096)
def valid_region(region: str) -> bool:
    """True for a string of the shape of an AWS region (`us-east-1`, `us-gov-west-1`, `ap-southeast-5`)."""
    return _REGION.fullmatch(region) is not None


def _instant(text: str, where: str) -> int:
    """An ISO-8601 instant in a plausible range, as epoch milliseconds."""
    try:
        at = parse_instant(text)
    except (ValueError, OverflowError) as error:
        raise FieldError(f"{where}: not an ISO-8601 time ({error})") from None
    if not EARLIEST_MS <= at < LATEST_MS:
        raise FieldError(f"{where}: {text[:40]!r} is outside 2006-2099")
    return at


_SUSPECTS = (b"\\u00", b"\\b", b"\\f", b"\x7f")
"""What a control character other than tab and line breaks looks like in orjson's output (a literal backslash can
look like one too: then the strings are looked at one by one)."""
_UNPRINTABLE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_FIELD_OF_FACT = {
    "name": "detail.jobName",
    "arn": "detail.jobArn",
    "queue": "detail.jobQueue",
    "definition": "detail.jobDefinition",
    "reason": "detail.statusReason",
    "platform": "detail.platformCapabilities",
    "parent": "detail.jobId",
    "attempts": "detail.attempts",
    "current": "detail.container",
    "task": "detail.taskArn",
    "ci": "detail.containerInstanceArn",
    "az": "detail.availabilityZone",
    "status": "detail.lastStatus",
    "launch": "detail.launchType",
    "stop_code": "detail.stopCode",
    "stopped_reason": "detail.stoppedReason",
    "type": "detail.type",
    "arch": "detail.attributes",
    "state": "detail.state",
    "strategy": "detail.requestParameters.computeResources.allocationStrategy",
    "depends_on": "detail.dependsOn",
    "share": "detail.shareIdentifier",
    "capacity_unit": "detail.capacityUsage",
    "submitted_by": "detail.userIdentity.arn",
}


def _seal(fact: dict[str, Any], key: str, key_field: str) -> None:
    """Give a fact its fingerprint, once no string in it (or in its key) holds a control character."""
    content = content_json(fact)
    # One byte looked for in the common case: orjson writes every control character as an escape.
    if (b"\\" in content and any(suspect in content for suspect in _SUSPECTS)) or b"\x7f" in content:
        _look_for_control_characters(fact)
    if not key.isprintable():
        raise FieldError(f"{key_field}: contains a character that is not printable")
    fact["fp"] = fingerprint_of(content)


def _look_for_control_characters(fact: dict[str, Any]) -> None:
    for name, value in fact.items():
        if _holds_control_character(value):
            raise FieldError(f"{_FIELD_OF_FACT.get(name, 'detail.' + name)}: contains a control character")


def _holds_control_character(value: Any) -> bool:
    if isinstance(value, str):
        return _UNPRINTABLE.search(value) is not None
    if isinstance(value, dict):
        return any(_holds_control_character(v) for v in value.values())
    if isinstance(value, list):
        return any(_holds_control_character(v) for v in value)
    return False


def _log_group(options: dict[str, Any] | None, where: str) -> str | None:
    group = options.get("awslogs-group") if options else None
    if group is not None and not isinstance(group, str):
        raise FieldError(f"{where}.logConfiguration.options.awslogs-group: not a string")
    return group


@dataclass(frozen=True, slots=True)
class Unusable:
    """An event that yields no fact: rejected (bad or unknown) or ignored (known, but not about Batch)."""

    rejected: bool
    reason: str
    detail_type: str | None
    account: str | None
    region: str | None


def translate(event: Any) -> Parsed | Unusable:
    """Turn one EventBridge event (a decoded JSON value) into a routed fact, or say why not (naming the field)."""
    if not isinstance(event, dict):
        return Unusable(True, f"not a JSON object but {_shown(event)}", None, None, None)
    detail_type = event.get("detail-type")
    account = event.get("account")
    region = event.get("region")
    account_s = account if isinstance(account, str) and valid_account(account) else None
    region_s = region if isinstance(region, str) and valid_region(region) else None
    if not isinstance(detail_type, str):
        return Unusable(True, "no 'detail-type': not an EventBridge event", None, account_s, region_s)
    if detail_type not in DETAIL_TYPES:
        shown = repr(detail_type[:100])
        kept = detail_type if re.match(PRINTABLE, detail_type) and len(detail_type) <= 200 else None
        return Unusable(True, f"unknown detail-type {shown}", kept, account_s, region_s)
    try:
        if account_s is None:
            raise FieldError(f"account: {_shown(account)} is not an AWS account id (12 digits)")
        if region_s is None:
            raise FieldError(f"region: {_shown(region)} is not an AWS region")
        time = event.get("time")
        if not isinstance(time, str):
            raise FieldError(f"time: {_shown(time)} is not an ISO-8601 time")
        at = _instant(time, "time")
        detail = event.get("detail")
        if not isinstance(detail, dict):
            raise FieldError(f"detail: {_shown(detail)} is not an object")
        resources = event.get("resources", [])
        if not isinstance(resources, list) or not all(isinstance(r, str) for r in resources):
            raise FieldError("resources: not an array of strings")
        return _translate_detail(detail_type, account_s, region_s, at, detail, resources)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())).replace("instance_id", "instance-id")
        problem = first.get("msg")
        if first.get("type") == "string_pattern_mismatch":
            problem = "contains a control character"
        elif first.get("type") == "string_too_short":
            problem = "is empty"
        return Unusable(True, f"invalid {detail_type}: detail.{where}: {problem}", detail_type, account_s, region_s)
    except (ValueError, TypeError, ArithmeticError, RecursionError) as exc:
        return Unusable(True, f"invalid {detail_type}: {exc}", detail_type, account_s, region_s)


def _shown(value: Any) -> str:
    """A value as a reason shows it: a string (cut short, escaped), or the JSON type of anything else."""
    if isinstance(value, str):
        return repr(value[:40])
    if value is None or isinstance(value, bool):
        return "null" if value is None else str(value).lower()
    if isinstance(value, int | float):
        return "a number"
    return "an array" if isinstance(value, list) else "an object" if isinstance(value, dict) else type(value).__name__


def _translate_detail(
    detail_type: str, account: str, region: str, at: int, detail: dict[str, Any], resources: list[Any]
) -> Parsed | Unusable:
    if detail_type in (JOB_STATE_CHANGE, JOB_QUEUE_BLOCKED, SERVICE_JOB_STATE_CHANGE, SERVICE_JOB_QUEUE_BLOCKED):
        job = BatchJob.model_validate(detail)
        blocked = detail_type in (JOB_QUEUE_BLOCKED, SERVICE_JOB_QUEUE_BLOCKED)
        service = detail_type in (SERVICE_JOB_STATE_CHANGE, SERVICE_JOB_QUEUE_BLOCKED)
        observation = job_observation(job, at, blocked=blocked, service=service)
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


def _number(value: str | float | int | None, where: str) -> float | None:
    """A resource amount (AWS sends strings or numbers); anything but a finite, non-negative number is an error."""
    if value is None:
        return None
    try:
        amount = float(value)
    except ValueError:
        raise FieldError(f"{where}: {_shown(value)} is not a number") from None
    if not (math.isfinite(amount) and 0 <= amount < 1e12):
        raise FieldError(f"{where}: {_shown(value)} is not a plausible amount")
    return amount


def _resources(requirements: list[ResourceRequirement], where: str) -> dict[str, float]:
    totals: dict[str, float] = {}
    for i, requirement in enumerate(requirements):
        amount = _number(requirement.value, f"{where}.resourceRequirements.{i}.value")
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


def job_observation(job: BatchJob, at: int, *, blocked: bool = False, service: bool = False) -> JobObservation:
    """Normalise a Batch job event's detail (no environment, parameters or command survive); `service`: a service
    job's (a SageMaker training job scheduled by Batch)."""
    requirements, log_group, current, exit_code, essential = _containers_of(job)
    attempts = [_attempt_of(entry, i + 1, essential) for i, entry in enumerate(job.attempts)]
    done = sum(1 for entry in job.attempts if not _is_open(entry))
    parent, index, size = _array_place(job)
    status = job.status.upper()
    if status not in KNOWN_STATES:
        raise FieldError(f"detail.status: {_shown(job.status)} is not a Batch job state")
    if status not in ("SUCCEEDED", "FAILED"):
        exit_code = None
    capacity_unit, capacity = _capacity(job.capacityUsage)
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
            "platform": SERVICE_PLATFORM if service or job.serviceJobType else _platform(job),
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
            "current": _live_attempt(job, status, current, done),
            "depends_on": _dependencies(job.dependsOn),
            "share": job.shareIdentifier,
            "priority": job.schedulingPriority,
            "capacity_unit": capacity_unit,
            "capacity": capacity,
        }
    )
    _seal(observation, job.jobId, "detail.jobId")
    return cast(JobObservation, observation)


def _dependencies(entries: list[JobDependency]) -> list[str] | None:
    """The ids of the jobs a job waits for (None when it waits for none: the facts of such jobs stay as they were)."""
    ids = [entry.jobId for entry in entries if entry.jobId]
    return ids or None


def _capacity(usage: list[CapacityUsage]) -> tuple[str | None, float | None]:
    """A service job's capacity: the first unit named and the quantities given in it, summed."""
    unit: str | None = None
    total = 0.0
    for entry in usage:
        if entry.capacityUnit and entry.quantity is not None and unit in (None, entry.capacityUnit):
            unit = entry.capacityUnit
            total += entry.quantity
    return unit, (total if unit is not None else None)


class _Containers(NamedTuple):
    """What a job's containers say: resources summed, the awslogs group, where the current attempt runs (`ci`,
    `task`, `stream`), the exit code, and the essential container's name (multi-container jobs)."""

    requirements: dict[str, float]
    log_group: str | None
    current: dict[str, Any]
    exit_code: int | None
    essential: str | None


def _containers_of(job: BatchJob) -> _Containers:
    if job.container is not None:
        return _single_container(job.container)
    if job.ecsProperties is not None and job.ecsProperties.taskProperties:
        return _ecs_containers(job.ecsProperties.taskProperties)
    return _Containers({}, None, {}, None, None)


def _single_container(c: JobContainer) -> _Containers:
    """`detail.container`: the legacy vcpus and memory count where resourceRequirements do not say."""
    requirements = _resources(c.resourceRequirements, "detail.container")
    if c.vcpus is not None:
        requirements.setdefault("VCPU", c.vcpus)
    if c.memory is not None:
        requirements.setdefault("MEMORY", c.memory)
    log_group = _log_group(c.logConfiguration.options, "detail.container") if c.logConfiguration else None
    current = {"ci": c.containerInstanceArn, "task": c.taskArn, "stream": c.logStreamName}
    return _Containers(requirements, log_group, current, c.exitCode, None)


def _ecs_containers(tasks: list[EcsTask]) -> _Containers:
    """`detail.ecsProperties`: resources summed over every container; the exit code and log stream of the first
    essential container (or else of the first task's first)."""
    essential: str | None = None
    requirements: dict[str, float] = {}
    log_group: str | None = None
    current: dict[str, Any] = {}
    exit_code: int | None = None
    for t, task in enumerate(tasks):
        for n, container in enumerate(task.containers):
            where = f"detail.ecsProperties.taskProperties.{t}.containers.{n}"
            for kind, amount in _resources(container.resourceRequirements, where).items():
                requirements[kind] = requirements.get(kind, 0.0) + amount
            if container.essential and essential is None:
                essential = container.name
                exit_code = container.exitCode
                current["stream"] = container.logStreamName
            if container.logConfiguration:
                log_group = log_group or _log_group(container.logConfiguration.options, where)
    current.update(ci=tasks[0].containerInstanceArn, task=tasks[0].taskArn)
    if essential is None and tasks[0].containers:
        first = tasks[0].containers[0]
        exit_code = first.exitCode
        current["stream"] = first.logStreamName
    return _Containers(requirements, log_group, current, exit_code, essential)


def _platform(job: BatchJob) -> str:
    if "FARGATE" in job.platformCapabilities:
        return "FARGATE"
    if job.eksProperties is not None or job.eksAttempts or "EKS" in job.platformCapabilities:
        return "EKS"
    return "EC2"


def _array_place(job: BatchJob) -> tuple[str | None, int | None, int | None]:
    """An array job's parent id, index and size: a child's index is read from its id if the event does not say."""
    parent: str | None = None
    index: int | None = None
    size: int | None = None
    if job.arrayProperties is not None:
        size = job.arrayProperties.size
        index = job.arrayProperties.index
    if ":" in job.jobId:
        parent, _, raw_index = job.jobId.rpartition(":")
        if index is None and raw_index.isascii() and raw_index.isdigit() and len(raw_index) <= 9:
            index = int(raw_index)
    return parent, index, size


def _live_attempt(job: BatchJob, status: str, current: dict[str, Any], done: int) -> AttemptFact | None:
    """The attempt under way, for a job starting or running."""
    if status not in ("STARTING", "RUNNING"):
        return None
    live_values = compact({**current, "n": done + 1})
    if status == "RUNNING" and job.startedAt is not None:
        live_values["started"] = job.startedAt
    return cast(AttemptFact, live_values)


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
    if array_index is not None and ":" not in job_id and array_index.isascii() and array_index.isdigit():
        job_id = f"{job_id}:{array_index}"
    cluster = cluster_of(detail.clusterArn) or cluster_of(detail.taskArn)
    fact: dict[str, Any] = compact(
        {
            "at": at,
            "n": int(attempt) if attempt.isascii() and attempt.isdigit() and len(attempt) <= 9 else None,
            "task": detail.taskArn,
            "ci": detail.containerInstanceArn,
            "az": detail.availabilityZone,
            "ce": variables.get("AWS_BATCH_CE_NAME") or compute_environment_of_cluster(cluster),
            "status": detail.lastStatus,
            "launch": detail.launchType,
            "started": _instant(detail.startedAt, "detail.startedAt") if detail.startedAt else None,
            "stopped": _instant(detail.stoppedAt, "detail.stoppedAt") if detail.stoppedAt else None,
            "stop_code": detail.stopCode,
            "stopped_reason": detail.stoppedReason,
        }
    )
    _seal(fact, job_id, "detail.overrides.containerOverrides.environment.AWS_BATCH_JOB_ID")
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
    _seal(fact, detail.ec2InstanceId, "detail.ec2InstanceId")
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
    _seal(fact, detail.instance_id, "detail.instance-id")
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
    if az is not None and not isinstance(az, str):
        raise FieldError("detail.Details.Availability Zone: not a string")
    fact = compact({"at": at, "kind": kind, "az": az})
    _seal(fact, detail.EC2InstanceId, "detail.EC2InstanceId")
    return Parsed("instance", account, region, detail.EC2InstanceId, fact)


def _cloudtrail(detail: CloudTrailDetail, account: str, region: str, at: int) -> Parsed | Unusable:
    call = detail.eventName
    if call in (SUBMIT_JOB, SUBMIT_SERVICE_JOB):
        return _submission(call, detail, account, region, at)
    if call not in COMPUTE_ENVIRONMENT_CALLS:
        return Unusable(
            False,
            f"CloudTrail call {call!r} is neither a submission nor about compute environments",
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
    _seal(fact, name, "detail.requestParameters.computeEnvironmentName")
    return Parsed("compute_environment", account, region, name, dict(ComputeEnvironmentFact(**fact)))  # type: ignore[typeddict-item]


def _submission(call: str, detail: CloudTrailDetail, account: str, region: str, at: int) -> Parsed | Unusable:
    """A SubmitJob (or SubmitServiceJob) record as the job's SUBMITTED observation: where and by whom it was
    submitted, what it waits for. Nothing of the request's overrides, parameters, environment, properties or service
    request payload is read (`CloudTrailRequest`)."""
    if detail.errorCode:
        return Unusable(False, f"{call} failed ({detail.errorCode})", CLOUDTRAIL_CALL, account, region)
    request = detail.requestParameters or CloudTrailRequest()
    response = detail.responseElements or CloudTrailResponse()
    if not response.jobId:
        return Unusable(True, f"{call} record names no job (responseElements.jobId)", CLOUDTRAIL_CALL, account, region)
    service = call == SUBMIT_SERVICE_JOB or request.serviceJobType is not None
    fact: dict[str, Any] = compact(
        {
            "at": _instant(detail.eventTime, "detail.eventTime") if detail.eventTime else at,
            "status": "SUBMITTED",
            "call": call,
            "platform": SERVICE_PLATFORM if service else None,
            "arn": response.jobArn,
            "name": response.jobName or request.jobName,
            "queue": _name_of(request.jobQueue),
            "definition": request.jobDefinition,
            "size": request.arrayProperties.size if request.arrayProperties else None,
            "depends_on": _dependencies(request.dependsOn),
            "share": request.shareIdentifier,
            "priority": _first_known(request.schedulingPriorityOverride, request.schedulingPriority),
            "submitted_by": detail.userIdentity.arn if detail.userIdentity else None,
        }
    )
    _seal(fact, response.jobId, "detail.responseElements.jobId")
    return Parsed("job_state", account, region, response.jobId, fact)


def _first_known(*values: int | None) -> int | None:
    return next((value for value in values if value is not None), None)
