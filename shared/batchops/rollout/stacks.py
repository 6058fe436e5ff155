"""Any CloudFormation stack through a change set: planned with reads, shown, confirmed, executed, waited for."""

from __future__ import annotations

import difflib
import json
import time
import uuid
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError
from rich.console import Console

from batchops.rollout.errors import RolloutError, error_code
from batchops.rollout.tables import show_changes
from batchops.rollout.template_body import TEMPLATE_BODY_LIMIT, summary_body

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
NO_CHANGES = ("didn't contain changes", "No updates are to be performed")


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
        if error_code(error) == "ValidationError" and "does not exist" in str(error):
            return None
        raise
    return None if stack["StackStatus"] == "DELETE_COMPLETE" else stack


def stack_outputs(stack: Mapping[str, Any]) -> dict[str, str]:
    """Outputs of a described stack by key."""
    return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs") or []}


def template_summary(cfn: Any, body: str, template_url: str | None = None) -> dict[str, Any]:
    """GetTemplateSummary (a read) of a template, by URL when it is too large to send inline (without a URL, only
    what the summary needs of it: `summary_body`)."""
    if template_url:
        summary: dict[str, Any] = cfn.get_template_summary(TemplateURL=template_url)
    else:
        inline = body if len(body.encode()) <= TEMPLATE_BODY_LIMIT else summary_body(body)
        summary = cfn.get_template_summary(TemplateBody=inline)
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
    """The reasons of the resources that failed since `since`, newest first."""
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


_STEADY = ("CREATE_COMPLETE", "UPDATE_COMPLETE", "UPDATE_ROLLBACK_COMPLETE", "IMPORT_COMPLETE")


def _refuse_unsettled(name: str, status: str | None) -> None:
    """A stack whose creation failed, or with an operation running, takes no change set."""
    if status == "ROLLBACK_COMPLETE":
        raise RolloutError(
            f"stack {name} is ROLLBACK_COMPLETE (its creation failed; see its events): delete it with "
            f"`aws cloudformation delete-stack --stack-name {name}` and run again"
        )
    if status and status.endswith("_IN_PROGRESS") and status != "REVIEW_IN_PROGRESS":
        raise RolloutError(f"stack {name} is {status}: wait for it to finish and run again")


def _change_set_request(
    name: str,
    *,
    creating: bool,
    body: str,
    template_url: str | None,
    parameters: Mapping[str, str],
    capabilities: Sequence[str],
    tags: Mapping[str, str],
) -> dict[str, Any]:
    """The CreateChangeSet request, under a new name (date and a random suffix)."""
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
    return request


def _prepared_change_set(
    cfn: Any, request: Mapping[str, Any], poll_seconds: float, timeout_seconds: float
) -> tuple[str, dict[str, Any]] | None:
    """Create the change set and wait until it is ready: its id and description, or None when it changes nothing."""
    try:
        change_set_id: str = cfn.create_change_set(**request)["Id"]
    except ClientError as error:
        if any(marker in str(error) for marker in NO_CHANGES):
            return None
        raise
    described = _wait_change_set(cfn, change_set_id, poll_seconds, timeout_seconds)
    if described["Status"] == "FAILED":
        reason = described.get("StatusReason", "")
        cfn.delete_change_set(ChangeSetName=change_set_id)
        if any(marker in reason for marker in NO_CHANGES):
            return None
        raise RolloutError(f"change set for {request['StackName']} failed: {reason}")
    return change_set_id, described


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
    _refuse_unsettled(name, status)
    creating = stack is None or status == "REVIEW_IN_PROGRESS"
    plan = plan_stack(cfn, None if creating else stack, body, parameters, tags, template_url)
    if dry_run:
        return StackOutcome(name, bool(plan), stack_outputs(stack) if stack else {}, plan=plan)
    if stack is not None and status in _STEADY and not plan:
        return StackOutcome(name, False, stack_outputs(stack))
    request = _change_set_request(
        name,
        creating=creating,
        body=body,
        template_url=template_url,
        parameters=parameters,
        capabilities=capabilities,
        tags=tags,
    )
    prepared = _prepared_change_set(cfn, request, poll_seconds, timeout_seconds)
    if prepared is None:
        return StackOutcome(name, False, stack_outputs(stack or {}))
    change_set_id, described = prepared
    rows = _change_rows(described["Changes"])
    show_changes(console, f"change set {request['ChangeSetName']} of stack {name}", rows)
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
