"""Checks before an Organization rollout: who calls, trusted access, the OUs and their accounts, the regions.

Every check reads only. Problems are collected and raised together, each with the command or option that
fixes it, so one run tells the user everything that stands in the way.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

STACKSETS_PRINCIPAL = "member.org.stacksets.cloudformation.amazonaws.com"
CALL_AS_VALUES = ("SELF", "DELEGATED_ADMIN")
_ENABLED_REGION = frozenset({"opt-in-not-required", "opted-in"})


class PreflightError(RuntimeError):
    """One or more things stand in the way; the message lists each with its fix."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(f"- {p}" for p in self.problems))


@dataclass(frozen=True)
class Account:
    """An Organization account and the OU it sits in."""

    id: str
    name: str
    status: str
    parent_id: str


@dataclass(frozen=True)
class OrgUnit:
    """An OU and every account below it (StackSets cover all descendants of a target OU)."""

    id: str
    name: str
    accounts: tuple[Account, ...]


@dataclass(frozen=True)
class Caller:
    """The credentials the rollout runs with, placed in the Organization."""

    account_id: str
    arn: str
    organization_id: str
    management_account_id: str
    call_as: str

    @property
    def is_management(self) -> bool:
        """True when the caller is the Organization's management account."""
        return self.account_id == self.management_account_id


@dataclass(frozen=True)
class PreflightReport:
    """What the checks found; the rollout works from it."""

    caller: Caller
    org_units: tuple[OrgUnit, ...]
    regions: tuple[str, ...]
    central_account_id: str
    trusted_access: bool
    notes: tuple[str, ...] = field(default=())

    @property
    def member_accounts(self) -> tuple[Account, ...]:
        """Active accounts of the OUs that the StackSet covers (never the management account), each once."""
        seen: dict[str, Account] = {}
        for unit in self.org_units:
            for account in unit.accounts:
                if account.status == "ACTIVE" and account.id != self.caller.management_account_id:
                    seen.setdefault(account.id, account)
        return tuple(seen.values())


def trusted_access_command(profile: str | None = None) -> str:
    """The exact CLI command that turns on trusted access for StackSets (run in the management account)."""
    suffix = f" --profile {profile}" if profile else ""
    return f"aws organizations enable-aws-service-access --service-principal {STACKSETS_PRINCIPAL}{suffix}"


def identify_caller(sts: Any, organizations: Any, call_as: str | None) -> Caller:
    """Who calls and from where; `call_as` None picks SELF in the management account, DELEGATED_ADMIN elsewhere."""
    identity = sts.get_caller_identity()
    try:
        organization = organizations.describe_organization()["Organization"]
    except ClientError as error:
        code = error.response["Error"]["Code"]
        if code == "AWSOrganizationsNotInUseException":
            raise PreflightError(
                [f"account {identity['Account']} is not in an AWS Organization: create one or use its credentials"]
            ) from None
        if code == "AccessDeniedException":
            raise PreflightError(
                [
                    f"{identity['Arn']} may not call organizations:DescribeOrganization: run from the management "
                    "account or a StackSets delegated administrator with read access to AWS Organizations"
                ]
            ) from None
        raise
    management = organization["MasterAccountId"]
    chosen = call_as or ("SELF" if identity["Account"] == management else "DELEGATED_ADMIN")
    if chosen not in CALL_AS_VALUES:
        raise PreflightError([f"--call-as {chosen!r}: use SELF or DELEGATED_ADMIN"])
    return Caller(identity["Account"], identity["Arn"], organization["Id"], management, chosen)


def caller_problems(caller: Caller, cloudformation: Any) -> list[str]:
    """Whether the caller may run SERVICE_MANAGED StackSets as it intends to."""
    if caller.is_management:
        if caller.call_as != "SELF":
            return [
                f"account {caller.account_id} is the management account: use --call-as SELF (DELEGATED_ADMIN is "
                "for registered member accounts)"
            ]
        return []
    if caller.call_as != "DELEGATED_ADMIN":
        return [
            f"account {caller.account_id} is not the management account ({caller.management_account_id}): run from "
            "the management account, or from a StackSets delegated administrator with --call-as DELEGATED_ADMIN"
        ]
    try:
        cloudformation.list_stack_sets(CallAs="DELEGATED_ADMIN", MaxResults=1)
    except ClientError as error:
        if error.response["Error"]["Code"] in ("ValidationError", "AccessDenied", "AccessDeniedException"):
            return [
                f"account {caller.account_id} is not a StackSets delegated administrator. In the management "
                f"account run: aws organizations register-delegated-administrator --account-id "
                f"{caller.account_id} --service-principal {STACKSETS_PRINCIPAL}"
            ]
        raise
    return []


def trusted_access_enabled(organizations: Any) -> bool:
    """True when AWS Organizations trusts CloudFormation StackSets."""
    enabled: set[str] = set()
    for page in organizations.get_paginator("list_aws_service_access_for_organization").paginate():
        enabled.update(p["ServicePrincipal"] for p in page["EnabledServicePrincipals"])
    return STACKSETS_PRINCIPAL in enabled


def enable_trusted_access(organizations: Any) -> None:
    """Turn on trusted access for StackSets (management account only)."""
    organizations.enable_aws_service_access(ServicePrincipal=STACKSETS_PRINCIPAL)


def _accounts_below(organizations: Any, parent_id: str) -> list[Account]:
    found = [
        Account(a["Id"], a.get("Name", ""), a.get("Status", "ACTIVE"), parent_id)
        for page in organizations.get_paginator("list_accounts_for_parent").paginate(ParentId=parent_id)
        for a in page["Accounts"]
    ]
    for page in organizations.get_paginator("list_organizational_units_for_parent").paginate(ParentId=parent_id):
        for child in page["OrganizationalUnits"]:
            found += _accounts_below(organizations, child["Id"])
    return found


def describe_org_units(organizations: Any, ou_ids: Iterable[str]) -> tuple[list[OrgUnit], list[str]]:
    """The OUs with every account below them, and a problem per OU that does not exist."""
    units: list[OrgUnit] = []
    problems: list[str] = []
    for ou_id in ou_ids:
        try:
            unit = organizations.describe_organizational_unit(OrganizationalUnitId=ou_id)["OrganizationalUnit"]
        except ClientError as error:
            if error.response["Error"]["Code"] in ("OrganizationalUnitNotFoundException", "InvalidInputException"):
                problems.append(
                    f"--org-unit {ou_id}: no such OU in this Organization (list them with `aws organizations "
                    "list-organizational-units-for-parent --parent-id <root or OU id>`)"
                )
                continue
            raise
        units.append(OrgUnit(ou_id, unit.get("Name", ""), tuple(_accounts_below(organizations, ou_id))))
    return units, problems


def region_problems(ec2: Any, regions: Iterable[str], supported: Iterable[str] | None = None) -> list[str]:
    """A problem per region that is unknown, not enabled in the calling account, or not in `supported`."""
    known = {
        r["RegionName"]: r.get("OptInStatus", "opt-in-not-required")
        for r in ec2.describe_regions(AllRegions=True)["Regions"]
    }
    allowed = set(supported) if supported is not None else None
    problems = []
    for region in regions:
        if region not in known:
            problems.append(f"--regions {region}: not an AWS region this partition knows")
        elif known[region] not in _ENABLED_REGION:
            problems.append(
                f"--regions {region}: not enabled in this account ({known[region]}); enable it with `aws account "
                f"enable-region --region-name {region}` (in every member account too) or leave it out"
            )
        elif allowed is not None and region not in allowed:
            problems.append(
                f"--regions {region}: member-account/template.yaml has no RegionSlot for it; add `{region}: "
                "{Slot: N}` at the end of the mapping"
            )
    return problems


def central_account_problems(caller: Caller, central_account_id: str, accounts: Sequence[Account]) -> list[str]:
    """The central stack's account must be an active member of the Organization."""
    if central_account_id == caller.account_id:
        return []
    match = [a for a in accounts if a.id == central_account_id]
    if not match:
        return [f"--central-account {central_account_id} is not an account of Organization {caller.organization_id}"]
    if match[0].status != "ACTIVE":
        return [f"--central-account {central_account_id} is {match[0].status}"]
    return []


def organization_accounts(organizations: Any) -> list[Account]:
    """Every account of the Organization (parent unknown here)."""
    return [
        Account(a["Id"], a.get("Name", ""), a.get("Status", "ACTIVE"), "")
        for page in organizations.get_paginator("list_accounts").paginate()
        for a in page["Accounts"]
    ]


def run_preflight(
    *,
    sts: Any,
    organizations: Any,
    ec2: Any,
    cloudformation: Any,
    org_unit_ids: Sequence[str],
    regions: Sequence[str],
    call_as: str | None,
    central_account_id: str | None = None,
    supported_regions: Iterable[str] | None = None,
    include_management_account: bool = False,
    enable_access: Callable[[str], bool] | None = None,
    profile: str | None = None,
    dry_run: bool = False,
) -> PreflightReport:
    """Run every check; raise PreflightError listing all problems, or return what was found.

    `enable_access(question)` is asked before turning trusted access on; without it the fix is only shown.
    A dry run notes what it would ask and goes on.
    """
    caller = identify_caller(sts, organizations, call_as)
    problems = caller_problems(caller, cloudformation)
    notes: list[str] = []
    if not org_unit_ids:
        problems.append("no --org-unit given: name at least one OU (ou-xxxx-xxxxxxxx) or the root (r-xxxx)")
    if not regions:
        problems.append("no --regions given: name at least one region, e.g. --regions us-east-1,eu-west-1")
    trusted = _trusted_access(organizations, caller, problems, notes, enable_access, profile, dry_run)
    units, ou_problems = describe_org_units(organizations, org_unit_ids)
    problems += ou_problems
    problems += region_problems(ec2, regions, supported_regions)
    central = central_account_id or caller.account_id
    if central != caller.account_id:
        problems += central_account_problems(caller, central, organization_accounts(organizations))
    _management_account_notes(caller, central, units, include_management_account, problems, notes)
    if problems:
        raise PreflightError(problems)
    return PreflightReport(caller, tuple(units), tuple(regions), central, trusted, tuple(notes))


def _trusted_access(
    organizations: Any,
    caller: Caller,
    problems: list[str],
    notes: list[str],
    enable_access: Callable[[str], bool] | None,
    profile: str | None,
    dry_run: bool,
) -> bool:
    """Whether trusted access for StackSets is on, turning it on when the caller may and says yes (a dry run only
    notes the question); what is wrong or done goes to `problems` and `notes`."""
    command = trusted_access_command(profile)
    if trusted_access_enabled(organizations):
        return True
    if dry_run and caller.is_management:
        notes.append(f"trusted access for CloudFormation StackSets is off: the deploy would ask to run `{command}`")
        return False
    question = f"Trusted access for CloudFormation StackSets is off in this Organization. Turn it on now ({command})?"
    if caller.is_management and enable_access is not None and enable_access(question):
        enable_trusted_access(organizations)
        notes.append("trusted access for CloudFormation StackSets turned on")
        return True
    problems.append(
        "trusted access for CloudFormation StackSets is off: in the management account run "
        f"`{command}` (or pass --yes to let deploy.py turn it on)"
    )
    return False


def _management_account_notes(
    caller: Caller,
    central: str,
    units: Sequence[OrgUnit],
    include_management_account: bool,
    problems: list[str],
    notes: list[str],
) -> None:
    """What the management account's place means: the central stack there, --include-management-account without
    its credentials, or the management account in a target OU that the StackSet never covers."""
    if central == caller.management_account_id:
        notes.append(
            f"the central stack goes to the management account {central}; AWS recommends a dedicated monitoring "
            "account (--central-account ID)"
        )
    if include_management_account and not caller.is_management:
        problems.append(
            "--include-management-account deploys a plain stack in the management account: run with its credentials"
        )
    in_units = {a.id for u in units for a in u.accounts}
    if caller.management_account_id in in_units and not include_management_account:
        notes.append(
            f"the management account {caller.management_account_id} is in a target OU but a SERVICE_MANAGED "
            "StackSet never covers it: add --include-management-account to deploy the member stack there"
        )
