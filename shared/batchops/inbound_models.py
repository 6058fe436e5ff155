"""The tolerant pydantic readers of the EventBridge event details `batchops.inbound` translates into facts.

The models ignore unknown fields and accept the old and new shapes AWS sends (legacy container
vcpus/memory, resourceRequirements as strings, multi-container `ecsProperties` jobs with no
`container`, sparse EKS jobs). Only what the projections need is read, so user environment values,
parameters and commands are never copied out of an event.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

EARLIEST_MS = 1_136_073_600_000
"""2006-01-01T00:00:00Z, before AWS: an earlier time is not a real one (seconds taken for milliseconds, a bool)."""
LATEST_MS = 4_102_444_800_000
"""2100-01-01T00:00:00Z: a later time is not a real one (microseconds taken for milliseconds)."""
PRINTABLE = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*$"
"""No control character but tab and line breaks."""

Text = str
"""A string (valid Unicode: no lone surrogate); control characters are looked for once per fact (`inbound._seal`)."""
Id = Annotated[str, StringConstraints(min_length=1, pattern=PRINTABLE)]
EpochMs = Annotated[int, Field(ge=EARLIEST_MS, lt=LATEST_MS)]
ExitCode = Annotated[int, Field(ge=-(2**31), lt=2**32)]
Count = Annotated[int, Field(ge=0, lt=2**31)]
Amount = Annotated[float, Field(ge=0, lt=1e12, allow_inf_nan=False)]
Priority = Annotated[int, Field(ge=0, lt=2**31)]
"""A scheduling priority (AWS allows 0-9999; anything that fits a 32-bit integer is kept)."""


class _Tolerant(BaseModel):
    # Unknown fields are ignored, but a field that is read has its type: a bool is no time, a number no name.
    model_config = ConfigDict(extra="ignore", frozen=True, strict=True)


class ResourceRequirement(_Tolerant):
    """A VCPU / MEMORY / GPU requirement; values arrive as strings."""

    type: Text | None = None
    value: Text | float | int | None = None


class LogConfiguration(_Tolerant):
    """A container's log driver settings (only the awslogs group is read)."""

    logDriver: Text | None = None
    options: dict[str, Any] | None = None


class AttemptContainer(_Tolerant):
    """`attempts[].container` of a single-container job."""

    containerInstanceArn: Text | None = None
    taskArn: Text | None = None
    exitCode: ExitCode | None = None
    reason: Text | None = None
    logStreamName: Text | None = None


class AttemptTaskContainer(_Tolerant):
    """One container of an attempt of a multi-container job."""

    name: Text | None = None
    exitCode: ExitCode | None = None
    reason: Text | None = None
    logStreamName: Text | None = None


class AttemptTask(_Tolerant):
    """`attempts[].taskProperties[]` of a multi-container job."""

    containerInstanceArn: Text | None = None
    taskArn: Text | None = None
    containers: list[AttemptTaskContainer] = []


class JobAttempt(_Tolerant):
    """One entry of a job's `attempts[]`."""

    container: AttemptContainer | None = None
    taskProperties: list[AttemptTask] = []
    startedAt: EpochMs | None = None
    stoppedAt: EpochMs | None = None
    statusReason: Text | None = None


class JobContainer(_Tolerant):
    """`detail.container` of a single-container job (legacy and current shapes)."""

    vcpus: Amount | None = None
    memory: Amount | None = None
    resourceRequirements: list[ResourceRequirement] = []
    exitCode: ExitCode | None = None
    reason: Text | None = None
    containerInstanceArn: Text | None = None
    taskArn: Text | None = None
    logStreamName: Text | None = None
    logConfiguration: LogConfiguration | None = None


class EcsContainer(_Tolerant):
    """A container of a multi-container (`ecsProperties`) job."""

    name: Text | None = None
    essential: bool | None = None
    exitCode: ExitCode | None = None
    reason: Text | None = None
    logStreamName: Text | None = None
    resourceRequirements: list[ResourceRequirement] = []
    logConfiguration: LogConfiguration | None = None


class EcsTask(_Tolerant):
    """`ecsProperties.taskProperties[]`."""

    containerInstanceArn: Text | None = None
    taskArn: Text | None = None
    containers: list[EcsContainer] = []


class EcsProperties(_Tolerant):
    """`detail.ecsProperties` of a multi-container job."""

    taskProperties: list[EcsTask] = []


class ArrayProperties(_Tolerant):
    """`detail.arrayProperties`: size on a parent, index on a child."""

    size: Count | None = None
    index: Count | None = None


class JobDependency(_Tolerant):
    """One entry of `dependsOn` (a job event's, or a SubmitJob request's)."""

    jobId: Text | None = None
    type: Text | None = None


class CapacityUsage(_Tolerant):
    """One entry of a service job's `capacityUsage` (for SageMaker training jobs: NUM_INSTANCES)."""

    capacityUnit: Text | None = None
    quantity: Amount | None = None


class BatchJob(_Tolerant):
    """`detail` of Batch Job State Change and Batch Job Queue Blocked, and of their service job counterparts
    (DescribeServiceJob's shape: no container, `serviceJobType` and `capacityUsage` instead)."""

    jobArn: Text | None = None
    jobName: Text | None = None
    jobId: Id
    jobQueue: Text | None = None
    status: Text
    statusReason: Text | None = None
    attempts: list[JobAttempt] = []
    createdAt: EpochMs | None = None
    startedAt: EpochMs | None = None
    stoppedAt: EpochMs | None = None
    jobDefinition: Text | None = None
    container: JobContainer | None = None
    ecsProperties: EcsProperties | None = None
    eksProperties: dict[str, Any] | None = None
    eksAttempts: list[Any] = []
    platformCapabilities: list[Text] = []
    arrayProperties: ArrayProperties | None = None
    dependsOn: list[JobDependency] = []
    shareIdentifier: Text | None = None
    schedulingPriority: Priority | None = None
    serviceJobType: Text | None = None
    capacityUsage: list[CapacityUsage] = []


class NameValue(_Tolerant):
    """A `{name, value}` pair (environment variables, ECS attributes)."""

    name: Text | None = None
    value: Text | None = None


class ContainerOverride(_Tolerant):
    """`overrides.containerOverrides[]`: only the environment is read, and only AWS_BATCH_* of it."""

    environment: list[NameValue] = []


class TaskOverrides(_Tolerant):
    """`detail.overrides` of an ECS task."""

    containerOverrides: list[ContainerOverride] = []


class EcsTaskDetail(_Tolerant):
    """`detail` of ECS Task State Change."""

    clusterArn: Text | None = None
    containerInstanceArn: Text | None = None
    taskArn: Text | None = None
    lastStatus: Text | None = None
    availabilityZone: Text | None = None
    launchType: Text | None = None
    version: Count | None = None
    startedAt: Text | None = None
    stoppedAt: Text | None = None
    stopCode: Text | None = None
    stoppedReason: Text | None = None
    overrides: TaskOverrides | None = None


class RegisteredResource(_Tolerant):
    """`registeredResources[]` of a container instance."""

    name: Text | None = None
    integerValue: Count | None = None


class ContainerInstanceDetail(_Tolerant):
    """`detail` of ECS Container Instance State Change."""

    clusterArn: Text | None = None
    containerInstanceArn: Text | None = None
    ec2InstanceId: Text | None = None
    status: Text | None = None
    attributes: list[NameValue] = []
    registeredResources: list[RegisteredResource] = []


class Ec2InstanceDetail(_Tolerant):
    """`detail` of the EC2 instance events (state change, spot warning, rebalance)."""

    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)
    instance_id: Text | None = None
    state: Text | None = None

    @classmethod
    def read(cls, detail: dict[str, Any]) -> Ec2InstanceDetail:
        """Read the hyphenated keys EC2 uses."""
        return cls(instance_id=detail.get("instance-id"), state=detail.get("state"))


class AutoScalingDetail(_Tolerant):
    """`detail` of the Auto Scaling launch/terminate events."""

    EC2InstanceId: Text | None = None
    Details: dict[str, Any] | None = None
    StatusCode: Text | None = None


class ComputeResources(_Tolerant):
    """`computeResources` of a CreateComputeEnvironment request."""

    type: Text | None = None
    allocationStrategy: Text | None = None


class CloudTrailRequest(_Tolerant):
    """`requestParameters` of Create/UpdateComputeEnvironment, SubmitJob and SubmitServiceJob. Of a submission only
    the job's placement is read: its overrides, parameters, environment, properties and a service job's
    `serviceRequestPayload` (the SageMaker request, hyperparameters and environment included) are never modelled."""

    computeEnvironmentName: Text | None = None
    computeEnvironment: Text | None = None
    computeResources: ComputeResources | None = None
    jobName: Text | None = None
    jobQueue: Text | None = None
    jobDefinition: Text | None = None
    dependsOn: list[JobDependency] = []
    shareIdentifier: Text | None = None
    schedulingPriorityOverride: Priority | None = None
    schedulingPriority: Priority | None = None
    serviceJobType: Text | None = None
    arrayProperties: ArrayProperties | None = None


class CloudTrailResponse(_Tolerant):
    """`responseElements` of Create/UpdateComputeEnvironment and of SubmitJob."""

    computeEnvironmentName: Text | None = None
    computeEnvironmentArn: Text | None = None
    jobId: Id | None = None
    jobName: Text | None = None
    jobArn: Text | None = None


class UserIdentity(_Tolerant):
    """`userIdentity` of a CloudTrail record: only the principal's ARN is read."""

    arn: Text | None = None


class CloudTrailDetail(_Tolerant):
    """`detail` of an AWS API Call via CloudTrail record."""

    eventName: Text | None = None
    eventSource: Text | None = None
    eventTime: Text | None = None
    errorCode: Text | None = None
    userIdentity: UserIdentity | None = None
    requestParameters: CloudTrailRequest | None = None
    responseElements: CloudTrailResponse | None = None
