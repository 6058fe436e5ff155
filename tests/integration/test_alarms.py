"""The alarms on waiting jobs (batchops.rollout.alarms): created, left alone, updated on moto; the request shape AWS
takes and the alarms AWS describes, through botocore's Stubber; the query's metrics and dimensions are the ones the
waiting-metrics Lambda emits."""

from __future__ import annotations

import re
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from batchops.emf import emf_documents
from batchops.rollout import alarms
from batchops.rollout.alarms import AlarmThresholds, alarm_requests, ensure_alarms, ensure_topic
from batchops.waiting import QueueWait, waiting_points

TOPIC = "arn:aws:sns:us-east-1:123456789012:bo-alarms"
TAGS = {"batchops:prefix": "bo"}


def described(cloudwatch: Any) -> dict[str, dict[str, Any]]:
    return {a["AlarmName"]: a for a in cloudwatch.describe_alarms(AlarmNamePrefix="bo-")["MetricAlarms"]}


def test_alarms_are_created_once_then_left_alone_and_updated_when_a_threshold_changes(aws: None) -> None:
    cloudwatch = boto3.client("cloudwatch", region_name="us-east-1")
    requests = alarm_requests("bo", TOPIC, AlarmThresholds())
    assert ensure_alarms(cloudwatch, requests, TAGS, dry_run=True) == [
        "create alarm bo-job-waiting-too-long",
        "create alarm bo-jobs-piling-up",
    ]
    assert described(cloudwatch) == {}, "a dry run writes nothing"

    assert len(ensure_alarms(cloudwatch, requests, TAGS, dry_run=False)) == 2
    found = described(cloudwatch)
    oldest = found["bo-job-waiting-too-long"]
    [query] = oldest["Metrics"]
    assert query["Expression"].startswith("SELECT MAX(OldestWaitingSeconds) FROM SCHEMA(")
    assert "GROUP BY AccountId, Region, JobQueue" in query["Expression"] and query["Period"] == 60
    assert (oldest["Threshold"], oldest["EvaluationPeriods"], oldest["DatapointsToAlarm"]) == (1800, 5, 5)
    assert oldest["AlarmActions"] == oldest["OKActions"] == [TOPIC]
    assert oldest["TreatMissingData"] == "notBreaching", "a queue with none waiting sends nothing"
    assert found["bo-jobs-piling-up"]["Threshold"] == 100
    tags = cloudwatch.list_tags_for_resource(ResourceARN=oldest["AlarmArn"])["Tags"]
    assert tags == [{"Key": "batchops:prefix", "Value": "bo"}]

    assert ensure_alarms(cloudwatch, requests, TAGS, dry_run=False) == []

    stricter = alarm_requests("bo", TOPIC, AlarmThresholds(oldest_wait_seconds=600, minutes=3))
    assert ensure_alarms(cloudwatch, stricter, TAGS, dry_run=False) == [
        "update alarm bo-job-waiting-too-long: AlarmDescription, EvaluationPeriods, DatapointsToAlarm, Threshold",
        "update alarm bo-jobs-piling-up: AlarmDescription, EvaluationPeriods, DatapointsToAlarm",
    ]
    assert described(cloudwatch)["bo-job-waiting-too-long"]["Threshold"] == 600


def test_the_topic_is_created_once(aws: None) -> None:
    sns = boto3.client("sns", region_name="us-east-1")
    assert ensure_topic(sns, TOPIC, TAGS, dry_run=True)[0].startswith(f"create SNS topic {TOPIC}")
    assert sns.list_topics()["Topics"] == []
    assert ensure_topic(sns, TOPIC, TAGS, dry_run=False)
    assert sns.list_topics()["Topics"] == [{"TopicArn": TOPIC}]
    assert sns.list_tags_for_resource(ResourceArn=TOPIC)["Tags"] == [{"Key": "batchops:prefix", "Value": "bo"}]
    assert ensure_topic(sns, TOPIC, TAGS, dry_run=False) == []


def _as_aws_describes(request: dict[str, Any]) -> dict[str, Any]:
    """A metric alarm as CloudWatch's DescribeAlarms returns one made by `request` (its API reference)."""
    name = request["AlarmName"]
    return {
        **{k: v for k, v in request.items() if k != "Threshold"},
        "Threshold": float(request["Threshold"]),
        "AlarmArn": f"arn:aws:cloudwatch:us-east-1:123456789012:alarm:{name}",
        "InsufficientDataActions": [],
        "StateValue": "OK",
        "StateReason": "Threshold Crossed: no datapoints were received for 5 periods",
        "Dimensions": [],
        "EvaluationState": "PARTIAL_DATA",
    }


def test_the_request_shape_aws_takes_and_an_alarm_aws_describes_as_unchanged() -> None:
    cloudwatch = boto3.client("cloudwatch", region_name="us-east-1", aws_access_key_id="a", aws_secret_access_key="b")
    requests = alarm_requests("bo", TOPIC, AlarmThresholds(oldest_wait_seconds=7200))
    names = ["bo-job-waiting-too-long", "bo-jobs-piling-up"]
    with Stubber(cloudwatch) as stub:
        lookup = {"AlarmNames": names, "AlarmTypes": ["MetricAlarm"]}
        stub.add_response("describe_alarms", {"MetricAlarms": []}, lookup)
        for request in requests:
            expected = {**request, "Tags": [{"Key": "batchops:prefix", "Value": "bo"}]}
            stub.add_response("put_metric_alarm", {}, expected)
        ensure_alarms(cloudwatch, requests, TAGS, dry_run=False)
        stub.add_response("describe_alarms", {"MetricAlarms": [_as_aws_describes(r) for r in requests]}, lookup)
        assert ensure_alarms(cloudwatch, requests, TAGS, dry_run=False) == []
        stub.assert_no_pending_responses()
    [oldest] = requests[0]["Metrics"]
    assert oldest == {
        "Id": "q",
        "Expression": 'SELECT MAX(OldestWaitingSeconds) FROM SCHEMA("BatchOps", AccountId, JobQueue, Region) '
        "GROUP BY AccountId, Region, JobQueue ORDER BY MAX() DESC",
        "Period": 60,
        "ReturnData": True,
    }
    assert requests[0]["Threshold"] == 7200


def test_each_query_reads_a_metric_and_dimension_set_the_waiting_lambda_emits() -> None:
    queues = [QueueWait("111122223333", "eu-west-1", "gpu", 3, 4000.0, "job-1")]
    emitted = {
        (directive["Namespace"], metric["Name"], frozenset(dimensions))
        for document in emf_documents(waiting_points(queues, 1_765_000_000_000), alarms.NAMESPACE)
        for directive in document["_aws"]["CloudWatchMetrics"]
        for metric in directive["Metrics"]
        for dimensions in directive["Dimensions"]
    }
    queried = set()
    for request in alarm_requests("bo", TOPIC, AlarmThresholds()):
        expression = request["Metrics"][0]["Expression"]
        found = re.fullmatch(
            r'SELECT MAX\((\w+)\) FROM SCHEMA\("(\w+)", ([\w, ]+)\) GROUP BY ([\w, ]+) ORDER BY .*', expression
        )
        assert found, expression
        metric, namespace, schema, group = found.groups()
        assert set(schema.split(", ")) == set(group.split(", "))  # every contributor is one queue of one account
        queried.add((namespace, metric, frozenset(schema.split(", "))))
    assert queried == emitted


@pytest.mark.parametrize(
    ("thresholds", "message"),
    [
        ({"oldest_wait_seconds": 0}, "--alarm-oldest-wait"),
        ({"jobs_waiting": 0}, "--alarm-jobs-waiting"),
        ({"minutes": 181}, "--alarm-minutes"),
    ],
)
def test_thresholds_that_cannot_alarm_are_refused(thresholds: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        AlarmThresholds(**thresholds)
