"""The member account's template: cfn-lint clean, forwards exactly what the core consumes, least privilege."""

from __future__ import annotations

import json
import re
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

import boto3
import pytest
from cfnlint.api import lint
from cfnlint.decode.cfn_yaml import loads
from moto import mock_aws

from batchops.names import compute_environment_of_cluster
from batchops.rollout.oam_sinks import REGION_SLOTS, sink_slots
from conftest import all_samples

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = REPO / "member-account" / "template.yaml"
CENTRAL = REPO / "central-account" / "template.yaml"

DETAIL_TYPES = {
    "Batch Job State Change",
    "Batch Job Queue Blocked",
    "Batch Service Job State Change",
    "Batch Service Job Queue Blocked",
    "ECS Task State Change",
    "ECS Container Instance State Change",
    "EC2 Instance State-change Notification",
    "EC2 Spot Instance Interruption Warning",
    "EC2 Instance Rebalance Recommendation",
    "EC2 Instance Launch Successful",
    "EC2 Instance Launch Unsuccessful",
    "EC2 Instance Terminate Successful",
    "EC2 Instance Terminate Unsuccessful",
    "AWS API Call via CloudTrail",
}


def decode(path: Path) -> dict[str, Any]:
    """A template as CloudFormation reads it (short-form intrinsics become `Fn::*`)."""
    decoded: dict[str, Any] = json.loads(json.dumps(loads(path.read_text())))
    return decoded


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return decode(TEMPLATE)


def of_type(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {name: r for name, r in template["Resources"].items() if r["Type"] == kind}


def test_cfn_lint_finds_nothing() -> None:
    matches = lint(TEMPLATE.read_text(), regions=["us-east-1", "eu-west-1", "ap-southeast-2"])
    assert [str(m) for m in matches] == []


def test_cfn_lint_harness_does_report_errors() -> None:
    broken = TEMPLATE.read_text().replace("Type: AWS::Events::Rule", "Type: AWS::Events::Rules", 1)
    assert any(m.rule.id.startswith("E") for m in lint(broken, regions=["us-east-1"]))


def test_rules_forward_exactly_the_detail_types_the_central_rule_routes(template: dict[str, Any]) -> None:
    rules = of_type(template, "AWS::Events::Rule")
    forwarded = [t for rule in rules.values() for t in rule["Properties"]["EventPattern"]["detail-type"]]
    assert sorted(forwarded) == sorted(DETAIL_TYPES)  # each once
    (ingest,) = of_type(decode(CENTRAL), "AWS::Events::Rule").values()
    routed = {(b["source"][0], t) for b in ingest["Properties"]["EventPattern"]["$or"] for t in b["detail-type"]}
    member = {(r["Properties"]["EventPattern"]["source"][0], t) for r in rules.values() for t in forwarded}
    assert {pair for pair in member if pair in routed} == routed  # nothing the central rule wants is left behind
    (api,) = [
        r for r in rules.values() if r["Properties"]["EventPattern"]["detail-type"] == ["AWS API Call via CloudTrail"]
    ]
    assert api["Properties"]["EventPattern"]["detail"] == {
        "eventSource": ["batch.amazonaws.com"],
        "eventName": ["SubmitJob", "SubmitServiceJob", "CreateComputeEnvironment", "UpdateComputeEnvironment"],
    }


def test_ecs_events_leave_the_account_only_from_batch_clusters(template: dict[str, Any]) -> None:
    pattern = template["Resources"]["EcsRule"]["Properties"]["EventPattern"]
    assert pattern["detail-type"] == ["ECS Task State Change", "ECS Container Instance State Change"]
    prefix, legacy = pattern["detail"]["clusterArn"]
    assert prefix == {
        "prefix": {"Fn::Sub": "arn:${AWS::Partition}:ecs:${AWS::Region}:${AWS::AccountId}:cluster/AWSBatch-"}
    }
    assert legacy == {
        "wildcard": {"Fn::Sub": "arn:${AWS::Partition}:ecs:${AWS::Region}:${AWS::AccountId}:cluster/*_Batch_*"}
    }
    # The two cluster name forms are the ones the core recognises as Batch compute environments.
    assert compute_environment_of_cluster("AWSBatch-ce-1a2b3c4d-5e6f") == "ce"
    assert compute_environment_of_cluster("ce_Batch_1a2b3c4d") == "ce"


def test_every_rule_is_on_the_default_bus_and_targets_the_central_bus_with_the_role(template: dict[str, Any]) -> None:
    rules = of_type(template, "AWS::Events::Rule")
    assert len(rules) == 5
    for name, rule in rules.items():
        props = rule["Properties"]
        assert "EventBusName" not in props, name  # the default bus, where AWS services put their events
        assert props["State"] == "ENABLED"
        assert props["Name"]["Fn::Sub"].startswith("${Prefix}-")
        (target,) = props["Targets"]
        assert target["Arn"] == {"Ref": "CentralBusArn"}
        assert target["RoleArn"] == {"Fn::GetAtt": ["ForwardRole", "Arn"]}


def test_the_role_may_only_put_events_on_the_central_bus_for_these_rules(template: dict[str, Any]) -> None:
    (role,) = of_type(template, "AWS::IAM::Role").values()
    props = role["Properties"]
    assert "${AWS::Region}" in props["RoleName"]["Fn::Sub"]  # IAM is global: one role per region
    (trust,) = props["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "events.amazonaws.com"}
    assert trust["Action"] == "sts:AssumeRole"
    assert trust["Condition"]["StringEquals"] == {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}
    arns = {a["Fn::Sub"] for a in trust["Condition"]["ArnEquals"]["aws:SourceArn"]}
    names = {r["Properties"]["Name"]["Fn::Sub"] for r in of_type(template, "AWS::Events::Rule").values()}
    prefix = "arn:${AWS::Partition}:events:${AWS::Region}:${AWS::AccountId}:rule/"
    assert arns == {prefix + name for name in names}
    (policy,) = props["Policies"]
    (statement,) = policy["PolicyDocument"]["Statement"]
    assert statement == {
        "Sid": "CentralBusOnly",
        "Effect": "Allow",
        "Action": "events:PutEvents",
        "Resource": {"Ref": "CentralBusArn"},
    }
    assert "ManagedPolicyArns" not in props


def test_the_oam_link_takes_the_sink_of_its_own_region(template: dict[str, Any]) -> None:
    link = template["Resources"]["ObservabilityLink"]
    assert link["Condition"] == "LinkToSink"
    props = link["Properties"]
    assert props["ResourceTypes"] == ["AWS::CloudWatch::Metric", "AWS::Logs::LogGroup"]
    assert props["SinkIdentifier"] == {
        "Fn::Select": [{"Fn::FindInMap": ["RegionSlot", {"Ref": "AWS::Region"}, "Slot"]}, {"Ref": "OamSinkArns"}]
    }
    assert props["LinkConfiguration"] == {
        "MetricConfiguration": {"Filter": {"Ref": "OamMetricFilter"}},
        "LogGroupConfiguration": {"Filter": {"Ref": "OamLogGroupFilter"}},
    }
    assert "/aws/batch/job" in template["Parameters"]["OamLogGroupFilter"]["Default"]
    assert "'AWS/EC2'" in template["Parameters"]["OamMetricFilter"]["Default"]
    assert template["Conditions"]["LinkToSink"] == {
        "Fn::Not": [{"Fn::Equals": [{"Fn::Join": ["", {"Ref": "OamSinkArns"}]}, ""]}]
    }
    # deploy.py writes the list in the mapping's slot order.
    slots = template["Mappings"]["RegionSlot"]
    assert list(slots) == list(REGION_SLOTS)
    assert [slot["Slot"] for slot in slots.values()] == list(range(len(REGION_SLOTS)))
    arns = {r: f"arn:aws:oam:{r}:999999999999:sink/{i}" for i, r in enumerate(("eu-west-1", "ap-south-1"))}
    listed = sink_slots(arns).split(",")
    for region, arn in arns.items():
        assert listed[slots[region]["Slot"]] == arn


def test_names_fit_iam_and_eventbridge_limits(template: dict[str, Any]) -> None:
    longest_prefix = "a" * 32
    assert re.fullmatch(template["Parameters"]["Prefix"]["AllowedPattern"], longest_prefix)
    role = template["Resources"]["ForwardRole"]["Properties"]["RoleName"]["Fn::Sub"]
    longest_region = max(REGION_SLOTS, key=len)
    assert len(role.replace("${Prefix}", longest_prefix).replace("${AWS::Region}", longest_region)) <= 64
    for rule in of_type(template, "AWS::Events::Rule").values():
        assert len(rule["Properties"]["Name"]["Fn::Sub"].replace("${Prefix}", longest_prefix)) <= 64


def _batch_cluster(arn: str) -> bool:
    name = arn.split(":cluster/", 1)[-1]
    return name.startswith("AWSBatch-") or "_Batch_" in name


@mock_aws
def test_on_moto_every_sample_the_core_consumes_is_forwarded_and_other_clusters_stay() -> None:
    region, account = "eu-west-1", "123456789012"
    events = boto3.client("events", region_name=region)
    sqs = boto3.client("sqs", region_name=region)
    central = events.create_event_bus(Name="central")["EventBusArn"]
    tap = sqs.create_queue(QueueName="tap")["QueueUrl"]
    tap_arn = sqs.get_queue_attributes(QueueUrl=tap, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(Name="tap", EventBusName="central", EventPattern=json.dumps({"account": [{"exists": True}]}))
    events.put_targets(Rule="tap", EventBusName="central", Targets=[{"Id": "tap", "Arn": tap_arn}])
    cfn = boto3.client("cloudformation", region_name=region)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "No Moto CloudFormation support for AWS::Oam::Link" (no link asked here)
        cfn.create_stack(
            StackName="member",
            TemplateBody=TEMPLATE.read_text(),
            Capabilities=["CAPABILITY_NAMED_IAM"],
            Parameters=[{"ParameterKey": "CentralBusArn", "ParameterValue": central}],
        )
    assert cfn.describe_stacks(StackName="member")["Stacks"][0]["StackStatus"] == "CREATE_COMPLETE"

    samples = all_samples()
    expected: Counter[str] = Counter()
    stays = 0

    def put(event: dict[str, Any], detail: dict[str, Any]) -> None:
        entry = {"Source": event["source"], "DetailType": event["detail-type"], "Detail": json.dumps(detail)}
        assert events.put_events(Entries=[entry])["FailedEntryCount"] == 0

    for event in samples:
        detail = dict(event["detail"])
        if event["source"] == "aws.ecs":  # as it would be in this account and region
            here = f"arn:aws:ecs:{region}:{account}:"
            detail["clusterArn"] = re.sub(r"^arn:aws:ecs:[^:]+:\d+:", here, detail["clusterArn"])
            if not _batch_cluster(detail["clusterArn"]):
                put(event, detail)  # another ECS workload of the account: stays home
                stays += 1
                detail["clusterArn"] = f"{here}cluster/AWSBatch-ce-1a2b3c4d-5e6f-7a8b-9c0d-112233445566"
        put(event, detail)
        expected[event["detail-type"]] += 1
    received: Counter[str] = Counter()
    while batch := sqs.receive_message(QueueUrl=tap, MaxNumberOfMessages=10).get("Messages", []):
        received.update(json.loads(m["Body"])["detail-type"] for m in batch)
        sqs.delete_message_batch(
            QueueUrl=tap, Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(batch)]
        )
    assert received == expected
    assert sum(expected.values()) == len(samples) and stays >= 2
    assert set(received) == {e["detail-type"] for e in samples}


def test_every_rule_target_has_the_stacks_dead_letter_queue(template: dict[str, Any]) -> None:
    rules = of_type(template, "AWS::Events::Rule")
    (name, queue), *others = of_type(template, "AWS::SQS::Queue").items()
    assert not others
    for rule in rules.values():
        (target,) = rule["Properties"]["Targets"]
        assert target["DeadLetterConfig"] == {"Arn": {"Fn::GetAtt": [name, "Arn"]}}
    props = queue["Properties"]
    assert props["SqsManagedSseEnabled"] is True  # encrypted at rest without a key policy EventBridge must be in
    assert props["MessageRetentionPeriod"] == 1209600  # 14 days, SQS's longest
    assert props["QueueName"] == {"Fn::Sub": "${Prefix}-forward-dlq"}  # queue names are regional: one per region
    assert len("a" * 32 + "-forward-dlq") <= 80
    assert template["Outputs"]["ForwardDeadLetterQueueUrl"]["Value"] == {"Ref": name}
    assert template["Outputs"]["ForwardDeadLetterQueueArn"]["Value"] == {"Fn::GetAtt": [name, "Arn"]}


def test_only_these_rules_may_send_to_the_dead_letter_queue(template: dict[str, Any]) -> None:
    (policy,) = of_type(template, "AWS::SQS::QueuePolicy").values()
    props = policy["Properties"]
    assert props["Queues"] == [{"Ref": "ForwardDeadLetters"}]
    allow, deny = props["PolicyDocument"]["Statement"]
    assert allow["Effect"] == "Allow"
    assert allow["Principal"] == {"Service": "events.amazonaws.com"}
    assert allow["Action"] == "sqs:SendMessage"
    assert allow["Resource"] == {"Fn::GetAtt": ["ForwardDeadLetters", "Arn"]}
    (condition,) = allow["Condition"].values()
    sources = condition["aws:SourceArn"]
    assert sorted(s["Fn::GetAtt"][0] for s in sources) == sorted(of_type(template, "AWS::Events::Rule"))
    assert all(s["Fn::GetAtt"][1] == "Arn" for s in sources)
    assert deny["Effect"] == "Deny" and deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_an_alarm_sums_failed_invocations_of_every_rule(template: dict[str, Any]) -> None:
    (alarm,) = of_type(template, "AWS::CloudWatch::Alarm").values()
    props = alarm["Properties"]
    assert props["ComparisonOperator"] == "GreaterThanThreshold" and props["Threshold"] == 0
    assert props["TreatMissingData"] == "notBreaching"  # no failure, no datapoint
    queries = {m["Id"]: m for m in props["Metrics"]}
    (result,) = [m for m in props["Metrics"] if m["ReturnData"]]
    stats = [m["MetricStat"] for m in props["Metrics"] if "MetricStat" in m]
    assert {q.strip() for q in result["Expression"].split("+")} == {m["Id"] for m in props["Metrics"] if m != result}
    assert all(queries[i]["ReturnData"] is False for i in queries if i != result["Id"])
    assert all(s["Stat"] == "Sum" for s in stats)
    assert {(s["Metric"]["Namespace"], s["Metric"]["MetricName"]) for s in stats} == {
        ("AWS/Events", "FailedInvocations")
    }
    ruled = sorted(d["Value"]["Ref"] for s in stats for d in s["Metric"]["Dimensions"] if d["Name"] == "RuleName")
    assert ruled == sorted(of_type(template, "AWS::Events::Rule"))


@mock_aws
def test_on_moto_the_targets_dead_letter_queue_exists_encrypted_for_14_days() -> None:
    region = "eu-west-1"
    events = boto3.client("events", region_name=region)
    central = events.create_event_bus(Name="central")["EventBusArn"]
    cfn = boto3.client("cloudformation", region_name=region)
    with warnings.catch_warnings():
        # moto creates neither AWS::SQS::QueuePolicy nor AWS::CloudWatch::Alarm from a template (asserted above).
        warnings.simplefilter("ignore")
        cfn.create_stack(
            StackName="member",
            TemplateBody=TEMPLATE.read_text(),
            Capabilities=["CAPABILITY_NAMED_IAM"],
            Parameters=[{"ParameterKey": "CentralBusArn", "ParameterValue": central}],
        )
    (stack,) = cfn.describe_stacks(StackName="member")["Stacks"]
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack["Outputs"]}
    sqs = boto3.client("sqs", region_name=region)
    attributes = sqs.get_queue_attributes(QueueUrl=outputs["ForwardDeadLetterQueueUrl"], AttributeNames=["All"])[
        "Attributes"
    ]
    assert attributes["QueueArn"] == outputs["ForwardDeadLetterQueueArn"]
    assert attributes["SqsManagedSseEnabled"] == "true"
    assert attributes["MessageRetentionPeriod"] == "1209600"
    for rule in outputs["RuleNames"].split(","):
        (target,) = events.list_targets_by_rule(Rule=rule)["Targets"]
        assert target["DeadLetterConfig"] == {"Arn": outputs["ForwardDeadLetterQueueArn"]}
