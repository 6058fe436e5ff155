"""What to simulate, and the regions and secret value every part of the simulation agrees on."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

REGIONS: tuple[str, ...] = (
    "us-east-1",
    "eu-west-1",
    "us-west-2",
    "ap-southeast-2",
    "eu-central-1",
    "us-east-2",
    "ap-northeast-1",
    "ca-central-1",
)
"""Regions the simulator picks from, in order: `--regions 2` means us-east-1 and eu-west-1."""

SECRET_VALUE = "simulated-user-secret"
"""Value of the user environment variable that some jobs carry in clear text (must never be stored)."""


@dataclass(frozen=True)
class SimulationSettings:
    """What to simulate: how many accounts, regions per account and submitted jobs, and how to deliver."""

    accounts: int = 3
    regions: int = 2
    jobs: int = 1000
    seed: int = 0
    chaos: bool = False
    start: datetime = datetime(2025, 11, 13, 0, 0, tzinfo=UTC)


def validate(settings: SimulationSettings) -> None:
    if settings.accounts < 1:
        raise ValueError("accounts must be at least 1")
    if not 1 <= settings.regions <= len(REGIONS):
        raise ValueError(f"regions must be between 1 and {len(REGIONS)}")
    if settings.jobs < 0:
        raise ValueError("jobs must not be negative")
    if settings.start.tzinfo is None:
        raise ValueError("start must be timezone-aware")
