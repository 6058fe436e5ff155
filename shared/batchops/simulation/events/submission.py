"""Builder of the CloudTrail SubmitJob record of a submitted job (present only in account-regions with a trail)."""

from __future__ import annotations

from typing import Any

from batchops.simulation.events.envelope import CLOUDTRAIL_API_CALL, envelope, iso_seconds
from batchops.simulation.world import Job


def cloudtrail_submit_job(
    event_id: str, epoch_ms: int, job: Job, cloudtrail_id: str, request_id: str
) -> dict[str, Any]:
    """The record CloudTrail writes for the job's SubmitJob call: its request carries the overrides, parameters and
    environment the caller sent in clear text (the user's secrets among them), as AWS's does."""
    home = job.home
    account, region = home.account, home.region
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
    detail = {
        "eventVersion": "1.09",
        "userIdentity": {
            "type": "AssumedRole",
            "principalId": f"AROA{cloudtrail_id[:8].upper()}EXAMPLE:{template.name}-scheduler",
            "arn": f"arn:aws:sts::{account}:assumed-role/BatchSubmitter/{template.name}-scheduler",
            "accountId": account,
        },
        "eventTime": iso_seconds(epoch_ms),
        "eventSource": "batch.amazonaws.com",
        "eventName": "SubmitJob",
        "awsRegion": region,
        "sourceIPAddress": "10.0.12.34",
        "userAgent": "Boto3/1.35.0 md/Botocore#1.35.0 ua/2.0 os/linux",
        "requestParameters": request,
        "responseElements": {"jobArn": job.arn, "jobName": job.name, "jobId": job.job_id},
        "requestID": request_id,
        "eventID": cloudtrail_id,
        "readOnly": False,
        "eventType": "AwsApiCall",
        "managementEvent": True,
        "recipientAccountId": account,
        "eventCategory": "Management",
    }
    return envelope(event_id, CLOUDTRAIL_API_CALL, "aws.batch", account, epoch_ms, region, [], detail)
