"""`python deploy.py` (deploy, status, destroy) with the permissions docs/deploy.md gives the deployer, per account.

On the emulator (test_deploy.py's Organization: an OU of three members, the StackSet in two regions), with a
central account of its own outside the OU (`--central-account`, reached through OrganizationAccountAccessRole).
Every call is authorised before it reaches moto against the documented policy of the account its client's
credentials belong to: the session's are the management account's, an assumed role's are the role's account. A
denied call raises AccessDenied as AWS would (tests/iam_calls.py turns a call into IAM's requests,
tests/iam_policies.py decides them). What moto cannot show runs the Stubber sequences under the policy of the account
deploy.py calls it in.
"""

from __future__ import annotations

import json
import re
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import botocore.client
import cfnlint
import pytest
import test_deploy
from botocore.exceptions import ClientError
from botocore.stub import Stubber
from cfnlint.decode.cfn_yaml import loads
from test_deploy import PREFIX, REGIONS, Org, deploy_args, moto_gaps, moto_server, org, run
from test_iam_enforced import unused_grants

import template_render
from batchops.rollout import grafana_workspace
from batchops.rollout.artifact import artifact_bucket_name, artifact_bucket_policy, ensure_artifact_bucket
from batchops.rollout.oam_sinks import delete_sink, ensure_sink, sink_policy
from batchops.rollout.settings import TAG_KEY
from iam_calls import STACK_SET_ID, Principal, iam_requests
from iam_policies import ALLOWED, Request, decide

__all__ = ["moto_gaps", "moto_server", "org"]  # the fixtures, shared with test_deploy.py

ROOT = Path(__file__).resolve().parents[2]
DEPLOY_DOC = ROOT / "docs" / "deploy.md"
MEMBER_TEMPLATE = ROOT / "member-account" / "template.yaml"
HOME = REGIONS[0]
SESSION_KEY = "testing"  # the org fixture's credentials: the management account's

# Granted for a path the emulator never takes; it stays in the policy for the reason given.
UNEXERCISED = {
    "cloudformation:DescribeStackEvents": "read only when a stack operation fails, for each resource's reason",
}
# How AWS answers a refused call, by service (the code deploy.py sees)
_DENIED_CODES = {"s3": "AccessDenied", "sts": "AccessDenied", "cloudformation": "AccessDenied"}


def deployer_policy(kind: str, account: str, region: str = HOME) -> dict[str, Any]:
    """The `kind` (management, central, member) policy of docs/deploy.md, its placeholders filled in."""
    found = re.search(rf"<!-- deployer-policy:{kind} -->\s*```json\n(.*?)```", DEPLOY_DOC.read_text(), re.DOTALL)
    assert found, f"docs/deploy.md has no <!-- deployer-policy:{kind} --> block followed by a json block"
    filled = found[1].replace("REGION", region).replace("ACCOUNT", account).replace("PREFIX", PREFIX)
    return dict(json.loads(filled))


def without(policy: Mapping[str, Any], action: str) -> dict[str, Any]:
    """The policy with one action taken out of every statement (a statement left with none is dropped)."""
    statements, found = [], False
    for statement in policy["Statement"]:
        actions = [statement["Action"]] if isinstance(statement["Action"], str) else statement["Action"]
        found = found or action in actions
        if kept := [a for a in actions if a != action]:
            statements.append({**statement, "Action": kept})
    assert found, f"{action} is not in the policy"
    return {**policy, "Statement": statements}


def member_template_types() -> list[str]:
    """The resource types of the member template (a StackSet operation is authorised on each)."""
    resources = loads(MEMBER_TEMPLATE.read_text())["Resources"]
    return sorted({r["Type"] for r in resources.values()})


@dataclass
class Accounts:
    """Every botocore call authorised against the policy of the account its client acts in.

    The account is known from the client's access key: the session's is the management account's, a key an
    AssumeRole answered is the role's account. A Stubber's client has neither: `stubbed_as` says whose it is."""

    principals: dict[str, Principal]
    management: str
    stack_set_targets: Sequence[str]
    keys: dict[str, str] = field(default_factory=dict)
    change_sets: dict[str, str] = field(default_factory=dict)
    stubbed: list[str] = field(default_factory=list)
    active: bool = False

    def __post_init__(self) -> None:
        self.keys[SESSION_KEY] = self.management
        self.types = member_template_types()

    @contextmanager
    def checking(self) -> Iterator[None]:
        """The calls in the block are authorised (the test's own setup and look-ups outside it are not)."""
        self.active = True
        try:
            yield
        finally:
            self.active = False

    @contextmanager
    def stubbed_as(self, account: str) -> Iterator[None]:
        """The Stubber calls in the block are made in `account`, as deploy.py would make them."""
        self.stubbed.append(account)
        try:
            with self.checking():
                yield
        finally:
            self.stubbed.pop()

    def account_of(self, client: Any) -> str:
        credentials = client._request_signer._credentials  # botocore keeps them there; no public accessor
        key = credentials.get_frozen_credentials().access_key if credentials else ""
        if key in self.keys:
            return self.keys[key]
        assert self.stubbed, f"a call with credentials of no known account ({key!r}): whose policy applies?"
        return self.stubbed[-1]

    def requests(self, client: Any, operation: str, params: Mapping[str, Any], account: str) -> list[Request]:
        service = client.meta.service_model.service_name
        region = client.meta.region_name
        if (
            service == "cloudformation"
            and "StackName" not in params
            and params.get("ChangeSetName") in self.change_sets
        ):
            params = {**params, "StackName": self.change_sets[params["ChangeSetName"]]}  # AWS knows its stack
        return [*iam_requests(service, operation, params, region, account), *self.stack_set_scope(operation, params)]

    def stack_set_scope(self, operation: str, params: Mapping[str, Any]) -> list[Request]:
        """What else AWS authorises a StackSet operation on: each resource type of its template in each target
        region; an update of the StackSet also each target it updates (iam_calls names the targets of the
        operations on instances, from the request)."""
        if operation not in ("CreateStackInstances", "UpdateStackInstances", "DeleteStackInstances", "UpdateStackSet"):
            return []
        action = f"cloudformation:{operation}"
        regions = params.get("Regions") or REGIONS
        requests = [
            Request(action, f"arn:aws:cloudformation:{region}::type/resource/{kind.replace('::', '-')}")
            for kind in self.types
            for region in regions
        ]
        if operation == "UpdateStackSet":
            name = params["StackSetName"]
            requests += [
                Request(
                    action, f"arn:aws:cloudformation:{r}:{self.management}:stackset-target/{name}:{STACK_SET_ID}/{t}"
                )
                for t in self.stack_set_targets
                for r in regions
            ]
        return requests

    def __call__(self, original: Any, client: Any, operation: str, params: dict[str, Any]) -> Any:
        if not self.active:
            return original(client, operation, params)
        account = self.account_of(client)
        principal = self.principals[account]
        for request in self.requests(client, operation, params, account):
            principal.requests.append(request)
            if decide(request, principal.policies) != ALLOWED:
                principal.denied.append(request)
                code = _DENIED_CODES.get(client.meta.service_model.service_name, "AccessDeniedException")
                message = f"User: {principal.name} is not authorized to perform: {request}"
                raise ClientError({"Error": {"Code": code, "Message": message}}, operation)
        response = original(client, operation, params)
        if operation == "AssumeRole":
            self.keys[response["Credentials"]["AccessKeyId"]] = params["RoleArn"].split(":")[4]
        if operation == "CreateChangeSet":
            self.change_sets[response["Id"]] = response["StackId"]
        return response


@dataclass
class Deployment:
    """The Organization with a central account of its own, and the policies of docs/deploy.md per account."""

    org: Org
    central: str
    accounts: Accounts

    def principal(self, account: str) -> Principal:
        return self.accounts.principals[account]

    def deploy(self, *extra: str) -> tuple[int, str]:
        with self.accounts.checking():
            return run(self.org, *deploy_args(self.org, "--central-account", self.central, *extra))

    def status(self) -> tuple[int, str]:
        args = ("status", "--org-unit", self.org.ou, "--regions", ",".join(REGIONS), "--prefix", PREFIX)
        with self.accounts.checking():
            return run(self.org, *args, "--central-account", self.central)

    def destroy(self) -> tuple[int, str]:
        args = ("destroy", "--org-unit", self.org.ou, "--prefix", PREFIX, "--no-oam", "--no-grafana")
        with self.accounts.checking():
            return run(self.org, *args, "--poll-seconds", "0.01", "--central-account", self.central, "--yes")

    def outputs(self) -> dict[str, str]:
        cfn = self.org.session(self.central).client("cloudformation", region_name=HOME)
        (stack,) = cfn.describe_stacks(StackName=f"{PREFIX}-central")["Stacks"]
        return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}


def with_documented_policies(
    org: Org, monkeypatch: pytest.MonkeyPatch, drop: tuple[str, str] | None = None
) -> Deployment:
    """A central account outside the OU; each account's principal holds its documented policy (`drop`: one
    account kind's policy without one action)."""
    orgs = boto3.client("organizations", region_name=HOME)
    status = orgs.create_account(AccountName="central", Email="central@example.com")["CreateAccountStatus"]
    central = str(status["AccountId"])
    kinds = {org.management: "management", central: "central", **dict.fromkeys(org.members, "member")}
    principals = {}
    for account, kind in kinds.items():
        policy = deployer_policy(kind, account)
        if drop and drop[0] == kind:
            policy = without(policy, drop[1])
        principals[account] = Principal(f"{kind} account {account} (docs/deploy.md)", [policy])
    accounts = Accounts(principals, org.management, [org.ou])
    original = botocore.client.BaseClient._make_api_call
    monkeypatch.setattr(
        botocore.client.BaseClient,
        "_make_api_call",
        lambda client, operation, params: accounts(original, client, operation, params),
    )
    return Deployment(org, central, accounts)


def new_artifact(org: Org) -> None:
    with zipfile.ZipFile(org.artifact, "a") as archive:
        archive.writestr("batchops/new.py", "")


def turn_automatic_deployment_off(org: Org) -> None:
    """Someone changed the StackSet by hand: the next deploy puts it back (an UpdateStackSet)."""
    cfn = boto3.client("cloudformation", region_name=HOME)
    cfn.update_stack_set(
        StackSetName=f"{PREFIX}-member",
        UsePreviousTemplate=True,
        AutoDeployment={"Enabled": False},
        Parameters=[{"ParameterKey": k, "UsePreviousValue": True} for k in ("Prefix", "CentralBusArn", "OamSinkArns")],
        Capabilities=["CAPABILITY_NAMED_IAM"],
    )


def export_something(org: Org, central: str, bucket: str) -> None:
    """What the exporter leaves in the projections bucket: destroy empties it."""
    s3 = org.session(central).client("s3", region_name=HOME)
    s3.put_object(Bucket=bucket, Key="projections/jobs/account_id=1/dt=2026-12-01/part-0.parquet", Body=b"PAR1")


# --- what moto cannot show, as Stubber sequences --------------------------------------------------------------


def _stub_client(service: str, region: str = HOME) -> Any:
    return boto3.client(
        service, region_name=region, aws_access_key_id="a", aws_secret_access_key="b", endpoint_url="https://x.invalid"
    )


def artifact_bucket_over_https(central: str) -> None:
    """Over HTTPS deploy.py also writes, and a later run reads, the TLS-only bucket policy."""
    s3 = _stub_client("s3")
    bucket = artifact_bucket_name(PREFIX, central, HOME)
    policy = json.dumps(artifact_bucket_policy(bucket))
    with Stubber(s3) as stub:
        stub.add_client_error("head_bucket", "404", http_status_code=404)
        for method in ("create_bucket", "put_public_access_block", "put_bucket_ownership_controls"):
            stub.add_response(method, {})
        for method in ("put_bucket_encryption", "put_bucket_versioning"):
            stub.add_response(method, {})
        stub.add_response("put_bucket_policy", {}, {"Bucket": bucket, "Policy": policy})
        assert len(ensure_artifact_bucket(s3, bucket, HOME, partition="aws", dry_run=False)) == 6
        stub.add_response("head_bucket", {})
        block = dict.fromkeys(
            ("BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets"), True
        )
        stub.add_response("get_public_access_block", {"PublicAccessBlockConfiguration": block})
        owner = {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]}
        stub.add_response("get_bucket_ownership_controls", {"OwnershipControls": owner})
        sse = {"Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]}
        stub.add_response("get_bucket_encryption", {"ServerSideEncryptionConfiguration": sse})
        stub.add_response("get_bucket_versioning", {"Status": "Enabled"})
        stub.add_response("get_bucket_policy", {"Policy": policy})
        assert ensure_artifact_bucket(s3, bucket, HOME, partition="aws", dry_run=False) == []
        stub.assert_no_pending_responses()


def oam_sinks(central: str, organization_id: str) -> None:
    """A sink per member region: created with its policy, found again, deleted by destroy."""
    for region in REGIONS:
        oam = _stub_client("oam", region)
        arn = f"arn:aws:oam:{region}:{central}:sink/1234"
        policy = json.dumps(sink_policy(organization_id))
        tags = {TAG_KEY: PREFIX}
        with Stubber(oam) as stub:
            stub.add_response("list_sinks", {"Items": []})
            stub.add_response("create_sink", {"Arn": arn, "Id": "1234", "Name": PREFIX}, {"Name": PREFIX, "Tags": tags})
            stub.add_client_error("get_sink_policy", "ResourceNotFoundException")
            stub.add_response("put_sink_policy", {}, {"SinkIdentifier": arn, "Policy": policy})
            assert ensure_sink(oam, PREFIX, organization_id, tags, dry_run=False) == (arn, True)
            stub.add_response("list_sinks", {"Items": [{"Arn": arn, "Id": "1234", "Name": PREFIX}]})
            stub.add_response("get_sink_policy", {"Policy": policy, "SinkArn": arn})
            assert ensure_sink(oam, PREFIX, organization_id, tags, dry_run=False) == (arn, False)
            stub.add_response("list_sinks", {"Items": [{"Arn": arn, "Id": "1234", "Name": PREFIX}]})
            stub.add_response("delete_sink", {}, {"Identifier": arn})
            assert delete_sink(oam, PREFIX)
            stub.assert_no_pending_responses()


def grafana_calls(accounts: Accounts, central: str, outputs: Mapping[str, str]) -> None:
    """The workspace as deploy.py provisions it from a central account of its own (CURRENT_ACCOUNT, the stack's
    workspace role), the groups found in the management account's Identity Center, then destroy's delete."""
    grafana, sso, identity = _stub_client("grafana"), _stub_client("sso-admin"), _stub_client("identitystore")
    spec = grafana_workspace.GrafanaSpec(
        name=PREFIX,
        home_region=HOME,
        organization_access=False,
        admin_groups=("Batch Admins",),
        tags={TAG_KEY: PREFIX},
        workspace_role_arn=outputs["GrafanaWorkspaceRoleArn"],
    )
    workspace = {
        "id": "g-abc123", "name": PREFIX, "status": "ACTIVE", "endpoint": "g-abc123.grafana-workspace.example",
        "authentication": {"providers": ["AWS_SSO"]}, "created": "2026-01-01T00:00:00Z",
        "modified": "2026-01-01T00:00:00Z", "dataSources": [], "grafanaVersion": "10.4", "tags": dict(spec.tags),
    }  # fmt: skip
    summary = {k: v for k, v in workspace.items() if k != "dataSources"}
    token = {"serviceAccountToken": {"id": "t-1", "name": "t", "key": "glsa"}, "serviceAccountId": "sa-1",
             "workspaceId": "g-abc123"}  # fmt: skip
    with accounts.stubbed_as(accounts.management), Stubber(sso) as stub_sso, Stubber(identity) as stub_identity:
        stub_sso.add_response("list_instances", {"Instances": [{"IdentityStoreId": "d-1234567890"}]})
        arn = f"arn:aws:identitystore::{accounts.management}:group/g-admin-5678-90ab-cdef-000000000000"
        group = {"GroupId": "g-admin", "IdentityStoreId": "d-1234567890", "GroupArn": arn}
        stub_identity.add_response("get_group_id", group)
        store = grafana_workspace.identity_store_id(sso)
        assert grafana_workspace.group_ids(identity, store, spec.admin_groups) == {"Batch Admins": "g-admin"}
    with accounts.stubbed_as(central), Stubber(grafana) as stub:
        stub.add_response("list_workspaces", {"workspaces": []})
        stub.add_response("create_workspace", {"workspace": {**workspace, "status": "CREATING"}}, spec.create_request())
        stub.add_response("describe_workspace", {"workspace": workspace})
        stub.add_response("list_permissions", {"permissions": []})
        stub.add_response("update_permissions", {"errors": []})
        stub.add_response("list_workspace_service_accounts", {"serviceAccounts": [], "workspaceId": "g-abc123"})
        stub.add_response(
            "create_workspace_service_account",
            {
                "id": "sa-1",
                "name": grafana_workspace.SERVICE_ACCOUNT,
                "grafanaRole": "ADMIN",
                "workspaceId": "g-abc123",
            },
        )
        stub.add_response("create_workspace_service_account_token", token)
        stub.add_response(
            "delete_workspace_service_account_token",
            {"tokenId": "t-1", "serviceAccountId": "sa-1", "workspaceId": "g-abc123"},
        )
        workspace_found, _ = grafana_workspace.ensure_workspace(grafana, spec, dry_run=False, poll=0, timeout=5)
        assert workspace_found is not None
        grafana_workspace.ensure_group_roles(grafana, "g-abc123", {"g-admin": "ADMIN"}, dry_run=False)
        service_account = grafana_workspace.ensure_service_account(grafana, "g-abc123")
        with grafana_workspace.service_account_token(grafana, "g-abc123", service_account) as key:
            assert key == "glsa"
        stub.add_response("list_workspaces", {"workspaces": [summary]})
        stub.add_response("delete_workspace", {"workspace": {**workspace, "status": "DELETING"}})
        found = grafana_workspace.find_workspace(grafana, PREFIX, spec.tags)
        assert found is not None
        grafana_workspace.delete_workspace(grafana, found["id"])
        stub.assert_no_pending_responses()


def stubbed_sequences(accounts: Accounts, central: str, outputs: Mapping[str, str], organization_id: str) -> None:
    """The calls moto cannot make, each in the account deploy.py makes it in."""
    with accounts.stubbed_as(central):
        artifact_bucket_over_https(central)
        oam_sinks(central, organization_id)
        test_deploy.test_destroy_turns_the_event_store_protection_off_before_deleting()
    grafana_calls(accounts, central, outputs)
    with accounts.stubbed_as(accounts.management):
        test_deploy.test_outdated_instances_a_failed_run_left_are_redone_by_the_next_deploy()


# --- the tests ------------------------------------------------------------------------------------------------


def test_every_deployer_call_is_within_the_documented_policy_of_its_account_and_uses_all_of_it(
    org: Org, monkeypatch: pytest.MonkeyPatch
) -> None:
    deployer = with_documented_policies(org, monkeypatch)
    code, out = deployer.deploy("--yes", "--include-management-account")
    assert code == 0, out
    assert "trusted access for CloudFormation StackSets turned on" in out and "create StackSet bo-member" in out
    code, out = deployer.deploy("--yes", "--include-management-account")
    assert code == 0 and "no changes" in out, out
    code, out = deployer.status()
    assert code == 0 and out.count(" deployed ") == len(org.members) * len(REGIONS), out
    assert f"DLQ: messages in each stack's {PREFIX}-forward-dlq: none in the 6 read" in " ".join(out.split()), out

    new_artifact(org)
    code, out = deployer.deploy("--dry-run", "--include-management-account")
    assert code == 0 and "the deploy would:" in out, out
    code, out = deployer.deploy("--include-management-account")  # no --yes and no terminal: the change set declined
    assert code == 1 and f"change set on {PREFIX}-central not executed" in out, out
    turn_automatic_deployment_off(org)
    code, out = deployer.deploy("--yes", "--include-management-account")
    assert code == 0 and f"update StackSet {PREFIX}-member: auto-deployment" in out, out
    assert f"change stack {PREFIX}-central" in out, out

    outputs = deployer.outputs()
    export_something(org, deployer.central, outputs["ProjectionsBucketName"])
    code, out = deployer.destroy()
    assert code == 0 and f"deleted stack {PREFIX}-member in us-east-1 (management account)" in out, out
    assert f"emptied bucket {outputs['ProjectionsBucketName']}" in out, out
    stubbed_sequences(deployer.accounts, deployer.central, outputs, org.id)

    for principal in deployer.accounts.principals.values():
        assert principal.denied == [], f"{principal.name} was denied: {[str(r) for r in principal.denied]}"
        assert unused_grants(principal, UNEXERCISED) == [], f"{principal.name} is granted more than it uses"
    # Each account's calls were authorised under its own policy: the stubbed ones too.
    management, central = deployer.principal(org.management), deployer.principal(deployer.central)
    assert {"cloudformation:UpdateStackSet", "cloudformation:UpdateStackInstances", "sso:ListInstances"} <= (
        management.actions()
    )
    assert {"s3:PutBucketPolicy", "oam:PutSinkPolicy", "grafana:CreateWorkspace", "iam:PassRole"} <= central.actions()
    for member in org.members:
        assert deployer.principal(member).actions() == {"sqs:GetQueueUrl", "sqs:GetQueueAttributes"}


@pytest.mark.parametrize(
    ("kind", "action", "failure"),
    [
        ("central", "s3:PutObject", "not authorized to perform: s3:PutObject on arn:aws:s3:::bo-artifacts-"),
        ("management", "cloudformation:CreateStackInstances", "cloudformation:CreateStackInstances on arn:"),
    ],
)
def test_a_deploy_missing_one_documented_action_fails_with_access_denied_naming_it(
    org: Org, monkeypatch: pytest.MonkeyPatch, kind: str, action: str, failure: str
) -> None:
    deployer = with_documented_policies(org, monkeypatch, drop=(kind, action))
    code, out = deployer.deploy("--yes")
    assert code == 1 and "AWS error:" in out and "AccessDenied" in out, out
    assert failure in " ".join(out.split()), out
    denied = [r for p in deployer.accounts.principals.values() for r in p.denied]
    assert denied and {r.action for r in denied} == {action}


def test_status_with_a_member_policy_missing_one_action_says_not_checked_and_why(
    org: Org, monkeypatch: pytest.MonkeyPatch
) -> None:
    deployer = with_documented_policies(org, monkeypatch, drop=("member", "sqs:GetQueueAttributes"))
    assert run(org, *deploy_args(org, "--yes", "--central-account", deployer.central))[0] == 0  # setup: unchecked
    code, out = deployer.status()
    said = " ".join(out.split())
    assert "DLQ: messages in each stack's bo-forward-dlq: none read; 6 not checked:" in said, out
    assert "GetQueueAttributes refused (AccessDeniedException: User: member account" in said, out
    assert code == 0, out  # not knowing is said, not failed


# What the registry lists for the scaling types' handlers that the provisioned stack never needs, and why
NOT_NEEDED_FOR_SCALING = {
    "iam:PassRole": "passes a RoleARN; the targets have none (the service-linked role)",
    "application-autoscaling:PutScheduledAction": "the targets have no ScheduledActions",
    "application-autoscaling:DeleteScheduledAction": "the targets have no ScheduledActions",
    "lambda:GetProvisionedConcurrencyConfig": "Lambda's namespace, not DynamoDB's",
    "lambda:PutProvisionedConcurrencyConfig": "Lambda's namespace, not DynamoDB's",
    "lambda:DeleteProvisionedConcurrencyConfig": "Lambda's namespace, not DynamoDB's",
}


def registry_handler_permissions(kind: str) -> set[str]:
    """Every permission the CloudFormation registry lists for a resource type's handlers (cfn-lint's copy)."""
    schemas = Path(cfnlint.__file__).parent / "data" / "schemas"
    digest = json.loads((schemas / "providers" / f"{HOME}.json").read_text())[kind]
    handlers = json.loads((schemas / "resources" / f"{digest}.json").read_text())["handlers"]
    return {permission for handler in handlers.values() for permission in handler["permissions"]}


def provisioned_template() -> dict[str, Any]:
    template = template_render.decoded(ROOT / "central-account" / "template.yaml")
    return template_render.render(template, {"CapacityMode": "provisioned", "Prefix": PREFIX})


def test_the_provisioned_policy_grants_what_the_scaling_handlers_need_and_no_more() -> None:
    kinds = {r["Type"] for r in provisioned_template()["Resources"].values() if "ApplicationAutoScaling" in r["Type"]}
    assert kinds == {"AWS::ApplicationAutoScaling::ScalableTarget", "AWS::ApplicationAutoScaling::ScalingPolicy"}
    listed = set().union(*(registry_handler_permissions(kind) for kind in kinds))
    assert set(NOT_NEEDED_FOR_SCALING) <= listed
    policy = deployer_policy("central-provisioned", "111111111111")
    granted = {a for s in policy["Statement"] for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])}
    assert granted == listed - set(NOT_NEEDED_FOR_SCALING)


def test_registering_the_provisioned_stacks_targets_is_allowed_by_that_policy_alone() -> None:
    """The requests of each target's registration (the service-linked role's creation among them) and policy, from
    the rendered template: denied under the central policy, allowed with the provisioned one added, and the role's
    creation refused for any other service."""
    central = "111111111111"
    rendered = provisioned_template()["Resources"]
    names = {n: r["Properties"]["TableName"]["Fn::Sub"].replace("${Prefix}", PREFIX) for n, r in rendered.items()
             if r["Type"] == "AWS::DynamoDB::Table"}  # fmt: skip
    requests = []
    for resource in rendered.values():
        props = resource.get("Properties", {})
        if resource["Type"] == "AWS::ApplicationAutoScaling::ScalableTarget":
            resource_id = re.sub(r"\$\{(\w+)\}", lambda m: names[m[1]], props["ResourceId"]["Fn::Sub"])
            params = {k: props[k] for k in ("ServiceNamespace", "ScalableDimension", "MinCapacity", "MaxCapacity")}
            for operation in ("RegisterScalableTarget", "DescribeScalableTargets", "DeregisterScalableTarget"):
                requests += iam_requests("application-autoscaling", operation, {**params, "ResourceId": resource_id},
                                         HOME, central)  # fmt: skip
        if resource["Type"] == "AWS::ApplicationAutoScaling::ScalingPolicy":
            for operation in ("PutScalingPolicy", "DescribeScalingPolicies", "DeleteScalingPolicy"):
                requests += iam_requests("application-autoscaling", operation, {}, HOME, central)
    role_requests = [r for r in requests if r.action == "iam:CreateServiceLinkedRole"]
    assert len(role_requests) == 16 and len(requests) == 16 * 3 + 16 * 3 + 16
    documented, provisioned = deployer_policy("central", central), deployer_policy("central-provisioned", central)
    assert {r.action for r in requests if decide(r, [documented]) == ALLOWED} == set()
    assert [str(r) for r in requests if decide(r, [documented, provisioned]) != ALLOWED] == []
    other = Request(role_requests[0].action, role_requests[0].resource, {"iam:AWSServiceName": "ecs.amazonaws.com"})
    assert decide(other, [documented, provisioned]) != ALLOWED


def test_the_doc_names_every_resource_type_cloudformation_creates_with_the_callers_credentials() -> None:
    """deploy.py's change sets run with no service role: the doc lists the types whose handlers need the caller's
    permissions (central template in the central account, member template for the management account's stacks)."""
    text = DEPLOY_DOC.read_text()
    start = text.index("**CloudFormation creates the stacks' resources with the caller's credentials**")
    paragraph = text[start : text.index("\n\n", start)]
    named = set(re.findall(r"AWS::\w+::\w+", paragraph))
    central = {r["Type"] for r in loads((ROOT / "central-account" / "template.yaml").read_text())["Resources"].values()}
    assert named == central | set(member_template_types())
