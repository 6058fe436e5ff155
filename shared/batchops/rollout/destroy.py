"""`deploy.py destroy`: find everything deploy made, show it, ask, then remove it in reverse order."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError
from rich.console import Console

from batchops.rollout import alarms, grafana
from batchops.rollout.artifact import artifact_bucket_name, empty_bucket
from batchops.rollout.central_stack import unprotect_event_store
from batchops.rollout.clients import Clients
from batchops.rollout.errors import RolloutError
from batchops.rollout.oam_sinks import delete_sink, find_sink
from batchops.rollout.preflight import Caller, identify_caller
from batchops.rollout.result import RunResult
from batchops.rollout.settings import RolloutSettings, confirm_or_refuse
from batchops.rollout.stack_set import Instance, describe_stack_set, list_instances
from batchops.rollout.stack_set_changes import delete_instances
from batchops.rollout.stacks import delete_stack, describe_stack, stack_outputs


@dataclass(frozen=True)
class _Found:
    """Everything of the rollout that is there to remove."""

    caller: Caller
    central: str
    stack_set: dict[str, Any] | None
    instances: list[Instance]
    ou_ids: list[str]
    management_regions: list[str]
    sink_regions: list[str]
    workspace: dict[str, Any] | None
    central_stack: dict[str, Any] | None
    bucket: str | None
    alarms: list[str]

    def plan(self, settings: RolloutSettings) -> list[str]:
        """What destroy removes, one line each, in the order it removes them."""
        plan: list[str] = []
        if self.stack_set:
            plan.append(
                f"StackSet {settings.stack_set_name} and its {len(self.instances)} stack instances (OUs {self.ou_ids})"
            )
        plan += [f"stack {settings.stack_set_name} of the management account in {r}" for r in self.management_regions]
        plan += [f"OAM sink {settings.sink_name} in {region}" for region in self.sink_regions]
        if self.workspace:
            plan.append(f"Grafana workspace {self.workspace['id']} ({self.workspace['name']})")
        if self.alarms:
            plan.append(f"alarms {', '.join(self.alarms)} (and the topic {settings.prefix}-alarms if deploy made it)")
        if self.central_stack:
            plan.append(f"central stack {settings.central_stack_name} with the event store and projections (data lost)")
        if self.bucket:
            plan.append(f"artifact bucket {self.bucket}")
        return plan


def _bucket_if_there(s3: Any, bucket: str) -> str | None:
    try:
        s3.head_bucket(Bucket=bucket)
    except ClientError:
        return None
    return bucket


def _find(settings: RolloutSettings, clients: Clients) -> _Found:
    """What the StackSet targets (and the settings add), and which of the rollout's resources exist."""
    home = settings.home_region
    caller = identify_caller(clients.client("sts", home), clients.client("organizations", home), settings.call_as)
    central = settings.central_account or caller.account_id
    cfn = clients.client("cloudformation", home)
    cfn_central = clients.client("cloudformation", home, central)
    stack_set = describe_stack_set(cfn, settings.stack_set_name, caller.call_as)
    instances = list_instances(cfn, settings.stack_set_name, caller.call_as) if stack_set else []
    targets = stack_set or {}
    regions = sorted(set(settings.regions) | {i.region for i in instances} | set(targets.get("Regions", [])))
    ou_ids = sorted(
        set(settings.org_units)
        | set(targets.get("OrganizationalUnitIds", []))
        | {i.org_unit for i in instances if i.org_unit}
    )
    central_stack = describe_stack(cfn_central, settings.central_stack_name)
    bucket = settings.artifact_bucket or artifact_bucket_name(settings.prefix, central, home)
    management_regions = [
        region
        for region in (regions if caller.is_management else [])
        if describe_stack(clients.client("cloudformation", region), settings.stack_set_name)
    ]
    sink_regions = [
        region
        for region in (regions if settings.oam else [])
        if find_sink(clients.client("oam", region, central), settings.sink_name)
    ]
    return _Found(
        caller=caller,
        central=central,
        stack_set=stack_set,
        instances=instances,
        ou_ids=ou_ids,
        management_regions=management_regions,
        sink_regions=sink_regions,
        workspace=grafana.deployed_workspace(settings, clients, central),
        central_stack=central_stack,
        bucket=_bucket_if_there(clients.client("s3", home, central), bucket),
        alarms=sorted(
            alarms.existing_alarms(clients.client("cloudwatch", home, central), alarms.alarm_names(settings.prefix))
        ),
    )


def _remove_stack_set(settings: RolloutSettings, clients: Clients, console: Console, found: _Found) -> list[str]:
    if not found.stack_set:
        return []
    if found.instances and not found.ou_ids:
        raise RolloutError("the StackSet does not report its OUs: pass them with --org-unit")
    cfn = clients.client("cloudformation", settings.home_region)
    delete_instances(cfn, settings.stack_set_name, found.caller.call_as, settings, console, found.ou_ids)
    cfn.delete_stack_set(StackSetName=settings.stack_set_name, CallAs=found.caller.call_as)
    return [f"deleted StackSet {settings.stack_set_name}"]


def _remove_central_stack(settings: RolloutSettings, clients: Clients, console: Console, found: _Found) -> list[str]:
    if not found.central_stack:
        return []
    home, central = settings.home_region, found.central
    changes = []
    projections = stack_outputs(found.central_stack).get("ProjectionsBucketName")
    if projections:  # CloudFormation deletes only an empty bucket; a replay refills the Iceberg tables
        empty_bucket(clients.client("s3", home, central), projections)
        changes.append(f"emptied bucket {projections} (the Iceberg tables and Athena results)")
    cfn_central = clients.client("cloudformation", home, central)
    unprotect_event_store(cfn_central, found.central_stack, settings, console)
    delete_stack(cfn_central, settings.central_stack_name, settings.poll_seconds, settings.timeout_seconds)
    changes.append(f"deleted stack {settings.central_stack_name}")
    return changes


def _remove(settings: RolloutSettings, clients: Clients, console: Console, found: _Found) -> list[str]:
    """Remove what was found: instances and StackSet first, the central stack and the bucket last."""
    changes = _remove_stack_set(settings, clients, console, found)
    for region in found.management_regions:
        cfn = clients.client("cloudformation", region)
        delete_stack(cfn, settings.stack_set_name, settings.poll_seconds, settings.timeout_seconds)
        changes.append(f"deleted stack {settings.stack_set_name} in {region} (management account)")
    for region in found.sink_regions:
        delete_sink(clients.client("oam", region, found.central), settings.sink_name)
        changes.append(f"deleted OAM sink in {region}")
    if found.workspace:
        grafana.remove_workspace(settings, clients, found.central, found.workspace["id"])
        changes.append(f"deleted Grafana workspace {found.workspace['id']}")
    if found.alarms:
        home, partition = settings.home_region, found.caller.arn.split(":")[1]
        own = alarms.topic_arn(partition, home, found.central, settings.prefix)
        cloudwatch, sns = clients.client("cloudwatch", home, found.central), clients.client("sns", home, found.central)
        changes += alarms.remove_alarms(cloudwatch, sns, found.alarms, own)
    changes += _remove_central_stack(settings, clients, console, found)
    if found.bucket:
        s3 = clients.client("s3", settings.home_region, found.central)
        empty_bucket(s3, found.bucket)
        s3.delete_bucket(Bucket=found.bucket)
        changes.append(f"deleted bucket {found.bucket}")
    return changes


def destroy(settings: RolloutSettings, clients: Clients, console: Console, ask: Callable[[str], bool]) -> RunResult:
    """Remove the stack instances, the StackSet, the management account's stacks, sinks, Grafana, central stack."""
    confirm = confirm_or_refuse(settings, ask)
    result = RunResult()
    found = _find(settings, clients)
    plan = found.plan(settings)
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
    result.changes = _remove(settings, clients, console, found)
    for change in result.changes:
        console.print(f"  - {change}")
    return result
