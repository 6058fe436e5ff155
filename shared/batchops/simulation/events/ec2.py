"""Builders of the aws.ec2 events: instance state changes, spot interruption warnings, rebalance recommendations."""

from __future__ import annotations

from typing import Any

from batchops.simulation.events.envelope import (
    EC2_INSTANCE_STATE_CHANGE,
    EC2_REBALANCE_RECOMMENDATION,
    EC2_SPOT_INTERRUPTION_WARNING,
    envelope,
)
from batchops.simulation.world import Instance


def ec2_state_event(event_id: str, epoch_ms: int, instance: Instance, state: str) -> dict[str, Any]:
    environment = instance.environment
    return envelope(
        event_id,
        EC2_INSTANCE_STATE_CHANGE,
        "aws.ec2",
        environment.account,
        epoch_ms,
        environment.region,
        [instance.arn],
        {"instance-id": instance.instance_id, "state": state},
    )


def spot_interruption_warning(event_id: str, epoch_ms: int, instance: Instance) -> dict[str, Any]:
    environment = instance.environment
    return envelope(
        event_id,
        EC2_SPOT_INTERRUPTION_WARNING,
        "aws.ec2",
        environment.account,
        epoch_ms,
        environment.region,
        # AWS puts the availability zone where the region goes, and no account.
        [f"arn:aws:ec2:{instance.availability_zone}:instance/{instance.instance_id}"],
        {"instance-id": instance.instance_id, "instance-action": "terminate"},
    )


def rebalance_recommendation(event_id: str, epoch_ms: int, instance: Instance) -> dict[str, Any]:
    environment = instance.environment
    return envelope(
        event_id,
        EC2_REBALANCE_RECOMMENDATION,
        "aws.ec2",
        environment.account,
        epoch_ms,
        environment.region,
        [f"arn:aws:ec2:{instance.availability_zone}:instance/{instance.instance_id}"],
        {"instance-id": instance.instance_id},
    )
