"""Bringing the member StackSet to its spec (create or update it, retry outdated instances, create missing ones),
and deleting its instances."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console

from batchops.rollout.errors import RolloutError
from batchops.rollout.preflight import PreflightReport
from batchops.rollout.settings import OperationPreferences, RolloutSettings
from batchops.rollout.stack_set import Instance, StackSetSpec, describe_stack_set, list_instances
from batchops.rollout.stack_set_operations import (
    Follow,
    OperationOutcome,
    retry_in_progress,
    run_operation,
    watch_operation,
)


@dataclass
class _Changing:
    """One ensure_stack_set run: what it works on, and the changes it made (or, in a dry run, would make)."""

    cfn: Any
    spec: StackSetSpec
    preferences: OperationPreferences
    follow: Follow
    ous: list[str]
    dry_run: bool
    changes: list[str] = field(default_factory=list)

    def run(self, call: Callable[[str], dict[str, Any]], targets: Sequence[tuple[str, str]]) -> OperationOutcome:
        """One StackSet operation, followed to its end."""
        return run_operation(self.cfn, self.spec, call, targets, self.follow)

    def stopped(self, outcome: OperationOutcome | None) -> bool:
        """True when the operation failed beyond the tolerance: nothing more is started."""
        return outcome is not None and outcome.tolerance_exceeded(self.preferences.failure_tolerance_percentage)

    def instances(self) -> list[Instance]:
        """The StackSet's stack instances now."""
        return list_instances(self.cfn, self.spec.name, self.spec.call_as)


def missing_targets(
    report: PreflightReport, instances: Sequence[Instance], regions: Sequence[str]
) -> list[tuple[str, str]]:
    """(account, region) pairs the OUs should have and the StackSet has not."""
    present = {(i.account, i.region) for i in instances}
    return [(a.id, r) for a in report.member_accounts for r in regions if (a.id, r) not in present]


def _update(
    changing: _Changing, differences: Sequence[str], instances: list[Instance]
) -> tuple[list[Instance], OperationOutcome | None]:
    """Update the StackSet (every instance follows); the instances afterwards."""
    spec = changing.spec
    changing.changes.append(f"update StackSet {spec.name}: {', '.join(differences)}")
    if changing.dry_run:
        return instances, None
    outcome = changing.run(
        lambda token: changing.cfn.update_stack_set(**spec.update_request(changing.preferences, token)),
        [(i.account, i.region) for i in instances],
    )
    return (instances if changing.stopped(outcome) else changing.instances()), outcome


def _retry_outdated(
    changing: _Changing, instances: Sequence[Instance], regions: Sequence[str]
) -> OperationOutcome | None:
    """Instances a previous run left behind (failed, or outdated by an interrupted update) are redone."""
    stale = [i for i in instances if i.status == "OUTDATED" and i.detailed_status not in ("PENDING", "RUNNING")]
    stale_regions = [r for r in regions if any(i.region == r for i in stale)]
    if not stale_regions:
        return None
    changing.changes.append(f"retry {len(stale)} outdated stack instances in {', '.join(stale_regions)}")
    if changing.dry_run:
        return None
    return changing.run(
        lambda token: changing.cfn.update_stack_instances(
            StackSetName=changing.spec.name,
            DeploymentTargets={"OrganizationalUnitIds": changing.ous},
            Regions=stale_regions,
            OperationPreferences=changing.preferences.request(),
            OperationId=token,
            CallAs=changing.spec.call_as,
        ),
        [(i.account, i.region) for i in stale],
    )


def _bring_up_to_date(
    changing: _Changing, current: Mapping[str, Any] | None, regions: Sequence[str]
) -> tuple[list[Instance], OperationOutcome | None]:
    """Create the StackSet, or update it where it differs from the spec, or retry its outdated instances."""
    spec = changing.spec
    if current is None:
        changing.changes.append(
            f"create StackSet {spec.name} (SERVICE_MANAGED, automatic deployment, managed execution)"
        )
        if not changing.dry_run:
            changing.cfn.create_stack_set(**spec.create_request())
        return [], None
    instances = changing.instances()
    differences = spec.differences(current)
    if differences:
        return _update(changing, differences, instances)
    return instances, _retry_outdated(changing, instances, regions)


def _regions_to_create(
    changing: _Changing, current: Mapping[str, Any] | None, regions: Sequence[str], missing: Sequence[tuple[str, str]]
) -> list[str]:
    """The regions in which instances must be created for the OUs."""
    targeted_ous = set(current.get("OrganizationalUnitIds", [])) if current else set()
    targeted_regions = set(current.get("Regions", [])) if current else set()
    new_ous = [ou for ou in changing.ous if current is None or ou not in targeted_ous]
    # The service reports the OUs and regions it targets (an OU without accounts yet must still become a
    # target, for automatic deployment); an emulator may not report them, then missing instances decide.
    reported = bool(current and "OrganizationalUnitIds" in current)
    new_regions = [r for r in regions if reported and r not in targeted_regions]
    needed = {r for _, r in missing} | set(new_regions) | (set(regions) if reported and new_ous else set())
    return [r for r in regions if current is None or r in needed]


def _create_missing(
    changing: _Changing,
    current: Mapping[str, Any] | None,
    report: PreflightReport,
    instances: Sequence[Instance],
    regions: Sequence[str],
) -> OperationOutcome | None:
    """Create the stack instances the OUs x regions lack (and make new OUs and regions targets)."""
    missing = missing_targets(report, instances, regions)
    need_regions = _regions_to_create(changing, current, regions, missing)
    if not need_regions:
        return None
    changing.changes.append(
        f"create stack instances: OUs {', '.join(changing.ous)} x regions {', '.join(need_regions)} "
        f"({len(missing)} account-regions missing)"
    )
    if changing.dry_run:
        return None
    return changing.run(
        lambda token: changing.cfn.create_stack_instances(
            StackSetName=changing.spec.name,
            DeploymentTargets={"OrganizationalUnitIds": changing.ous},
            Regions=need_regions,
            OperationPreferences=changing.preferences.request(),
            OperationId=token,
            CallAs=changing.spec.call_as,
        ),
        [(a.id, r) for a in report.member_accounts for r in need_regions],
    )


def _note_other_targets(
    console: Console, changing: _Changing, current: Mapping[str, Any], regions: Sequence[str]
) -> None:
    """OUs and regions targeted before but not asked for now keep their stacks: say so."""
    targeted_ous = set(current.get("OrganizationalUnitIds", []))
    targeted_regions = set(current.get("Regions", []))
    extra = (targeted_ous - set(changing.ous)) | (targeted_regions - set(regions))
    if extra:
        console.print(
            f"[yellow]note[/] StackSet {changing.spec.name} also targets {sorted(extra)}, not asked for this time: "
            "they keep their stacks (destroy removes everything)"
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
    follow = Follow(console, poll_seconds, timeout_seconds, {a.id: a.name for a in report.member_accounts})
    changing = _Changing(cfn, spec, preferences, follow, [u.id for u in report.org_units], dry_run)
    current = describe_stack_set(cfn, spec.name, spec.call_as)
    instances, outcome = _bring_up_to_date(changing, current, regions)
    if changing.stopped(outcome):
        return changing.changes, outcome
    outcome = _create_missing(changing, current, report, instances, regions) or outcome
    if current is not None:
        _note_other_targets(console, changing, current, regions)
    return changing.changes, outcome


def delete_instances(
    cfn: Any, name: str, call_as: str, settings: RolloutSettings, console: Console, ou_ids: Sequence[str]
) -> None:
    """Delete every stack instance of the OUs and wait; raise when some remain (accounts moved out of the OUs)."""
    instances = list_instances(cfn, name, call_as)
    if not instances:
        return
    regions = sorted({i.region for i in instances})
    operation_id = str(uuid.uuid4())
    operation_id = retry_in_progress(
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
