"""`deploy.py` (deploy): preflight, then the seven steps of the rollout, then what changed.

1. the Lambda artifact, 2. the central stack, 3. the waiting alarms, 4. the OAM sinks, 5. the member StackSet, 6. the
management account's plain member stacks, 7. Grafana. With settings.dry_run it shows all of it and writes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from rich.console import Console

from batchops.rollout import alarms, grafana
from batchops.rollout.artifact import stage_artifact
from batchops.rollout.central_stack import deploy_central_stack
from batchops.rollout.clients import Clients
from batchops.rollout.oam_sinks import REGION_SLOTS, ensure_sinks, sink_slots
from batchops.rollout.preflight import PreflightReport, run_preflight
from batchops.rollout.result import RunResult
from batchops.rollout.settings import RolloutSettings, confirm_or_refuse
from batchops.rollout.stack_set import StackSetSpec
from batchops.rollout.stack_set_changes import ensure_stack_set
from batchops.rollout.stacks import deploy_stack
from batchops.rollout.tables import print_changes, print_preflight
from batchops.rollout.template_body import template_body


def preflight(settings: RolloutSettings, clients: Clients, confirm: Callable[[str], bool]) -> PreflightReport:
    """Who calls, trusted access (enabled when confirmed), the OUs and their accounts, the regions."""
    home = settings.home_region
    return run_preflight(
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
        dry_run=settings.dry_run,
    )


def _deploy_alarms(
    settings: RolloutSettings, clients: Clients, console: Console, central: str, partition: str
) -> list[str]:
    """Step 3: the alarms on waiting jobs (rollout/alarms.py), to --alarm-topic, the stack's AlarmTopic, or our own."""
    if not settings.alarms:
        return []
    home = settings.home_region
    own = alarms.topic_arn(partition, home, central, settings.prefix)
    topic = settings.alarm_topic or settings.central_parameters.get("AlarmTopic") or own
    changes = []
    if topic == own:
        sns = clients.client("sns", home, central)
        changes += alarms.ensure_topic(sns, own, settings.tags, dry_run=settings.dry_run)
    requests = alarms.alarm_requests(settings.prefix, topic, settings.alarm_thresholds)
    for line in alarms.describe_plan(requests):
        console.print(f"  {line}")
    cloudwatch = clients.client("cloudwatch", home, central)
    return changes + alarms.ensure_alarms(cloudwatch, requests, settings.tags, dry_run=settings.dry_run)


def _member_spec(
    settings: RolloutSettings, report: PreflightReport, bus_arn: str, sinks: dict[str, str]
) -> StackSetSpec:
    return StackSetSpec(
        name=settings.stack_set_name,
        template_body=template_body(settings.member_template),
        parameters={"Prefix": settings.prefix, "CentralBusArn": bus_arn, "OamSinkArns": sink_slots(sinks)},
        call_as=report.caller.call_as,
        tags=settings.tags,
    )


def _deploy_stack_set(
    settings: RolloutSettings, clients: Clients, console: Console, report: PreflightReport, spec: StackSetSpec
) -> tuple[list[str], bool]:
    """Step 4: the StackSet and its instances; its changes, and False when failures passed the tolerance."""
    tolerance = settings.preferences.failure_tolerance_percentage
    changes, outcome = ensure_stack_set(
        clients.client("cloudformation", settings.home_region),
        spec,
        report=report,
        regions=settings.regions,
        preferences=settings.preferences,
        console=console,
        dry_run=settings.dry_run,
        poll_seconds=settings.poll_seconds,
        timeout_seconds=settings.timeout_seconds,
    )
    if outcome is not None and outcome.tolerance_exceeded(tolerance):
        console.print(
            f"[red]StackSet operation {outcome.status}[/]: {len(outcome.failures)} account-regions failed, beyond "
            f"the {tolerance}% failure tolerance"
        )
        return changes, False
    if outcome is not None and outcome.failures:
        console.print(f"[yellow]warning[/] {len(outcome.failures)} account-regions failed, within the tolerance")
    return changes, True


def _deploy_management_stacks(
    settings: RolloutSettings, clients: Clients, console: Console, confirm: Callable[[str], bool], spec: StackSetSpec
) -> list[str]:
    """Step 5: the management account, which SERVICE_MANAGED StackSets never cover, as plain stacks."""
    if not settings.include_management_account:
        return []
    changes = []
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
            dry_run=settings.dry_run,
            poll_seconds=settings.poll_seconds,
            timeout_seconds=settings.timeout_seconds,
        )
        if member.changed:
            changes.append(f"change stack {member.name} in the management account, {region}")
    return changes


def deploy(
    settings: RolloutSettings,
    clients: Clients,
    console: Console,
    ask: Callable[[str], bool],
    *,
    workdir: Path,
    grafana_push: grafana.GrafanaPush | None = None,
) -> RunResult:
    """Run the whole rollout (or, with settings.dry_run, show it without writing anything)."""
    confirm = confirm_or_refuse(settings, ask)
    report = preflight(settings, clients, confirm)
    print_preflight(console, report)
    central, home = report.central_account_id, settings.home_region
    partition = report.caller.arn.split(":")[1]
    result = RunResult()
    artifact = stage_artifact(
        settings, clients.client("s3", home, central), console, central=central, partition=partition, workdir=workdir
    )
    result.changes += artifact.changes
    central_stack = deploy_central_stack(settings, clients, console, confirm, report, artifact)
    if central_stack.stack.changed:
        result.changes.append(f"change stack {central_stack.stack.name}")
    result.outputs = central_stack.stack.outputs
    result.changes += _deploy_alarms(settings, clients, console, central, partition)
    sinks, changes = ensure_sinks(
        settings, clients, central=central, organization_id=report.caller.organization_id, partition=partition
    )
    result.changes += changes
    spec = _member_spec(settings, report, central_stack.bus_arn, sinks)
    changes, within_tolerance = _deploy_stack_set(settings, clients, console, report, spec)
    result.changes += changes
    if not within_tolerance:
        result.exit_code = 1
        return result
    result.changes += _deploy_management_stacks(settings, clients, console, confirm, spec)
    result.changes += grafana.provision(settings, clients, console, report, central_stack.stack.outputs, grafana_push)
    print_changes(console, result.changes, dry_run=settings.dry_run)
    return result
