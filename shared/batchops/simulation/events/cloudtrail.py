"""Builder of the CloudTrail event batchops learns a compute environment's pricing from: CreateComputeEnvironment."""

from __future__ import annotations

from typing import Any

from batchops.simulation.events.envelope import CLOUDTRAIL_API_CALL, envelope, iso_seconds
from batchops.simulation.world import AccountRegion, ComputeEnvironment


def cloudtrail_create_compute_environment(
    event_id: str,
    epoch_ms: int,
    home: AccountRegion,
    environment: ComputeEnvironment,
    cloudtrail_id: str,
    request_id: str,
) -> dict[str, Any]:
    account, region = home.account, home.region
    moment = iso_seconds(epoch_ms)
    resources: dict[str, Any] = {"type": environment.resource_type}
    if environment.platform == "EC2":
        spot = environment.resource_type == "SPOT"
        resources["allocationStrategy"] = "SPOT_PRICE_CAPACITY_OPTIMIZED" if spot else "BEST_FIT_PROGRESSIVE"
        resources["minvCpus"] = 0
        resources["maxvCpus"] = 1024
        resources["instanceTypes"] = [t.name for t in environment.instance_types]
        resources["instanceRole"] = f"arn:aws:iam::{account}:instance-profile/ecsInstanceRole"
    else:
        resources["maxvCpus"] = 256
    resources["subnets"] = list(home.subnets)
    resources["securityGroupIds"] = [home.security_group]
    detail = {
        "eventVersion": "1.08",
        "userIdentity": {
            "type": "AssumedRole",
            "principalId": f"AROA{cloudtrail_id[:8].upper()}EXAMPLE:platform-deployer",
            "arn": f"arn:aws:sts::{account}:assumed-role/PlatformDeployer/platform-deployer",
            "accountId": account,
        },
        "eventTime": moment,
        "eventSource": "batch.amazonaws.com",
        "eventName": "CreateComputeEnvironment",
        "awsRegion": region,
        "sourceIPAddress": "cloudformation.amazonaws.com",
        "userAgent": "cloudformation.amazonaws.com",
        "requestParameters": {
            "computeEnvironmentName": environment.name,
            "type": "MANAGED",
            "state": "ENABLED",
            "computeResources": resources,
        },
        "responseElements": {
            "computeEnvironmentName": environment.name,
            "computeEnvironmentArn": environment.arn,
        },
        "requestID": request_id,
        "eventID": cloudtrail_id,
        "readOnly": False,
        "eventType": "AwsApiCall",
        "managementEvent": True,
        "recipientAccountId": account,
        "eventCategory": "Management",
    }
    return envelope(event_id, CLOUDTRAIL_API_CALL, "aws.batch", account, epoch_ms, region, [], detail)
