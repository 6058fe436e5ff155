"""The central account's stack: its parameters, its template (from S3 when too large), its bus, its teardown."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError
from rich.console import Console

from batchops.rollout.artifact import StagedArtifact
from batchops.rollout.clients import Clients
from batchops.rollout.errors import RolloutError, error_code
from batchops.rollout.preflight import PreflightReport
from batchops.rollout.settings import RolloutSettings
from batchops.rollout.stacks import NO_CHANGES, StackOutcome, deploy_stack, template_parameters, wait_stack
from batchops.rollout.template_body import TEMPLATE_BODY_LIMIT, template_body

CENTRAL_CAPABILITIES = ("CAPABILITY_IAM", "CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND")


@dataclass(frozen=True)
class CentralStack:
    """The deployed (or, in a dry run, planned) central stack and the bus the member rules forward to."""

    stack: StackOutcome
    bus_arn: str


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


def central_parameters(
    cfn: Any,
    settings: RolloutSettings,
    body: str,
    organization_id: str,
    artifact: StagedArtifact,
    template_url: str | None = None,
) -> dict[str, str]:
    """The central template's parameters: the rollout's own, the capacity mode's, then --central-parameter, those it
    declares."""
    declared = template_parameters(cfn, body, template_url)
    unknown = set(settings.central_parameters) - declared
    if unknown:
        raise RolloutError(
            f"--central-parameter {sorted(unknown)}: central-account/template.yaml has no such parameter"
        )
    wanted = {
        "Prefix": settings.prefix,
        "OrganizationId": organization_id,
        "ArtifactBucket": artifact.bucket,
        "ArtifactKey": artifact.key,
        **settings.capacity.parameters(),
        **settings.central_parameters,
    }
    return {k: v for k, v in wanted.items() if k in declared}


def _template_url(settings: RolloutSettings, s3: Any, bucket: str, body: str) -> str | None:
    """Too large to send inline, the template goes to the artifact bucket for CloudFormation to read, once: its key is
    its sha256, so a repeated deploy finds it there (a read). A dry run uploads nothing: without a copy there, it plans
    from the template's summary (`summary_body`) and says what it would upload."""
    if len(body.encode()) <= TEMPLATE_BODY_LIMIT:
        return None
    template_key = f"templates/central-{hashlib.sha256(body.encode()).hexdigest()}.yaml"
    url = f"https://{bucket}.s3.{settings.home_region}.amazonaws.com/{template_key}"
    try:
        s3.head_object(Bucket=bucket, Key=template_key)
        return url
    except ClientError as error:
        if error_code(error) not in ("404", "NoSuchKey", "NotFound", "NoSuchBucket"):
            raise
    if settings.dry_run:
        return None
    s3.put_object(Bucket=bucket, Key=template_key, Body=body.encode())
    return url


def _bus_arn(
    settings: RolloutSettings, clients: Clients, console: Console, report: PreflightReport, stack: StackOutcome
) -> str:
    """The central bus, its policy checked; in a dry run of a new stack, the ARN it will have."""
    home, central, organization_id = settings.home_region, report.central_account_id, report.caller.organization_id
    bus_arn = stack.outputs.get("CentralBusArn", "")
    if bus_arn:
        bus_name = stack.outputs.get("CentralBusName", bus_arn.rsplit("/", 1)[-1])
        for problem in bus_policy_problems(clients.client("events", home, central), bus_name, organization_id):
            console.print(f"[yellow]warning[/] {problem}")
        return bus_arn
    if not settings.dry_run:
        raise RolloutError(f"stack {stack.name} has no CentralBusArn output: the member rules need it")
    partition = report.caller.arn.split(":")[1]
    return f"arn:{partition}:events:{home}:{central}:event-bus/{settings.prefix}-central"


def deploy_central_stack(
    settings: RolloutSettings,
    clients: Clients,
    console: Console,
    confirm: Callable[[str], bool],
    report: PreflightReport,
    artifact: StagedArtifact,
) -> CentralStack:
    """Step 2 of the deploy: the central stack through a change set, then its bus checked."""
    home, central = settings.home_region, report.central_account_id
    cfn_central = clients.client("cloudformation", home, central)
    body = template_body(settings.central_template)
    template_url = _template_url(settings, clients.client("s3", home, central), artifact.bucket, body)
    if template_url is None and len(body.encode()) > TEMPLATE_BODY_LIMIT:  # a dry run: nothing uploaded
        console.print(
            f"  would upload {settings.central_template.name} ({len(body.encode()):,} bytes, over the "
            f"{TEMPLATE_BODY_LIMIT:,} CloudFormation takes inline) to s3://{artifact.bucket}/templates/"
        )
    parameters = central_parameters(cfn_central, settings, body, report.caller.organization_id, artifact, template_url)
    stack = deploy_stack(
        cfn_central,
        name=settings.central_stack_name,
        body=body,
        parameters=parameters,
        capabilities=CENTRAL_CAPABILITIES,
        tags=settings.tags,
        console=console,
        confirm=confirm,
        dry_run=settings.dry_run,
        poll_seconds=settings.poll_seconds,
        timeout_seconds=settings.timeout_seconds,
        template_url=template_url,
    )
    for line in stack.plan:
        console.print(f"  {line}")
    return CentralStack(stack, _bus_arn(settings, clients, console, report, stack))


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
        "Capabilities": list(CENTRAL_CAPABILITIES),
    }
    since = datetime.now(UTC)
    try:
        cfn.update_stack(**request)
    except ClientError as error:
        if not any(marker in str(error) for marker in NO_CHANGES):
            raise
        return
    wait_stack(cfn, stack["StackName"], settings.poll_seconds, settings.timeout_seconds, since)
