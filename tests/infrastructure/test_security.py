"""Security checks over every template and the policies deploy.py writes, without checkov (see docs/deploy.md).

They cover what checkov's CloudFormation checks found worth checking here, and what it cannot see: the
artifact bucket and the OAM sink policy are made by deploy.py, not by a template, and checkov has no checks
for AWS::Oam::* or AWS::Events::EventBusPolicy.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from cfnlint.decode.cfn_yaml import loads

from batchops.rollout.artifact import artifact_bucket_policy, ensure_artifact_bucket
from batchops.rollout.oam_sinks import sink_policy

REPO = Path(__file__).resolve().parents[2]
TEMPLATES = sorted(REPO.glob("*/template.yaml"))
# Conditions that make a statement with Principal "*" specific to us.
SCOPING_KEYS = {"aws:PrincipalOrgID", "aws:SourceArn", "aws:SourceAccount", "aws:SecureTransport"}
# Actions that have no resource-level permissions: AWS only accepts Resource "*" for them.
# Actions with no resource type in AWS's Service Authorization Reference: "*" is their only resource.
RESOURCELESS_ACTIONS = {
    "xray:PutTraceSegments",
    "xray:PutTelemetryRecords",
    "cloudwatch:GetMetricData",
    "cloudwatch:ListMetrics",
    "logs:DescribeLogGroups",
    "logs:GetQueryResults",
    "logs:StopQuery",
    "oam:ListSinks",
    "pricing:GetProducts",
    "ec2:DescribeSpotPriceHistory",
}


def decode(path: Path) -> dict[str, Any]:
    decoded: dict[str, Any] = json.loads(json.dumps(loads(path.read_text())))
    return decoded


@pytest.fixture(scope="module", params=TEMPLATES, ids=[p.parent.name for p in TEMPLATES])
def template(request: pytest.FixtureRequest) -> dict[str, Any]:
    return decode(request.param)


def test_both_templates_are_checked() -> None:
    assert {p.parent.name for p in TEMPLATES} >= {"central-account", "member-account"}


def resources(template: dict[str, Any], *kinds: str) -> Iterator[tuple[str, dict[str, Any]]]:
    for name, resource in template["Resources"].items():
        if resource["Type"] in kinds:
            yield name, resource.get("Properties", {})


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def statements_of(value: Any) -> Iterator[dict[str, Any]]:
    """Statements of a document's Statement, both branches of any Fn::If included (AWS::NoValue dropped)."""
    for item in as_list(value):
        if isinstance(item, dict) and set(item) == {"Fn::If"}:
            _, yes, no = item["Fn::If"]
            for branch in (yes, no):
                if branch != {"Ref": "AWS::NoValue"}:
                    yield from statements_of(branch)
        else:
            yield item


def documents(template: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(resource, kind, statement) for every policy statement: IAM, trust, resource policies."""
    for name, resource in template["Resources"].items():
        props = resource.get("Properties", {})
        for policy in props.get("Policies", []):
            for s in statements_of(policy["PolicyDocument"]["Statement"]):
                yield name, "identity", s
        if "PolicyDocument" in props:
            kind = "identity" if resource["Type"] in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy") else "resource"
            for s in statements_of(props["PolicyDocument"]["Statement"]):
                yield name, kind, s
        if "AssumeRolePolicyDocument" in props:
            for s in statements_of(props["AssumeRolePolicyDocument"]["Statement"]):
                yield name, "trust", s
        if resource["Type"] == "AWS::Events::EventBusPolicy" and "Statement" in props:
            yield from ((name, "resource", s) for s in statements_of(props["Statement"]))
        if resource["Type"] == "AWS::Oam::Sink" and "Policy" in props:
            for s in statements_of(props["Policy"]["Statement"]):
                yield name, "resource", s


def _check_statement(where: str, kind: str, statement: dict[str, Any]) -> None:
    assert "NotAction" not in statement and "NotPrincipal" not in statement, where
    for action in as_list(statement.get("Action", [])):
        if statement.get("Effect") == "Deny":
            continue  # a deny of everything (e.g. without TLS) is the safe direction
        assert isinstance(action, str) and "*" not in action, (where, action)
    if kind == "identity" and statement.get("Effect") == "Allow" and "*" in as_list(statement.get("Resource")):
        assert set(as_list(statement["Action"])) <= RESOURCELESS_ACTIONS, (where, statement.get("Sid"))
    if kind == "trust":
        assert set(statement["Principal"]) == {"Service"}, where
    principal = statement.get("Principal")
    if statement.get("Effect") == "Allow" and (principal == "*" or principal == {"AWS": "*"}):
        keys = {k for condition in statement.get("Condition", {}).values() for k in condition}
        assert keys & SCOPING_KEYS, (where, "a public principal without an Organization or source condition")


def test_no_wildcard_actions_or_public_principals(template: dict[str, Any]) -> None:
    found = list(documents(template))
    assert found
    for name, kind, statement in found:
        _check_statement(name, kind, statement)


def test_roles_carry_no_managed_admin_policies(template: dict[str, Any]) -> None:
    for name, props in resources(template, "AWS::IAM::Role"):
        for arn in props.get("ManagedPolicyArns", []):
            assert "AdministratorAccess" not in json.dumps(arn) and "FullAccess" not in json.dumps(arn), name


def test_queues_tables_buckets_topics_are_encrypted(template: dict[str, Any]) -> None:
    for name, props in resources(template, "AWS::SQS::Queue"):
        assert props.get("SqsManagedSseEnabled") is True or "KmsMasterKeyId" in props, name
    for name, props in resources(template, "AWS::DynamoDB::Table"):
        assert props["SSESpecification"]["SSEEnabled"] is True, name
        assert props["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True, name
    for name, props in resources(template, "AWS::S3::Bucket"):
        assert props["BucketEncryption"]["ServerSideEncryptionConfiguration"], name
    for name, props in resources(template, "AWS::SNS::Topic"):
        assert "KmsMasterKeyId" in props, name


def test_buckets_are_private_and_tls_only(template: dict[str, Any]) -> None:
    policies = [props for _, props in resources(template, "AWS::S3::BucketPolicy")]
    for name, props in resources(template, "AWS::S3::Bucket"):
        assert props["PublicAccessBlockConfiguration"] == {
            "BlockPublicAcls": True,
            "IgnorePublicAcls": True,
            "BlockPublicPolicy": True,
            "RestrictPublicBuckets": True,
        }, name
        assert props.get("OwnershipControls", {}).get("Rules", [{}])[0].get("ObjectOwnership") == "BucketOwnerEnforced"
        own = [p for p in policies if p["Bucket"] == {"Ref": name}]
        assert own and any(_denies_plain_http(s) for p in own for s in p["PolicyDocument"]["Statement"]), name


def _denies_plain_http(statement: dict[str, Any]) -> bool:
    return (
        statement.get("Effect") == "Deny"
        and statement.get("Condition", {}).get("Bool", {}).get("aws:SecureTransport") in (False, "false")
        and statement.get("Principal") in ("*", {"AWS": "*"})
    )


def test_nothing_is_public(template: dict[str, Any]) -> None:
    for name, props in resources(template, "AWS::Lambda::Permission"):
        if props.get("Principal") == "*":
            assert "SourceArn" in props or "SourceAccount" in props or "PrincipalOrgID" in props, name
    for name, props in resources(template, "AWS::Lambda::Url"):
        assert props.get("AuthType") != "NONE", name
    for name, props in resources(template, "AWS::EC2::SecurityGroup"):
        for rule in props.get("SecurityGroupIngress", []):
            assert rule.get("CidrIp") != "0.0.0.0/0" and rule.get("CidrIpv6") != "::/0", name
    for name, props in resources(template, "AWS::Grafana::Workspace"):
        assert props.get("AuthenticationProviders") == ["AWS_SSO"], name


def test_log_groups_expire(template: dict[str, Any]) -> None:
    for name, props in resources(template, "AWS::Logs::LogGroup"):
        assert "RetentionInDays" in props, name


# --- what deploy.py creates outside the templates -----------------------------------------------------


def test_the_artifact_bucket_policy_denies_every_request_without_tls() -> None:
    policy = artifact_bucket_policy("bo-artifacts", "aws")
    (statement,) = policy["Statement"]
    assert _denies_plain_http(statement)
    assert statement["Resource"] == ["arn:aws:s3:::bo-artifacts", "arn:aws:s3:::bo-artifacts/*"]
    _check_statement("artifact bucket", "resource", statement)


def test_a_new_artifact_bucket_is_made_private_encrypted_versioned_and_tls_only() -> None:
    s3 = boto3.client("s3", region_name="eu-west-1", aws_access_key_id="a", aws_secret_access_key="b")
    bucket = "bo-artifacts-999999999999-eu-west-1"
    with Stubber(s3) as stub:
        stub.add_client_error("head_bucket", "404", http_status_code=404)
        stub.add_response(
            "create_bucket",
            {},
            {"Bucket": bucket, "CreateBucketConfiguration": {"LocationConstraint": "eu-west-1"}},
        )
        stub.add_response(
            "put_public_access_block",
            {},
            {
                "Bucket": bucket,
                "PublicAccessBlockConfiguration": {
                    "BlockPublicAcls": True,
                    "IgnorePublicAcls": True,
                    "BlockPublicPolicy": True,
                    "RestrictPublicBuckets": True,
                },
            },
        )
        stub.add_response(
            "put_bucket_ownership_controls",
            {},
            {"Bucket": bucket, "OwnershipControls": {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]}},
        )
        stub.add_response(
            "put_bucket_encryption",
            {},
            {
                "Bucket": bucket,
                "ServerSideEncryptionConfiguration": {
                    "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]
                },
            },
        )
        stub.add_response(
            "put_bucket_versioning", {}, {"Bucket": bucket, "VersioningConfiguration": {"Status": "Enabled"}}
        )
        stub.add_response(
            "put_bucket_policy",
            {},
            {"Bucket": bucket, "Policy": json.dumps(artifact_bucket_policy(bucket))},
        )
        changes = ensure_artifact_bucket(s3, bucket, "eu-west-1", partition="aws", dry_run=False)
        stub.assert_no_pending_responses()
    assert changes[0] == f"create bucket {bucket}" and len(changes) == 6


def test_the_oam_sink_admits_the_organization_for_metrics_and_logs_only() -> None:
    policy = sink_policy("o-abcdefghij")
    (statement,) = policy["Statement"]
    _check_statement("OAM sink", "resource", statement)
    assert statement["Condition"]["ForAnyValue:StringEquals"] == {"aws:PrincipalOrgID": "o-abcdefghij"}
    assert statement["Condition"]["ForAllValues:StringEquals"] == {
        "oam:ResourceTypes": ["AWS::CloudWatch::Metric", "AWS::Logs::LogGroup"]
    }


def test_the_checks_catch_what_they_are_for() -> None:
    with pytest.raises(AssertionError):
        _check_statement("x", "identity", {"Effect": "Allow", "Action": "events:*", "Resource": "arn:x"})
    with pytest.raises(AssertionError):
        _check_statement("x", "identity", {"Effect": "Allow", "Action": "events:PutEvents", "Resource": "*"})
    _check_statement("x", "identity", {"Effect": "Allow", "Action": ["xray:PutTraceSegments"], "Resource": "*"})
    hidden = {"Fn::If": ["C", {"Effect": "Allow", "Action": "s3:*", "Resource": "*"}, {"Ref": "AWS::NoValue"}]}
    assert list(statements_of([hidden])) == [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]
    with pytest.raises(AssertionError):
        _check_statement("x", "resource", {"Effect": "Allow", "Principal": "*", "Action": "sqs:SendMessage"})
    with pytest.raises(AssertionError):
        _check_statement("x", "trust", {"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole"})
    assert not _denies_plain_http({"Effect": "Allow", "Principal": "*", "Condition": {}})
