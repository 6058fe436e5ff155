"""Coverage: every account of the OUs x region, and what the StackSet has there (its state, detail, drift)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from batchops.rollout.preflight import Account, OrgUnit
from batchops.rollout.stack_set import Instance

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


@dataclass(frozen=True)
class _Context:
    """What every row of one coverage is judged against."""

    auto_deployment: bool | None
    management_account_id: str
    management_stacks: Mapping[str, str]


def _row(unit: OrgUnit, account: Account, region: str, instance: Instance | None, context: _Context) -> CoverageRow:
    """The state of one account x region of an OU."""
    if account.id == context.management_account_id:
        state = context.management_stacks.get(region, "")
        detail = f"plain stack: {state}" if state else "not covered by StackSets: --include-management-account"
        return CoverageRow(account.id, account.name, unit.id, region, MANAGEMENT, detail)
    if instance is not None:
        detail = instance.reason or instance.detailed_status or instance.status
        return CoverageRow(account.id, account.name, unit.id, region, _instance_state(instance), detail, instance.drift)
    if account.status != "ACTIVE":
        return CoverageRow(account.id, account.name, unit.id, region, SUSPENDED, account.status)
    if context.auto_deployment:
        return CoverageRow(
            account.id,
            account.name,
            unit.id,
            region,
            AUTO_DEPLOYMENT_PENDING,
            "in a target OU: automatic deployment will add it (or run deploy again)",
        )
    return CoverageRow(account.id, account.name, unit.id, region, MISSING, "no stack instance: run deploy again")


def _leaving(instance: Instance) -> CoverageRow:
    """An instance of an account outside the OUs."""
    return CoverageRow(
        instance.account,
        "",
        instance.org_unit,
        instance.region,
        LEAVING,
        "not in the OUs: automatic deployment removes it",
        instance.drift,
    )


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
    context = _Context(auto_deployment, management_account_id, management_stacks or {})
    by_target = {(i.account, i.region): i for i in instances}
    rows: list[CoverageRow] = []
    seen: set[str] = set()
    for unit in org_units:
        for account in unit.accounts:
            if account.id in seen:
                continue
            seen.add(account.id)
            rows += [_row(unit, account, region, by_target.get((account.id, region)), context) for region in regions]
    rows += [_leaving(instance) for instance in instances if instance.account not in seen]
    return rows
