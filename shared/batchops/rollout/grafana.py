"""The rollout's Managed Grafana: the workspace, Identity Center groups on it, data sources and dashboards."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from rich.console import Console

from batchops.rollout.clients import Clients
from batchops.rollout.grafana_workspace import (
    GrafanaSpec,
    delete_workspace,
    find_workspace,
    provision_grafana,
    push_dashboards,
)
from batchops.rollout.preflight import PreflightReport
from batchops.rollout.settings import RolloutSettings

# What pushes the dashboards to a workspace: (url, token, central stack outputs) -> changes.
GrafanaPush = Callable[[str, str, Mapping[str, str]], list[str]]


def provision(
    settings: RolloutSettings,
    clients: Clients,
    console: Console,
    report: PreflightReport,
    central_outputs: Mapping[str, str],
    push: GrafanaPush | None,
) -> list[str]:
    """Step 6 of the deploy (unless --no-grafana); returns what changed or would change."""
    if not settings.grafana:
        return []
    home, central = settings.home_region, report.central_account_id
    spec = GrafanaSpec(
        name=settings.prefix,
        organization_units=tuple(u.id for u in report.org_units),
        organization_access=central == report.caller.account_id,
        admin_groups=settings.grafana_admin_groups,
        viewer_groups=settings.grafana_viewer_groups,
        tags=settings.tags,
        home_region=home,
        workspace_role_arn=central_outputs.get("GrafanaWorkspaceRoleArn", ""),
    )
    identity_region = settings.identity_center_region or home
    if push is None:  # the alert rules at the thresholds of the deploy's alarms: the same conditions
        thresholds = settings.alarm_thresholds
        push = lambda url, token, outputs: push_dashboards(url, token, outputs, home, thresholds)  # noqa: E731
    return provision_grafana(
        clients.client("grafana", home, central),
        clients.client("sso-admin", identity_region),
        clients.client("identitystore", identity_region),
        spec,
        central_outputs,
        console=console,
        dry_run=settings.dry_run,
        poll_seconds=settings.poll_seconds,
        timeout_seconds=settings.timeout_seconds,
        push=push,
    )


def deployed_workspace(settings: RolloutSettings, clients: Clients, central: str) -> dict[str, Any] | None:
    """The workspace the rollout made (by name and tags), unless --no-grafana."""
    if not settings.grafana:
        return None
    return find_workspace(clients.client("grafana", settings.home_region, central), settings.prefix, settings.tags)


def remove_workspace(settings: RolloutSettings, clients: Clients, central: str, workspace_id: str) -> None:
    """Delete the workspace."""
    delete_workspace(clients.client("grafana", settings.home_region, central), workspace_id)
