"""The Athena export in the central template: Glue tables equal to what the exporter writes and the dashboards
query, the exporter's event sources and least-privilege role, the bucket, the workgroup, the outputs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from cfnlint.decode import decode_str
from cfnlint.decode.cfn_yaml import loads

from batchops.adapters.athena_export import PARQUET_INPUT, PARQUET_OUTPUT, PARQUET_SERDE, glue_table_input
from batchops.dashboards import DashboardSettings
from batchops.export_layout import TABLES, athena_ddl_columns

TEMPLATE = Path(__file__).resolve().parents[2] / "central-account" / "template.yaml"
DASHBOARDS_TEST = Path(__file__).resolve().parents[1] / "integration" / "test_dashboards.py"


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    decoded, problems = decode_str(TEMPLATE.read_text())
    assert not problems
    return json.loads(json.dumps(decoded))


def of_type(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {n: r for n, r in template["Resources"].items() if r["Type"] == kind}


def test_glue_tables_are_what_the_exporter_writes_and_the_dashboards_query(template: dict[str, Any]) -> None:
    tables = {
        t["Properties"]["TableInput"]["Name"]: t["Properties"] for t in of_type(template, "AWS::Glue::Table").values()
    }
    assert set(tables) == set(TABLES) == {"jobs", "instances", "job_events", "job_attempts"}
    for name, props in tables.items():
        expected = glue_table_input(name, "BUCKET")
        got = props["TableInput"]
        assert props["DatabaseName"] == {"Ref": "GlueDatabase"}
        assert (
            got["PartitionKeys"]
            == expected["PartitionKeys"]
            == [
                {"Name": "account_id", "Type": "string"},
                {"Name": "dt", "Type": "date"},
            ]
        )
        descriptor = got["StorageDescriptor"]
        assert descriptor["Columns"] == expected["StorageDescriptor"]["Columns"], name
        assert descriptor["Location"] == {"Fn::Sub": f"s3://${{ProjectionsBucket}}/projections/{name}/"}
        assert (descriptor["InputFormat"], descriptor["OutputFormat"]) == (PARQUET_INPUT, PARQUET_OUTPUT)
        assert descriptor["SerdeInfo"]["SerializationLibrary"] == PARQUET_SERDE
        # the dashboards' test fixture declares the same columns (account_id included: its partition column)
        columns = ", ".join(f"{c['Name']} {c['Type']}" for c in descriptor["Columns"])
        assert f"account_id string, {columns}" == athena_ddl_columns(name)
        assert athena_ddl_columns(name).replace(", ", ",") in DASHBOARDS_TEST.read_text().replace('"\n', "").replace(
            '        "', ""
        ).replace(", ", ",")


def test_the_glue_database_is_the_dashboards_database_for_the_default_prefix(template: dict[str, Any]) -> None:
    name = template["Resources"]["GlueDatabase"]["Properties"]["DatabaseInput"]["Name"]
    assert name == {"Fn::Join": ["_", {"Fn::Split": ["-", {"Ref": "Prefix"}]}]}
    assert template["Parameters"]["Prefix"]["Default"].replace("-", "_") == DashboardSettings().athena_database
    assert template["Outputs"]["AthenaDatabaseName"]["Value"] == name


def test_the_view_tables_stream_both_images(template: dict[str, Any]) -> None:
    for name in ("JobsTable", "InstancesTable"):
        spec = template["Resources"][name]["Properties"]["StreamSpecification"]
        assert spec == {"StreamViewType": "NEW_AND_OLD_IMAGES"}


def test_the_exporter_reads_both_streams_in_windows_and_bisects_poison(template: dict[str, Any]) -> None:
    sources = [
        s["Properties"]
        for s in of_type(template, "AWS::Lambda::EventSourceMapping").values()
        if s["Properties"]["FunctionName"] == {"Ref": "ExporterFunction"}
    ]
    assert sorted(json.dumps(s["EventSourceArn"]) for s in sources) == sorted(
        json.dumps({"Fn::GetAtt": [t, "StreamArn"]}) for t in ("JobsTable", "InstancesTable")
    )
    for source in sources:
        assert source["MaximumBatchingWindowInSeconds"] == {"Ref": "ExportBatchingWindowSeconds"}
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
    assert variables["BATCHOPS_EXPORT_BUCKET"] == {"Ref": "ProjectionsBucket"}
    assert variables["BATCHOPS_GLUE_DATABASE"] == {"Ref": "GlueDatabase"}


def test_the_exporter_role_is_least_privilege(template: dict[str, Any]) -> None:
    role = template["Resources"]["ExporterRole"]["Properties"]
    statements = {s["Sid"]: s for s in role["Policies"][0]["PolicyDocument"]["Statement"] if "Sid" in s}
    for sid, statement in statements.items():
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        assert all("*" not in a for a in actions), sid
        assert statement["Effect"] == "Allow"
        text = json.dumps(statement["Resource"])
        if any(a.startswith("s3:") for a in actions):
            assert "ProjectionsBucket" in text
        if any(a.startswith("dynamodb:") for a in actions):
            assert "EventsTable" not in text and "SnapshotsTable" not in text and "TrackingTable" not in text
    assert statements["RewriteProjectionObjects"]["Resource"] == {"Fn::Sub": "${ProjectionsBucket.Arn}/projections/*"}
    assert statements["ListProjections"]["Condition"] == {"StringLike": {"s3:prefix": "projections/*"}}
    assert sorted(statements["ReadViewStreams"]["Resource"], key=json.dumps) == [
        {"Fn::Sub": "${InstancesTable.Arn}/stream/*"},
        {"Fn::Sub": "${JobsTable.Arn}/stream/*"},
    ]
    glue = statements["RegisterPartitions"]["Resource"]
    assert all("${GlueDatabase}" in r["Fn::Sub"] for r in glue[1:]) and glue[0]["Fn::Sub"].endswith(":catalog")
    assert {r["Fn::Sub"].rsplit("/", 1)[-1] for r in glue[2:]} == set(TABLES)
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


def test_the_template_stays_under_cloudformations_inline_limit() -> None:
    # Past 51,200 bytes the deploy must upload the template (a write), so a dry run could not read it and a
    # second deploy would no longer be write-free (tests/integration/test_deploy.py).
    from batchops.rollout.template_body import TEMPLATE_BODY_LIMIT, template_body

    assert len(template_body(TEMPLATE).encode()) < TEMPLATE_BODY_LIMIT  # what the deploy sends: no comment lines


@pytest.mark.parametrize("template", [TEMPLATE, TEMPLATE.parents[1] / "member-account" / "template.yaml"])
def test_the_body_a_deploy_sends_is_the_template_without_its_comments(template: Path) -> None:
    from batchops.rollout.template_body import template_body

    body = template_body(template)
    assert not [line for line in body.splitlines() if line.lstrip().startswith("#")]
    assert loads(body) == loads(template.read_text())  # no comment line was part of a value
