"""The Athena data path in the central template: Iceberg tables equal to what the exporter sends and the dashboards
query, their optimizers, the Firehose stream with the Iceberg destination, the exporter's event sources, the
least-privilege roles, the bucket, the workgroup, the outputs; and the template body a deploy sends."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from cfnlint.decode import decode_str
from cfnlint.decode.cfn_yaml import loads

from batchops.athena_tables import COLUMNS, TABLES, UNIQUE_KEYS, athena_ddl_columns
from batchops.dashboards import DashboardSettings

TEMPLATE = Path(__file__).resolve().parents[2] / "central-account" / "template.yaml"
DASHBOARDS_TEST = Path(__file__).resolve().parents[1] / "integration" / "test_dashboards.py"
ICEBERG_TYPES = {"string": "string", "bigint": "long", "double": "double", "boolean": "boolean", "date": "date"}
DT_IDS = {"jobs": 39, "instances": 18, "job_events": 8, "job_attempts": 18}
"""The id of each table's dt as first deployed: Iceberg finds a column in the data files by its id, so a column
added later takes a new id and every earlier one keeps its own."""


def iceberg_type(field: dict[str, Any]) -> Any:
    """A field's type as the exporter's Athena types name it: a list's Iceberg type is JSON text in the template
    (CloudFormation's schema types a field's Type as a string)."""
    kind = field["Type"]
    if kind.startswith("{"):
        listed = json.loads(kind)
        assert listed["type"] == "list" and listed["element-required"] is False, field
        return f"array<{listed['element']}>"
    return {iceberg: athena for athena, iceberg in ICEBERG_TYPES.items()}[kind]


def field_ids(fields: list[dict[str, Any]]) -> list[int]:
    """Every id the schema assigns: its fields' and their list elements'."""
    ids = [f["Id"] for f in fields]
    return ids + [json.loads(f["Type"])["element-id"] for f in fields if f["Type"].startswith("{")]


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    decoded, problems = decode_str(TEMPLATE.read_text())
    assert not problems
    return json.loads(json.dumps(decoded))


def of_type(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {n: r for n, r in template["Resources"].items() if r["Type"] == kind}


def iceberg_tables(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {t["Properties"]["Name"]: t for t in of_type(template, "AWS::Glue::Table").values()}


def test_iceberg_tables_have_the_columns_the_exporter_sends_and_the_dashboards_query(template: dict[str, Any]) -> None:
    tables = iceberg_tables(template)
    assert set(tables) == set(TABLES) == {"jobs", "instances", "job_events", "job_attempts"}
    for name, resource in tables.items():
        props = resource["Properties"]
        assert props["DatabaseName"] == {"Ref": "GlueDatabase"} and "TableInput" not in props
        iceberg = props["OpenTableFormatInput"]["IcebergInput"]
        assert iceberg["MetadataOperation"] == "CREATE" and iceberg.get("Version", "2") == "2"  # Firehose: v2 only
        table = iceberg["IcebergTableInput"]
        assert table["Location"] == {"Fn::Sub": f"s3://${{ProjectionsBucket}}/iceberg/{name}"}
        fields = table["Schema"]["Fields"]
        assert [(f["Name"], iceberg_type(f)) for f in fields] == list(COLUMNS[name]), name
        ids = {f["Name"]: f["Id"] for f in fields}
        assert sorted(field_ids(fields)) == list(range(1, len(field_ids(fields)) + 1)), "unique ids, no gaps"
        assert [f["Id"] for f in fields][: DT_IDS[name] - 1] == list(range(1, DT_IDS[name])), "earlier ids kept"
        assert ids["dt"] == DT_IDS[name]
        partitions = table["PartitionSpec"]["Fields"]
        assert [(p["SourceId"], p["Transform"], p["Name"]) for p in partitions] == [
            (ids["account_id"], "identity", "account_id"),
            (ids["dt"], "identity", "dt"),
        ]
        # the dashboards' test fixture declares the same columns
        assert athena_ddl_columns(name).replace(", ", ",") in DASHBOARDS_TEST.read_text().replace('"\n', "").replace(
            '        "', ""
        ).replace(", ", ",")


def test_every_table_is_compacted_and_its_snapshots_expire(template: dict[str, Any]) -> None:
    optimizers = of_type(template, "AWS::Glue::TableOptimizer").values()
    logical = {t["Properties"]["Name"]: n for n, t in of_type(template, "AWS::Glue::Table").items()}
    found = {(o["Properties"]["TableName"]["Ref"], o["Properties"]["Type"]) for o in optimizers}
    assert found == {(logical[t], kind) for t in TABLES for kind in ("compaction", "retention")}
    for optimizer in optimizers:
        config = optimizer["Properties"]["TableOptimizerConfiguration"]
        assert config == {"Enabled": True, "RoleArn": {"Fn::GetAtt": ["IcebergTablesRole", "Arn"]}}


def test_the_firehose_stream_applies_updates_and_deletes_by_the_tables_unique_keys(template: dict[str, Any]) -> None:
    stream = template["Resources"]["ExportStream"]
    props = stream["Properties"]
    assert props["DeliveryStreamType"] == "DirectPut"
    assert props["DeliveryStreamEncryptionConfigurationInput"] == {"KeyType": "AWS_OWNED_CMK"}
    destination = props["IcebergDestinationConfiguration"]
    assert destination["RoleARN"] == {"Fn::GetAtt": ["IcebergTablesRole", "Arn"]}
    assert destination["CatalogConfiguration"]["CatalogArn"]["Fn::Sub"].endswith(":catalog")
    assert destination["S3Configuration"]["ErrorOutputPrefix"] == "iceberg-errors/"
    assert destination["S3Configuration"]["BucketARN"] == {"Fn::GetAtt": ["ProjectionsBucket", "Arn"]}
    # Firehose takes both hints or neither
    assert destination["BufferingHints"] == {
        "IntervalInSeconds": {"Ref": "ExportBatchingWindowSeconds"},
        "SizeInMBs": 128,
    }
    assert "AppendOnly" not in destination  # updates and deletes
    tables = {t["DestinationTableName"]: t for t in destination["DestinationTableConfigurationList"]}
    assert set(tables) == set(TABLES)
    for name, table in tables.items():
        assert table["DestinationDatabaseName"] == {"Ref": "GlueDatabase"}
        assert tuple(table["UniqueKeys"]) == UNIQUE_KEYS[name]
    # Firehose checks at creation that the tables and their unique keys exist
    assert set(stream["DependsOn"]) == set(of_type(template, "AWS::Glue::Table"))
    [processor] = destination["ProcessingConfiguration"]["Processors"]
    assert processor["Type"] == "MetadataExtraction" and destination["ProcessingConfiguration"]["Enabled"] is True
    parameters = {p["ParameterName"]: p["ParameterValue"] for p in processor["Parameters"]}
    assert parameters["JsonParsingEngine"] == "JQ-1.6"
    assert parameters["MetadataExtractionQuery"] == {
        "Fn::Sub": '{destinationDatabaseName:"${GlueDatabase}",destinationTableName:._table,operation:._op}'
    }


def test_the_iceberg_role_is_for_firehose_and_glue_of_this_account_only(template: dict[str, Any]) -> None:
    role = template["Resources"]["IcebergTablesRole"]["Properties"]
    [trust] = role["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": ["firehose.amazonaws.com", "glue.amazonaws.com"]}
    assert trust["Condition"] == {"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}}
    statements = {s["Sid"]: s for s in role["Policies"][0]["PolicyDocument"]["Statement"]}
    assert statements["TableFiles"]["Resource"] == {"Fn::Sub": "${ProjectionsBucket.Arn}/iceberg/*"}
    assert statements["RejectedRecords"]["Resource"] == {"Fn::Sub": "${ProjectionsBucket.Arn}/iceberg-errors/*"}
    assert statements["RejectedRecords"]["Action"] == "s3:PutObject"
    glue = statements["Catalog"]["Resource"]
    assert glue[0]["Fn::Sub"].endswith(":catalog") and all("${GlueDatabase}" in r["Fn::Sub"] for r in glue[1:])


def test_the_glue_database_is_the_dashboards_database_for_the_default_prefix(template: dict[str, Any]) -> None:
    name = template["Resources"]["GlueDatabase"]["Properties"]["DatabaseInput"]["Name"]
    assert name == {"Fn::Join": ["_", {"Fn::Split": ["-", {"Ref": "Prefix"}]}]}
    assert template["Parameters"]["Prefix"]["Default"].replace("-", "_") == DashboardSettings().athena_database
    assert template["Outputs"]["AthenaDatabaseName"]["Value"] == name


def test_the_view_tables_stream_both_images(template: dict[str, Any]) -> None:
    for name in ("JobsTable", "InstancesTable"):
        spec = template["Resources"][name]["Properties"]["StreamSpecification"]
        assert spec == {"StreamViewType": "NEW_AND_OLD_IMAGES"}


def test_the_exporter_reads_both_streams_and_bisects_poison(template: dict[str, Any]) -> None:
    sources = [
        s["Properties"]
        for s in of_type(template, "AWS::Lambda::EventSourceMapping").values()
        if s["Properties"]["FunctionName"] == {"Ref": "ExporterFunction"}
    ]
    assert sorted(json.dumps(s["EventSourceArn"]) for s in sources) == sorted(
        json.dumps({"Fn::GetAtt": [t, "StreamArn"]}) for t in ("JobsTable", "InstancesTable")
    )
    for source in sources:
        assert source["MaximumBatchingWindowInSeconds"] <= 60  # Firehose buffers; this only gathers a batch
        assert source["BisectBatchOnFunctionError"] is True
        assert source["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
        assert source["DestinationConfig"]["OnFailure"]["Destination"] == {
            "Fn::GetAtt": ["ExporterDeadLetterQueue", "Arn"]
        }
    assert template["Parameters"]["ExportBatchingWindowSeconds"]["Default"] == 300
    function = template["Resources"]["ExporterFunction"]["Properties"]
    assert function["Handler"] == "batchops.entrypoints.export_lambda.exporter"
    assert (function["Runtime"], function["Architectures"]) == ("python3.12", ["arm64"])
    variables = function["Environment"]["Variables"]
    assert variables["BATCHOPS_EXPORT_STREAM"] == {"Ref": "ExportStream"}
    assert not [v for v in variables if v in ("BATCHOPS_EXPORT_BUCKET", "BATCHOPS_GLUE_DATABASE")]
    assert template["Outputs"]["ExportStreamName"]["Value"] == {"Ref": "ExportStream"}


def test_the_exporter_role_is_least_privilege(template: dict[str, Any]) -> None:
    role = template["Resources"]["ExporterRole"]["Properties"]
    statements = {s["Sid"]: s for s in role["Policies"][0]["PolicyDocument"]["Statement"] if "Sid" in s}
    for sid, statement in statements.items():
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        assert all("*" not in a for a in actions), sid
        assert statement["Effect"] == "Allow"
        assert not [a for a in actions if a.startswith(("s3:", "glue:"))], sid  # Firehose writes the tables
        if any(a.startswith("dynamodb:") for a in actions):
            text = json.dumps(statement["Resource"])
            assert "EventsTable" not in text and "SnapshotsTable" not in text and "TrackingTable" not in text
    assert statements["SendRows"] == {
        "Sid": "SendRows",
        "Effect": "Allow",
        "Action": "firehose:PutRecordBatch",
        "Resource": {
            "Fn::Sub": "arn:${AWS::Partition}:firehose:${AWS::Region}:${AWS::AccountId}:deliverystream/${ExportStream}"
        },
    }
    assert sorted(statements["ReadViewStreams"]["Resource"], key=json.dumps) == [
        {"Fn::Sub": "${InstancesTable.Arn}/stream/*"},
        {"Fn::Sub": "${JobsTable.Arn}/stream/*"},
    ]
    writes = [s for s in statements.values() if {"dynamodb:PutItem", "dynamodb:UpdateItem"} & set(s["Action"])]
    assert writes == []  # the exporter never writes the views


def test_results_expire_after_7_days_and_the_workgroup_enforces_its_settings(template: dict[str, Any]) -> None:
    bucket = template["Resources"]["ProjectionsBucket"]["Properties"]
    rules = bucket["LifecycleConfiguration"]["Rules"]
    assert {"Id": "athena-results-expire", "Status": "Enabled", "Prefix": "athena-results/", "ExpirationInDays": 7} in (
        rules
    )
    config = template["Resources"]["AthenaWorkGroup"]["Properties"]["WorkGroupConfiguration"]
    assert config["EnforceWorkGroupConfiguration"] is True
    assert config["BytesScannedCutoffPerQuery"] == {"Ref": "AthenaBytesScannedCutoffPerQuery"}
    assert template["Parameters"]["AthenaBytesScannedCutoffPerQuery"]["Default"] == 1024**3
    assert config["ResultConfiguration"]["OutputLocation"] == {"Fn::Sub": "s3://${ProjectionsBucket}/athena-results/"}
    assert template["Outputs"]["AthenaResultsLocation"]["Value"] == config["ResultConfiguration"]["OutputLocation"]


def test_every_checkov_suppression_says_why(template: dict[str, Any]) -> None:
    skipped = 0
    for name, resource in template["Resources"].items():
        for skip in resource.get("Metadata", {}).get("checkov", {}).get("skip", []):
            assert skip["id"].startswith("CKV_") and len(skip["comment"]) > 40, name
            skipped += 1
    assert skipped >= 20


def test_past_the_inline_limit_a_dry_run_still_reads_the_templates_summary() -> None:
    """The body is over CloudFormation's 51,200 inline bytes, so a deploy uploads it to S3 once (by its sha256: a
    second deploy finds it, tests/integration/test_deploy.py); a dry run, which uploads nothing, asks
    GetTemplateSummary about `summary_body`, which gives the same parameters and resource types."""
    import boto3
    from moto import mock_aws

    from batchops.rollout.template_body import TEMPLATE_BODY_LIMIT, summary_body, template_body

    body = template_body(TEMPLATE)
    assert len(body.encode()) > TEMPLATE_BODY_LIMIT, "then the S3 path is no longer the central stack's: test both"
    summary = summary_body(body)
    assert len(summary.encode()) < TEMPLATE_BODY_LIMIT // 2
    reduced, full = loads(summary), loads(body)
    assert reduced["Parameters"] == full["Parameters"] and reduced["Conditions"] == full["Conditions"]
    assert {k: r["Type"] for k, r in reduced["Resources"].items()} == {
        k: r["Type"] for k, r in full["Resources"].items()
    }
    assert "Outputs" not in reduced and not any("Properties" in r for r in reduced["Resources"].values())
    with mock_aws():
        cfn = boto3.client("cloudformation", region_name="us-east-1")
        got = cfn.get_template_summary(TemplateBody=summary)
    assert {p["ParameterKey"] for p in got["Parameters"]} == set(full["Parameters"])
    assert sorted(got["ResourceTypes"]) == sorted(r["Type"] for r in full["Resources"].values())


def _as_cloudformation_sees_it(template: dict[str, Any]) -> dict[str, Any]:
    """The template without what template_body leaves out: checkov's metadata, the console's parameter groups, and
    Delete policies (CloudFormation's default)."""
    template.get("Metadata", {}).pop("AWS::CloudFormation::Interface", None)
    if "Metadata" in template and not template["Metadata"]:
        template.pop("Metadata")
    for resource in template["Resources"].values():
        metadata = resource.get("Metadata")
        if metadata is not None:
            metadata.pop("checkov", None)
            if not metadata:
                resource.pop("Metadata")
        for attribute in ("DeletionPolicy", "UpdateReplacePolicy"):
            if resource.get(attribute) == "Delete":
                resource.pop(attribute)
    return template


@pytest.mark.parametrize("template", [TEMPLATE, TEMPLATE.parents[1] / "member-account" / "template.yaml"])
def test_the_body_a_deploy_sends_is_the_stack_without_comments_and_tool_metadata(template: Path) -> None:
    from batchops.rollout.template_body import template_body

    body = template_body(template)
    lines = body.splitlines()
    assert not [line for line in lines if line.lstrip().startswith("#") or not line.strip()]
    assert "checkov" not in body and "ParameterGroups" not in body and "DeletionPolicy: Delete" not in body
    assert loads(body) == _as_cloudformation_sees_it(loads(template.read_text()))  # the same stack
