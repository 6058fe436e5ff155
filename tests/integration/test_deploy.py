"""`python deploy.py` against a moto server (AWS_ENDPOINT_URL), and the request shapes moto cannot check.

The end-to-end tests run the real CLI path over HTTP, as the local demo does: an Organization with an OU
of three accounts, the real central and member templates, the StackSet in two regions. What moto does
not do (Managed Grafana, OAM, automatic deployment, the bus policy) is asserted with botocore's Stubber.
"""

from __future__ import annotations

import ast
import importlib.util
import io
import json
import logging
import socket
import urllib.request
import warnings
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import ANY, Stubber
from moto.server import ThreadedMotoServer
from rich.console import Console

import template_render
from batchops.local.emulator import patch_moto
from batchops.rollout import grafana_workspace
from batchops.rollout.artifact import StagedArtifact
from batchops.rollout.central_stack import bus_policy_problems, central_parameters, unprotect_event_store
from batchops.rollout.clients import Clients, WriteRefused, is_read_only
from batchops.rollout.coverage import (
    AUTO_DEPLOYMENT_PENDING,
    DEPLOYED,
    FAILED,
    LEAVING,
    MANAGEMENT,
    MISSING,
    SUSPENDED,
    CoverageRow,
    coverage,
)
from batchops.rollout.oam_sinks import REGION_SLOTS, ensure_sink, sink_policy, sink_slots
from batchops.rollout.preflight import STACKSETS_PRINCIPAL, Account, Caller, OrgUnit, PreflightReport
from batchops.rollout.settings import CentralCapacity, OperationPreferences, RolloutSettings
from batchops.rollout.stack_set import Instance, StackSetSpec
from batchops.rollout.stack_set_changes import ensure_stack_set
from batchops.rollout.stack_set_operations import watch_operation
from batchops.rollout.stacks import deploy_stack
from batchops.rollout.tables import coverage_table
from batchops.rollout.template_body import TEMPLATE_BODY_LIMIT
from template_render import CAPACITY_PARAMETERS

REPO = Path(__file__).resolve().parents[2]


def _load_cli() -> Any:
    """deploy.py sits at the repository root, outside the package: load it from its path."""
    spec = importlib.util.spec_from_file_location("deploy", REPO / "deploy.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


deploy = _load_cli()
REGIONS = ("us-east-1", "eu-west-1")
PREFIX = "bo"
RULES = ("bo-batch-jobs", "bo-batch-api", "bo-ecs", "bo-ec2", "bo-autoscaling")


@pytest.fixture(scope="module")
def moto_gaps() -> Iterator[None]:
    """moto's gaps filled for these tests only (batchops.local.emulator, undone afterwards)."""
    with pytest.MonkeyPatch.context() as patch:
        patch_moto(patch.setattr)
        yield


@pytest.fixture(scope="module")
def moto_server(moto_gaps: None) -> Iterator[str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one access-log line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@dataclass
class Org:
    """The Organization the tests deploy to."""

    url: str
    id: str
    root: str
    ou: str
    members: list[str]
    management: str
    artifact: Path

    def session(self, account: str | None = None) -> boto3.Session:
        """The management account's session, or a member's through OrganizationAccountAccessRole."""
        if account is None:
            return boto3.Session(region_name="us-east-1")
        role = f"arn:aws:iam::{account}:role/OrganizationAccountAccessRole"
        c = boto3.client("sts", region_name="us-east-1").assume_role(RoleArn=role, RoleSessionName="look")[
            "Credentials"
        ]
        return boto3.Session(
            aws_access_key_id=c["AccessKeyId"],
            aws_secret_access_key=c["SecretAccessKey"],
            aws_session_token=c["SessionToken"],
            region_name="us-east-1",
        )

    def add_account(self, name: str) -> str:
        """A new account moved into the OU (AWS would auto-deploy to it; moto does not)."""
        orgs = boto3.client("organizations", region_name="us-east-1")
        account = orgs.create_account(AccountName=name, Email=f"{name}@example.com")["CreateAccountStatus"]["AccountId"]
        orgs.move_account(AccountId=account, SourceParentId=self.root, DestinationParentId=self.ou)
        return str(account)


@pytest.fixture
def org(moto_server: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Org:
    """A fresh emulator state: an Organization with an OU of three member accounts, trusted access off."""
    urllib.request.urlopen(urllib.request.Request(f"{moto_server}/moto-api/reset", method="POST")).read()
    for key, value in {
        "AWS_ENDPOINT_URL": moto_server,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(key, value)
    for key in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_REGION"):
        monkeypatch.delenv(key, raising=False)
    orgs = boto3.client("organizations", region_name="us-east-1")
    organization = orgs.create_organization(FeatureSet="ALL")["Organization"]
    root = orgs.list_roots()["Roots"][0]["Id"]
    ou = orgs.create_organizational_unit(ParentId=root, Name="batch")["OrganizationalUnit"]["Id"]
    members = []
    for i in range(3):
        status = orgs.create_account(AccountName=f"member-{i}", Email=f"member-{i}@example.com")
        account = status["CreateAccountStatus"]["AccountId"]
        orgs.move_account(AccountId=account, SourceParentId=root, DestinationParentId=ou)
        members.append(account)
    artifact = tmp_path / "batchops-lambda.zip"
    with zipfile.ZipFile(artifact, "w") as archive:
        archive.writestr("batchops/__init__.py", "")
    return Org(moto_server, organization["Id"], root, ou, members, organization["MasterAccountId"], artifact)


class Recorder:
    """A botocore before-call hook that records (service, operation) of every call a session makes."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def __call__(self, model: Any, **_: Any) -> None:
        self.calls.append((model.service_model.service_name, model.name))

    def writes(self) -> list[tuple[str, str]]:
        return [c for c in self.calls if not is_read_only(*c)]


def run(org: Org, *args: str, recorder: Recorder | None = None) -> tuple[int, str]:
    """`python deploy.py ...` in-process; returns its exit code and what it printed."""
    session = boto3.Session(region_name="us-east-1")
    if recorder is not None:
        session.events.register("before-call", recorder)
    out = io.StringIO()
    console = Console(file=out, width=200, force_terminal=False, color_system=None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # moto: "No Moto CloudFormation support for AWS::CloudWatch::Alarm"
        code = deploy.main(list(args), session=session, console=console)
    return code, out.getvalue()


def deploy_args(org: Org, *extra: str) -> list[str]:
    # DeletionProtection=false: moto replaces a table to change its protection, which the protection forbids,
    # so destroy could not unprotect the event store here (the update it sends is checked with a Stubber).
    return [
        "--org-unit", org.ou, "--regions", ",".join(REGIONS), "--prefix", PREFIX,
        "--artifact", str(org.artifact), "--no-oam", "--no-grafana", "--poll-seconds", "0.01",
        "--central-parameter", "DeletionProtection=false", *extra,
    ]  # fmt: skip


def central_outputs(org: Org) -> dict[str, str]:
    stack = boto3.client("cloudformation", region_name="us-east-1").describe_stacks(StackName=f"{PREFIX}-central")
    return {o["OutputKey"]: o["OutputValue"] for o in stack["Stacks"][0].get("Outputs", [])}


def assert_member_forwards(org: Org, account: str, region: str, bus_arn: str) -> None:
    """In the member account and region: the rules, each targeting the central bus with the role."""
    session = org.session(account)
    events = session.client("events", region_name=region)
    rules = {r["Name"]: r for r in events.list_rules(NamePrefix=f"{PREFIX}-")["Rules"]}
    assert set(rules) == set(RULES), (account, region)
    role_arn = f"arn:aws:iam::{account}:role/{PREFIX}-forward-{region}"
    for name in RULES:
        assert rules[name].get("EventBusName", "default") == "default"
        (target,) = events.list_targets_by_rule(Rule=name)["Targets"]
        assert (target["Arn"], target["RoleArn"]) == (bus_arn, role_arn)
    role = session.client("iam").get_role(RoleName=f"{PREFIX}-forward-{region}")["Role"]
    (trust,) = role["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "events.amazonaws.com"}
    assert trust["Condition"]["StringEquals"] == {"aws:SourceAccount": account}
    assert set(trust["Condition"]["ArnEquals"]["aws:SourceArn"]) == {
        f"arn:aws:events:{region}:{account}:rule/{name}" for name in RULES
    }
    (policy_name,) = session.client("iam").list_role_policies(RoleName=role["RoleName"])["PolicyNames"]
    document = session.client("iam").get_role_policy(RoleName=role["RoleName"], PolicyName=policy_name)
    policy = document["PolicyDocument"]
    if isinstance(policy, str):  # moto keeps the CloudFormation-created document as Python's repr
        policy = ast.literal_eval(policy)
    (statement,) = policy["Statement"]
    assert (statement["Action"], statement["Resource"]) == ("events:PutEvents", bus_arn)


# --- end to end over the moto server -------------------------------------------------------------------


def test_deploy_covers_every_member_and_region_then_changes_nothing(org: Org) -> None:
    code, out = run(org, *deploy_args(org, "--yes"))
    assert code == 0, out
    assert "trusted access for CloudFormation StackSets turned on" in out
    assert f"create StackSet {PREFIX}-member" in out
    outputs = central_outputs(org)
    assert {"CentralBusArn", "IngestQueueUrl", "EventsTableName", "StoreUrl", "IngestDeadLetterQueueUrl"} <= set(
        outputs
    )
    bus_arn = outputs["CentralBusArn"]
    assert bus_arn == f"arn:aws:events:us-east-1:{org.management}:event-bus/{PREFIX}-central"
    for account in org.members:
        for region in REGIONS:
            assert_member_forwards(org, account, region, bus_arn)

    stack_set = boto3.client("cloudformation", region_name="us-east-1").describe_stack_set(StackSetName="bo-member")
    assert stack_set["StackSet"]["PermissionModel"] == "SERVICE_MANAGED"
    assert stack_set["StackSet"]["AutoDeployment"] == {"Enabled": True, "RetainStacksOnAccountRemoval": False}

    # The waiting alarms, to the topic the deploy made (it says how to subscribe).
    topic = f"arn:aws:sns:us-east-1:{org.management}:{PREFIX}-alarms"
    assert f"create SNS topic {topic}" in " ".join(out.split())
    alarms = boto3.client("cloudwatch", region_name="us-east-1").describe_alarms(AlarmNamePrefix=f"{PREFIX}-")
    waiting = {
        a["AlarmName"]: a for a in alarms["MetricAlarms"] if "wait" in a["AlarmName"] or "piling" in a["AlarmName"]
    }
    assert set(waiting) == {f"{PREFIX}-job-waiting-too-long", f"{PREFIX}-jobs-piling-up"}
    assert all(a["AlarmActions"] == a["OKActions"] == [topic] for a in waiting.values())
    assert waiting[f"{PREFIX}-job-waiting-too-long"]["Threshold"] == 1800  # --alarm-oldest-wait's default, 30m

    # The central template is over CloudFormation's inline limit: it went to the artifact bucket, once.
    s3 = boto3.client("s3", region_name="us-east-1")
    [bucket] = [b["Name"] for b in s3.list_buckets()["Buckets"] if b["Name"].startswith(f"{PREFIX}-artifacts-")]
    [template] = s3.list_objects_v2(Bucket=bucket, Prefix="templates/")["Contents"]
    assert template["Size"] > TEMPLATE_BODY_LIMIT

    recorder = Recorder()
    code, out = run(org, *deploy_args(org, "--yes"), recorder=recorder)
    assert code == 0, out
    assert "no changes" in out
    assert recorder.writes() == []
    assert ("cloudformation", "DescribeStackSet") in recorder.calls
    assert ("s3", "HeadObject") in recorder.calls  # the uploaded template found, not sent again


def test_member_events_reach_the_central_queue_and_others_stay_home(org: Org) -> None:
    code, out = run(org, *deploy_args(org, "--yes"))
    assert code == 0, out
    # A tap on the central bus: moto's Lambda event source would consume the ingest queue itself.
    sqs = boto3.client("sqs", region_name="us-east-1")
    tap = sqs.create_queue(QueueName="tap")["QueueUrl"]
    tap_arn = sqs.get_queue_attributes(QueueUrl=tap, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    central = boto3.client("events", region_name="us-east-1")
    pattern = {"source": ["aws.batch", "aws.ecs", "aws.ec2", "aws.autoscaling"]}
    central.put_rule(Name="tap", EventBusName=f"{PREFIX}-central", EventPattern=json.dumps(pattern))
    central.put_targets(Rule="tap", EventBusName=f"{PREFIX}-central", Targets=[{"Id": "tap", "Arn": tap_arn}])
    member = org.members[1]
    events = org.session(member).client("events", region_name="eu-west-1")
    cluster = f"arn:aws:ecs:eu-west-1:{member}:cluster"
    sent = [
        ("aws.batch", "Batch Job State Change", {"jobId": "j-1", "status": "RUNNABLE"}),
        ("aws.ecs", "ECS Task State Change", {"clusterArn": f"{cluster}/AWSBatch-ce-1a2b3c4d-5e6f", "n": 1}),
        ("aws.ecs", "ECS Container Instance State Change", {"clusterArn": f"{cluster}/ce_Batch_1a2b3c4d", "n": 2}),
        ("aws.ecs", "ECS Task State Change", {"clusterArn": f"{cluster}/web-service", "n": 3}),
        ("aws.ec2", "EC2 Spot Instance Interruption Warning", {"instance-id": "i-1"}),
        ("aws.batch", "AWS API Call via CloudTrail", {"eventSource": "batch.amazonaws.com", "eventName": "ListJobs"}),
        (
            "aws.batch",
            "AWS API Call via CloudTrail",
            {"eventSource": "batch.amazonaws.com", "eventName": "CreateComputeEnvironment"},
        ),
        ("aws.autoscaling", "EC2 Instance Launch Successful", {"EC2InstanceId": "i-2"}),
    ]
    entries = [{"Source": s, "DetailType": t, "Detail": json.dumps(d)} for s, t, d in sent]
    assert events.put_events(Entries=entries)["FailedEntryCount"] == 0
    received = []
    while batch := sqs.receive_message(QueueUrl=tap, MaxNumberOfMessages=10).get("Messages"):
        received += [json.loads(m["Body"]) for m in batch]
        sqs.delete_message_batch(
            QueueUrl=tap, Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(batch)]
        )
    kinds = sorted((e["detail-type"], e["detail"].get("n", e["detail"].get("eventName", ""))) for e in received)
    assert kinds == [
        ("AWS API Call via CloudTrail", "CreateComputeEnvironment"),
        ("Batch Job State Change", ""),
        ("EC2 Instance Launch Successful", ""),
        ("EC2 Spot Instance Interruption Warning", ""),
        ("ECS Container Instance State Change", 2),
        ("ECS Task State Change", 1),
    ]


def test_a_new_account_shows_as_pending_auto_deployment_then_destroy_leaves_nothing(org: Org) -> None:
    assert run(org, *deploy_args(org, "--yes", "--include-management-account"))[0] == 0
    newcomer = org.add_account("member-late")

    code, out = run(org, "status", "--org-unit", org.ou, "--regions", ",".join(REGIONS), "--prefix", PREFIX)
    assert code == 0, out
    lines = [line for line in out.splitlines() if newcomer in line]
    assert len(lines) == 2 and all(AUTO_DEPLOYMENT_PENDING in line for line in lines), out
    for account in org.members:
        assert sum(1 for line in out.splitlines() if account in line and DEPLOYED in line) == 2
    assert "automatic deployment on" in out

    # A second deploy adds what automatic deployment would have (moto does not auto-deploy).
    code, out = run(org, *deploy_args(org, "--yes", "--include-management-account"))
    assert code == 0 and "1 account-regions missing" not in out and "2 account-regions missing" in out, out
    bus_arn = central_outputs(org)["CentralBusArn"]
    for region in REGIONS:
        assert_member_forwards(org, newcomer, region, bus_arn)
        management_rules = boto3.client("events", region_name=region).list_rules(NamePrefix=f"{PREFIX}-")["Rules"]
        assert {r["Name"] for r in management_rules} == set(RULES)

    # On AWS the StackSet reports its OUs; moto does not, so they are named here.
    destroy = (
        "destroy",
        "--org-unit",
        org.ou,
        "--prefix",
        PREFIX,
        "--no-oam",
        "--no-grafana",
        "--poll-seconds",
        "0.01",
    )
    code, out = run(org, *destroy, "--yes")
    assert code == 0, out
    assert f"deleted SNS topic arn:aws:sns:us-east-1:{org.management}:{PREFIX}-alarms" in " ".join(out.split())
    assert boto3.client("cloudwatch", region_name="us-east-1").describe_alarms()["MetricAlarms"] == []
    assert boto3.client("sns", region_name="us-east-1").list_topics()["Topics"] == []
    cfn = boto3.client("cloudformation", region_name="us-east-1")
    with pytest.raises(cfn.exceptions.StackSetNotFoundException):
        cfn.describe_stack_set(StackSetName=f"{PREFIX}-member")
    for region in REGIONS:
        regional = boto3.client("cloudformation", region_name=region)
        live = [s for s in regional.list_stacks()["StackSummaries"] if s["StackStatus"] != "DELETE_COMPLETE"]
        assert live == [], region
        assert boto3.client("events", region_name=region).list_rules(NamePrefix=f"{PREFIX}-")["Rules"] == []
    assert boto3.client("s3").list_buckets()["Buckets"] == []
    assert boto3.client("dynamodb", region_name="us-east-1").list_tables()["TableNames"] == []
    for account in [*org.members, newcomer]:
        session = org.session(account)
        for region in REGIONS:
            assert session.client("events", region_name=region).list_rules(NamePrefix=f"{PREFIX}-")["Rules"] == []
        roles = session.client("iam").list_roles()["Roles"]
        assert [r["RoleName"] for r in roles if r["RoleName"].startswith(PREFIX)] == []
    assert run(org, "status", "--org-unit", org.ou, "--prefix", PREFIX, "--home-region", "us-east-1")[0] == 1


def test_dry_run_shows_the_plan_and_makes_no_write_call(org: Org) -> None:
    recorder = Recorder()
    code, out = run(org, *deploy_args(org, "--dry-run"), recorder=recorder)
    assert code == 0, out
    assert recorder.calls and recorder.writes() == []
    assert "the deploy would:" in out and "  - create StackSet bo-member" in out
    assert "new stack:" in out and "AWS::Events::EventBus" in out and "AWS::Scheduler::Schedule" in out
    assert "would upload template.yaml" in out  # over the inline limit: planned from its summary
    said = " ".join(out.split())
    assert "alarm bo-job-waiting-too-long: SELECT MAX(OldestWaitingSeconds) FROM" in said and "> 1800 for 5 min" in said
    assert "create alarm bo-jobs-piling-up" in said
    assert "trusted access for CloudFormation StackSets is off" in out
    cfn = boto3.client("cloudformation", region_name="us-east-1")
    assert cfn.list_stacks()["StackSummaries"] == []
    assert boto3.client("s3").list_buckets()["Buckets"] == []

    # After a deploy, a dry run with a new artifact shows the parameter it would change, still writing nothing.
    assert run(org, *deploy_args(org, "--yes"))[0] == 0
    with zipfile.ZipFile(org.artifact, "a") as archive:
        archive.writestr("batchops/new.py", "")
    recorder = Recorder()
    code, out = run(org, *deploy_args(org, "--dry-run"), recorder=recorder)
    assert code == 0, out
    assert recorder.writes() == []
    assert ("parameter ArtifactKey" in out and "would upload" in out) or "upload s3://" in out


def test_the_alarm_options_set_the_topic_and_thresholds(org: Org) -> None:
    topic = f"arn:aws:sns:us-east-1:{org.management}:ops-pager"
    options = ("--yes", "--alarm-topic", topic, "--alarm-oldest-wait", "2h", "--alarm-jobs-waiting", "40")
    code, out = run(org, *deploy_args(org, *options))
    assert code == 0, out
    found = boto3.client("cloudwatch", region_name="us-east-1").describe_alarms(
        AlarmNames=[f"{PREFIX}-job-waiting-too-long", f"{PREFIX}-jobs-piling-up"]
    )["MetricAlarms"]
    assert [(a["Threshold"], a["AlarmActions"]) for a in found] == [(7200, [topic]), (40, [topic])]
    assert boto3.client("sns", region_name="us-east-1").list_topics()["Topics"] == [], "a topic given: none made"
    with pytest.raises(SystemExit) as refused:
        deploy.parser().parse_args(["--alarm-oldest-wait", "soon"])
    assert refused.value.code == 2


def test_the_capacity_options_reach_the_central_stack_whose_hot_tables_are_then_provisioned(org: Org) -> None:
    """moto's CloudFormation creates the tables as asked but skips the scaling targets and policies (no support for
    AWS::ApplicationAutoScaling::*, a warning each): those are the template tests' (test_capacity_mode.py)."""
    options = ("--capacity-mode", "provisioned", "--min-write-units", "7", "--max-write-units", "70")
    code, out = run(org, *deploy_args(org, "--yes", *options))
    assert code == 0, out
    [stack] = boto3.client("cloudformation", region_name="us-east-1").describe_stacks(StackName=f"{PREFIX}-central")[
        "Stacks"
    ]
    parameters = {p["ParameterKey"]: p["ParameterValue"] for p in stack["Parameters"]}
    assert {k: parameters[k] for k in CAPACITY_PARAMETERS} == {
        "CapacityMode": "provisioned",
        "ProvisionedMinReadUnits": "5",
        "ProvisionedMaxReadUnits": "10000",
        "ProvisionedMinWriteUnits": "7",
        "ProvisionedMaxWriteUnits": "70",
        "ProvisionedTargetUtilizationPercent": "70",
    }
    dynamodb = boto3.client("dynamodb", region_name="us-east-1")
    jobs = dynamodb.describe_table(TableName=f"{PREFIX}-jobs")["Table"]
    assert jobs["BillingModeSummary"]["BillingMode"] == "PROVISIONED"
    for throughput in [
        jobs["ProvisionedThroughput"],
        *(i["ProvisionedThroughput"] for i in jobs["GlobalSecondaryIndexes"]),
    ]:
        assert (throughput["ReadCapacityUnits"], throughput["WriteCapacityUnits"]) == (5, 7)
    snapshots = dynamodb.describe_table(TableName=f"{PREFIX}-snapshots")["Table"]
    assert snapshots["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    scaling = boto3.client("application-autoscaling", region_name="us-east-1")
    assert scaling.describe_scalable_targets(ServiceNamespace="dynamodb")["ScalableTargets"] == []  # moto's gap


def _central_parameters(*argv: str) -> dict[str, str]:
    """The parameters deploy.py would send to the central stack for this command line (GetTemplateSummary stubbed
    with the template's own parameter names)."""
    declared = [{"ParameterKey": k} for k in template_render.decoded(REPO / "central-account" / "template.yaml")[
        "Parameters"
    ]]  # fmt: skip
    settings = deploy.settings_from(deploy.parser().parse_args(["--org-unit", "ou-x", *argv]), "us-east-1")
    cfn = _client("cloudformation")
    with Stubber(cfn) as stub:
        stub.add_response("get_template_summary", {"Parameters": declared})
        found = central_parameters(cfn, settings, "{}", "o-abcdefghij", StagedArtifact("b", "k", []))
    return {k: v for k, v in found.items() if k in CAPACITY_PARAMETERS}


def test_the_capacity_mode_and_its_bounds_are_sent_as_the_templates_parameters() -> None:
    assert _central_parameters() == {"CapacityMode": "on-demand"}  # the bounds keep the template's defaults
    assert _central_parameters("--capacity-mode", "provisioned", "--max-read-units", "900") == {
        "CapacityMode": "provisioned",
        "ProvisionedMinReadUnits": "5",
        "ProvisionedMaxReadUnits": "900",
        "ProvisionedMinWriteUnits": "5",
        "ProvisionedMaxWriteUnits": "10000",
        "ProvisionedTargetUtilizationPercent": "70",
    }
    given = ("--min-read-units", "2", "--min-write-units", "3", "--max-write-units", "30", "--target-utilization", "50")
    sent = _central_parameters("--capacity-mode", "provisioned", *given)
    assert [sent[k] for k in CAPACITY_PARAMETERS[1:]] == ["2", "10000", "3", "30", "50"]
    # --central-parameter still has the last word, as for every other parameter
    assert _central_parameters("--central-parameter", "CapacityMode=provisioned")["CapacityMode"] == "provisioned"


def test_the_capacity_defaults_are_the_templates() -> None:
    parameters = template_render.decoded(REPO / "central-account" / "template.yaml")["Parameters"]
    assert CentralCapacity().parameters() == {"CapacityMode": parameters["CapacityMode"]["Default"]}
    provisioned = CentralCapacity(mode="provisioned").parameters()
    assert provisioned == {
        k: str(parameters[k]["Default"]) if k != "CapacityMode" else "provisioned" for k in CAPACITY_PARAMETERS
    }


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (("--max-read-units", "900"), "--max-read-units: only with --capacity-mode provisioned"),
        (("--capacity-mode", "provisioned", "--min-write-units", "50", "--max-write-units", "40"),
         "--min-write-units 50, --max-write-units 40: need 1 <= min <= max <= 40000"),
        (("--capacity-mode", "provisioned", "--target-utilization", "95"), "--target-utilization must be 20..90"),
    ],
)  # fmt: skip
def test_capacity_bounds_that_cannot_work_stop_the_deploy_before_any_call(argv: tuple[str, ...], said: str) -> None:
    recorder = Recorder()
    session = boto3.Session(region_name="us-east-1", aws_access_key_id="a", aws_secret_access_key="b")
    session.events.register("before-call", recorder)
    out = io.StringIO()
    code = deploy.main(["--org-unit", "ou-x", *argv], session=session, console=Console(file=out, width=200))
    assert code == 1 and said in " ".join(out.getvalue().split()), out.getvalue()
    assert recorder.calls == []


def test_preflight_says_what_to_fix(org: Org) -> None:
    code, out = run(org, "--org-unit", "ou-zzzz-00000000", "--regions", "us-east-1,xx-nowhere-1", "--no-oam")
    assert code == 2
    assert f"aws organizations enable-aws-service-access --service-principal {STACKSETS_PRINCIPAL}" in out
    assert "ou-zzzz-00000000: no such OU" in out
    assert "xx-nowhere-1: not an AWS region" in out

    member = org.members[0]
    session = org.session(member)
    out_io = io.StringIO()
    code = deploy.main(
        ["--org-unit", org.ou, "--regions", "us-east-1", "--call-as", "SELF", "--no-oam", "--no-grafana"],
        session=session,
        console=Console(file=out_io, width=200),
    )
    assert code == 2
    assert f"account {member} is not the management account" in out_io.getvalue()


# --- request shapes moto cannot check ------------------------------------------------------------------------


def _client(service: str, region: str = "us-east-1") -> Any:
    return boto3.client(
        service, region_name=region, aws_access_key_id="a", aws_secret_access_key="b", endpoint_url="https://x.invalid"
    )


def _report(accounts: int = 3) -> PreflightReport:
    members = tuple(Account(f"{i:012d}", f"m{i}", "ACTIVE", "ou-ab12-abcdefgh") for i in range(1, accounts + 1))
    caller = Caller("999999999999", "arn:aws:iam::999999999999:root", "o-abcdefghij", "999999999999", "SELF")
    return PreflightReport(caller, (OrgUnit("ou-ab12-abcdefgh", "batch", members),), REGIONS, "999999999999", True)


def _spec() -> StackSetSpec:
    return StackSetSpec(
        name="bo-member",
        template_body=(REPO / "member-account" / "template.yaml").read_text(),
        parameters={"Prefix": "bo", "CentralBusArn": "arn:aws:events:us-east-1:999999999999:event-bus/bo-central"},
        call_as="SELF",
        tags={"batchops:prefix": "bo"},
    )


def _quiet() -> Console:
    return Console(file=io.StringIO(), width=200)


def test_create_stack_set_asks_for_automatic_deployment_and_every_ou_region() -> None:
    cfn = _client("cloudformation")
    preferences = OperationPreferences(max_concurrent_percentage=40, failure_tolerance_percentage=5)
    with Stubber(cfn) as stub:
        stub.add_client_error("describe_stack_set", "StackSetNotFoundException")
        stub.add_response(
            "create_stack_set",
            {"StackSetId": "bo-member:1"},
            {
                "StackSetName": "bo-member",
                "Description": ANY,
                "TemplateBody": _spec().template_body,
                "Parameters": [
                    {"ParameterKey": "CentralBusArn", "ParameterValue": _spec().parameters["CentralBusArn"]},
                    {"ParameterKey": "Prefix", "ParameterValue": "bo"},
                ],
                "Capabilities": ["CAPABILITY_NAMED_IAM"],
                "Tags": [{"Key": "batchops:prefix", "Value": "bo"}],
                "PermissionModel": "SERVICE_MANAGED",
                "AutoDeployment": {"Enabled": True, "RetainStacksOnAccountRemoval": False},
                "ManagedExecution": {"Active": True},
                "CallAs": "SELF",
            },
        )
        stub.add_response(
            "create_stack_instances",
            {"OperationId": "op-1"},
            {
                "StackSetName": "bo-member",
                "DeploymentTargets": {"OrganizationalUnitIds": ["ou-ab12-abcdefgh"]},
                "Regions": list(REGIONS),
                "OperationPreferences": {
                    "RegionConcurrencyType": "PARALLEL",
                    "MaxConcurrentPercentage": 40,
                    "FailureTolerancePercentage": 5,
                    "ConcurrencyMode": "SOFT_FAILURE_TOLERANCE",
                },
                "OperationId": ANY,
                "CallAs": "SELF",
            },
        )
        stub.add_response("describe_stack_set_operation", {"StackSetOperation": {"Status": "SUCCEEDED"}})
        results = [{"Account": f"{i:012d}", "Region": r, "Status": "SUCCEEDED"} for i in range(1, 4) for r in REGIONS]
        stub.add_response("list_stack_set_operation_results", {"Summaries": results})
        changes, outcome = ensure_stack_set(
            cfn,
            _spec(),
            report=_report(),
            regions=REGIONS,
            preferences=preferences,
            console=_quiet(),
            dry_run=False,
            poll_seconds=0,
            timeout_seconds=5,
        )
        stub.assert_no_pending_responses()
    assert outcome is not None and outcome.count("SUCCEEDED") == 6 and not outcome.tolerance_exceeded(5)
    assert len(changes) == 2


def test_an_operation_past_the_failure_tolerance_fails_the_run_with_each_reason() -> None:
    cfn = _client("cloudformation")
    out = io.StringIO()
    with Stubber(cfn) as stub:
        stub.add_response("describe_stack_set_operation", {"StackSetOperation": {"Status": "RUNNING"}})
        stub.add_response(
            "list_stack_set_operation_results",
            {"Summaries": [{"Account": "000000000001", "Region": "us-east-1", "Status": "SUCCEEDED"}]},
        )
        stub.add_response("describe_stack_set_operation", {"StackSetOperation": {"Status": "FAILED"}})
        stub.add_response(
            "list_stack_set_operation_results",
            {
                "Summaries": [
                    {"Account": "000000000001", "Region": "us-east-1", "Status": "SUCCEEDED"},
                    {
                        "Account": "000000000002",
                        "Region": "us-east-1",
                        "Status": "FAILED",
                        "StatusReason": "ResourceLogicalId:ForwardRole, ResourceStatusReason:Role exists",
                    },
                    {
                        "Account": "000000000003",
                        "Region": "us-east-1",
                        "Status": "CANCELLED",
                        "StatusReason": "stopped",
                    },
                ]
            },
        )
        outcome = watch_operation(
            cfn,
            "bo-member",
            "op-2",
            call_as="SELF",
            targets=[(f"00000000000{i}", "us-east-1") for i in (1, 2, 3)],
            console=Console(file=out, width=200),
            poll_seconds=0,
            timeout_seconds=5,
            account_names={"000000000002": "member-2"},
        )
    assert outcome.tolerance_exceeded(50)
    assert [f[0] for f in outcome.failures] == ["000000000002", "000000000003"]
    assert "Role exists" in out.getvalue() and "member-2" in out.getvalue()


def test_the_change_set_carries_the_organization_bus_policy_and_the_deploy_checks_it() -> None:
    cfn = _client("cloudformation")
    body = (REPO / "central-account" / "template.yaml").read_text()
    assert "AWS::Events::EventBusPolicy" in body and "aws:PrincipalOrgID: !Ref OrganizationId" in body
    parameters = {"Prefix": "bo", "OrganizationId": "o-abcdefghij", "ArtifactBucket": "b", "ArtifactKey": "k"}
    with Stubber(cfn) as stub:
        stub.add_client_error("describe_stacks", "ValidationError", "Stack with id bo-central does not exist")
        stub.add_response("get_template_summary", {"ResourceTypes": ["AWS::Events::EventBusPolicy"]})
        stub.add_response(
            "create_change_set",
            {"Id": "arn:cs", "StackId": "arn:stack"},
            {
                "StackName": "bo-central",
                "ChangeSetName": ANY,
                "ChangeSetType": "CREATE",
                "TemplateBody": body,
                "Parameters": [{"ParameterKey": k, "ParameterValue": v} for k, v in sorted(parameters.items())],
                "Capabilities": ["CAPABILITY_IAM"],
                "Tags": [],
                "Description": ANY,
            },
        )
        change = {
            "Type": "Resource",
            "ResourceChange": {
                "Action": "Add",
                "LogicalResourceId": "CentralBusPolicy",
                "ResourceType": "AWS::Events::EventBusPolicy",
            },
        }
        stub.add_response(
            "describe_change_set", {"Status": "CREATE_COMPLETE", "Changes": [change]}, {"ChangeSetName": "arn:cs"}
        )
        stub.add_response("execute_change_set", {}, {"ChangeSetName": "arn:cs"})
        stub.add_response(
            "describe_stacks",
            {
                "Stacks": [
                    {
                        "StackName": "bo-central",
                        "CreationTime": "2026-01-01T00:00:00Z",
                        "StackStatus": "CREATE_COMPLETE",
                        "Outputs": [{"OutputKey": "CentralBusName", "OutputValue": "bo-central"}],
                    }
                ]
            },
        )
        out = io.StringIO()
        outcome = deploy_stack(
            cfn,
            name="bo-central",
            body=body,
            parameters=parameters,
            capabilities=["CAPABILITY_IAM"],
            tags={},
            console=Console(file=out, width=200),
            confirm=lambda _q: True,
            dry_run=False,
            poll_seconds=0,
            timeout_seconds=5,
        )
    assert outcome.changed and outcome.outputs == {"CentralBusName": "bo-central"}
    assert "CentralBusPolicy" in out.getvalue()

    events = _client("events")
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "OrganizationPutEvents",
                "Effect": "Allow",
                "Principal": "*",
                "Action": "events:PutEvents",
                "Resource": "arn:aws:events:us-east-1:999999999999:event-bus/bo-central",
                "Condition": {"StringEquals": {"aws:PrincipalOrgID": "o-abcdefghij"}},
            }
        ],
    }
    with Stubber(events) as stub:
        stub.add_response("describe_event_bus", {"Name": "bo-central", "Policy": json.dumps(policy)})
        stub.add_response("describe_event_bus", {"Name": "bo-central"})
        assert bus_policy_problems(events, "bo-central", "o-abcdefghij") == []
        assert bus_policy_problems(events, "bo-central", "o-abcdefghij") != []


def test_oam_sinks_are_created_with_an_organization_policy_once() -> None:
    oam = _client("oam", "eu-west-1")
    arn = "arn:aws:oam:eu-west-1:999999999999:sink/1234"
    policy = json.dumps(sink_policy("o-abcdefghij"))
    with Stubber(oam) as stub:
        stub.add_response("list_sinks", {"Items": []})
        stub.add_response("create_sink", {"Arn": arn, "Id": "1234", "Name": "bo"}, {"Name": "bo", "Tags": {"k": "v"}})
        stub.add_client_error("get_sink_policy", "ResourceNotFoundException")
        stub.add_response("put_sink_policy", {}, {"SinkIdentifier": arn, "Policy": policy})
        assert ensure_sink(oam, "bo", "o-abcdefghij", {"k": "v"}, dry_run=False) == (arn, True)
        stub.add_response("list_sinks", {"Items": [{"Arn": arn, "Id": "1234", "Name": "bo"}]})
        stub.add_response("get_sink_policy", {"Policy": policy, "SinkArn": arn})
        assert ensure_sink(oam, "bo", "o-abcdefghij", {"k": "v"}, dry_run=False) == (arn, False)
        stub.assert_no_pending_responses()
    statement = json.loads(policy)["Statement"][0]
    assert statement["Action"] == ["oam:CreateLink", "oam:UpdateLink"]
    assert statement["Condition"]["ForAnyValue:StringEquals"] == {"aws:PrincipalOrgID": "o-abcdefghij"}
    assert statement["Condition"]["ForAllValues:StringEquals"]["oam:ResourceTypes"] == [
        "AWS::CloudWatch::Metric",
        "AWS::Logs::LogGroup",
    ]
    # Each region's stack takes its own slot of the list the StackSet passes.
    slots = sink_slots({"us-east-1": "arn:a", "eu-west-1": "arn:b"}).split(",")
    assert slots[REGION_SLOTS.index("us-east-1")] == "arn:a"
    assert slots[REGION_SLOTS.index("eu-west-1")] == "arn:b"
    assert set(slots) == {"arn:a", "arn:b", ""}


def test_grafana_workspace_groups_token_and_push_then_nothing_to_do() -> None:
    grafana, sso, identity = _client("grafana"), _client("sso-admin"), _client("identitystore")
    spec = grafana_workspace.GrafanaSpec(
        name="bo",
        home_region="us-east-1",
        organization_units=("ou-ab12-abcdefgh",),
        admin_groups=("Batch Admins",),
        viewer_groups=("Batch Users",),
        tags={"batchops:prefix": "bo"},
    )
    workspace = {
        "id": "g-abc123",
        "name": "bo",
        "status": "ACTIVE",
        "endpoint": "g-abc123.grafana-workspace.us-east-1.amazonaws.com",
        "authentication": {"providers": ["AWS_SSO"]},
        "created": "2026-01-01T00:00:00Z",
        "modified": "2026-01-01T00:00:00Z",
        "dataSources": [],
        "grafanaVersion": "10.4",
        "tags": {"batchops:prefix": "bo"},
    }
    pushed: list[tuple[str, str]] = []

    def push(url: str, token: str, outputs: Any) -> list[str]:
        pushed.append((url, token))
        return ["Grafana dashboard Batch · Jobs: created"]

    def groups(stub: Stubber) -> None:
        stub_sso.add_response("list_instances", {"Instances": [{"IdentityStoreId": "d-1234567890"}]})
        for name, gid in (("Batch Users", "g-view"), ("Batch Admins", "g-admin")):
            stub_identity.add_response(
                "get_group_id",
                {
                    "GroupId": gid,
                    "IdentityStoreId": "d-1234567890",
                    "GroupArn": f"arn:aws:identitystore::123456789012:group/{gid}-5678-90ab-cdef-000000000000",
                },
                {
                    "IdentityStoreId": "d-1234567890",
                    "AlternateIdentifier": {
                        "UniqueAttribute": {"AttributePath": "DisplayName", "AttributeValue": name}
                    },
                },
            )

    with Stubber(grafana) as stub, Stubber(sso) as stub_sso, Stubber(identity) as stub_identity:
        groups(stub)
        stub.add_response("list_workspaces", {"workspaces": []})
        stub.add_response(
            "create_workspace",
            {"workspace": {**workspace, "status": "CREATING"}},
            {
                "workspaceName": "bo",
                "workspaceDescription": ANY,
                "accountAccessType": "ORGANIZATION",
                "workspaceOrganizationalUnits": ["ou-ab12-abcdefgh"],
                "authenticationProviders": ["AWS_SSO"],
                "permissionType": "SERVICE_MANAGED",
                "workspaceDataSources": ["CLOUDWATCH", "ATHENA"],
                "grafanaVersion": "10.4",
                "tags": {"batchops:prefix": "bo"},
            },
        )
        stub.add_response("describe_workspace", {"workspace": workspace}, {"workspaceId": "g-abc123"})
        for gid in ("g-admin", "g-view"):
            stub.add_response("list_permissions", {"permissions": []}, {"workspaceId": "g-abc123", "groupId": gid})
        stub.add_response(
            "update_permissions",
            {"errors": []},
            {
                "workspaceId": "g-abc123",
                "updateInstructionBatch": [
                    {"action": "ADD", "role": "ADMIN", "users": [{"id": "g-admin", "type": "SSO_GROUP"}]},
                    {"action": "ADD", "role": "VIEWER", "users": [{"id": "g-view", "type": "SSO_GROUP"}]},
                ],
            },
        )
        stub.add_response("list_workspace_service_accounts", {"serviceAccounts": [], "workspaceId": "g-abc123"})
        stub.add_response(
            "create_workspace_service_account",
            {"id": "sa-1", "name": "batchops-provisioner", "grafanaRole": "ADMIN", "workspaceId": "g-abc123"},
            {"workspaceId": "g-abc123", "name": "batchops-provisioner", "grafanaRole": "ADMIN"},
        )
        stub.add_response(
            "create_workspace_service_account_token",
            {
                "serviceAccountToken": {"id": "tok-1", "name": "t", "key": "glsa_secret"},
                "serviceAccountId": "sa-1",
                "workspaceId": "g-abc123",
            },
            {"workspaceId": "g-abc123", "serviceAccountId": "sa-1", "name": ANY, "secondsToLive": 900},
        )
        stub.add_response(
            "delete_workspace_service_account_token",
            {"tokenId": "tok-1", "serviceAccountId": "sa-1", "workspaceId": "g-abc123"},
            {"workspaceId": "g-abc123", "serviceAccountId": "sa-1", "tokenId": "tok-1"},
        )
        changes = grafana_workspace.provision_grafana(
            grafana,
            sso,
            identity,
            spec,
            {},
            console=_quiet(),
            dry_run=False,
            poll_seconds=0,
            timeout_seconds=5,
            push=push,
        )
        stub.assert_no_pending_responses()
    assert pushed == [("https://g-abc123.grafana-workspace.us-east-1.amazonaws.com", "glsa_secret")]
    assert changes[0].startswith("create Grafana workspace bo (ORGANIZATION")
    assert len(changes) == 4

    # Second run: the workspace and grants are there; only the (idempotent) push runs, with a fresh token.
    with Stubber(grafana) as stub, Stubber(sso) as stub_sso, Stubber(identity) as stub_identity:
        groups(stub)
        summary = {k: v for k, v in workspace.items() if k != "dataSources"}
        stub.add_response("list_workspaces", {"workspaces": [summary]})
        stub.add_response("describe_workspace", {"workspace": workspace})
        for gid, role in (("g-admin", "ADMIN"), ("g-view", "VIEWER")):
            stub.add_response(
                "list_permissions", {"permissions": [{"user": {"id": gid, "type": "SSO_GROUP"}, "role": role}]}
            )
        stub.add_response(
            "list_workspace_service_accounts",
            {
                "serviceAccounts": [
                    {"id": "sa-1", "name": "batchops-provisioner", "grafanaRole": "ADMIN", "isDisabled": "false"}
                ],
                "workspaceId": "g-abc123",
            },
        )
        stub.add_response(
            "create_workspace_service_account_token",
            {
                "serviceAccountToken": {"id": "tok-2", "name": "t", "key": "glsa_2"},
                "serviceAccountId": "sa-1",
                "workspaceId": "g-abc123",
            },
        )
        stub.add_response(
            "delete_workspace_service_account_token",
            {"tokenId": "tok-2", "serviceAccountId": "sa-1", "workspaceId": "g-abc123"},
        )
        changes = grafana_workspace.provision_grafana(
            grafana,
            sso,
            identity,
            spec,
            {},
            console=_quiet(),
            dry_run=False,
            poll_seconds=0,
            timeout_seconds=5,
            push=lambda u, t, o: [],
        )
        stub.assert_no_pending_responses()
    assert changes == []


def test_an_unknown_identity_center_group_is_named_in_the_error() -> None:
    identity = _client("identitystore")
    with Stubber(identity) as stub:
        stub.add_client_error("get_group_id", "ResourceNotFoundException", "GROUP not found.")
        with pytest.raises(grafana_workspace.GrafanaProvisioningError, match="'Batch Admins'"):
            grafana_workspace.group_ids(identity, "d-1234567890", ["Batch Admins"])


def test_dry_run_guard_refuses_a_write_before_it_is_sent() -> None:
    session = boto3.Session(aws_access_key_id="a", aws_secret_access_key="b", region_name="us-east-1")
    clients = Clients(session, read_only=True)
    with pytest.raises(WriteRefused, match="cloudformation:CreateStackSet"):
        clients.client("cloudformation", "us-east-1").create_stack_set(StackSetName="x")
    assert is_read_only("cloudformation", "DescribeStackSet")
    assert is_read_only("sts", "AssumeRole")
    assert not is_read_only("cloudformation", "CreateChangeSet")
    assert not is_read_only("organizations", "EnableAWSServiceAccess")


def test_destroy_turns_the_event_store_protection_off_before_deleting() -> None:
    cfn = _client("cloudformation")
    stack = {
        "StackName": "bo-central",
        "Parameters": [
            {"ParameterKey": "DeletionProtection", "ParameterValue": "true"},
            {"ParameterKey": "Prefix", "ParameterValue": "bo"},
        ],
    }
    settings = RolloutSettings(org_units=(), regions=REGIONS, home_region="us-east-1", poll_seconds=0)
    with Stubber(cfn) as stub:
        stub.add_response(
            "update_stack",
            {"StackId": "arn:stack"},
            {
                "StackName": "bo-central",
                "UsePreviousTemplate": True,
                "Parameters": [
                    {"ParameterKey": "DeletionProtection", "ParameterValue": "false"},
                    {"ParameterKey": "Prefix", "UsePreviousValue": True},
                ],
                "Capabilities": ["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND"],
            },
        )
        stub.add_response(
            "describe_stacks",
            {
                "Stacks": [
                    {
                        "StackName": "bo-central",
                        "CreationTime": "2026-01-01T00:00:00Z",
                        "StackStatus": "UPDATE_COMPLETE",
                    }
                ]
            },
        )
        unprotect_event_store(cfn, stack, settings, _quiet())
        stub.assert_no_pending_responses()
    with Stubber(cfn):  # already unprotected: no call at all
        unprotected = {**stack, "Parameters": [{"ParameterKey": "DeletionProtection", "ParameterValue": "false"}]}
        unprotect_event_store(cfn, unprotected, settings, _quiet())


def test_the_stacksets_folder_holds_the_requests_deploy_py_sends() -> None:
    settings = RolloutSettings(org_units=("ou-abcd-12345678",), regions=REGIONS, home_region="us-east-1")
    spec = StackSetSpec(
        name=settings.stack_set_name,
        template_body="",
        parameters={
            "Prefix": settings.prefix,
            "CentralBusArn": "arn:aws:events:HOME_REGION:CENTRAL_ACCOUNT:event-bus/batchops-central",
            "OamSinkArns": "",
        },
        call_as="SELF",
        tags=settings.tags,
    )
    request = spec.create_request()
    del request["TemplateBody"]  # passed as --template-body file://member-account/template.yaml
    assert json.loads((REPO / "stacksets" / "member-stackset.json").read_text()) == request
    instances = json.loads((REPO / "stacksets" / "member-stack-instances.json").read_text())
    assert instances["OperationPreferences"] == settings.preferences.request()
    assert instances["StackSetName"] == settings.stack_set_name
    assert instances["Regions"] == list(REGIONS)


def test_outdated_instances_a_failed_run_left_are_redone_by_the_next_deploy() -> None:
    cfn = _client("cloudformation")
    spec = _spec()
    current = {
        "StackSetName": spec.name,
        "Status": "ACTIVE",
        "TemplateBody": spec.template_body,
        "Parameters": [{"ParameterKey": k, "ParameterValue": v} for k, v in spec.parameters.items()],
        "Capabilities": ["CAPABILITY_NAMED_IAM"],
        "PermissionModel": "SERVICE_MANAGED",
        "AutoDeployment": {"Enabled": True, "RetainStacksOnAccountRemoval": False},
        "ManagedExecution": {"Active": True},
        "OrganizationalUnitIds": ["ou-ab12-abcdefgh"],
        "Regions": list(REGIONS),
    }
    instances = [
        {
            "Account": f"{i:012d}",
            "Region": r,
            "Status": "CURRENT",
            "StackInstanceStatus": {"DetailedStatus": "SUCCEEDED"},
        }
        for i in range(1, 4)
        for r in REGIONS
    ]
    instances[0] = {
        **instances[0],
        "Status": "OUTDATED",
        "StatusReason": "Account 000000000001 should have 'AWSCloudFormationStackSetExecutionRole' role",
        "StackInstanceStatus": {"DetailedStatus": "FAILED"},
    }
    with Stubber(cfn) as stub:
        stub.add_response("describe_stack_set", {"StackSet": current})
        stub.add_response("list_stack_instances", {"Summaries": instances})
        stub.add_response(
            "update_stack_instances",
            {"OperationId": "op-3"},
            {
                "StackSetName": spec.name,
                "DeploymentTargets": {"OrganizationalUnitIds": ["ou-ab12-abcdefgh"]},
                "Regions": ["us-east-1"],
                "OperationPreferences": ANY,
                "OperationId": ANY,
                "CallAs": "SELF",
            },
        )
        stub.add_response("describe_stack_set_operation", {"StackSetOperation": {"Status": "SUCCEEDED"}})
        stub.add_response(
            "list_stack_set_operation_results",
            {"Summaries": [{"Account": "000000000001", "Region": "us-east-1", "Status": "SUCCEEDED"}]},
        )
        changes, outcome = ensure_stack_set(
            cfn,
            spec,
            report=_report(),
            regions=REGIONS,
            preferences=OperationPreferences(),
            console=_quiet(),
            dry_run=False,
            poll_seconds=0,
            timeout_seconds=5,
        )
        stub.assert_no_pending_responses()
    assert changes == ["retry 1 outdated stack instances in us-east-1"]
    assert outcome is not None and outcome.count("SUCCEEDED") == 1


def test_status_classifies_every_account_and_region() -> None:
    accounts = (
        Account("000000000001", "ok", "ACTIVE", "ou-1"),
        Account("000000000002", "broken", "ACTIVE", "ou-1"),
        Account("000000000003", "late", "ACTIVE", "ou-1"),
        Account("000000000004", "gone", "SUSPENDED", "ou-1"),
        Account("999999999999", "management", "ACTIVE", "ou-1"),
    )
    instances = [
        Instance("000000000001", "us-east-1", "CURRENT", "SUCCEEDED", "", "IN_SYNC", "ou-1"),
        Instance("000000000002", "us-east-1", "OUTDATED", "FAILED", "role missing", "NOT_CHECKED", "ou-1"),
        Instance("000000000005", "us-east-1", "CURRENT", "SUCCEEDED", "", "DRIFTED", "ou-2"),
    ]
    rows = coverage(
        [OrgUnit("ou-1", "batch", accounts)],
        ["us-east-1"],
        instances,
        auto_deployment=True,
        management_account_id="999999999999",
    )
    states = {row.account_id: (row.state, row.detail, row.drift) for row in rows}
    assert states["000000000001"] == (DEPLOYED, "SUCCEEDED", "IN_SYNC")
    assert states["000000000002"] == (FAILED, "role missing", "NOT_CHECKED")
    assert states["000000000003"][0] == AUTO_DEPLOYMENT_PENDING
    assert states["000000000004"][0] == SUSPENDED
    assert states["999999999999"][0] == MANAGEMENT
    assert states["000000000005"][0] == LEAVING
    without_auto = coverage(
        [OrgUnit("ou-1", "batch", accounts[2:3])], ["us-east-1"], [], auto_deployment=False, management_account_id="x"
    )
    assert [row.state for row in without_auto] == [MISSING]


def run_80(org: Org, *args: str) -> tuple[int, str]:
    """`python deploy.py ...` on an 80-column console, as a terminal of that width shows it."""
    session = boto3.Session(region_name="us-east-1")
    out = io.StringIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # moto: "No Moto CloudFormation support for AWS::CloudWatch::Alarm"
        code = deploy.main(list(args), session=session, console=Console(file=out, width=80, color_system=None))
    return code, out.getvalue()


def test_on_80_columns_the_deploy_and_status_tables_cut_nothing_and_the_bus_policy_is_there(org: Org) -> None:
    code, out = run_80(org, *deploy_args(org, "--yes"))
    assert code == 0, out
    # The emulator creates the bus policy of the template (moto's CloudFormation skips it): the check finds it.
    assert "no resource policy" not in out and "warning" not in out, out
    bus = boto3.client("events", region_name="us-east-1").describe_event_bus(Name=f"{PREFIX}-central")
    (statement,) = json.loads(bus["Policy"])["Statement"]
    assert statement["Action"] == "events:PutEvents"
    assert statement["Condition"] == {"StringEquals": {"aws:PrincipalOrgID": org.id}}
    assert "AWS::Events::EventBusPolicy" in out  # the change set's type column folds, never cuts
    # The StackSet operation's table ends its line before the list of changes.
    assert "\nchanged:\n" in out and "┘changed" not in out, out

    code, status_out = run_80(org, "status", "--org-unit", org.ou, "--regions", ",".join(REGIONS), "--prefix", PREFIX)
    assert code == 0, status_out
    for printed in (out, status_out):
        assert "…" not in printed, printed
        assert max(len(line) for line in printed.splitlines()) <= 80
    rows = [line for line in status_out.splitlines() if line.startswith("│")]
    assert len(rows) == len(org.members) * len(REGIONS), status_out
    for account in org.members:
        assert sum(1 for row in rows if account in row and "deployed" in row) == 2, status_out
    assert f"OU {org.ou}" in status_out  # one OU: said once, above the table


def test_the_status_table_keeps_every_column_that_differs_and_folds_long_values() -> None:
    rows = [
        CoverageRow("000000000001", "ok", "ou-aaaa-11111111", "ap-southeast-2", DEPLOYED, "SUCCEEDED",
                            "IN_SYNC"),
        CoverageRow("000000000002", "broken", "ou-bbbb-22222222", "us-east-1", FAILED,
                            "ResourceLogicalId:ForwardRole, ResourceType:AWS::IAM::Role, the role already exists",
                            "NOT_CHECKED"),
    ]  # fmt: skip
    out = io.StringIO()
    Console(file=out, width=80, color_system=None).print(coverage_table(rows))
    printed = out.getvalue()
    assert "…" not in printed and max(len(line) for line in printed.splitlines()) <= 80, printed
    assert "drift" in printed and "OU" in printed
    # Account ids stay whole; the other values fold within their cells (their words all there).
    assert all(
        sum(account in line for line in printed.splitlines()) == 1 for account in ("000000000001", "000000000002")
    )
    assert all(word in printed for word in ("IN_SYNC", "broken", "already", "exists")), printed
