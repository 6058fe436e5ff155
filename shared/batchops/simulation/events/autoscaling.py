"""Builder of the aws.autoscaling events: an instance launched or terminated by the compute environment's group."""

from __future__ import annotations

from typing import Any

from batchops.simulation.events.envelope import (
    AUTOSCALING_LAUNCH_SUCCESSFUL,
    AUTOSCALING_TERMINATE_SUCCESSFUL,
    envelope,
    iso_seconds,
)
from batchops.simulation.world import Instance


def autoscaling_event(
    event_id: str, epoch_ms: int, instance: Instance, launched: bool, began_ms: int, activity_id: str
) -> dict[str, Any]:
    environment = instance.environment
    began = iso_seconds(began_ms)
    if launched:
        detail_type = AUTOSCALING_LAUNCH_SUCCESSFUL
        description = f"Launching a new EC2 instance: {instance.instance_id}"
        cause = (
            f"At {began} an instance was started in response to a difference between desired and actual "
            "capacity, increasing the capacity."
        )
    else:
        detail_type = AUTOSCALING_TERMINATE_SUCCESSFUL
        description = f"Terminating EC2 instance: {instance.instance_id}"
        cause = (
            f"At {began} an instance was taken out of service in response to a difference between desired "
            "and actual capacity, shrinking the capacity."
        )
    detail = {
        "StatusCode": "InProgress",
        "Description": description,
        "AutoScalingGroupName": environment.autoscaling_group,
        "ActivityId": activity_id,
        "Details": {"Availability Zone": instance.availability_zone, "Subnet ID": instance.subnet},
        "RequestId": activity_id,
        "StatusMessage": "",
        "EndTime": iso_seconds(epoch_ms),
        "EC2InstanceId": instance.instance_id,
        "StartTime": began,
        "Cause": cause,
    }
    return envelope(
        event_id,
        detail_type,
        "aws.autoscaling",
        environment.account,
        epoch_ms,
        environment.region,
        [environment.autoscaling_group_arn, instance.arn],
        detail,
    )
