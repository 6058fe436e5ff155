"""Builders of the CloudTrail records of submissions, SubmitJob and SubmitServiceJob (present only in
account-regions with a trail)."""

from __future__ import annotations

import json
from typing import Any

from batchops.simulation.events.envelope import CLOUDTRAIL_API_CALL, envelope, iso_seconds
from batchops.simulation.settings import SECRET_VALUE
from batchops.simulation.world import AccountRegion, Job, ServiceJob


def _call_record(
    home: AccountRegion,
    epoch_ms: int,
    call: str,
    caller: str,
    ids: tuple[str, str],
    request: dict[str, Any],
    response: dict[str, Any],
) -> dict[str, Any]:
    """The `detail` CloudTrail writes for one Batch API call by an assumed role's session `caller`."""
    account, region = home.account, home.region
    cloudtrail_id, request_id = ids
    return {
        "eventVersion": "1.09",
        "userIdentity": {
            "type": "AssumedRole",
            "principalId": f"AROA{cloudtrail_id[:8].upper()}EXAMPLE:{caller}",
            "arn": f"arn:aws:sts::{account}:assumed-role/BatchSubmitter/{caller}",
            "accountId": account,
        },
        "eventTime": iso_seconds(epoch_ms),
        "eventSource": "batch.amazonaws.com",
        "eventName": call,
        "awsRegion": region,
        "sourceIPAddress": "10.0.12.34",
        "userAgent": "Boto3/1.35.0 md/Botocore#1.35.0 ua/2.0 os/linux",
        "requestParameters": request,
        "responseElements": response,
        "requestID": request_id,
        "eventID": cloudtrail_id,
        "readOnly": False,
        "eventType": "AwsApiCall",
        "managementEvent": True,
        "recipientAccountId": account,
        "eventCategory": "Management",
    }


def cloudtrail_submit_job(
    event_id: str, epoch_ms: int, job: Job, cloudtrail_id: str, request_id: str
) -> dict[str, Any]:
    """The record CloudTrail writes for the job's SubmitJob call: its request carries the overrides, parameters and
    environment the caller sent in clear text (the user's secrets among them), as AWS's does."""
    template = job.definition.template
    # Half the callers name the queue, half give its ARN (both are accepted); the definition is named by name:revision.
    queue = job.queue.name if int(job.job_id[0], 16) < 8 else job.queue.arn
    request: dict[str, Any] = {
        "jobName": job.name,
        "jobQueue": queue,
        "jobDefinition": job.definition.arn.rsplit("/", 1)[-1],
    }
    if job.depends_on:
        request["dependsOn"] = [{"jobId": job_id, "type": "SEQUENTIAL"} for job_id in job.depends_on]
    if job.array_size is not None:
        request["arrayProperties"] = {"size": job.array_size}
    if job.queue.share_identifier is not None:
        request["shareIdentifier"] = job.queue.share_identifier
        request["schedulingPriorityOverride"] = 1
    request["parameters"] = dict(job.parameters)
    request["containerOverrides"] = {
        "environment": [{"name": name, "value": value} for name, value in job.user_environment],
        "command": list(template.command),
    }
    response = {"jobArn": job.arn, "jobName": job.name, "jobId": job.job_id}
    ids = (cloudtrail_id, request_id)
    detail = _call_record(job.home, epoch_ms, "SubmitJob", f"{template.name}-scheduler", ids, request, response)
    return envelope(event_id, CLOUDTRAIL_API_CALL, "aws.batch", job.home.account, epoch_ms, job.home.region, [], detail)


def cloudtrail_submit_service_job(
    event_id: str, epoch_ms: int, job: ServiceJob, cloudtrail_id: str, request_id: str
) -> dict[str, Any]:
    """The record of a SubmitServiceJob call: its `serviceRequestPayload` is the SageMaker CreateTrainingJob request
    as a JSON string, with its environment in clear text (the user's secret among it, sometimes)."""
    account, region = job.home.account, job.home.region
    environment = {"MODEL_FAMILY": job.name.split("-")[1]}
    if job.carries_secret:
        environment["HF_TOKEN"] = SECRET_VALUE
    payload = {
        "TrainingJobName": job.training_job_arn.rsplit("/", 1)[-1],
        "AlgorithmSpecification": {
            "TrainingImage": f"{account}.dkr.ecr.{region}.amazonaws.com/training:latest",
            "TrainingInputMode": "File",
        },
        "RoleArn": f"arn:aws:iam::{account}:role/SageMakerTrainingRole",
        "HyperParameters": {"epochs": "20", "learning-rate": "0.0003"},
        "Environment": environment,
        "ResourceConfig": {"InstanceType": "ml.g5.2xlarge", "InstanceCount": job.instances, "VolumeSizeInGB": 100},
        "StoppingCondition": {"MaxRuntimeInSeconds": 86_400},
        "OutputDataConfig": {"S3OutputPath": f"s3://models-{account}-{region}/output"},
    }
    request: dict[str, Any] = {
        "jobName": job.name,
        "jobQueue": job.queue_name,
        "serviceJobType": "SAGEMAKER_TRAINING",
        "serviceRequestPayload": json.dumps(payload, separators=(",", ":")),
    }
    if job.share_identifier is not None:
        request["shareIdentifier"] = job.share_identifier
        request["schedulingPriority"] = 1
    request["retryStrategy"] = {"attempts": 1}
    request["timeoutConfig"] = {"attemptDurationSeconds": 86_400}
    response = {"jobArn": job.arn, "jobName": job.name, "jobId": job.job_id}
    ids = (cloudtrail_id, request_id)
    detail = _call_record(job.home, epoch_ms, "SubmitServiceJob", "ml-pipeline", ids, request, response)
    return envelope(event_id, CLOUDTRAIL_API_CALL, "aws.batch", account, epoch_ms, region, [], detail)
