"""The alarms on waiting jobs: CloudWatch alarms on Metrics Insights queries over the waiting metrics, in the central
account's home region, where the waiting-metrics Lambda emits them (EMF namespace BatchOps).

A query `SELECT MAX(...) FROM SCHEMA("BatchOps", AccountId, JobQueue, Region) GROUP BY AccountId, Region, JobQueue`
is a multi time series alarm: every account, region and queue is a contributor of its own, so a queue created later
is watched from its first data point without a change to the alarm. A queue with no job waiting sends no data
point: missing data is not breaching. The alarms notify `--alarm-topic`, else the central stack's AlarmTopic
parameter, else an SNS topic of the rollout's own (`<prefix>-alarms`, created here; not KMS-encrypted, since
CloudWatch cannot publish to a topic under the AWS-managed SNS key).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from botocore.exceptions import ClientError

from batchops.rollout.errors import error_code
from batchops.waiting_alerts import PERIOD_SECONDS, AlarmThresholds, waiting_conditions

NAMESPACE = "BatchOps"
"""The namespace the central template gives the waiting-metrics Lambda (BATCHOPS_NAMESPACE)."""
_COMPARED = (
    "AlarmDescription",
    "ActionsEnabled",
    "AlarmActions",
    "OKActions",
    "EvaluationPeriods",
    "DatapointsToAlarm",
    "Threshold",
    "ComparisonOperator",
    "TreatMissingData",
    "Metrics",
)
"""What PutMetricAlarm sets that DescribeAlarms gives back: an alarm equal in all of them is unchanged."""

__all__ = ["AlarmThresholds", "alarm_requests", "ensure_alarms", "ensure_topic", "remove_alarms"]


def topic_arn(partition: str, region: str, account: str, prefix: str) -> str:
    """The rollout's own alarm topic."""
    return f"arn:{partition}:sns:{region}:{account}:{prefix}-alarms"


def alarm_requests(prefix: str, topic: str, thresholds: AlarmThresholds) -> list[dict[str, Any]]:
    """The PutMetricAlarm requests of the waiting alarms (without tags: those are given on creation only)."""
    minutes = thresholds.minutes
    return [
        {
            "AlarmName": f"{prefix}-{condition.name}",
            "AlarmDescription": condition.description,
            "ActionsEnabled": True,
            "AlarmActions": [topic],
            "OKActions": [topic],
            "Metrics": [{"Id": "q", "Expression": condition.query, "Period": PERIOD_SECONDS, "ReturnData": True}],
            "EvaluationPeriods": minutes,
            "DatapointsToAlarm": minutes,
            "Threshold": condition.threshold,
            "ComparisonOperator": "GreaterThanThreshold",
            "TreatMissingData": "notBreaching",
        }
        for condition in waiting_conditions(thresholds, NAMESPACE)
    ]


def _as_described(value: Any) -> Any:
    """A request's value as DescribeAlarms gives it back (a metric query keeps only what was set)."""
    if isinstance(value, list):
        return [_as_described(v) for v in value]
    if isinstance(value, dict):
        return {k: _as_described(v) for k, v in sorted(value.items()) if v not in (None, "", [])}
    return float(value) if isinstance(value, int) and not isinstance(value, bool) else value


def _differences(request: Mapping[str, Any], alarm: Mapping[str, Any]) -> list[str]:
    return [key for key in _COMPARED if _as_described(request.get(key)) != _as_described(alarm.get(key))]


def existing_alarms(cloudwatch: Any, names: Sequence[str]) -> dict[str, dict[str, Any]]:
    """The metric alarms of these names that exist, by name."""
    found = cloudwatch.describe_alarms(AlarmNames=list(names), AlarmTypes=["MetricAlarm"])["MetricAlarms"]
    return {alarm["AlarmName"]: alarm for alarm in found}


def ensure_alarms(
    cloudwatch: Any, requests: Sequence[Mapping[str, Any]], tags: Mapping[str, str], *, dry_run: bool
) -> list[str]:
    """Create or update each alarm unless it is already as asked; what changed (or, in a dry run, would)."""
    existing = existing_alarms(cloudwatch, [r["AlarmName"] for r in requests])
    changes = []
    for request in requests:
        name = request["AlarmName"]
        alarm = existing.get(name)
        if alarm is None:
            changes.append(f"create alarm {name}")
            if not dry_run:
                cloudwatch.put_metric_alarm(**request, Tags=[{"Key": k, "Value": v} for k, v in tags.items()])
            continue
        differences = _differences(request, alarm)
        if differences:
            changes.append(f"update alarm {name}: {', '.join(differences)}")
            if not dry_run:
                cloudwatch.put_metric_alarm(**request)
    return changes


def _topic_exists(sns: Any, arn: str) -> bool:
    try:
        sns.get_topic_attributes(TopicArn=arn)
    except ClientError as error:
        if error_code(error) in ("NotFound", "NotFoundException"):
            return False
        raise
    return True


def ensure_topic(sns: Any, arn: str, tags: Mapping[str, str], *, dry_run: bool) -> list[str]:
    """The rollout's own alarm topic, created when missing (CreateTopic of an existing name is not a change)."""
    if _topic_exists(sns, arn):
        return []
    if not dry_run:
        name = arn.rsplit(":", 1)[-1]
        sns.create_topic(Name=name, Tags=[{"Key": k, "Value": v} for k, v in tags.items()])
    return [f"create SNS topic {arn} for the alarms (subscribe to it: aws sns subscribe --topic-arn {arn} ...)"]


def describe_plan(requests: Sequence[Mapping[str, Any]]) -> list[str]:
    """One line per alarm: its query, threshold and notification, as `--dry-run` lists them."""
    return [
        f"alarm {r['AlarmName']}: {r['Metrics'][0]['Expression']} > {r['Threshold']:g} for {r['EvaluationPeriods']} "
        f"min -> {r['AlarmActions'][0]}"
        for r in requests
    ]


def alarm_names(prefix: str) -> list[str]:
    """The names of the waiting alarms of a rollout."""
    return [r["AlarmName"] for r in alarm_requests(prefix, "", AlarmThresholds())]


def remove_alarms(cloudwatch: Any, sns: Any, names: Sequence[str], own_topic: str) -> list[str]:
    """Delete the waiting alarms found, then the rollout's own topic if it exists (destroy)."""
    cloudwatch.delete_alarms(AlarmNames=list(names))
    changes = [f"deleted alarms {', '.join(names)}"]
    if _topic_exists(sns, own_topic):
        sns.delete_topic(TopicArn=own_topic)
        changes.append(f"deleted SNS topic {own_topic}")
    return changes
