"""The Organization rollout: central stack by change set, OAM sinks, the member StackSet, status and teardown.

Every function that talks to AWS takes its boto3 clients as arguments; `Clients` makes them (per service,
region and account) for the CLI. A dry run refuses every call that is not a read, at the botocore level,
so it cannot write even by mistake.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import time
import uuid
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from batchops.aws.preflight import (
    Caller,
    OrgUnit,
    PreflightReport,
    describe_org_units,
    identify_caller,
    run_preflight,
)
from batchops.aws.template_body import TEMPLATE_BODY_LIMIT, template_body

REPO_ROOT = Path(__file__).resolve().parents[3]
CENTRAL_TEMPLATE = REPO_ROOT / "central-account" / "template.yaml"
MEMBER_TEMPLATE = REPO_ROOT / "member-account" / "template.yaml"

# The RegionSlot mapping of member-account/template.yaml, in slot order (a test keeps them equal): the
# StackSet passes one list of sink ARNs and each stack takes the slot of its region.
REGION_SLOTS: tuple[str, ...] = (
    "us-east-1", "us-east-2", "us-west-1", "us-west-2", "ca-central-1", "ca-west-1", "sa-east-1", "mx-central-1",
    "eu-west-1", "eu-west-2", "eu-west-3", "eu-central-1", "eu-central-2", "eu-north-1", "eu-south-1", "eu-south-2",
    "ap-northeast-1", "ap-northeast-2", "ap-northeast-3", "ap-southeast-1", "ap-southeast-2", "ap-southeast-3",
    "ap-southeast-4", "ap-southeast-5", "ap-southeast-7", "ap-south-1", "ap-south-2", "ap-east-1", "me-south-1",
    "me-central-1", "il-central-1", "af-south-1",
)  # fmt: skip
OAM_RESOURCE_TYPES = ("AWS::CloudWatch::Metric", "AWS::Logs::LogGroup")
TAG_KEY = "batchops:prefix"

# --- clients -------------------------------------------------------------------------------------------

_READ_PREFIXES = ("Describe", "List", "Get", "Head", "BatchGet", "Validate", "Search", "Lookup")
_READ_OPERATIONS = frozenset({("sts", "AssumeRole")})


def is_read_only(service: str, operation: str) -> bool:
    """True for calls that change nothing (Describe*, List*, Get*, Head*, ..., and STS AssumeRole)."""
    return operation.startswith(_READ_PREFIXES) or (service, operation) in _READ_OPERATIONS


class WriteRefused(RuntimeError):
    """A dry run reached a call that would write."""


def refuse_writes(model: Any, **_: Any) -> None:
    """botocore `before-call` handler of dry runs: stop any call that is not a read before it is sent."""
    service = model.service_model.service_name
    if not is_read_only(service, model.name):
        raise WriteRefused(f"dry run: {service}:{model.name} would change something; refused")


class Clients:
    """boto3 clients per service, region and account (other accounts through an assumed role), cached."""

    def __init__(
        self,
        session: boto3.Session,
        *,
        read_only: bool = False,
        role_name: str = "OrganizationAccountAccessRole",
        config: Config | None = None,
    ) -> None:
        self.session = session
        self.role_name = role_name
        self.read_only = read_only
        self.config = config or Config(retries={"mode": "standard", "max_attempts": 10}, user_agent_extra="batchops")
        if read_only:
            session.events.register("before-call", refuse_writes, unique_id="batchops-refuse-writes")
        self._clients: dict[tuple[str, str, str | None], Any] = {}
        self._credentials: dict[str, dict[str, str]] = {}
        self._caller: dict[str, str] | None = None

    def caller(self, region: str) -> dict[str, str]:
        """The caller's identity (Account, Arn)."""
        if self._caller is None:
            identity = self.client("sts", region).get_caller_identity()
            self._caller = {"Account": identity["Account"], "Arn": identity["Arn"]}
        return self._caller

    def client(self, service: str, region: str, account: str | None = None) -> Any:
        """A client of `service` in `region`, in `account` (None or the caller's own: the session's credentials)."""
        if account is not None and account == self.caller(region)["Account"]:
            account = None
        key = (service, region, account)
        if key not in self._clients:
            credentials = self._assume(account, region) if account else {}
            self._clients[key] = self.session.client(service, region_name=region, config=self.config, **credentials)
        return self._clients[key]

    def _assume(self, account: str, region: str) -> dict[str, str]:
        if account not in self._credentials:
            partition = self.caller(region)["Arn"].split(":")[1]
            role = f"arn:{partition}:iam::{account}:role/{self.role_name}"
            try:
                found = self.client("sts", region).assume_role(RoleArn=role, RoleSessionName="batchops-deploy")
            except ClientError as error:
                raise RolloutError(
                    f"cannot assume {role} ({error.response['Error']['Message']}): pass the role another name "
                    "with --central-role-name, or run with the central account's credentials"
                ) from None
            c = found["Credentials"]
            self._credentials[account] = {
                "aws_access_key_id": c["AccessKeyId"],
                "aws_secret_access_key": c["SecretAccessKey"],
                "aws_session_token": c["SessionToken"],
            }
        return self._credentials[account]


class RolloutError(RuntimeError):
    """The rollout cannot go on; the message says why and what to do."""


# --- settings ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OperationPreferences:
    """How a StackSet operation proceeds: all regions at once, accounts in parallel up to a percentage."""

    max_concurrent_percentage: int = 25
    failure_tolerance_percentage: int = 10

    def __post_init__(self) -> None:
        if not 1 <= self.max_concurrent_percentage <= 100:
            raise ValueError("--max-concurrent-percentage must be 1..100")
        if not 0 <= self.failure_tolerance_percentage <= 100:
            raise ValueError("--failure-tolerance-percentage must be 0..100")

    def request(self) -> dict[str, Any]:
        """The OperationPreferences of a StackSets API call."""
        return {
            "RegionConcurrencyType": "PARALLEL",
            "MaxConcurrentPercentage": self.max_concurrent_percentage,
            "FailureTolerancePercentage": self.failure_tolerance_percentage,
            # In the default strict mode concurrency never exceeds the failure tolerance + 1 account; soft
            # mode keeps the chosen concurrency and still stops the operation past the tolerance.
            "ConcurrencyMode": "SOFT_FAILURE_TOLERANCE",
        }


@dataclass(frozen=True)
class RolloutSettings:
    """Everything one `deploy.py` run was asked to do."""

    org_units: tuple[str, ...]
    regions: tuple[str, ...]
    home_region: str
    prefix: str = "batchops"
    call_as: str | None = None
    central_account: str | None = None
    include_management_account: bool = False
    preferences: OperationPreferences = field(default_factory=OperationPreferences)
    dry_run: bool = False
    assume_yes: bool = False
    artifact: Path | None = None
    artifact_bucket: str | None = None
    central_parameters: Mapping[str, str] = field(default_factory=dict)
    oam: bool = True
    grafana: bool = True
    grafana_admin_groups: tuple[str, ...] = ()
    grafana_viewer_groups: tuple[str, ...] = ()
    identity_center_region: str | None = None
    profile: str | None = None
    poll_seconds: float = 5.0
    timeout_seconds: float = 3 * 3600
    central_template: Path = CENTRAL_TEMPLATE
    member_template: Path = MEMBER_TEMPLATE

    @property
    def central_stack_name(self) -> str:
        """The central account's stack."""
        return f"{self.prefix}-central"

    @property
    def stack_set_name(self) -> str:
        """The member StackSet (and the plain stack of the management account)."""
        return f"{self.prefix}-member"

    @property
    def sink_name(self) -> str:
        """The OAM sink of each region in the central account."""
        return self.prefix

    @property
    def tags(self) -> dict[str, str]:
        """Tags on what the rollout creates, so status and destroy find it again."""
        return {TAG_KEY: self.prefix}


def artifact_bucket_name(prefix: str, account: str, region: str) -> str:
    """The artifact bucket of the central account and home region (S3 names are global: account and region)."""
    name = f"{prefix}-artifacts-{account}-{region}"
    return name if len(name) <= 63 else f"{prefix}-{account}-{region}"


def confirm_or_refuse(settings: RolloutSettings, ask: Callable[[str], bool]) -> Callable[[str], bool]:
    """--yes answers every question with yes."""
    return (lambda _question: True) if settings.assume_yes else ask


# --- S3 artifact -------------------------------------------------------------------------------------------


def artifact_bucket_policy(bucket: str, partition: str = "aws") -> dict[str, Any]:
    """The artifact bucket's policy: no request without TLS (everything else is IAM's business)."""
    arn = f"arn:{partition}:s3:::{bucket}"
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "DenyInsecureTransport",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "s3:*",
                "Resource": [arn, f"{arn}/*"],
                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
            }
        ],
    }


_BLOCK_ALL = {
    "BlockPublicAcls": True,
    "IgnorePublicAcls": True,
    "BlockPublicPolicy": True,
    "RestrictPublicBuckets": True,
}


def _error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def ensure_artifact_bucket(
    s3: Any, bucket: str, region: str, *, partition: str, dry_run: bool, tls_only: bool = True
) -> list[str]:
    """A private, encrypted, versioned, TLS-only bucket; returns what was (or would be) changed.

    `tls_only=False` leaves the TLS-only policy out: over a plain-HTTP endpoint (a local emulator) it
    would deny this very client.
    """
    changes: list[str] = []
    try:
        s3.head_bucket(Bucket=bucket)
        exists = True
    except ClientError as error:
        if _error_code(error) in ("403", "AccessDenied", "Forbidden"):
            raise RolloutError(
                f"the bucket name {bucket} is taken by another account: pass --artifact-bucket"
            ) from None
        if _error_code(error) not in ("404", "NoSuchBucket", "NotFound"):
            raise
        exists = False
    if not exists:
        changes.append(f"create bucket {bucket}")
        if not dry_run:
            create: dict[str, Any] = {"Bucket": bucket}
            if region != "us-east-1":
                create["CreateBucketConfiguration"] = {"LocationConstraint": region}
            s3.create_bucket(**create)
    desired_policy = artifact_bucket_policy(bucket, partition)
    checks: list[tuple[str, Callable[[], bool], Callable[[], None]]] = [
        (
            "block public access",
            lambda: s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"] == _BLOCK_ALL,
            lambda: s3.put_public_access_block(Bucket=bucket, PublicAccessBlockConfiguration=_BLOCK_ALL),
        ),
        (
            "bucket owner enforced (no ACLs)",
            lambda: (
                s3.get_bucket_ownership_controls(Bucket=bucket)["OwnershipControls"]["Rules"][0]["ObjectOwnership"]
                == "BucketOwnerEnforced"
            ),
            lambda: s3.put_bucket_ownership_controls(
                Bucket=bucket, OwnershipControls={"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]}
            ),
        ),
        (
            "default encryption",
            lambda: bool(
                s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"][0][
                    "ApplyServerSideEncryptionByDefault"
                ]["SSEAlgorithm"]
            ),
            lambda: s3.put_bucket_encryption(
                Bucket=bucket,
                ServerSideEncryptionConfiguration={
                    "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]
                },
            ),
        ),
        (
            "versioning",
            lambda: s3.get_bucket_versioning(Bucket=bucket).get("Status") == "Enabled",
            lambda: s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"}),
        ),
        (
            "TLS-only policy",
            lambda: json.loads(s3.get_bucket_policy(Bucket=bucket)["Policy"]) == desired_policy,
            lambda: s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps(desired_policy)),
        ),
    ]
    if not tls_only:
        checks = [c for c in checks if c[0] != "TLS-only policy"]
    for label, holds, apply in checks:
        ok = False
        if exists:
            try:
                ok = holds()
            except ClientError as error:
                if _error_code(error) in ("AccessDenied", "403"):
                    raise
        if not ok:
            changes.append(f"{bucket}: {label}")
            if not dry_run:
                apply()
    return changes


def artifact_key(path: Path) -> str:
    """S3 key of an artifact, named after its sha256 so a new build changes the functions and nothing else does."""
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return f"lambda/batchops-lambda-{digest}.zip"


def upload_artifact(s3: Any, bucket: str, path: Path, *, dry_run: bool) -> tuple[str, bool]:
    """Upload the zip unless an object of the same hash is there; returns its key and whether it was uploaded."""
    key = artifact_key(path)
    try:
        s3.head_object(Bucket=bucket, Key=key)
        return key, False
    except ClientError as error:
        if _error_code(error) not in ("404", "NoSuchKey", "NotFound", "NoSuchBucket"):
            raise
    if not dry_run:
        s3.put_object(Bucket=bucket, Key=key, Body=path.read_bytes(), ContentType="application/zip")
    return key, True


# --- stacks through change sets --------------------------------------------------------------------------

_TERMINAL_OK = {"CREATE_COMPLETE", "UPDATE_COMPLETE", "IMPORT_COMPLETE"}
_TERMINAL_FAILED = {
    "CREATE_FAILED",
    "ROLLBACK_COMPLETE",
    "ROLLBACK_FAILED",
    "UPDATE_ROLLBACK_COMPLETE",
    "UPDATE_ROLLBACK_FAILED",
    "UPDATE_FAILED",
    "DELETE_FAILED",
    "IMPORT_ROLLBACK_COMPLETE",
    "IMPORT_ROLLBACK_FAILED",
}
_NO_CHANGES = ("didn't contain changes", "No updates are to be performed")


@dataclass
class StackOutcome:
    """What deploying one stack did (or, in a dry run, would do)."""

    name: str
    changed: bool
    outputs: dict[str, str] = field(default_factory=dict)
    changes: list[dict[str, str]] = field(default_factory=list)
    plan: list[str] = field(default_factory=list)


def describe_stack(cfn: Any, name: str) -> dict[str, Any] | None:
    """The stack, or None when it does not exist (deleted stacks do not exist)."""
    try:
        stack: dict[str, Any] = cfn.describe_stacks(StackName=name)["Stacks"][0]
    except ClientError as error:
        if _error_code(error) == "ValidationError" and "does not exist" in str(error):
            return None
        raise
    return None if stack["StackStatus"] == "DELETE_COMPLETE" else stack


def stack_outputs(stack: Mapping[str, Any]) -> dict[str, str]:
    """Outputs of a described stack by key."""
    return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs") or []}


def template_summary(cfn: Any, body: str, template_url: str | None = None) -> dict[str, Any]:
    """GetTemplateSummary (a read) of a template, by URL when it is too large to send inline."""
    if template_url:
        summary: dict[str, Any] = cfn.get_template_summary(TemplateURL=template_url)
    else:
        summary = cfn.get_template_summary(TemplateBody=body)
    return summary


def template_parameters(cfn: Any, body: str, template_url: str | None = None) -> set[str]:
    """The parameter names a template declares."""
    return {p["ParameterKey"] for p in template_summary(cfn, body, template_url).get("Parameters", [])}


def plan_stack(
    cfn: Any,
    stack: Mapping[str, Any] | None,
    body: str,
    parameters: Mapping[str, str],
    tags: Mapping[str, str] | None = None,
    template_url: str | None = None,
) -> list[str]:
    """What a change set would be made of, worked out with reads only (a change set itself is a write).

    Empty when the deployed template, parameters (passed or defaulted) and tags are the local ones.
    """
    summary = template_summary(cfn, body, template_url)
    if stack is None:
        kinds = Counter(summary.get("ResourceTypes", []))
        return ["new stack: " + ", ".join(f"{n} {kind}" for kind, n in sorted(kinds.items()))]
    lines: list[str] = []
    defaults = {p["ParameterKey"]: p.get("DefaultValue") for p in summary.get("Parameters", [])}
    current = {p["ParameterKey"]: p.get("ParameterValue", "") for p in stack.get("Parameters") or []}
    for key in sorted(set(current) | set(defaults)):
        if key not in defaults:
            lines.append(f"parameter {key}: no longer in the template")
            continue
        desired = parameters.get(key, defaults[key])
        deployed = current.get(key, defaults[key])
        if deployed == "****":
            lines.append(f"parameter {key}: NoEcho, CloudFormation compares it")
        elif desired is not None and deployed != desired:
            lines.append(f"parameter {key}: {deployed!r} -> {desired!r}")
    if tags is not None:
        deployed_tags = {t["Key"]: t["Value"] for t in stack.get("Tags") or []}
        if deployed_tags != dict(tags):
            lines.append(f"tags: {deployed_tags} -> {dict(tags)}")
    deployed_body = cfn.get_template(StackName=stack["StackName"], TemplateStage="Original")["TemplateBody"]
    deployed_text = deployed_body if isinstance(deployed_body, str) else json.dumps(deployed_body, indent=2)
    diff = list(difflib.unified_diff(deployed_text.splitlines(), body.splitlines(), "deployed", "local", lineterm=""))
    if diff:
        lines.append(f"template: {sum(1 for d in diff[2:] if d[:1] in '+-')} lines differ")
        lines += [f"  {d}" for d in diff[2:80]]
    return lines


def _wait_change_set(cfn: Any, change_set_id: str, poll: float, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        described: dict[str, Any] = cfn.describe_change_set(ChangeSetName=change_set_id)
        if described["Status"] in ("CREATE_COMPLETE", "FAILED"):
            changes: list[Any] = list(described.get("Changes", []))
            token = described.get("NextToken")
            while token:
                page = cfn.describe_change_set(ChangeSetName=change_set_id, NextToken=token)
                changes += page.get("Changes", [])
                token = page.get("NextToken")
            described["Changes"] = changes
            return described
        if time.monotonic() > deadline:
            raise RolloutError(f"change set {change_set_id} still {described['Status']} after {timeout:.0f}s")
        time.sleep(poll)


def _failure_reasons(cfn: Any, name: str, since: datetime) -> list[str]:
    reasons: list[str] = []
    for page in cfn.get_paginator("describe_stack_events").paginate(StackName=name):
        for event in page["StackEvents"]:
            if event["Timestamp"] < since:
                return reasons
            if event["ResourceStatus"].endswith("FAILED") and event.get("ResourceStatusReason"):
                reasons.append(f"{event['LogicalResourceId']}: {event['ResourceStatusReason']}")
    return reasons


def wait_stack(cfn: Any, name: str, poll: float, timeout: float, since: datetime) -> dict[str, Any]:
    """Wait for a stack operation to finish; raise with the failed resources' reasons when it fails."""
    deadline = time.monotonic() + timeout
    while True:
        stack = describe_stack(cfn, name)
        if stack is None:
            raise RolloutError(f"stack {name} disappeared (its creation failed and was rolled back)")
        status = stack["StackStatus"]
        if status in _TERMINAL_OK:
            return stack
        if status in _TERMINAL_FAILED:
            reasons = _failure_reasons(cfn, name, since) or [stack.get("StackStatusReason", "")]
            raise RolloutError(f"stack {name} ended {status}:\n  " + "\n  ".join(reasons))
        if time.monotonic() > deadline:
            raise RolloutError(f"stack {name} still {status} after {timeout:.0f}s")
        time.sleep(poll)


def _change_rows(changes: Sequence[Mapping[str, Any]]) -> list[dict[str, str]]:
    rows = []
    for change in changes:
        rc = change.get("ResourceChange", {})
        rows.append(
            {
                "action": str(rc.get("Action", "")),
                "logical_id": str(rc.get("LogicalResourceId", "")),
                "type": str(rc.get("ResourceType", "")),
                "replacement": str(rc.get("Replacement", "")),
            }
        )
    return rows


def show_changes(console: Console, title: str, rows: Sequence[Mapping[str, str]]) -> None:
    """A change set as a table."""
    # A replacement column only when some change replaces; long values fold, never cut to "…" (80 columns).
    keys = ["action", "logical_id", "type"] + (["replacement"] if any(r["replacement"] for r in rows) else [])
    table = Table(title=title, show_lines=False)
    for key in keys:
        table.add_column(key.replace("_", " "), overflow="fold")
    for row in rows:
        table.add_row(*(row[key] for key in keys))
    console.print(table)


def deploy_stack(
    cfn: Any,
    *,
    name: str,
    body: str,
    parameters: Mapping[str, str],
    capabilities: Sequence[str],
    tags: Mapping[str, str],
    console: Console,
    confirm: Callable[[str], bool],
    dry_run: bool,
    poll_seconds: float,
    timeout_seconds: float,
    template_url: str | None = None,
) -> StackOutcome:
    """Create or update a stack through a change set, shown and confirmed before it is executed."""
    stack = describe_stack(cfn, name)
    status = stack["StackStatus"] if stack else None
    if status == "ROLLBACK_COMPLETE":
        raise RolloutError(
            f"stack {name} is ROLLBACK_COMPLETE (its creation failed; see its events): delete it with "
            f"`aws cloudformation delete-stack --stack-name {name}` and run again"
        )
    if status and status.endswith("_IN_PROGRESS") and status != "REVIEW_IN_PROGRESS":
        raise RolloutError(f"stack {name} is {status}: wait for it to finish and run again")
    steady = status in ("CREATE_COMPLETE", "UPDATE_COMPLETE", "UPDATE_ROLLBACK_COMPLETE", "IMPORT_COMPLETE")
    creating = stack is None or status == "REVIEW_IN_PROGRESS"
    plan = plan_stack(cfn, None if creating else stack, body, parameters, tags, template_url)
    if dry_run:
        return StackOutcome(name, bool(plan), stack_outputs(stack) if stack else {}, plan=plan)
    if stack is not None and steady and not plan:
        return StackOutcome(name, False, stack_outputs(stack))
    change_set_name = f"batchops-{datetime.now(UTC).strftime('%Y%m%d%H%M%S')}-{uuid.uuid4().hex[:6]}"
    request: dict[str, Any] = {
        "StackName": name,
        "ChangeSetName": change_set_name,
        "ChangeSetType": "CREATE" if creating else "UPDATE",
        "Parameters": [{"ParameterKey": k, "ParameterValue": v} for k, v in sorted(parameters.items())],
        "Capabilities": list(capabilities),
        "Tags": [{"Key": k, "Value": v} for k, v in sorted(tags.items())],
        "Description": "batchops deploy.py",
    }
    if template_url:
        request["TemplateURL"] = template_url
    else:
        request["TemplateBody"] = body
    try:
        change_set_id = cfn.create_change_set(**request)["Id"]
    except ClientError as error:
        if any(marker in str(error) for marker in _NO_CHANGES):
            return StackOutcome(name, False, stack_outputs(stack or {}))
        raise
    described = _wait_change_set(cfn, change_set_id, poll_seconds, timeout_seconds)
    if described["Status"] == "FAILED":
        reason = described.get("StatusReason", "")
        cfn.delete_change_set(ChangeSetName=change_set_id)
        if any(marker in reason for marker in _NO_CHANGES):
            return StackOutcome(name, False, stack_outputs(stack or {}))
        raise RolloutError(f"change set for {name} failed: {reason}")
    rows = _change_rows(described["Changes"])
    show_changes(console, f"change set {change_set_name} of stack {name}", rows)
    if not confirm(f"Execute this change set on {name}?"):
        cfn.delete_change_set(ChangeSetName=change_set_id)
        raise RolloutError(f"change set on {name} not executed: nothing was changed in that stack")
    since = datetime.now(UTC)
    cfn.execute_change_set(ChangeSetName=change_set_id)
    done = wait_stack(cfn, name, poll_seconds, timeout_seconds, since)
    return StackOutcome(name, True, stack_outputs(done), changes=rows)


def delete_stack(cfn: Any, name: str, poll_seconds: float, timeout_seconds: float) -> bool:
    """Delete a stack and wait until it is gone; False when there was none."""
    stack = describe_stack(cfn, name)
    if stack is None:
        return False
    since = datetime.now(UTC)
    cfn.delete_stack(StackName=stack["StackId"])
    deadline = time.monotonic() + timeout_seconds
    while True:
        current = cfn.describe_stacks(StackName=stack["StackId"])["Stacks"][0]
        if current["StackStatus"] == "DELETE_COMPLETE":
            return True
        if current["StackStatus"] == "DELETE_FAILED":
            reasons = _failure_reasons(cfn, stack["StackId"], since)
            raise RolloutError(f"stack {name} could not be deleted:\n  " + "\n  ".join(reasons))
        if time.monotonic() > deadline:
            raise RolloutError(f"stack {name} still {current['StackStatus']} after {timeout_seconds:.0f}s")
        time.sleep(poll_seconds)


def bus_policy_problems(events: Any, bus_name: str, organization_id: str) -> list[str]:
    """Check that the central bus admits the Organization (EventBridge drops member events otherwise)."""
    policy_text = events.describe_event_bus(Name=bus_name).get("Policy")
    if not policy_text:
        return [f"event bus {bus_name} has no resource policy: member accounts cannot put events on it"]
    for statement in json.loads(policy_text).get("Statement", []):
        actions = statement.get("Action", [])
        actions = [actions] if isinstance(actions, str) else actions
        condition = json.dumps(statement.get("Condition", {}))
        if statement.get("Effect") == "Allow" and "events:PutEvents" in actions and organization_id in condition:
            return []
    return [f"event bus {bus_name}'s policy has no PutEvents statement for {organization_id}"]


# --- OAM sinks -----------------------------------------------------------------------------------------


def sink_policy(organization_id: str) -> dict[str, Any]:
    """The sink policy: accounts of the Organization may link metrics and log groups, nothing else."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "OrganizationLinks",
                "Effect": "Allow",
                "Principal": "*",
                "Action": ["oam:CreateLink", "oam:UpdateLink"],
                "Resource": "*",
                "Condition": {
                    "ForAllValues:StringEquals": {"oam:ResourceTypes": list(OAM_RESOURCE_TYPES)},
                    "ForAnyValue:StringEquals": {"aws:PrincipalOrgID": organization_id},
                },
            }
        ],
    }


def find_sink(oam: Any, name: str) -> dict[str, Any] | None:
    """The sink of that name in the client's region, or None."""
    for page in oam.get_paginator("list_sinks").paginate():
        for item in page["Items"]:
            if item["Name"] == name:
                return dict(item)
    return None


def ensure_sink(
    oam: Any, name: str, organization_id: str, tags: Mapping[str, str], *, dry_run: bool
) -> tuple[str, bool]:
    """Create the sink and its Organization policy where missing; returns its ARN ('' in a dry run) and changed."""
    sink = find_sink(oam, name)
    changed = False
    if sink is None:
        changed = True
        if dry_run:
            return "", True
        sink = oam.create_sink(Name=name, Tags=dict(tags))
    desired = sink_policy(organization_id)
    current: dict[str, Any] | None
    try:
        text = oam.get_sink_policy(SinkIdentifier=sink["Arn"]).get("Policy")
        current = json.loads(text) if text else None
    except ClientError as error:
        if _error_code(error) != "ResourceNotFoundException":
            raise
        current = None
    if current != desired:
        changed = True
        if not dry_run:
            oam.put_sink_policy(SinkIdentifier=sink["Arn"], Policy=json.dumps(desired))
    return str(sink["Arn"]), changed


def delete_sink(oam: Any, name: str, *, dry_run: bool = False) -> bool:
    """Delete the sink of that name; False when there is none."""
    sink = find_sink(oam, name)
    if sink is None:
        return False
    if not dry_run:
        oam.delete_sink(Identifier=sink["Arn"])
    return True


def sink_slots(sinks: Mapping[str, str]) -> str:
    """The member template's OamSinkArns value: sink ARNs in RegionSlot order, empty slots between, trimmed."""
    unknown = set(sinks) - set(REGION_SLOTS)
    if unknown:
        raise RolloutError(f"no RegionSlot in member-account/template.yaml for {sorted(unknown)}")
    slots = [sinks.get(region, "") for region in REGION_SLOTS]
    while slots and not slots[-1]:
        slots.pop()
    return ",".join(slots)


# --- the member StackSet ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class StackSetSpec:
    """The member StackSet as it should be."""

    name: str
    template_body: str
    parameters: Mapping[str, str]
    call_as: str
    description: str = "batchops member accounts: Batch events to the central bus, OAM link (deploy.py)"
    capabilities: tuple[str, ...] = ("CAPABILITY_NAMED_IAM",)
    tags: Mapping[str, str] = field(default_factory=dict)

    @property
    def auto_deployment(self) -> dict[str, bool]:
        """New accounts of the OUs get the stack; accounts leaving lose it."""
        return {"Enabled": True, "RetainStacksOnAccountRemoval": False}

    @property
    def managed_execution(self) -> dict[str, bool]:
        """StackSets queues non-conflicting operations instead of refusing them."""
        return {"Active": True}

    def _parameters(self) -> list[dict[str, str]]:
        return [{"ParameterKey": k, "ParameterValue": v} for k, v in sorted(self.parameters.items())]

    def create_request(self) -> dict[str, Any]:
        """The CreateStackSet request."""
        return {
            "StackSetName": self.name,
            "Description": self.description,
            "TemplateBody": self.template_body,
            "Parameters": self._parameters(),
            "Capabilities": list(self.capabilities),
            "Tags": [{"Key": k, "Value": v} for k, v in sorted(self.tags.items())],
            "PermissionModel": "SERVICE_MANAGED",
            "AutoDeployment": self.auto_deployment,
            "ManagedExecution": self.managed_execution,
            "CallAs": self.call_as,
        }

    def update_request(self, preferences: OperationPreferences, operation_id: str) -> dict[str, Any]:
        """The UpdateStackSet request (every instance is updated)."""
        request = self.create_request()
        del request["PermissionModel"]
        request["OperationPreferences"] = preferences.request()
        request["OperationId"] = operation_id
        return request

    def differences(self, current: Mapping[str, Any]) -> list[str]:
        """How a described StackSet differs from the spec (fields the service does not report are not compared)."""
        found = []
        if current.get("TemplateBody") != self.template_body:
            found.append("template")
        parameters = {p["ParameterKey"]: p.get("ParameterValue", "") for p in current.get("Parameters") or []}
        for key, value in sorted(self.parameters.items()):
            if parameters.get(key) != value:
                found.append(f"parameter {key}")
        if "Capabilities" in current and set(current["Capabilities"]) != set(self.capabilities):
            found.append("capabilities")
        if "AutoDeployment" in current and current["AutoDeployment"] != self.auto_deployment:
            found.append(f"auto-deployment {current['AutoDeployment']}")
        if "ManagedExecution" in current and current["ManagedExecution"] != self.managed_execution:
            found.append(f"managed execution {current['ManagedExecution']}")
        if current.get("PermissionModel", "SERVICE_MANAGED") != "SERVICE_MANAGED":
            raise RolloutError(
                f"StackSet {self.name} exists with {current['PermissionModel']} permissions; this rollout needs "
                "SERVICE_MANAGED: delete it (deploy.py destroy) or choose another --prefix"
            )
        return found


def describe_stack_set(cfn: Any, name: str, call_as: str) -> dict[str, Any] | None:
    """The StackSet, or None when it does not exist (or was deleted)."""
    try:
        found: dict[str, Any] = cfn.describe_stack_set(StackSetName=name, CallAs=call_as)["StackSet"]
    except ClientError as error:
        if _error_code(error) == "StackSetNotFoundException":
            return None
        raise
    return None if found.get("Status") == "DELETED" else found


@dataclass(frozen=True)
class Instance:
    """One stack instance as StackSets reports it."""

    account: str
    region: str
    status: str
    detailed_status: str
    reason: str
    drift: str
    org_unit: str


def list_instances(cfn: Any, name: str, call_as: str) -> list[Instance]:
    """Every stack instance of the StackSet."""
    found = []
    for page in cfn.get_paginator("list_stack_instances").paginate(StackSetName=name, CallAs=call_as):
        for s in page["Summaries"]:
            found.append(
                Instance(
                    account=s["Account"],
                    region=s["Region"],
                    status=s.get("Status", ""),
                    detailed_status=(s.get("StackInstanceStatus") or {}).get("DetailedStatus", ""),
                    reason=s.get("StatusReason", ""),
                    drift=s.get("DriftStatus", "NOT_CHECKED"),
                    org_unit=s.get("OrganizationalUnitId", ""),
                )
            )
    return found


def _retry_in_progress(call: Callable[[], dict[str, Any]], poll: float, timeout: float, console: Console) -> str:
    """Run a StackSets call, waiting while another operation (e.g. an automatic deployment) runs; its OperationId."""
    deadline = time.monotonic() + timeout
    told = False
    while True:
        try:
            return str(call()["OperationId"])
        except ClientError as error:
            if _error_code(error) != "OperationInProgressException" or time.monotonic() > deadline:
                raise
            if not told:
                console.print("another StackSet operation is running (an automatic deployment?): waiting for it")
                told = True
            time.sleep(poll)


@dataclass
class OperationOutcome:
    """How a StackSet operation ended, per account and region."""

    operation_id: str
    status: str
    results: dict[tuple[str, str], tuple[str, str]]

    def count(self, *statuses: str) -> int:
        """Targets in any of these statuses."""
        return sum(1 for status, _ in self.results.values() if status in statuses)

    @property
    def failures(self) -> list[tuple[str, str, str]]:
        """(account, region, reason) of every failed target."""
        return sorted((a, r, reason) for (a, r), (s, reason) in self.results.items() if s in ("FAILED", "CANCELLED"))

    def tolerance_exceeded(self, percentage: int) -> bool:
        """True when the operation failed or stopped, or failures passed the tolerance."""
        if self.status in ("FAILED", "STOPPED"):
            return True
        total = len(self.results) or 1
        return self.count("FAILED") * 100 > percentage * total


def _progress_table(name: str, outcome: OperationOutcome) -> Group:
    # The heading on a line of its own: as a title it would wrap to the narrow table's width.
    heading = Text(f"StackSet {name} operation {outcome.operation_id}: {outcome.status}")
    table = Table()
    for column in ("done", "failed", "running", "pending"):
        table.add_column(column, justify="right")
    table.add_row(
        str(outcome.count("SUCCEEDED")),
        str(outcome.count("FAILED", "CANCELLED")),
        str(outcome.count("RUNNING")),
        str(outcome.count("PENDING")),
    )
    return Group(heading, table)


def _failures_table(outcome: OperationOutcome, names: Mapping[str, str]) -> Table:
    table = Table(title="failed")
    for column in ("account", "name", "region", "reason"):
        table.add_column(column)
    for account, region, reason in outcome.failures:
        table.add_row(account, names.get(account, ""), region, reason)
    return table


def operation_results(cfn: Any, name: str, operation_id: str, call_as: str) -> dict[tuple[str, str], tuple[str, str]]:
    """(account, region) → (status, reason) as the operation reports them."""
    results = {}
    pages = cfn.get_paginator("list_stack_set_operation_results").paginate(
        StackSetName=name, OperationId=operation_id, CallAs=call_as
    )
    for page in pages:
        for s in page["Summaries"]:
            results[(s["Account"], s["Region"])] = (s.get("Status", ""), s.get("StatusReason", ""))
    return results


def watch_operation(
    cfn: Any,
    name: str,
    operation_id: str,
    *,
    call_as: str,
    targets: Sequence[tuple[str, str]],
    console: Console,
    poll_seconds: float,
    timeout_seconds: float,
    account_names: Mapping[str, str] | None = None,
) -> OperationOutcome:
    """Follow an operation to its end, showing accounts done / failed / pending, and the reason of each failure."""
    deadline = time.monotonic() + timeout_seconds
    outcome = OperationOutcome(operation_id, "QUEUED", dict.fromkeys(targets, ("PENDING", "")))
    with Live(_progress_table(name, outcome), console=console, auto_refresh=False, transient=False) as live:
        while True:
            operation = cfn.describe_stack_set_operation(StackSetName=name, OperationId=operation_id, CallAs=call_as)
            outcome.status = operation["StackSetOperation"]["Status"]
            outcome.results.update(operation_results(cfn, name, operation_id, call_as))
            finished = outcome.status in ("SUCCEEDED", "FAILED", "STOPPED")
            if finished and outcome.count("PENDING", "RUNNING"):
                # Some services (and emulators) report no per-target results: the instances tell instead.
                by_target = {(i.account, i.region): i for i in list_instances(cfn, name, call_as)}
                for target, (status, _) in list(outcome.results.items()):
                    instance = by_target.get(target)
                    if status in ("PENDING", "RUNNING") and instance is not None:
                        detailed = instance.detailed_status or ("SUCCEEDED" if instance.status == "CURRENT" else "")
                        outcome.results[target] = (detailed or instance.status, instance.reason)
            live.update(_progress_table(name, outcome), refresh=True)
            if finished:
                break
            if time.monotonic() > deadline:
                raise RolloutError(f"StackSet operation {operation_id} still {outcome.status} after {timeout_seconds}s")
            time.sleep(poll_seconds)
    if not console.is_terminal:
        console.line()  # off a terminal Live prints its last table without the line's end
    if outcome.failures:
        console.print(_failures_table(outcome, account_names or {}))
    return outcome


def missing_targets(
    report: PreflightReport, instances: Sequence[Instance], regions: Sequence[str]
) -> list[tuple[str, str]]:
    """(account, region) pairs the OUs should have and the StackSet has not."""
    present = {(i.account, i.region) for i in instances}
    return [(a.id, r) for a in report.member_accounts for r in regions if (a.id, r) not in present]


@dataclass(frozen=True)
class _Follow:
    """How operations are followed and shown."""

    console: Console
    poll_seconds: float
    timeout_seconds: float
    account_names: Mapping[str, str]


def _run_operation(
    cfn: Any,
    spec: StackSetSpec,
    call: Callable[[str], dict[str, Any]],
    targets: Sequence[tuple[str, str]],
    follow: _Follow,
) -> OperationOutcome:
    """Start one StackSet operation (`call(token)`, the token making retries idempotent) and follow it."""
    token = str(uuid.uuid4())
    operation_id = _retry_in_progress(lambda: call(token), follow.poll_seconds, follow.timeout_seconds, follow.console)
    return watch_operation(
        cfn,
        spec.name,
        operation_id,
        call_as=spec.call_as,
        targets=targets,
        console=follow.console,
        poll_seconds=follow.poll_seconds,
        timeout_seconds=follow.timeout_seconds,
        account_names=follow.account_names,
    )


def ensure_stack_set(
    cfn: Any,
    spec: StackSetSpec,
    *,
    report: PreflightReport,
    regions: Sequence[str],
    preferences: OperationPreferences,
    console: Console,
    dry_run: bool,
    poll_seconds: float,
    timeout_seconds: float,
) -> tuple[list[str], OperationOutcome | None]:
    """Create or update the StackSet, create the stack instances every OU x region lacks, retry outdated ones.

    Returns what changed (or would change) and the outcome of the last operation run.
    """
    changes: list[str] = []
    outcome: OperationOutcome | None = None
    ous = [u.id for u in report.org_units]
    follow = _Follow(console, poll_seconds, timeout_seconds, {a.id: a.name for a in report.member_accounts})
    current = describe_stack_set(cfn, spec.name, spec.call_as)
    instances: list[Instance] = []
    if current is None:
        changes.append(f"create StackSet {spec.name} (SERVICE_MANAGED, automatic deployment, managed execution)")
        if not dry_run:
            cfn.create_stack_set(**spec.create_request())
    else:
        instances = list_instances(cfn, spec.name, spec.call_as)
        differences = spec.differences(current)
        if differences:
            changes.append(f"update StackSet {spec.name}: {', '.join(differences)}")
            if not dry_run:
                outcome = _run_operation(
                    cfn,
                    spec,
                    lambda token: cfn.update_stack_set(**spec.update_request(preferences, token)),
                    [(i.account, i.region) for i in instances],
                    follow,
                )
                if outcome.tolerance_exceeded(preferences.failure_tolerance_percentage):
                    return changes, outcome
                instances = list_instances(cfn, spec.name, spec.call_as)
        else:
            # Instances a previous run left behind (failed, or outdated by an interrupted update) are redone.
            stale = [i for i in instances if i.status == "OUTDATED" and i.detailed_status not in ("PENDING", "RUNNING")]
            stale_regions = [r for r in regions if any(i.region == r for i in stale)]
            if stale_regions:
                changes.append(f"retry {len(stale)} outdated stack instances in {', '.join(stale_regions)}")
                if not dry_run:
                    outcome = _run_operation(
                        cfn,
                        spec,
                        lambda token: cfn.update_stack_instances(
                            StackSetName=spec.name,
                            DeploymentTargets={"OrganizationalUnitIds": ous},
                            Regions=stale_regions,
                            OperationPreferences=preferences.request(),
                            OperationId=token,
                            CallAs=spec.call_as,
                        ),
                        [(i.account, i.region) for i in stale],
                        follow,
                    )
                    if outcome.tolerance_exceeded(preferences.failure_tolerance_percentage):
                        return changes, outcome
    missing = missing_targets(report, instances, regions)
    targeted_ous = set(current.get("OrganizationalUnitIds", [])) if current else set()
    targeted_regions = set(current.get("Regions", [])) if current else set()
    new_ous = [ou for ou in ous if current is None or ou not in targeted_ous]
    # The service reports the OUs and regions it targets (an OU without accounts yet must still become a
    # target, for automatic deployment); an emulator may not report them, then missing instances decide.
    reported = bool(current and "OrganizationalUnitIds" in current)
    new_regions = [r for r in regions if reported and r not in targeted_regions]
    needed = {r for _, r in missing} | set(new_regions) | (set(regions) if reported and new_ous else set())
    need_regions = [r for r in regions if current is None or r in needed]
    if need_regions:
        changes.append(
            f"create stack instances: OUs {', '.join(ous)} x regions {', '.join(need_regions)} "
            f"({len(missing)} account-regions missing)"
        )
        if not dry_run:
            outcome = _run_operation(
                cfn,
                spec,
                lambda token: cfn.create_stack_instances(
                    StackSetName=spec.name,
                    DeploymentTargets={"OrganizationalUnitIds": ous},
                    Regions=need_regions,
                    OperationPreferences=preferences.request(),
                    OperationId=token,
                    CallAs=spec.call_as,
                ),
                [(a.id, r) for a in report.member_accounts for r in need_regions],
                follow,
            )
    if current is not None:
        extra = (targeted_ous - set(ous)) | (targeted_regions - set(regions))
        if extra:
            console.print(
                f"[yellow]note[/] StackSet {spec.name} also targets {sorted(extra)}, not asked for this time: they "
                "keep their stacks (destroy removes everything)"
            )
    return changes, outcome


# --- status --------------------------------------------------------------------------------------------

DEPLOYED = "deployed"
OUTDATED = "outdated"
FAILED = "failed"
IN_PROGRESS = "in-progress"
AUTO_DEPLOYMENT_PENDING = "covered-by-auto-deployment-pending"
MISSING = "missing"
SUSPENDED = "suspended"
LEAVING = "outside-target-ous"
MANAGEMENT = "management-account"


@dataclass(frozen=True)
class CoverageRow:
    """One account x region of the OUs, and what the StackSet has there."""

    account_id: str
    account_name: str
    org_unit: str
    region: str
    state: str
    detail: str = ""
    drift: str = ""


def _instance_state(instance: Instance) -> str:
    if instance.detailed_status in ("PENDING", "RUNNING"):
        return IN_PROGRESS
    if instance.detailed_status in ("FAILED", "CANCELLED", "FAILED_IMPORT") or instance.status == "INOPERABLE":
        return FAILED
    if instance.status == "OUTDATED":
        return OUTDATED
    return DEPLOYED


def coverage(
    org_units: Sequence[OrgUnit],
    regions: Sequence[str],
    instances: Sequence[Instance],
    *,
    auto_deployment: bool | None,
    management_account_id: str,
    management_stacks: Mapping[str, str] | None = None,
) -> list[CoverageRow]:
    """Every account of the OUs x region with its state, then instances of accounts outside the OUs."""
    by_target = {(i.account, i.region): i for i in instances}
    rows: list[CoverageRow] = []
    seen: set[str] = set()
    for unit in org_units:
        for account in unit.accounts:
            if account.id in seen:
                continue
            seen.add(account.id)
            for region in regions:
                instance = by_target.get((account.id, region))
                if account.id == management_account_id:
                    state = (management_stacks or {}).get(region, "")
                    rows.append(
                        CoverageRow(
                            account.id,
                            account.name,
                            unit.id,
                            region,
                            MANAGEMENT,
                            f"plain stack: {state}"
                            if state
                            else "not covered by StackSets: --include-management-account",
                        )
                    )
                elif instance is not None:
                    detail = instance.reason or instance.detailed_status or instance.status
                    rows.append(
                        CoverageRow(
                            account.id,
                            account.name,
                            unit.id,
                            region,
                            _instance_state(instance),
                            detail,
                            instance.drift,
                        )
                    )
                elif account.status != "ACTIVE":
                    rows.append(CoverageRow(account.id, account.name, unit.id, region, SUSPENDED, account.status))
                elif auto_deployment:
                    rows.append(
                        CoverageRow(
                            account.id,
                            account.name,
                            unit.id,
                            region,
                            AUTO_DEPLOYMENT_PENDING,
                            "in a target OU: automatic deployment will add it (or run deploy again)",
                        )
                    )
                else:
                    rows.append(
                        CoverageRow(
                            account.id, account.name, unit.id, region, MISSING, "no stack instance: run deploy again"
                        )
                    )
    for instance in instances:
        if instance.account not in seen:
            rows.append(
                CoverageRow(
                    instance.account,
                    "",
                    instance.org_unit,
                    instance.region,
                    LEAVING,
                    "not in the OUs: automatic deployment removes it",
                    instance.drift,
                )
            )
    return rows


def coverage_table(rows: Sequence[CoverageRow], extra: tuple[str, Callable[[CoverageRow], str]] | None = None) -> Table:
    """The status table, to fit 80 columns: a column all rows agree on goes to the title, a detail that only repeats
    the state is left out, and long values fold (never cut to "…"). `extra` is one more column, before the detail."""
    org_units = {row.org_unit for row in rows}
    drifts = {row.drift for row in rows}
    said: list[str] = []
    columns: list[tuple[str, Callable[[CoverageRow], str]]] = [
        ("account", lambda row: row.account_id),
        ("name", lambda row: row.account_name),
    ]
    if len(org_units) > 1:
        columns.append(("OU", lambda row: row.org_unit))
    elif org_units and "" not in org_units:
        said.append(f"OU {next(iter(org_units))}")
    columns += [("region", lambda row: row.region), ("state", _coloured_state)]
    if len(drifts) > 1:
        columns.append(("drift", lambda row: row.drift))
    elif drifts and "" not in drifts:
        said.append(f"drift {next(iter(drifts))}")
    if extra is not None:
        columns.append(extra)
    if any(_detail(row) for row in rows):
        columns.append(("detail", _detail))
    title = "member accounts x regions" + (f" ({', '.join(said)})" if said else "")
    table = Table(title=title, min_width=len(title))  # as wide as its title, which would wrap otherwise
    for name, _ in columns:
        if name == "account":  # an account id cut in two is no use: the other columns fold first
            table.add_column(name, no_wrap=True, min_width=12)
        else:
            table.add_column(name, overflow="fold")
    for row in rows:
        table.add_row(*(cell(row) for _, cell in columns))
    return table


_STATE_COLOURS = {DEPLOYED: "green", FAILED: "red", MISSING: "red", AUTO_DEPLOYMENT_PENDING: "yellow"}


def _coloured_state(row: CoverageRow) -> str:
    colour = _STATE_COLOURS.get(row.state, "")
    return f"[{colour}]{row.state}[/]" if colour else row.state


def _detail(row: CoverageRow) -> str:
    # A deployed instance's detail is its SUCCEEDED status: the state column says it already.
    return "" if row.state == DEPLOYED and row.detail in ("SUCCEEDED", "CURRENT") else row.detail


# --- orchestration -----------------------------------------------------------------------------------------


@dataclass
class RunResult:
    """What a deploy, status or destroy run did and how it should exit."""

    exit_code: int = 0
    changes: list[str] = field(default_factory=list)
    outputs: dict[str, str] = field(default_factory=dict)
    coverage: list[CoverageRow] = field(default_factory=list)


def _stack_set_parameters(settings: RolloutSettings, bus_arn: str, sinks: Mapping[str, str]) -> dict[str, str]:
    return {"Prefix": settings.prefix, "CentralBusArn": bus_arn, "OamSinkArns": sink_slots(sinks)}


def _central_parameters(
    cfn: Any,
    settings: RolloutSettings,
    body: str,
    organization_id: str,
    bucket: str,
    key: str,
    template_url: str | None = None,
) -> dict[str, str]:
    declared = template_parameters(cfn, body, template_url)
    unknown = set(settings.central_parameters) - declared
    if unknown:
        raise RolloutError(
            f"--central-parameter {sorted(unknown)}: central-account/template.yaml has no such parameter"
        )
    wanted = {
        "Prefix": settings.prefix,
        "OrganizationId": organization_id,
        "ArtifactBucket": bucket,
        "ArtifactKey": key,
        **settings.central_parameters,
    }
    return {k: v for k, v in wanted.items() if k in declared}


def _build_artifact(settings: RolloutSettings, console: Console, workdir: Path) -> Path:
    if settings.artifact is not None:
        if not settings.artifact.is_file():
            raise RolloutError(f"--artifact {settings.artifact}: no such file")
        return settings.artifact
    from batchops.aws.package import ArtifactError, build_lambda_artifact

    console.print("building the Lambda artifact (python -m batchops.aws.package)…")
    try:
        return build_lambda_artifact(workdir)
    except ArtifactError as error:
        raise RolloutError(f"the Lambda artifact could not be built: {error}") from None


def print_preflight(console: Console, report: PreflightReport) -> None:
    """Who runs the rollout, on what."""
    caller = report.caller
    role = "management account" if caller.is_management else "delegated administrator"
    console.print(
        f"caller {caller.arn} ({role}, --call-as {caller.call_as}) in Organization {caller.organization_id}; "
        f"central account {report.central_account_id}"
    )
    for unit in report.org_units:
        console.print(f"  OU {unit.id} {unit.name}: {len(unit.accounts)} accounts")
    console.print(f"  regions: {', '.join(report.regions)}")
    for note in report.notes:
        console.print(f"[yellow]note[/] {note}")


def deploy(
    settings: RolloutSettings,
    clients: Clients,
    console: Console,
    ask: Callable[[str], bool],
    *,
    workdir: Path,
    grafana_push: Callable[[str, str, Mapping[str, str]], list[str]] | None = None,
) -> RunResult:
    """Run the whole rollout (or, with settings.dry_run, show it without writing anything)."""
    confirm = confirm_or_refuse(settings, ask)
    home = settings.home_region
    dry = settings.dry_run
    result = RunResult()
    report = run_preflight(
        sts=clients.client("sts", home),
        organizations=clients.client("organizations", home),
        ec2=clients.client("ec2", home),
        cloudformation=clients.client("cloudformation", home),
        org_unit_ids=settings.org_units,
        regions=settings.regions,
        call_as=settings.call_as,
        central_account_id=settings.central_account,
        supported_regions=REGION_SLOTS,
        include_management_account=settings.include_management_account,
        enable_access=confirm,
        profile=settings.profile,
        dry_run=dry,
    )
    print_preflight(console, report)
    central = report.central_account_id
    partition = report.caller.arn.split(":")[1]
    organization_id = report.caller.organization_id

    # 1. The Lambda artifact in a private bucket of the central account.
    s3 = clients.client("s3", home, central)
    bucket = settings.artifact_bucket or artifact_bucket_name(settings.prefix, central, home)
    tls = str(s3.meta.endpoint_url).startswith("https://")
    if not tls:
        console.print(f"[yellow]note[/] {s3.meta.endpoint_url} is plain HTTP: the bucket gets no TLS-only policy")
    result.changes += ensure_artifact_bucket(s3, bucket, home, partition=partition, dry_run=dry, tls_only=tls)
    artifact = _build_artifact(settings, console, workdir)
    key, uploaded = upload_artifact(s3, bucket, artifact, dry_run=dry)
    if uploaded:
        result.changes.append(f"upload s3://{bucket}/{key}")

    # 2. The central stack, through a change set.
    cfn_central = clients.client("cloudformation", home, central)
    body = template_body(settings.central_template)
    template_url = None
    if len(body.encode()) > TEMPLATE_BODY_LIMIT:
        # Too large to send inline: CloudFormation reads it from the artifact bucket.
        template_key = f"templates/central-{hashlib.sha256(body.encode()).hexdigest()}.yaml"
        if dry:
            raise RolloutError(
                f"{settings.central_template} is over {TEMPLATE_BODY_LIMIT} bytes: a dry run cannot upload it to "
                "be read; run without --dry-run (the change set is shown before it is executed)"
            )
        s3.put_object(Bucket=bucket, Key=template_key, Body=body.encode())
        template_url = f"https://{bucket}.s3.{home}.amazonaws.com/{template_key}"
    parameters = _central_parameters(cfn_central, settings, body, organization_id, bucket, key, template_url)
    stack = deploy_stack(
        cfn_central,
        name=settings.central_stack_name,
        body=body,
        parameters=parameters,
        capabilities=("CAPABILITY_IAM", "CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND"),
        tags=settings.tags,
        console=console,
        confirm=confirm,
        dry_run=dry,
        poll_seconds=settings.poll_seconds,
        timeout_seconds=settings.timeout_seconds,
        template_url=template_url,
    )
    if stack.changed:
        result.changes.append(f"change stack {stack.name}")
    for line in stack.plan:
        console.print(f"  {line}")
    result.outputs = stack.outputs
    bus_arn = stack.outputs.get("CentralBusArn", "")
    if bus_arn:
        bus_name = stack.outputs.get("CentralBusName", bus_arn.rsplit("/", 1)[-1])
        for problem in bus_policy_problems(clients.client("events", home, central), bus_name, organization_id):
            console.print(f"[yellow]warning[/] {problem}")
    elif not dry:
        raise RolloutError(f"stack {stack.name} has no CentralBusArn output: the member rules need it")
    else:
        bus_arn = f"arn:{partition}:events:{home}:{central}:event-bus/{settings.prefix}-central"

    # 3. An OAM sink per member region in the central account.
    sinks: dict[str, str] = {}
    if settings.oam:
        for region in settings.regions:
            arn, changed = ensure_sink(
                clients.client("oam", region, central), settings.sink_name, organization_id, settings.tags, dry_run=dry
            )
            sinks[region] = arn or f"arn:{partition}:oam:{region}:{central}:sink/(new)"
            if changed:
                result.changes.append(f"create or update OAM sink {settings.sink_name} in {region}")

    # 4. The member StackSet and its instances.
    spec = StackSetSpec(
        name=settings.stack_set_name,
        template_body=template_body(settings.member_template),
        parameters=_stack_set_parameters(settings, bus_arn, sinks),
        call_as=report.caller.call_as,
        tags=settings.tags,
    )
    changes, outcome = ensure_stack_set(
        clients.client("cloudformation", home),
        spec,
        report=report,
        regions=settings.regions,
        preferences=settings.preferences,
        console=console,
        dry_run=dry,
        poll_seconds=settings.poll_seconds,
        timeout_seconds=settings.timeout_seconds,
    )
    result.changes += changes
    if outcome is not None and outcome.tolerance_exceeded(settings.preferences.failure_tolerance_percentage):
        console.print(
            f"[red]StackSet operation {outcome.status}[/]: {len(outcome.failures)} account-regions failed, beyond "
            f"the {settings.preferences.failure_tolerance_percentage}% failure tolerance"
        )
        result.exit_code = 1
        return result
    if outcome is not None and outcome.failures:
        console.print(f"[yellow]warning[/] {len(outcome.failures)} account-regions failed, within the tolerance")

    # 5. The management account, which SERVICE_MANAGED StackSets never cover, as plain stacks.
    if settings.include_management_account:
        for region in settings.regions:
            member = deploy_stack(
                clients.client("cloudformation", region),
                name=settings.stack_set_name,
                body=spec.template_body,
                parameters=spec.parameters,
                capabilities=spec.capabilities,
                tags=settings.tags,
                console=console,
                confirm=confirm,
                dry_run=dry,
                poll_seconds=settings.poll_seconds,
                timeout_seconds=settings.timeout_seconds,
            )
            if member.changed:
                result.changes.append(f"change stack {member.name} in the management account, {region}")

    # 6. Grafana: workspace, Identity Center groups, data sources and dashboards.
    if settings.grafana:
        from batchops.aws.grafana_workspace import GrafanaSpec, provision_grafana

        grafana_spec = GrafanaSpec(
            name=settings.prefix,
            organization_units=tuple(u.id for u in report.org_units),
            organization_access=central == report.caller.account_id,
            admin_groups=settings.grafana_admin_groups,
            viewer_groups=settings.grafana_viewer_groups,
            tags=settings.tags,
            home_region=home,
            workspace_role_arn=stack.outputs.get("GrafanaWorkspaceRoleArn", ""),
        )
        identity_region = settings.identity_center_region or home
        result.changes += provision_grafana(
            clients.client("grafana", home, central),
            clients.client("sso-admin", identity_region),
            clients.client("identitystore", identity_region),
            grafana_spec,
            stack.outputs,
            console=console,
            dry_run=dry,
            poll_seconds=settings.poll_seconds,
            timeout_seconds=settings.timeout_seconds,
            push=grafana_push,
        )

    if result.changes:
        heading = "the deploy would:" if dry else "changed:"
        console.print(heading)
        for change in result.changes:
            console.print(f"  - {change}")
    else:
        console.print("[green]no changes[/]: everything is already as asked")
    return result


def status(settings: RolloutSettings, clients: Clients, console: Console) -> RunResult:
    """Every account of the OUs x region: instance state, drift, accounts missing; the central stack."""
    home = settings.home_region
    caller = identify_caller(clients.client("sts", home), clients.client("organizations", home), settings.call_as)
    cfn = clients.client("cloudformation", home)
    result = RunResult()
    central = describe_stack(
        clients.client("cloudformation", home, settings.central_account), settings.central_stack_name
    )
    if central is None:
        console.print(f"central stack {settings.central_stack_name}: [red]not deployed[/]")
    else:
        console.print(f"central stack {settings.central_stack_name}: {central['StackStatus']}")
        result.outputs = stack_outputs(central)
    stack_set = describe_stack_set(cfn, settings.stack_set_name, caller.call_as)
    if stack_set is None:
        console.print(f"StackSet {settings.stack_set_name}: [red]not deployed[/]")
        result.exit_code = 1 if central is None else 0
        return result
    instances = list_instances(cfn, settings.stack_set_name, caller.call_as)
    ou_ids = list(settings.org_units or stack_set.get("OrganizationalUnitIds") or [])
    ou_ids = ou_ids or sorted({i.org_unit for i in instances if i.org_unit})
    if not ou_ids:
        raise RolloutError(f"StackSet {settings.stack_set_name} does not report its OUs: pass --org-unit")
    regions = list(settings.regions or stack_set.get("Regions") or sorted({i.region for i in instances}))
    units, problems = describe_org_units(clients.client("organizations", home), ou_ids)
    for problem in problems:
        console.print(f"[yellow]warning[/] {problem}")
    auto = stack_set.get("AutoDeployment", {}).get("Enabled") if "AutoDeployment" in stack_set else None
    drift = (stack_set.get("StackSetDriftDetectionDetails") or {}).get("DriftStatus", "NOT_CHECKED")
    console.print(
        f"StackSet {settings.stack_set_name}: {stack_set.get('Status')}, automatic deployment "
        f"{'on' if auto else 'off' if auto is False else 'not reported'}, drift {drift}"
    )
    management_stacks = _management_stacks(settings, clients, caller, units, regions)
    result.coverage = coverage(
        units,
        regions,
        instances,
        auto_deployment=auto,
        management_account_id=caller.management_account_id,
        management_stacks=management_stacks,
    )
    result.exit_code = _print_coverage(settings, clients, console, result.coverage)
    return result


def _management_stacks(
    settings: RolloutSettings, clients: Clients, caller: Caller, units: Sequence[OrgUnit], regions: Sequence[str]
) -> dict[str, str]:
    """The management account's plain member stacks by region (StackSets do not cover it), when it is in the OUs."""
    if not caller.is_management or not any(a.id == caller.account_id for u in units for a in u.accounts):
        return {}
    found = {}
    for region in regions:
        plain = describe_stack(clients.client("cloudformation", region), settings.stack_set_name)
        found[region] = plain["StackStatus"] if plain else ""
    return found


def _print_coverage(settings: RolloutSettings, clients: Clients, console: Console, rows: Sequence[CoverageRow]) -> int:
    """The coverage table with each deployed instance's forward DLQ, the counts; 1 when something needs doing."""
    from batchops.aws import forward_dlq  # it builds on Clients: imported here so the imports run one way

    deployed = [(row.account_id, row.region) for row in rows if row.state == DEPLOYED]
    found = forward_dlq.read_dead_letters(clients, settings.prefix, deployed)
    readings = forward_dlq.by_target(found)
    column = ("DLQ", lambda row: forward_dlq.dlq_cell(readings.get((row.account_id, row.region))))
    console.print(coverage_table(rows, column if found else None))
    counts = Counter(row.state for row in rows)
    console.print(", ".join(f"{n} {state}" for state, n in sorted(counts.items())))
    holding = forward_dlq.print_dead_letters(console, settings.prefix, found)
    return 1 if counts[FAILED] or counts[MISSING] or holding else 0


def _empty_bucket(s3: Any, bucket: str) -> None:
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
        doomed = [
            {"Key": v["Key"], "VersionId": v["VersionId"]}
            for v in page.get("Versions", []) + page.get("DeleteMarkers", [])
        ]
        if doomed:
            s3.delete_objects(Bucket=bucket, Delete={"Objects": doomed, "Quiet": True})


def _delete_instances(
    cfn: Any, name: str, call_as: str, settings: RolloutSettings, console: Console, ou_ids: Sequence[str]
) -> None:
    instances = list_instances(cfn, name, call_as)
    if not instances:
        return
    regions = sorted({i.region for i in instances})
    operation_id = str(uuid.uuid4())
    operation_id = _retry_in_progress(
        lambda: cfn.delete_stack_instances(
            StackSetName=name,
            DeploymentTargets={"OrganizationalUnitIds": list(ou_ids)},
            Regions=regions,
            RetainStacks=False,
            OperationPreferences=settings.preferences.request(),
            OperationId=operation_id,
            CallAs=call_as,
        ),
        settings.poll_seconds,
        settings.timeout_seconds,
        console,
    )
    outcome = watch_operation(
        cfn,
        name,
        operation_id,
        call_as=call_as,
        targets=[(i.account, i.region) for i in instances],
        console=console,
        poll_seconds=settings.poll_seconds,
        timeout_seconds=settings.timeout_seconds,
    )
    left = list_instances(cfn, name, call_as)
    if outcome.status != "SUCCEEDED" or left:
        where = ", ".join(f"{i.account}/{i.region} ({i.org_unit or 'OU?'})" for i in left[:10])
        raise RolloutError(
            f"StackSet {name}: {len(left)} stack instances remain after deleting by OU ({where}): accounts moved "
            "out of the OUs keep theirs until automatic deployment removes them; run destroy again with their OUs "
            "as --org-unit"
        )


def destroy(settings: RolloutSettings, clients: Clients, console: Console, ask: Callable[[str], bool]) -> RunResult:
    """Remove the stack instances, the StackSet, the management account's stacks, sinks, Grafana, central stack."""
    confirm = confirm_or_refuse(settings, ask)
    home = settings.home_region
    caller: Caller = identify_caller(
        clients.client("sts", home), clients.client("organizations", home), settings.call_as
    )
    central = settings.central_account or caller.account_id
    cfn = clients.client("cloudformation", home)
    cfn_central = clients.client("cloudformation", home, central)
    result = RunResult()
    stack_set = describe_stack_set(cfn, settings.stack_set_name, caller.call_as)
    instances = list_instances(cfn, settings.stack_set_name, caller.call_as) if stack_set else []
    regions = sorted(
        set(settings.regions) | {i.region for i in instances} | set(stack_set.get("Regions", []) if stack_set else [])
    )
    ou_ids = sorted(
        set(settings.org_units)
        | set(stack_set.get("OrganizationalUnitIds", []) if stack_set else [])
        | {i.org_unit for i in instances if i.org_unit}
    )
    central_stack = describe_stack(cfn_central, settings.central_stack_name)
    bucket = settings.artifact_bucket or artifact_bucket_name(settings.prefix, central, home)
    plan: list[str] = []
    if stack_set:
        plan.append(f"StackSet {settings.stack_set_name} and its {len(instances)} stack instances (OUs {ou_ids})")
    management_regions = []
    if caller.is_management:
        for region in regions:
            if describe_stack(clients.client("cloudformation", region), settings.stack_set_name):
                management_regions.append(region)
                plan.append(f"stack {settings.stack_set_name} of the management account in {region}")
    sink_regions = []
    if settings.oam:
        for region in regions:
            if find_sink(clients.client("oam", region, central), settings.sink_name):
                sink_regions.append(region)
                plan.append(f"OAM sink {settings.sink_name} in {region}")
    workspace = None
    if settings.grafana:
        from batchops.aws.grafana_workspace import find_workspace

        workspace = find_workspace(clients.client("grafana", home, central), settings.prefix, settings.tags)
        if workspace:
            plan.append(f"Grafana workspace {workspace['id']} ({workspace['name']})")
    if central_stack:
        plan.append(f"central stack {settings.central_stack_name} with the event store and projections (data lost)")
    try:
        clients.client("s3", home, central).head_bucket(Bucket=bucket)
        plan.append(f"artifact bucket {bucket}")
        has_bucket = True
    except ClientError:
        has_bucket = False
    if not plan:
        console.print("nothing to destroy")
        return result
    console.print("destroy removes:")
    for line in plan:
        console.print(f"  - {line}")
    if settings.dry_run:
        result.changes = [f"remove {line}" for line in plan]
        return result
    if not confirm("Delete all of this?"):
        console.print("nothing was deleted")
        result.exit_code = 1
        return result
    if stack_set:
        if instances and not ou_ids:
            raise RolloutError("the StackSet does not report its OUs: pass them with --org-unit")
        _delete_instances(cfn, settings.stack_set_name, caller.call_as, settings, console, ou_ids)
        cfn.delete_stack_set(StackSetName=settings.stack_set_name, CallAs=caller.call_as)
        result.changes.append(f"deleted StackSet {settings.stack_set_name}")
    for region in management_regions:
        delete_stack(
            clients.client("cloudformation", region),
            settings.stack_set_name,
            settings.poll_seconds,
            settings.timeout_seconds,
        )
        result.changes.append(f"deleted stack {settings.stack_set_name} in {region} (management account)")
    for region in sink_regions:
        delete_sink(clients.client("oam", region, central), settings.sink_name)
        result.changes.append(f"deleted OAM sink in {region}")
    if workspace:
        from batchops.aws.grafana_workspace import delete_workspace

        delete_workspace(clients.client("grafana", home, central), workspace["id"])
        result.changes.append(f"deleted Grafana workspace {workspace['id']}")
    if central_stack:
        projections = stack_outputs(central_stack).get("ProjectionsBucketName")
        if projections:  # CloudFormation deletes only an empty bucket; the Parquet export is rebuilt by a replay
            _empty_bucket(clients.client("s3", home, central), projections)
            result.changes.append(f"emptied bucket {projections} (the Parquet export and Athena results)")
        unprotect_event_store(cfn_central, central_stack, settings, console)
        delete_stack(cfn_central, settings.central_stack_name, settings.poll_seconds, settings.timeout_seconds)
        result.changes.append(f"deleted stack {settings.central_stack_name}")
    if has_bucket:
        s3 = clients.client("s3", home, central)
        _empty_bucket(s3, bucket)
        s3.delete_bucket(Bucket=bucket)
        result.changes.append(f"deleted bucket {bucket}")
    for change in result.changes:
        console.print(f"  - {change}")
    return result


def unprotect_event_store(cfn: Any, stack: Mapping[str, Any], settings: RolloutSettings, console: Console) -> None:
    """Turn the event store's deletion protection off (a stack update) so the stack can be deleted."""
    parameters = {p["ParameterKey"]: p.get("ParameterValue", "") for p in stack.get("Parameters") or []}
    if parameters.get("DeletionProtection") != "true":
        return
    console.print("turning the event store's deletion protection off before deleting the central stack")
    request = {
        "StackName": stack["StackName"],
        "UsePreviousTemplate": True,
        "Parameters": [
            {"ParameterKey": k, "ParameterValue": "false"}
            if k == "DeletionProtection"
            else {"ParameterKey": k, "UsePreviousValue": True}
            for k in parameters
        ],
        "Capabilities": ["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND"],
    }
    since = datetime.now(UTC)
    try:
        cfn.update_stack(**request)
    except ClientError as error:
        if not any(marker in str(error) for marker in _NO_CHANGES):
            raise
        return
    wait_stack(cfn, stack["StackName"], settings.poll_seconds, settings.timeout_seconds, since)
