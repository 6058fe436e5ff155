"""What one `deploy.py` run was asked to do: targets, names, templates, StackSet operation preferences."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from batchops.waiting_alerts import AlarmThresholds

REPO_ROOT = Path(__file__).resolve().parents[3]
CENTRAL_TEMPLATE = REPO_ROOT / "central-account" / "template.yaml"
MEMBER_TEMPLATE = REPO_ROOT / "member-account" / "template.yaml"
TAG_KEY = "batchops:prefix"


@dataclass(frozen=True)
class OperationPreferences:
    """How a StackSet operation proceeds: all regions at once, accounts in parallel up to a percentage."""

    max_concurrent_percentage: int = 25
    failure_tolerance_percentage: int = 10

    def __post_init__(self) -> None:
        if not 1 <= self.max_concurrent_percentage <= 100:
            raise ValueError("--max-concurrent-percentage must be 1..100")
        if not 0 <= self.failure_tolerance_percentage <= 100:
            raise ValueError("--failure-tolerance-percentage must be 0..100")

    def request(self) -> dict[str, Any]:
        """The OperationPreferences of a StackSets API call."""
        return {
            "RegionConcurrencyType": "PARALLEL",
            "MaxConcurrentPercentage": self.max_concurrent_percentage,
            "FailureTolerancePercentage": self.failure_tolerance_percentage,
            # In the default strict mode concurrency never exceeds the failure tolerance + 1 account; soft
            # mode keeps the chosen concurrency and still stops the operation past the tolerance.
            "ConcurrencyMode": "SOFT_FAILURE_TOLERANCE",
        }


@dataclass(frozen=True)
class CentralCapacity:
    """How the central stack's hot DynamoDB tables are billed, and the auto-scaling bounds of provisioned mode.

    The defaults are the central template's; on-demand sends only the mode, so the bounds keep their defaults there."""

    mode: str = "on-demand"
    min_read_units: int = 5
    max_read_units: int = 10000
    min_write_units: int = 5
    max_write_units: int = 10000
    target_utilization_percent: int = 70

    def __post_init__(self) -> None:
        if self.mode not in ("on-demand", "provisioned"):
            raise ValueError(f"--capacity-mode {self.mode!r}: on-demand or provisioned")
        for kind, low, high in (
            ("read", self.min_read_units, self.max_read_units),
            ("write", self.min_write_units, self.max_write_units),
        ):
            if not 1 <= low <= high <= 40000:
                raise ValueError(f"--min-{kind}-units {low}, --max-{kind}-units {high}: need 1 <= min <= max <= 40000")
        if not 20 <= self.target_utilization_percent <= 90:
            raise ValueError("--target-utilization must be 20..90 (percent), as Application Auto Scaling takes it")

    def parameters(self) -> dict[str, str]:
        """The central template's capacity parameters."""
        if self.mode == "on-demand":
            return {"CapacityMode": self.mode}
        return {
            "CapacityMode": self.mode,
            "ProvisionedMinReadUnits": str(self.min_read_units),
            "ProvisionedMaxReadUnits": str(self.max_read_units),
            "ProvisionedMinWriteUnits": str(self.min_write_units),
            "ProvisionedMaxWriteUnits": str(self.max_write_units),
            "ProvisionedTargetUtilizationPercent": str(self.target_utilization_percent),
        }


@dataclass(frozen=True)
class RolloutSettings:
    """Everything one `deploy.py` run was asked to do."""

    org_units: tuple[str, ...]
    regions: tuple[str, ...]
    home_region: str
    prefix: str = "batchops"
    call_as: str | None = None
    central_account: str | None = None
    include_management_account: bool = False
    preferences: OperationPreferences = field(default_factory=OperationPreferences)
    dry_run: bool = False
    assume_yes: bool = False
    artifact: Path | None = None
    artifact_bucket: str | None = None
    central_parameters: Mapping[str, str] = field(default_factory=dict)
    capacity: CentralCapacity = field(default_factory=CentralCapacity)
    oam: bool = True
    grafana: bool = True
    alarms: bool = True
    alarm_topic: str | None = None
    alarm_thresholds: AlarmThresholds = field(default_factory=AlarmThresholds)
    grafana_admin_groups: tuple[str, ...] = ()
    grafana_viewer_groups: tuple[str, ...] = ()
    identity_center_region: str | None = None
    profile: str | None = None
    poll_seconds: float = 5.0
    timeout_seconds: float = 3 * 3600
    central_template: Path = CENTRAL_TEMPLATE
    member_template: Path = MEMBER_TEMPLATE

    @property
    def central_stack_name(self) -> str:
        """The central account's stack."""
        return f"{self.prefix}-central"

    @property
    def stack_set_name(self) -> str:
        """The member StackSet (and the plain stack of the management account)."""
        return f"{self.prefix}-member"

    @property
    def sink_name(self) -> str:
        """The OAM sink of each region in the central account."""
        return self.prefix

    @property
    def tags(self) -> dict[str, str]:
        """Tags on what the rollout creates, so status and destroy find it again."""
        return {TAG_KEY: self.prefix}


def confirm_or_refuse(settings: RolloutSettings, ask: Callable[[str], bool]) -> Callable[[str], bool]:
    """--yes answers every question with yes."""
    return (lambda _question: True) if settings.assume_yes else ask
