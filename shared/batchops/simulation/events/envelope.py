"""The EventBridge envelope every builder wraps its detail in, the detail types, and the timestamp formats."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

BATCH_JOB_STATE_CHANGE = "Batch Job State Change"
BATCH_JOB_QUEUE_BLOCKED = "Batch Job Queue Blocked"
BATCH_SERVICE_JOB_STATE_CHANGE = "Batch Service Job State Change"
BATCH_SERVICE_JOB_QUEUE_BLOCKED = "Batch Service Job Queue Blocked"
CLOUDTRAIL_API_CALL = "AWS API Call via CloudTrail"
ECS_TASK_STATE_CHANGE = "ECS Task State Change"
ECS_CONTAINER_INSTANCE_STATE_CHANGE = "ECS Container Instance State Change"
EC2_INSTANCE_STATE_CHANGE = "EC2 Instance State-change Notification"
EC2_SPOT_INTERRUPTION_WARNING = "EC2 Spot Instance Interruption Warning"
EC2_REBALANCE_RECOMMENDATION = "EC2 Instance Rebalance Recommendation"
AUTOSCALING_LAUNCH_SUCCESSFUL = "EC2 Instance Launch Successful"
AUTOSCALING_TERMINATE_SUCCESSFUL = "EC2 Instance Terminate Successful"

DETAIL_TYPES: frozenset[str] = frozenset(
    {
        BATCH_JOB_STATE_CHANGE,
        BATCH_JOB_QUEUE_BLOCKED,
        BATCH_SERVICE_JOB_STATE_CHANGE,
        BATCH_SERVICE_JOB_QUEUE_BLOCKED,
        CLOUDTRAIL_API_CALL,
        ECS_TASK_STATE_CHANGE,
        ECS_CONTAINER_INSTANCE_STATE_CHANGE,
        EC2_INSTANCE_STATE_CHANGE,
        EC2_SPOT_INTERRUPTION_WARNING,
        EC2_REBALANCE_RECOMMENDATION,
        AUTOSCALING_LAUNCH_SUCCESSFUL,
        AUTOSCALING_TERMINATE_SUCCESSFUL,
    }
)
"""Every `detail-type` the simulator emits."""

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SECONDS = tuple(f"{second:02d}" for second in range(60))
# ECS timestamps drop trailing zeros of the fraction, so the number of fraction digits varies.
_FRACTIONS = ("", *("." + f"{millis:03d}".rstrip("0") for millis in range(1, 1000)))


@lru_cache(maxsize=8192)
def _minute_prefix(minute_number: int) -> str:
    return (_EPOCH + timedelta(minutes=minute_number)).strftime("%Y-%m-%dT%H:%M:")


def iso_seconds(epoch_ms: int) -> str:
    """`2025-11-13T00:01:02Z`: the EventBridge envelope and CloudTrail precision."""
    minute_number, millis = divmod(epoch_ms, 60_000)
    return f"{_minute_prefix(minute_number)}{_SECONDS[millis // 1000]}Z"


def iso_ecs(epoch_ms: int) -> str:
    """`2025-11-13T00:01:02.35Z`: milliseconds, trailing zeros (and a zero fraction) left out."""
    minute_number, millis = divmod(epoch_ms, 60_000)
    second, millis = divmod(millis, 1000)
    return f"{_minute_prefix(minute_number)}{_SECONDS[second]}{_FRACTIONS[millis]}Z"


def envelope(
    event_id: str,
    detail_type: str,
    source: str,
    account: str,
    epoch_ms: int,
    region: str,
    resources: list[str],
    detail: dict[str, Any],
) -> dict[str, Any]:
    return {
        "version": "0",
        "id": event_id,
        "detail-type": detail_type,
        "source": source,
        "account": account,
        "time": iso_seconds(epoch_ms),
        "region": region,
        "resources": resources,
        "detail": detail,
    }
