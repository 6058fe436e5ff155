"""Builders of the aws.ecs events: ECS Task State Change and ECS Container Instance State Change."""

from __future__ import annotations

from typing import Any

from batchops.simulation.events.envelope import (
    ECS_CONTAINER_INSTANCE_STATE_CHANGE,
    ECS_TASK_STATE_CHANGE,
    envelope,
    iso_ecs,
)
from batchops.simulation.outcomes import REASON_ESSENTIAL_EXITED, REASON_TIMEOUT, SPOT_RECLAIM, TIMEOUT
from batchops.simulation.world import Attempt, Instance, Job, NetworkInterface

_ECS_DESIRED = {
    "PROVISIONING": "RUNNING",
    "PENDING": "RUNNING",
    "RUNNING": "RUNNING",
    "DEPROVISIONING": "STOPPED",
    "STOPPED": "STOPPED",
}
_ENI_STATUS = {
    "PROVISIONING": "PRECREATED",
    "PENDING": "ATTACHED",
    "RUNNING": "ATTACHED",
    "DEPROVISIONING": "ATTACHED",
    "STOPPED": "DELETED",
}


def _task_times(attempt: Attempt) -> tuple[str, str, str, str, str, str, str]:
    times = attempt.ecs_times
    if times is None:
        starting, running, stopped = attempt.starting_ms, attempt.running_ms, attempt.stopped_ms
        times = attempt.ecs_times = (
            iso_ecs(starting + 57),
            iso_ecs(starting + (running - starting) // 4),
            iso_ecs(starting + (running - starting) // 2),
            iso_ecs(running - 1_234),
            iso_ecs(running),
            iso_ecs(stopped),
            iso_ecs(stopped + 211),
        )
    return times


def _task_environment(job: Job, attempt: Attempt, with_user_variables: bool) -> list[dict[str, str]]:
    """What AWS Batch passes to the container: its own variables, then the user's, in clear text."""
    variables = [
        {"name": "AWS_BATCH_JOB_ID", "value": job.job_id},
        {"name": "AWS_BATCH_JQ_NAME", "value": job.queue.name},
        {"name": "AWS_BATCH_CE_NAME", "value": attempt.environment.name},
        {"name": "AWS_BATCH_JOB_ATTEMPT", "value": str(attempt.number)},
    ]
    if job.array_index is not None:
        variables.append({"name": "AWS_BATCH_JOB_ARRAY_INDEX", "value": str(job.array_index)})
    if with_user_variables:
        variables.extend({"name": name, "value": value} for name, value in job.user_environment)
    return variables


def ecs_task_event(
    event_id: str, epoch_ms: int, job: Job, attempt: Attempt, phase: str, version: int
) -> dict[str, Any]:
    environment = attempt.environment
    containers, overrides = _task_containers(job, attempt, phase)
    detail = _task_placement(attempt, phase)
    detail["containers"] = containers
    _add_task_progress(detail, job, attempt, phase, overrides)
    if phase == "STOPPED":
        detail["stoppedAt"] = iso_ecs(epoch_ms)
        if attempt.kind == SPOT_RECLAIM:
            detail["stoppedReason"] = attempt.status_reason
        elif attempt.kind == TIMEOUT:
            detail["stoppedReason"] = REASON_TIMEOUT
            detail["stopCode"] = "UserInitiated"
        else:
            detail["stoppedReason"] = REASON_ESSENTIAL_EXITED
            detail["stopCode"] = "EssentialContainerExited"
    detail["taskArn"] = attempt.task_arn
    detail["taskDefinitionArn"] = job.definition.task_definition_arn
    detail["updatedAt"] = iso_ecs(epoch_ms)
    detail["version"] = version
    return envelope(
        event_id,
        ECS_TASK_STATE_CHANGE,
        "aws.ecs",
        environment.account,
        epoch_ms,
        environment.region,
        [attempt.task_arn],
        detail,
    )


def _task_containers(job: Job, attempt: Attempt, phase: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The task's containers as this phase shows them, and the environment overrides Batch gave each."""
    definition = job.definition
    started = phase in ("RUNNING", "DEPROVISIONING", "STOPPED")
    stopping = phase in ("DEPROVISIONING", "STOPPED")
    container_status = "PENDING" if phase == "PROVISIONING" else "STOPPED" if stopping else phase
    network = attempt.network
    layout = job.sidecar_layout(attempt) if definition.template.sidecar else [("default", attempt.exit_code)]
    containers = []
    overrides = []
    for position, (name, exit_code) in enumerate(layout):
        main = name != "log-router"
        container: dict[str, Any] = {
            "containerArn": attempt.container_arns[position],
            "lastStatus": container_status,
            "name": name,
            "image": definition.image if main else definition.sidecar_image,
        }
        if started:
            container["imageDigest"] = definition.image_digest
            container["runtimeId"] = f"{attempt.task_id}-{attempt.runtime_suffix + position}"
        container["taskArn"] = attempt.task_arn
        if phase == "STOPPED" and exit_code is not None:
            container["exitCode"] = exit_code
            if main and attempt.container_reason is not None:
                container["reason"] = attempt.container_reason
        if network is not None and phase != "PROVISIONING":
            container["networkInterfaces"] = [
                {"attachmentId": network.attachment_id, "privateIpv4Address": network.private_ip}
            ]
        else:
            container["networkInterfaces"] = []
        container["cpu"] = "0"
        containers.append(container)
        overrides.append({"environment": _task_environment(job, attempt, main), "name": name})
    return containers, overrides


def _task_placement(attempt: Attempt, phase: str) -> dict[str, Any]:
    """The first keys of a task's detail: its network attachment, architecture, zone, cluster and host."""
    environment = attempt.environment
    fargate = environment.platform == "FARGATE"
    network = attempt.network
    detail: dict[str, Any] = {}
    if network is not None:
        detail["attachments"] = [_eni_attachment(network, phase)]
    detail["attributes"] = [{"name": "ecs.cpu-architecture", "value": environment.architecture}]
    detail["availabilityZone"] = attempt.availability_zone
    if fargate:
        detail["capacityProviderName"] = environment.resource_type
    detail["clusterArn"] = environment.cluster_arn
    if fargate and phase != "PROVISIONING":
        detail["connectivity"] = "CONNECTED"
        detail["connectivityAt"] = _task_times(attempt)[1]
    if attempt.instance is not None:
        detail["containerInstanceArn"] = attempt.instance.container_instance_arn
    return detail


def _eni_attachment(network: NetworkInterface, phase: str) -> dict[str, Any]:
    return {
        "id": network.attachment_id,
        "type": "eni",
        "status": _ENI_STATUS[phase],
        "details": [
            {"name": "subnetId", "value": network.subnet},
            {"name": "networkInterfaceId", "value": network.eni_id},
            {"name": "macAddress", "value": network.mac},
            {"name": "privateIPv4Address", "value": network.private_ip},
        ],
    }


def _add_task_progress(
    detail: dict[str, Any], job: Job, attempt: Attempt, phase: str, overrides: list[dict[str, Any]]
) -> None:
    """The keys from `cpu` to `stoppingAt`: size, status, overrides and the timestamps reached so far."""
    template = job.definition.template
    environment = attempt.environment
    fargate = environment.platform == "FARGATE"
    times = _task_times(attempt)
    started = phase in ("RUNNING", "DEPROVISIONING", "STOPPED")
    stopping = phase in ("DEPROVISIONING", "STOPPED")
    detail["cpu"] = template.task_cpu
    detail["createdAt"] = times[0]
    detail["desiredStatus"] = _ECS_DESIRED[phase]
    detail["enableExecuteCommand"] = False
    if fargate:
        detail["ephemeralStorage"] = {"sizeInGiB": 20}
    if stopping:
        detail["executionStoppedAt"] = times[5]
    detail["group"] = f"family:{template.name}"
    detail["launchType"] = environment.platform
    detail["lastStatus"] = phase
    detail["memory"] = template.memory
    if fargate:
        detail["overrides"] = {"containerOverrides": overrides, "cpu": template.task_cpu, "memory": template.memory}
        detail["platformVersion"] = "1.4.0"
    else:
        detail["overrides"] = {"containerOverrides": overrides}
    if started:
        detail["pullStartedAt"] = times[2]
        detail["pullStoppedAt"] = times[3]
        detail["startedAt"] = times[4]
    if stopping:
        detail["stoppingAt"] = times[6]


def container_instance_event(
    event_id: str,
    epoch_ms: int,
    instance: Instance,
    status: str | None,
    cpu_delta: int,
    memory_delta: int,
) -> dict[str, Any]:
    # Status, version and remaining resources are kept here, at release, so they follow event time;
    # a task placement or stop (status None) only bumps the version of whatever status holds.
    if status is not None:
        instance.status = status
    instance.version += 1
    instance.used_cpu += cpu_delta
    instance.used_memory += memory_delta
    environment = instance.environment
    cpu = instance.instance_type.vcpus * 1024
    memory = instance.instance_type.memory_mib - 512
    detail: dict[str, Any] = {
        "agentConnected": instance.status != "INACTIVE",
        "attributes": _container_instance_attributes(instance),
        "clusterArn": environment.cluster_arn,
        "containerInstanceArn": instance.container_instance_arn,
        "ec2InstanceId": instance.instance_id,
        "registeredResources": _resources(cpu, memory),
        "remainingResources": _resources(max(0, cpu - instance.used_cpu), max(0, memory - instance.used_memory)),
        "status": instance.status,
        "version": instance.version,
        "versionInfo": {
            "agentHash": "a1f3b2c9",
            "agentVersion": "1.89.2",
            "dockerVersion": "DockerVersion: 25.0.8",
        },
        "updatedAt": iso_ecs(epoch_ms),
    }
    return envelope(
        event_id,
        ECS_CONTAINER_INSTANCE_STATE_CHANGE,
        "aws.ecs",
        environment.account,
        epoch_ms,
        environment.region,
        [instance.container_instance_arn],
        detail,
    )


def _container_instance_attributes(instance: Instance) -> list[dict[str, str]]:
    environment = instance.environment
    return [
        {"name": "ecs.capability.secrets.asm.environment-variables"},
        {"name": "ecs.capability.execution-role-awslogs"},
        {"name": "com.amazonaws.ecs.capability.logging-driver.awslogs"},
        {"name": "com.amazonaws.ecs.capability.docker-remote-api.1.44"},
        {"name": "ecs.capability.task-eni"},
        {"name": "ecs.ami-id", "value": environment.ami},
        {"name": "ecs.availability-zone", "value": instance.availability_zone},
        {"name": "ecs.instance-type", "value": instance.instance_type.name},
        {"name": "ecs.os-type", "value": "linux"},
        {"name": "ecs.os-family", "value": "LINUX"},
        {"name": "ecs.cpu-architecture", "value": environment.architecture},
        {"name": "ecs.subnet-id", "value": instance.subnet},
    ]


def _resources(cpu: int, memory: int) -> list[dict[str, Any]]:
    return [
        {"name": "CPU", "type": "INTEGER", "integerValue": cpu},
        {"name": "MEMORY", "type": "INTEGER", "integerValue": memory},
        {"name": "PORTS", "type": "STRINGSET", "stringSetValue": ["22", "2375", "2376", "51678", "51679"]},
        {"name": "PORTS_UDP", "type": "STRINGSET", "stringSetValue": []},
    ]
