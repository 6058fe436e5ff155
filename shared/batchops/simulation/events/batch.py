"""Builders of the aws.batch events: Batch Job State Change and Batch Job Queue Blocked."""

from __future__ import annotations

from typing import Any

from batchops.simulation.catalog import JobTemplate
from batchops.simulation.events.envelope import BATCH_JOB_QUEUE_BLOCKED, BATCH_JOB_STATE_CHANGE, envelope
from batchops.simulation.world import Attempt, Job

_TERMINAL = ("SUCCEEDED", "FAILED")


def _resource_requirements(template: JobTemplate) -> list[dict[str, str]]:
    requirements = [{"value": template.vcpu, "type": "VCPU"}, {"value": template.memory, "type": "MEMORY"}]
    if template.memory_first:
        requirements.reverse()
    if template.gpu is not None:
        requirements.append({"value": template.gpu, "type": "GPU"})
    return requirements


def _secrets(job: Job) -> list[dict[str, str]]:
    return [{"name": name, "valueFrom": arn} for name, arn in job.definition.secrets]


def _network_interfaces(attempt: Attempt | None) -> list[dict[str, str]]:
    if attempt is None or attempt.network is None:
        return []
    return [{"attachmentId": attempt.network.attachment_id, "privateIpv4Address": attempt.network.private_ip}]


def _container_instance_arn(attempt: Attempt) -> str | None:
    return attempt.instance.container_instance_arn if attempt.instance is not None else None


def _attempt_record(job: Job, attempt: Attempt) -> dict[str, Any]:
    task_arn = attempt.task_arn
    if job.definition.template.sidecar:
        containers = []
        for name, exit_code in job.sidecar_layout(attempt):
            container: dict[str, Any] = {}
            if exit_code is not None:
                container["exitCode"] = exit_code
            container["name"] = name
            container["logStreamName"] = job.log_stream(attempt, name)
            container["networkInterfaces"] = []
            containers.append(container)
        task: dict[str, Any] = {}
        instance_arn = _container_instance_arn(attempt)
        if instance_arn is not None:
            task["containerInstanceArn"] = instance_arn
        task["taskArn"] = task_arn
        task["containers"] = containers
        return {
            "startedAt": attempt.running_ms,
            "stoppedAt": attempt.stopped_ms,
            "statusReason": attempt.status_reason,
            "taskProperties": [task],
        }
    record: dict[str, Any] = {}
    instance_arn = _container_instance_arn(attempt)
    if instance_arn is not None:
        record["containerInstanceArn"] = instance_arn
    record["taskArn"] = task_arn
    if attempt.exit_code is not None:
        record["exitCode"] = attempt.exit_code
    if attempt.container_reason is not None:
        record["reason"] = attempt.container_reason
    record["logStreamName"] = job.log_stream(attempt)
    record["networkInterfaces"] = _network_interfaces(attempt)
    return {
        "container": record,
        "startedAt": attempt.running_ms,
        "stoppedAt": attempt.stopped_ms,
        "statusReason": attempt.status_reason,
    }


def _container(job: Job, status: str, shown: Attempt | None) -> dict[str, Any]:
    definition = job.definition
    template = definition.template
    fargate = job.environment.platform == "FARGATE"
    container: dict[str, Any] = {
        "image": definition.image,
        "command": list(template.command),
        "jobRoleArn": definition.job_role,
        "executionRoleArn": definition.execution_role,
        "volumes": [],
        "environment": [{"name": name, "value": value} for name, value in job.user_environment],
        "mountPoints": [],
        "ulimits": [],
    }
    if template.legacy_resources:
        container["vcpus"] = int(template.vcpu)
        container["memory"] = int(template.memory)
    else:
        container["resourceRequirements"] = _resource_requirements(template)
    container["secrets"] = _secrets(job)
    if fargate:
        container["fargatePlatformConfiguration"] = {"platformVersion": "LATEST"}
        container["networkConfiguration"] = {"assignPublicIp": "DISABLED"}
    if shown is not None:
        instance_arn = _container_instance_arn(shown)
        if instance_arn is not None:
            container["containerInstanceArn"] = instance_arn
        container["taskArn"] = shown.task_arn
        if status != "STARTING":
            container["logStreamName"] = job.log_stream(shown)
        if status in _TERMINAL:
            if shown.exit_code is not None:
                container["exitCode"] = shown.exit_code
            if shown.container_reason is not None:
                container["reason"] = shown.container_reason
    container["networkInterfaces"] = _network_interfaces(shown)
    return container


def _ecs_properties(job: Job, status: str, shown: Attempt | None) -> dict[str, Any]:
    definition = job.definition
    template = definition.template
    containers = []
    for name, exit_code in job.sidecar_layout(shown):
        main = name == "main"
        container: dict[str, Any] = {
            "command": list(template.command) if main else [],
            "dependsOn": [],
            "environment": (
                [{"name": key, "value": value} for key, value in job.user_environment]
                if main
                else [{"name": "FLB_LOG_LEVEL", "value": "info"}]
            ),
            "essential": main,
            "image": definition.image if main else definition.sidecar_image,
            "mountPoints": [],
            "name": name,
            "resourceRequirements": (
                _resource_requirements(template)
                if main
                else [{"value": "0.25", "type": "VCPU"}, {"value": "256", "type": "MEMORY"}]
            ),
            "secrets": [],
            "ulimits": [],
        }
        if shown is not None:
            if status in _TERMINAL and exit_code is not None:
                container["exitCode"] = exit_code
            container["logStreamName"] = job.log_stream(shown, name)
        container["networkInterfaces"] = []
        containers.append(container)
    task: dict[str, Any] = {"containers": containers}
    if shown is not None:
        instance_arn = _container_instance_arn(shown)
        if instance_arn is not None:
            task["containerInstanceArn"] = instance_arn
        task["taskArn"] = shown.task_arn
    task["executionRoleArn"] = definition.execution_role
    task["taskRoleArn"] = definition.job_role
    task["volumes"] = []
    return {"taskProperties": [task]}


def _job_detail(
    job: Job, status: str, finished_attempts: int, shown_attempt: int, reason: str | None, stopped: int | None
) -> dict[str, Any]:
    # shown_attempt: index of the attempt whose task the event describes (-1: none, e.g. RUNNABLE).
    shown = job.attempts[shown_attempt] if shown_attempt >= 0 else None
    template = job.definition.template
    detail: dict[str, Any] = {
        "jobArn": job.arn,
        "jobName": job.name,
        "jobId": job.job_id,
        "jobQueue": job.queue.arn,
        "status": status,
    }
    if job.queue.share_identifier is not None:
        detail["shareIdentifier"] = job.queue.share_identifier
        detail["schedulingPriority"] = 1
    detail["attempts"] = [_attempt_record(job, attempt) for attempt in job.attempts[:finished_attempts]]
    if reason is not None:
        detail["statusReason"] = reason
    detail["createdAt"] = job.created_ms
    detail["retryStrategy"] = {"attempts": job.retry_attempts, "evaluateOnExit": []}
    if shown is not None and status != "STARTING":
        detail["startedAt"] = shown.running_ms
    if stopped is not None:
        detail["stoppedAt"] = stopped
    detail["dependsOn"] = [{"jobId": job_id} for job_id in job.depends_on]
    detail["jobDefinition"] = job.definition.arn
    detail["parameters"] = dict(job.parameters)
    if template.timeout_seconds is not None:
        detail["timeout"] = {"attemptDurationSeconds": template.timeout_seconds}
    if not template.sidecar:
        detail["container"] = _container(job, status, shown)
    detail["tags"] = dict(job.tags)
    detail["propagateTags"] = job.definition.propagate_tags
    if job.environment.platform == "FARGATE":
        detail["platformCapabilities"] = ["FARGATE"]
    else:
        detail["platformCapabilities"] = [] if job.definition.empty_platform_capabilities else ["EC2"]
    detail["eksAttempts"] = []
    if template.sidecar:
        detail["ecsProperties"] = _ecs_properties(job, status, shown)
    if job.array_size is not None:
        summary: dict[str, int] = {}
        if status in _TERMINAL:
            summary = {
                "STARTING": 0,
                "FAILED": job.failed_children,
                "RUNNING": 0,
                "SUCCEEDED": job.succeeded_children,
                "RUNNABLE": 0,
                "SUBMITTED": 0,
                "PENDING": 0,
            }
        detail["arrayProperties"] = {"statusSummary": summary, "size": job.array_size}
    elif job.array_index is not None:
        detail["arrayProperties"] = {"index": job.array_index, "statusSummary": {}}
    return detail


def batch_job_event(
    event_id: str,
    epoch_ms: int,
    job: Job,
    status: str,
    finished_attempts: int,
    shown_attempt: int,
    reason: str | None,
    stopped: int | None,
) -> dict[str, Any]:
    home = job.home
    detail = _job_detail(job, status, finished_attempts, shown_attempt, reason, stopped)
    return envelope(
        event_id, BATCH_JOB_STATE_CHANGE, "aws.batch", home.account, epoch_ms, home.region, [job.arn], detail
    )


def queue_blocked_event(event_id: str, epoch_ms: int, job: Job, reason: str) -> dict[str, Any]:
    home = job.home
    detail = _job_detail(job, "RUNNABLE", 0, -1, None, None)
    detail["statusReason"] = reason  # the blocking reason comes last, as in AWS's sample
    return envelope(
        event_id,
        BATCH_JOB_QUEUE_BLOCKED,
        "aws.batch",
        home.account,
        epoch_ms,
        home.region,
        [job.arn, job.queue.arn],
        detail,
    )
