"""The central account's template: cfn-lint clean, and the properties a security or capacity reviewer checks."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from cfnlint.api import lint
from cfnlint.decode.cfn_yaml import loads
from moto import mock_aws

from batchops.adapters.dynamodb.tables import events_table_definition, tracking_table_definition
from batchops.adapters.dynamodb.views import view_table_definitions
from conftest import all_samples, create_central_stack_on_moto
from template_render import render

TEMPLATE = Path(__file__).resolve().parents[2] / "central-account" / "template.yaml"

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
TABLES = {
    "EventsTable": "events",
    "SnapshotsTable": "snapshots",
    "TrackingTable": "tracking",
    "JobsTable": "jobs",
    "InstancesTable": "instances",
    "MetaTable": "meta",
}
OUTPUTS = {
    "StoreUrl",
    "CentralBusName",
    "CentralBusArn",
    "CentralBusArchiveName",
    "IngestRuleArn",
    "IngestQueueUrl",
    "IngestQueueArn",
    "IngestDeadLetterQueueUrl",
    "IngestDeadLetterQueueArn",
    "ProjectorDeadLetterQueueUrl",
    "EventsTableName",
    "EventsStreamArn",
    "SnapshotsTableName",
    "TrackingTableName",
    "JobsTableName",
    "InstancesTableName",
    "MetaTableName",
    "AggregatorFunctionName",
    "ProjectorFunctionName",
    # the Athena export: deploy pushes these to Grafana's Athena data source
    "ProjectionsBucketName",
    "AthenaCatalog",
    "AthenaDatabaseName",
    "AthenaWorkGroupName",
    "AthenaResultsLocation",
    "ExporterFunctionName",
}


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    """The template decoded the way CloudFormation reads it (short-form intrinsics become `Fn::*`)."""
    decoded: dict[str, Any] = json.loads(json.dumps(loads(TEMPLATE.read_text())))
    return decoded


def resources(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    """Resources of one type by logical id."""
    return {name: r for name, r in template["Resources"].items() if r["Type"] == kind}


def branches(statement: dict[str, Any]) -> list[dict[str, Any]]:
    """A statement, or both branches of a conditional one (`Fn::If`), without `AWS::NoValue`."""
    if "Fn::If" not in statement:
        return [statement]
    return [s for s in statement["Fn::If"][1:] if s != {"Ref": "AWS::NoValue"}]


def statements(template: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every policy statement of the template: IAM role policies, queue policies, the bus policy."""
    for name, resource in template["Resources"].items():
        props = resource.get("Properties", {})
        documents = [p["PolicyDocument"] for p in props.get("Policies", [])]
        documents += [props[k] for k in ("AssumeRolePolicyDocument", "PolicyDocument") if k in props]
        for document in documents:
            yield from ((name, s) for statement in document["Statement"] for s in branches(statement))
        if resource["Type"] == "AWS::Events::EventBusPolicy":
            yield name, props["Statement"]


def role_statements(template: dict[str, Any], role: str) -> list[dict[str, Any]]:
    """The statements of a role's inline policies."""
    return [
        s
        for policy in template["Resources"][role]["Properties"]["Policies"]
        for statement in policy["PolicyDocument"]["Statement"]
        for s in branches(statement)
    ]


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


# --- cfn-lint ---------------------------------------------------------------------------------------


def test_cfn_lint_finds_nothing_in_two_regions() -> None:
    matches = lint(TEMPLATE.read_text(), regions=["us-east-1", "eu-west-1"])
    assert [str(m) for m in matches] == []


def test_cfn_lint_harness_does_report_errors() -> None:
    broken = TEMPLATE.read_text().replace("Runtime: python3.12", "Runtime: python2.1", 1)
    assert any(m.rule.id.startswith("E") for m in lint(broken, regions=["us-east-1"]))


# --- who may put events, and where they go -------------------------------------------------------------


def test_bus_policy_admits_the_organization_only(template: dict[str, Any]) -> None:
    (policy,) = resources(template, "AWS::Events::EventBusPolicy").values()
    statement = policy["Properties"]["Statement"]
    assert statement["Effect"] == "Allow"
    assert statement["Action"] == "events:PutEvents"
    assert statement["Condition"] == {"StringEquals": {"aws:PrincipalOrgID": {"Ref": "OrganizationId"}}}
    assert statement["Resource"] == {"Fn::GetAtt": ["CentralBus", "Arn"]}
    # No account list anywhere in the policy (it would outgrow the 10 KB bus-policy limit).
    assert not re.search(r"\d{12}", json.dumps(policy))
    assert "AWS" not in as_list(statement["Principal"])[0]


def test_the_bus_is_archived(template: dict[str, Any]) -> None:
    (archive,) = resources(template, "AWS::Events::Archive").values()
    assert archive["Properties"]["SourceArn"] == {"Fn::GetAtt": ["CentralBus", "Arn"]}
    assert archive["Properties"]["RetentionDays"] == {"Ref": "ArchiveRetentionDays"}
    assert template["Parameters"]["RetentionDays"]["Default"] == 90


def pattern_detail_types(pattern: dict[str, Any]) -> list[str]:
    branches = pattern.get("$or", [pattern])
    return [t for branch in branches for t in branch["detail-type"]]


def test_rule_pattern_lists_exactly_the_consumed_detail_types(template: dict[str, Any]) -> None:
    (rule,) = resources(template, "AWS::Events::Rule").values()
    pattern = rule["Properties"]["EventPattern"]
    listed = pattern_detail_types(pattern)
    assert sorted(listed) == sorted(DETAIL_TYPES)  # each once, no more
    (cloudtrail,) = [b for b in pattern["$or"] if b["detail-type"] == ["AWS API Call via CloudTrail"]]
    assert cloudtrail["detail"] == {
        "eventSource": ["batch.amazonaws.com"],
        "eventName": ["SubmitJob", "SubmitServiceJob", "CreateComputeEnvironment", "UpdateComputeEnvironment"],
    }
    assert rule["Properties"]["EventBusName"] == {"Fn::GetAtt": ["CentralBus", "Name"]}
    (target,) = rule["Properties"]["Targets"]
    assert target["Arn"] == {"Fn::GetAtt": ["IngestQueue", "Arn"]}


def test_queue_policies_let_only_the_rule_send(template: dict[str, Any]) -> None:
    policies = resources(template, "AWS::SQS::QueuePolicy")
    assert {p["Properties"]["Queues"][0]["Ref"] for p in policies.values()} == {"IngestQueue", "IngestDeadLetterQueue"}
    for policy in policies.values():
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            assert statement["Principal"] == {"Service": "events.amazonaws.com"}
            assert statement["Action"] == "sqs:SendMessage"
            assert statement["Condition"] == {"ArnEquals": {"aws:SourceArn": {"Fn::GetAtt": ["IngestRule", "Arn"]}}}


# --- encryption, retention, durability -----------------------------------------------------------------


def test_every_queue_is_encrypted_and_the_dead_letter_queues_keep_14_days(template: dict[str, Any]) -> None:
    queues = resources(template, "AWS::SQS::Queue")
    assert set(queues) == {
        "IngestQueue",
        "IngestDeadLetterQueue",
        "ProjectorDeadLetterQueue",
        "ExporterDeadLetterQueue",
    }
    for queue in queues.values():
        props = queue["Properties"]
        assert props.get("SqsManagedSseEnabled") is True or "KmsMasterKeyId" in props
    for name in ("IngestDeadLetterQueue", "ProjectorDeadLetterQueue"):
        assert queues[name]["Properties"]["MessageRetentionPeriod"] == 14 * 86400
    redrive = queues["IngestQueue"]["Properties"]["RedrivePolicy"]
    assert redrive == {"deadLetterTargetArn": {"Fn::GetAtt": ["IngestDeadLetterQueue", "Arn"]}, "maxReceiveCount": 5}


def test_every_table_is_on_demand_by_default_encrypted_with_pitr(template: dict[str, Any]) -> None:
    tables = resources(render(template), "AWS::DynamoDB::Table")  # the default CapacityMode (test_capacity_mode.py)
    assert {name: t["Properties"]["TableName"] for name, t in tables.items()} == {
        name: {"Fn::Sub": f"${{Prefix}}-{purpose}"} for name, purpose in TABLES.items()
    }
    for table in tables.values():
        props = table["Properties"]
        assert props["BillingMode"] == "PAY_PER_REQUEST"
        assert props["SSESpecification"]["SSEEnabled"] is True
        assert props["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
    for name in ("JobsTable", "InstancesTable", "MetaTable"):
        assert tables[name]["Properties"]["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}
    for name in ("EventsTable", "SnapshotsTable", "TrackingTable"):
        assert "TimeToLiveSpecification" not in tables[name]["Properties"]  # the source of truth never expires


def _schema(definition: dict[str, Any]) -> tuple[Any, ...]:
    """What must agree between a CreateTable request and the template (names aside)."""
    indexes = sorted(
        (i["IndexName"], json.dumps(i["KeySchema"]), i["Projection"]["ProjectionType"])
        for i in definition.get("GlobalSecondaryIndexes", [])
    )
    attributes = sorted((a["AttributeName"], a["AttributeType"]) for a in definition["AttributeDefinitions"])
    stream = definition.get("StreamSpecification", {}).get("StreamViewType")
    return json.dumps(definition["KeySchema"]), attributes, indexes, stream


def test_event_store_tables_are_the_ones_the_store_creates(template: dict[str, Any]) -> None:
    tables = resources(template, "AWS::DynamoDB::Table")
    expected = {
        "EventsTable": events_table_definition("x", stream=True),
        "SnapshotsTable": events_table_definition("x", stream=False),
        "TrackingTable": tracking_table_definition("x"),
    }
    for name, definition in expected.items():
        assert _schema(tables[name]["Properties"]) == _schema(definition), name


def test_view_tables_are_the_ones_the_view_store_uses(template: dict[str, Any]) -> None:
    tables = {t["Properties"]["TableName"]["Fn::Sub"]: t for t in resources(template, "AWS::DynamoDB::Table").values()}
    for definition in view_table_definitions("${Prefix}"):
        assert _schema(tables[definition["TableName"]]["Properties"]) == _schema(definition), definition["TableName"]
    jobs = tables["${Prefix}-jobs"]["Properties"]
    # The drilldowns the issue names: by account+queue with time, by status with time, by instance.
    by_index = {i["IndexName"]: [k["AttributeName"] for k in i["KeySchema"]] for i in jobs["GlobalSecondaryIndexes"]}
    assert by_index["by-queue"] == ["by_queue", "created_at"]
    assert by_index["by-status-since"] == ["by_status", "status_since"]
    assert by_index["by-instance"][0] == "by_instance"


# --- least privilege ------------------------------------------------------------------------------------


def test_no_policy_statement_has_a_wildcard_action(template: dict[str, Any]) -> None:
    found = list(statements(template))
    assert len(found) > 10
    for name, statement in found:
        if statement.get("Effect") == "Deny":
            continue  # denying everything (e.g. without TLS) is the safe direction
        for action in as_list(statement.get("Action", [])):
            assert "*" not in action, (name, action)
        assert "NotAction" not in statement, name


def test_role_statements_are_scoped_to_the_stacks_own_resources(template: dict[str, Any]) -> None:
    roles = resources(template, "AWS::IAM::Role")
    assert set(roles) == {
        "AggregatorRole",
        "ProjectorRole",
        "ExporterRole",
        "GrafanaWorkspaceRole",
        "IcebergTablesRole",
        "WaitingMetricsRole",
        "WaitingMetricsSchedulerRole",
        "PricesRole",
        "PricesSchedulerRole",
    }
    own = set(template["Resources"])
    services: dict[str, Any] = {
        "GrafanaWorkspaceRole": "grafana.amazonaws.com",
        "WaitingMetricsSchedulerRole": "scheduler.amazonaws.com",
        "PricesSchedulerRole": "scheduler.amazonaws.com",
        "IcebergTablesRole": ["firehose.amazonaws.com", "glue.amazonaws.com"],
    }
    for name, role in roles.items():
        assert "RoleName" not in role["Properties"], "a fixed IAM name breaks a second region"
        service = services.get(name, "lambda.amazonaws.com")
        assert role["Properties"]["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {"Service": service}
        for statement in role_statements(template, name):
            if (name, statement["Sid"]) in {
                ("GrafanaWorkspaceRole", "CloudWatch"),
                ("GrafanaWorkspaceRole", "OamLinks"),
                ("IcebergTablesRole", "OptimizerLogs"),
                ("PricesRole", "ReadPrices"),
            }:
                continue  # resource-less reads, the OAM sink deploy.py creates, the log groups Glue's optimizers create
            if (name, statement["Sid"]) == ("GrafanaWorkspaceRole", "LogsInsights"):
                # Logs Insights over the members' log groups, seen through the OAM sink: any account's log group
                assert statement["Resource"] == {"Fn::Sub": "arn:${AWS::Partition}:logs:*:*:log-group:*"}
                continue
            if statement["Sid"] == "XRayTraces":
                # X-Ray has no resource-level permissions; granted only when the Tracing parameter is Active.
                assert sorted(statement["Action"]) == ["xray:PutTelemetryRecords", "xray:PutTraceSegments"]
                continue
            for resource in as_list(statement["Resource"]):
                assert resource != "*", (name, statement["Sid"])
                text = json.dumps(resource)
                if re.fullmatch(r'\{"Fn::Sub": "arn:\$\{AWS::Partition\}:glue:[^"]*:catalog"\}', text):
                    continue  # Glue authorises every catalog call on the account's catalog as well

                referenced = set(re.findall(r'"Fn::GetAtt": \["(\w+)"', text))
                referenced |= set(re.findall(r"\$\{(\w+)\.Arn\}", text))
                referenced |= set(re.findall(r"\$\{(\w+)\}", text))  # e.g. the Glue database in an ARN
                assert referenced and referenced <= own, (name, statement["Sid"], resource)


def test_the_aggregator_cannot_write_views_and_the_projector_cannot_write_events(template: dict[str, Any]) -> None:
    def writable(role: str) -> set[str]:
        found: set[str] = set()
        for statement in role_statements(template, role):
            if any(a in as_list(statement["Action"]) for a in ("dynamodb:PutItem", "dynamodb:UpdateItem")):
                found |= set(re.findall(r'"Fn::GetAtt": \["(\w+)"', json.dumps(statement["Resource"])))
        return found

    assert writable("AggregatorRole") == {"EventsTable", "MetaTable"}  # no snapshots are taken
    assert writable("ProjectorRole") == {"JobsTable", "InstancesTable", "MetaTable"}


# --- Lambdas, event sources, logs, alarms -----------------------------------------------------------------


def test_lambdas_and_their_event_sources(template: dict[str, Any]) -> None:
    functions = resources(template, "AWS::Lambda::Function")
    handlers = {name: f["Properties"]["Handler"] for name, f in functions.items()}
    assert handlers == {
        "AggregatorFunction": "batchops.entrypoints.lambdas.aggregator",
        "ProjectorFunction": "batchops.entrypoints.lambdas.projector",
        "ExporterFunction": "batchops.entrypoints.export_lambda.exporter",
        "WaitingMetricsFunction": "batchops.entrypoints.waiting_lambda.waiting_metrics",
        "PricesFunction": "batchops.entrypoints.prices_lambda.refresh_prices",
    }
    for function in functions.values():
        props = function["Properties"]
        assert props["Runtime"] == "python3.12"
        assert props["Architectures"] == ["arm64"]
        assert props["Code"] == {"S3Bucket": {"Ref": "ArtifactBucket"}, "S3Key": {"Ref": "ArtifactKey"}}
        variables = props["Environment"]["Variables"]
        assert variables["BATCHOPS_STORE"] == {"Fn::Sub": "dynamodb://${Prefix}"}
        assert variables["BATCHOPS_RETENTION_DAYS"] == {"Ref": "RetentionDays"}
        assert {"POWERTOOLS_SERVICE_NAME", "POWERTOOLS_METRICS_NAMESPACE", "POWERTOOLS_LOG_LEVEL"} <= set(variables)

    sources = {
        s["Properties"]["FunctionName"]["Ref"]: s["Properties"]
        for s in resources(template, "AWS::Lambda::EventSourceMapping").values()
        if s["Properties"]["FunctionName"]["Ref"] != "ExporterFunction"
    }
    sqs = sources["AggregatorFunction"]
    assert sqs["EventSourceArn"] == {"Fn::GetAtt": ["IngestQueue", "Arn"]}
    assert (sqs["BatchSize"], sqs["MaximumBatchingWindowInSeconds"]) == (100, 5)
    assert sqs["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    stream = sources["ProjectorFunction"]
    assert stream["EventSourceArn"] == {"Fn::GetAtt": ["EventsTable", "StreamArn"]}
    assert stream["ParallelizationFactor"] == {"Ref": "ProjectorParallelizationFactor"}
    assert stream["BisectBatchOnFunctionError"] is True
    assert 0 < stream["MaximumRetryAttempts"] <= 10000
    assert stream["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert stream["DestinationConfig"]["OnFailure"]["Destination"] == {
        "Fn::GetAtt": ["ProjectorDeadLetterQueue", "Arn"]
    }
    # Lambda's advice for SQS sources: visibility timeout at least six times the function timeout.
    timeout = functions["AggregatorFunction"]["Properties"]["Timeout"]
    assert template["Resources"]["IngestQueue"]["Properties"]["VisibilityTimeout"] >= 6 * timeout


def test_the_waiting_metrics_run_every_minute_by_a_role_that_may_only_invoke_them(template: dict[str, Any]) -> None:
    schedule = resources(template, "AWS::Scheduler::Schedule")["WaitingMetricsSchedule"]
    props = schedule["Properties"]
    assert props["ScheduleExpression"] == "rate(1 minute)" and props["State"] == "ENABLED"
    assert props["FlexibleTimeWindow"] == {"Mode": "OFF"}
    assert props["Target"]["Arn"] == {"Fn::GetAtt": ["WaitingMetricsFunction", "Arn"]}
    assert props["Target"]["RoleArn"] == {"Fn::GetAtt": ["WaitingMetricsSchedulerRole", "Arn"]}
    assert props["Target"]["RetryPolicy"]["MaximumRetryAttempts"] == 0, "the next minute's run measures afresh"
    trust = template["Resources"]["WaitingMetricsSchedulerRole"]["Properties"]["AssumeRolePolicyDocument"]
    assert trust["Statement"][0]["Condition"] == {"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}}
    assert [(s["Action"], s["Resource"]) for s in role_statements(template, "WaitingMetricsSchedulerRole")] == [
        ("lambda:InvokeFunction", {"Fn::GetAtt": ["WaitingMetricsFunction", "Arn"]})
    ]
    function = template["Resources"]["WaitingMetricsFunction"]["Properties"]
    assert function["Timeout"] < 60, "a run ends before the next one starts"
    [invoke] = resources(template, "AWS::Lambda::EventInvokeConfig").values()
    assert invoke["Properties"]["FunctionName"] == {"Ref": "WaitingMetricsFunction"}
    assert invoke["Properties"]["MaximumRetryAttempts"] == 0, "nor does Lambda retry the asynchronous invocation"


def test_log_groups_have_retention_and_are_the_functions_own(template: dict[str, Any]) -> None:
    groups = resources(template, "AWS::Logs::LogGroup")
    assert len(groups) == 5
    for group in groups.values():
        assert group["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}
    for function in resources(template, "AWS::Lambda::Function").values():
        assert function["Properties"]["LoggingConfig"]["LogGroup"]["Ref"] in groups


def test_alarms_cover_dead_letters_errors_and_lag(template: dict[str, Any]) -> None:
    alarms = [a["Properties"] for a in resources(template, "AWS::CloudWatch::Alarm").values()]
    watched = {(a["Namespace"], a["MetricName"], json.dumps(a["Dimensions"][0]["Value"])) for a in alarms}
    assert (
        "AWS/SQS",
        "ApproximateNumberOfMessagesVisible",
        json.dumps({"Fn::GetAtt": ["IngestDeadLetterQueue", "QueueName"]}),
    ) in watched
    assert ("AWS/Lambda", "Errors", json.dumps({"Ref": "AggregatorFunction"})) in watched
    assert ("AWS/Lambda", "IteratorAge", json.dumps({"Ref": "ProjectorFunction"})) in watched
    for alarm in alarms:
        assert alarm["AlarmActions"] == {"Fn::If": ["HasAlarmTopic", [{"Ref": "AlarmTopic"}], {"Ref": "AWS::NoValue"}]}


def test_outputs_give_the_deploy_script_what_it_needs(template: dict[str, Any]) -> None:
    assert set(template["Outputs"]) >= OUTPUTS


def test_names_start_with_the_prefix(template: dict[str, Any]) -> None:
    name_keys = ("Name", "QueueName", "TableName", "FunctionName", "LogGroupName", "ArchiveName", "AlarmName")
    for name, resource in template["Resources"].items():
        if resource["Type"] in (
            "AWS::Lambda::EventSourceMapping",
            "AWS::Lambda::EventInvokeConfig",
            "AWS::Glue::Table",
            "AWS::Glue::TableOptimizer",
        ):
            continue  # a reference, not a name; or a table named inside the prefix's Glue database
        for key in name_keys:
            if key in resource.get("Properties", {}):
                assert "${Prefix}" in resource["Properties"][key]["Fn::Sub"], (name, key)


# --- deploy on moto and route events ----------------------------------------------------------------------


def _put(events: Any, bus: str, event: dict[str, Any]) -> None:
    entry = {
        "Source": event["source"],
        "DetailType": event["detail-type"],
        "Detail": json.dumps(event["detail"]),
        "EventBusName": bus,
    }
    assert events.put_events(Entries=[entry])["FailedEntryCount"] == 0


def _drain(sqs: Any, url: str) -> list[dict[str, Any]]:
    bodies = []
    while batch := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
        bodies += [json.loads(m["Body"]) for m in batch]
        sqs.delete_message_batch(
            QueueUrl=url, Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(batch)]
        )
    return bodies


@mock_aws
def test_stack_deploys_on_moto_and_its_rule_routes_exactly_the_consumed_events() -> None:
    region = "us-east-1"
    outputs = create_central_stack_on_moto("bo-test", region)
    assert set(outputs) >= OUTPUTS
    assert outputs["EventsTableName"] == "bo-test-events" and outputs["StoreUrl"] == "dynamodb://bo-test"

    # moto would hand the queue's messages to the aggregator, which it cannot run (no Docker here).
    awslambda = boto3.client("lambda", region_name=region)
    mappings = awslambda.list_event_source_mappings(FunctionName=outputs["AggregatorFunctionName"])
    for mapping in mappings["EventSourceMappings"]:
        awslambda.update_event_source_mapping(UUID=mapping["UUID"], Enabled=False)
    events, sqs = boto3.client("events", region_name=region), boto3.client("sqs", region_name=region)
    consumed = all_samples()
    for detail_type in (
        "EC2 Instance Rebalance Recommendation",
        "EC2 Instance Launch Unsuccessful",
        "EC2 Instance Terminate Unsuccessful",
        "Batch Job State Change",
    ):
        source = (
            "aws.ec2"
            if "Rebalance" in detail_type
            else "aws.autoscaling"
            if "Instance" in detail_type
            else ("aws.batch")
        )
        consumed.append({"source": source, "detail-type": detail_type, "detail": {}})
    assert {e["detail-type"] for e in consumed} == DETAIL_TYPES
    ignored = [
        {
            "source": "aws.batch",
            "detail-type": "AWS API Call via CloudTrail",
            "detail": {"eventSource": "batch.amazonaws.com", "eventName": "DeleteComputeEnvironment"},
        },
        {
            "source": "aws.ec2",
            "detail-type": "AWS API Call via CloudTrail",
            "detail": {"eventSource": "ec2.amazonaws.com", "eventName": "RunInstances"},
        },
        {"source": "custom.app", "detail-type": "Batch Job State Change", "detail": {}},
        {"source": "aws.ecs", "detail-type": "ECS Service Action", "detail": {}},
        {"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}},
    ]
    for event in consumed + ignored:
        _put(events, outputs["CentralBusName"], event)
    received = _drain(sqs, outputs["IngestQueueUrl"])
    assert sorted((e["source"], e["detail-type"]) for e in received) == sorted(
        (e["source"], e["detail-type"]) for e in consumed
    )
