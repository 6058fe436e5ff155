"""`deploy.py status`: the central stack, the StackSet, and every account of the OUs x region with its state."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from rich.console import Console

from batchops.rollout import forward_dlq
from batchops.rollout.clients import Clients
from batchops.rollout.coverage import DEPLOYED, FAILED, MISSING, CoverageRow, coverage
from batchops.rollout.errors import RolloutError
from batchops.rollout.preflight import Caller, OrgUnit, describe_org_units, identify_caller
from batchops.rollout.result import RunResult
from batchops.rollout.settings import RolloutSettings
from batchops.rollout.stack_set import describe_stack_set, list_instances
from batchops.rollout.stacks import describe_stack, stack_outputs
from batchops.rollout.tables import coverage_table

CLOUDTRAIL_NOTE = (
    "CloudTrail records (SubmitJob, SubmitServiceJob: when and by whom a job was submitted, its dependency wait;"
    " compute environment types) reach batchops only from accounts and regions with a trail: elsewhere jobs start at"
    " their first state change."
)
"""What `status` says of the records it cannot check for: a trail is the account's own, not the stack's."""


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
    deployed = [(row.account_id, row.region) for row in rows if row.state == DEPLOYED]
    found = forward_dlq.read_dead_letters(clients, settings.prefix, deployed)
    readings = forward_dlq.by_target(found)
    column = ("DLQ", lambda row: forward_dlq.dlq_cell(readings.get((row.account_id, row.region))))
    console.print(coverage_table(rows, column if found else None))
    counts = Counter(row.state for row in rows)
    console.print(", ".join(f"{n} {state}" for state, n in sorted(counts.items())))
    console.print(CLOUDTRAIL_NOTE)
    holding = forward_dlq.print_dead_letters(console, settings.prefix, found)
    return 1 if counts[FAILED] or counts[MISSING] or holding else 0
