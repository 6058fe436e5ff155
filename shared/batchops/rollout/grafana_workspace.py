"""Amazon Managed Grafana for the rollout: the workspace, Identity Center groups on it, then the dashboards.

The dashboards go in through `batchops.grafana.push` with a short-lived token of a workspace service
account; the token is deleted again when the push is done.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError
from rich.console import Console

from batchops.waiting_alerts import AlarmThresholds

SERVICE_ACCOUNT = "batchops-provisioner"
TOKEN_SECONDS = 900
GRAFANA_VERSION = "10.4"


class GrafanaProvisioningError(RuntimeError):
    """The workspace or its users could not be set up; the message says what to do."""


@dataclass(frozen=True)
class GrafanaSpec:
    """The workspace as it should be and who may use it."""

    name: str
    home_region: str
    organization_units: tuple[str, ...] = ()
    # ORGANIZATION access needs the workspace in the management or a delegated administrator account;
    # elsewhere CURRENT_ACCOUNT, which with the OAM links still sees every member's metrics and logs.
    organization_access: bool = True
    admin_groups: tuple[str, ...] = ()
    viewer_groups: tuple[str, ...] = ()
    tags: Mapping[str, str] = field(default_factory=dict)
    # The central stack's GrafanaWorkspaceRole: exactly what the dashboards' queries need (its Athena workgroup,
    # Glue tables, projections and results in S3, CloudWatch and Logs through the OAM sink). With it the workspace
    # is CUSTOMER_MANAGED and sees the current account only, which the OAM sink makes the whole Organization's.
    workspace_role_arn: str = ""

    def create_request(self) -> dict[str, Any]:
        """The CreateWorkspace request."""
        organization = self.organization_access and not self.workspace_role_arn
        request: dict[str, Any] = {
            "workspaceName": self.name,
            "workspaceDescription": "batchops: AWS Batch across the Organization",
            "accountAccessType": "ORGANIZATION" if organization else "CURRENT_ACCOUNT",
            "authenticationProviders": ["AWS_SSO"],
            "permissionType": "CUSTOMER_MANAGED" if self.workspace_role_arn else "SERVICE_MANAGED",
            "workspaceDataSources": ["CLOUDWATCH", "ATHENA"],
            "grafanaVersion": GRAFANA_VERSION,
            "tags": dict(self.tags),
        }
        if self.workspace_role_arn:
            request["workspaceRoleArn"] = self.workspace_role_arn
        if organization:
            request["workspaceOrganizationalUnits"] = list(self.organization_units)
        return request


def find_workspace(grafana: Any, name: str, tags: Mapping[str, str]) -> dict[str, Any] | None:
    """Our workspace: that name and our tags (a workspace someone else named alike is left alone)."""
    for page in grafana.get_paginator("list_workspaces").paginate():
        for workspace in page["workspaces"]:
            ours = all(workspace.get("tags", {}).get(k) == v for k, v in tags.items())
            if workspace.get("name") == name and ours and workspace.get("status") != "DELETING":
                return dict(workspace)
    return None


def wait_active(grafana: Any, workspace_id: str, poll: float, timeout: float) -> dict[str, Any]:
    """Wait until the workspace is ACTIVE (creation takes minutes)."""
    deadline = time.monotonic() + timeout
    while True:
        workspace: dict[str, Any] = grafana.describe_workspace(workspaceId=workspace_id)["workspace"]
        if workspace["status"] == "ACTIVE":
            return workspace
        if workspace["status"] in ("FAILED", "CREATION_FAILED", "UPDATE_FAILED"):
            raise GrafanaProvisioningError(f"Grafana workspace {workspace_id} is {workspace['status']}")
        if time.monotonic() > deadline:
            raise GrafanaProvisioningError(f"Grafana workspace {workspace_id} still {workspace['status']}")
        time.sleep(poll)


def ensure_workspace(
    grafana: Any, spec: GrafanaSpec, *, dry_run: bool, poll: float, timeout: float
) -> tuple[dict[str, Any] | None, list[str]]:
    """Find or create the workspace; returns it (None in a dry run that would create it) and the changes."""
    existing = find_workspace(grafana, spec.name, spec.tags)
    if existing is not None:
        return wait_active(grafana, existing["id"], poll, timeout), []
    change = f"create Grafana workspace {spec.name} ({spec.create_request()['accountAccessType']}, IAM Identity Center)"
    if dry_run:
        return None, [change]
    try:
        created = grafana.create_workspace(**spec.create_request())["workspace"]
    except ClientError as error:
        raise GrafanaProvisioningError(
            f"Grafana workspace not created: {error.response['Error']['Message']}. It needs IAM Identity Center "
            "enabled in the Organization (https://console.aws.amazon.com/singlesignon)."
        ) from None
    return wait_active(grafana, created["id"], poll, timeout), [change]


def identity_store_id(sso_admin: Any) -> str:
    """The Identity Center instance's identity store."""
    instances = sso_admin.list_instances().get("Instances", [])
    if not instances:
        raise GrafanaProvisioningError(
            "no IAM Identity Center instance in this region: enable Identity Center, or pass "
            "--identity-center-region with its region"
        )
    return str(instances[0]["IdentityStoreId"])


def group_ids(identitystore: Any, store_id: str, names: Sequence[str]) -> dict[str, str]:
    """Group name → id in the identity store; a group that does not exist is an error naming it."""
    found: dict[str, str] = {}
    missing: list[str] = []
    for name in names:
        try:
            response = identitystore.get_group_id(
                IdentityStoreId=store_id,
                AlternateIdentifier={"UniqueAttribute": {"AttributePath": "DisplayName", "AttributeValue": name}},
            )
        except ClientError as error:
            if error.response["Error"]["Code"] == "ResourceNotFoundException":
                missing.append(name)
                continue
            raise
        found[name] = str(response["GroupId"])
    if missing:
        raise GrafanaProvisioningError(
            f"no IAM Identity Center group named {', '.join(repr(m) for m in missing)} in identity store {store_id}: "
            "check the display names (aws identitystore list-groups --identity-store-id "
            f"{store_id})"
        )
    return found


def ensure_group_roles(grafana: Any, workspace_id: str, roles: Mapping[str, str], *, dry_run: bool) -> list[str]:
    """Give each group (id → ADMIN | VIEWER) its role on the workspace where it lacks it."""
    instructions: list[dict[str, Any]] = []
    for group_id, role in sorted(roles.items()):
        current = grafana.list_permissions(workspaceId=workspace_id, groupId=group_id).get("permissions", [])
        if any(p["user"]["id"] == group_id and p["role"] == role for p in current):
            continue
        instructions.append({"action": "ADD", "role": role, "users": [{"id": group_id, "type": "SSO_GROUP"}]})
    if instructions and not dry_run:
        errors = grafana.update_permissions(workspaceId=workspace_id, updateInstructionBatch=instructions).get(
            "errors", []
        )
        if errors:
            raise GrafanaProvisioningError(f"Grafana refused some permissions: {errors}")
    return [f"grant {i['role']} on the workspace to group {i['users'][0]['id']}" for i in instructions]


def ensure_service_account(grafana: Any, workspace_id: str) -> str:
    """The provisioning service account (ADMIN: data sources need it); returns its id."""
    for page in grafana.get_paginator("list_workspace_service_accounts").paginate(workspaceId=workspace_id):
        for account in page["serviceAccounts"]:
            if account["name"] == SERVICE_ACCOUNT:
                return str(account["id"])
    created = grafana.create_workspace_service_account(
        workspaceId=workspace_id, name=SERVICE_ACCOUNT, grafanaRole="ADMIN"
    )
    return str(created["id"])


@contextmanager
def service_account_token(grafana: Any, workspace_id: str, service_account_id: str) -> Iterator[str]:
    """A token that lives for the push only: created here, deleted on the way out."""
    token = grafana.create_workspace_service_account_token(
        workspaceId=workspace_id,
        serviceAccountId=service_account_id,
        name=f"batchops-deploy-{datetime.now(UTC).strftime('%Y%m%d%H%M%S')}",
        secondsToLive=TOKEN_SECONDS,
    )["serviceAccountToken"]
    try:
        yield str(token["key"])
    finally:
        grafana.delete_workspace_service_account_token(
            workspaceId=workspace_id, serviceAccountId=service_account_id, tokenId=token["id"]
        )


def push_dashboards(
    url: str, token: str, outputs: Mapping[str, str], home_region: str, thresholds: AlarmThresholds | None = None
) -> list[str]:
    """Data sources, folder, dashboards and the waiting alert rules (at the alarms' thresholds) through the Grafana
    HTTP API; returns what changed."""
    from batchops.dashboards import DashboardSettings, render_dashboards
    from batchops.grafana import GrafanaClient, ProvisioningSettings, push

    dashboards = DashboardSettings(
        dlq_name=outputs.get(
            "IngestDeadLetterQueueName", outputs.get("IngestDeadLetterQueueUrl", "").rsplit("/", 1)[-1]
        )
        or DashboardSettings().dlq_name,
        athena_database=outputs.get("AthenaDatabaseName") or DashboardSettings().athena_database,
    )
    settings = ProvisioningSettings(
        home_region=home_region,
        athena_catalog=outputs.get("AthenaCatalog") or "AwsDataCatalog",
        athena_workgroup=outputs.get("AthenaWorkGroupName", "primary"),
        athena_output_location=outputs.get("AthenaResultsLocation", ""),
        auth_type="ec2_iam_role",
        alert_thresholds=thresholds or AlarmThresholds(),
    )
    changes = push(GrafanaClient(url, token), render_dashboards(dashboards), dashboards, settings)
    return [f"Grafana {c.kind} {c.name}: {c.outcome}" for c in changes if c.outcome != "unchanged"]


def provision_grafana(
    grafana: Any,
    sso_admin: Any,
    identitystore: Any,
    spec: GrafanaSpec,
    outputs: Mapping[str, str],
    *,
    console: Console,
    dry_run: bool,
    poll_seconds: float,
    timeout_seconds: float,
    push: Callable[[str, str, Mapping[str, str]], list[str]] | None = None,
) -> list[str]:
    """Workspace, group roles, then data sources and dashboards; returns what changed (or would)."""
    changes: list[str] = []
    roles: dict[str, str] = {}
    if spec.admin_groups or spec.viewer_groups:
        store = identity_store_id(sso_admin)
        for role, names in (("VIEWER", spec.viewer_groups), ("ADMIN", spec.admin_groups)):
            for group_id in group_ids(identitystore, store, names).values():
                roles[group_id] = role  # a group named in both gets ADMIN
    workspace_id = outputs.get("GrafanaWorkspaceId")
    if workspace_id:
        workspace: dict[str, Any] | None = wait_active(grafana, workspace_id, poll_seconds, timeout_seconds)
    else:
        workspace, created = ensure_workspace(
            grafana, spec, dry_run=dry_run, poll=poll_seconds, timeout=timeout_seconds
        )
        changes += created
    if workspace is None:  # dry run, workspace to be created
        changes += [f"grant {role} to group {gid}" for gid, role in sorted(roles.items())]
        changes.append("push the BatchOps data sources and dashboards")
        return changes
    changes += ensure_group_roles(grafana, workspace["id"], roles, dry_run=dry_run)
    url = f"https://{workspace['endpoint']}"
    if dry_run:
        console.print(f"Grafana {url}: the deploy pushes the data sources and dashboards (unchanged ones are skipped)")
        return changes
    service_account = ensure_service_account(grafana, workspace["id"])
    pusher = push or (lambda u, t, o: push_dashboards(u, t, o, spec.home_region))
    with service_account_token(grafana, workspace["id"], service_account) as token:
        changes += pusher(url, token, outputs)
    console.print(f"Grafana: {url}")
    return changes


def delete_workspace(grafana: Any, workspace_id: str) -> None:
    """Delete the workspace (its dashboards and service accounts go with it)."""
    grafana.delete_workspace(workspaceId=workspace_id)
