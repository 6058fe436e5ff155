"""What a job cost: each attempt's share of its instance (or its Fargate task) times its run time, at list prices.

The model (issue 19, after Seqera's per-task estimate): an EC2 attempt costs the instance's hourly price x the job's
share of the instance x run hours, the share being the larger of its vCPU and memory shares, or its GPU share when it
requested GPUs (GPUs dominate those instances' price), capped at the whole instance; a Fargate attempt costs its vCPUs
x the vCPU-hour price + its GiB x the GB-hour price, for at least a minute (Fargate's minimum charge). A job costs the
sum of its attempts; the attempts that did not end in the job's success (spot reclaims, failures, retries) are its
wasted cost. A price or a size we do not know leaves the cost null: never a guess.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

COST_FIELDS = ("cost_usd", "wasted_cost_usd", "cost_basis")
"""The fields a job row and an attempt row gain (additive contract fields)."""
FARGATE_MINIMUM_SECONDS = 60
"""Fargate bills per second with a one-minute minimum per task."""
_DIGITS = 8
"""Costs are rounded to a millionth of a cent: far below any price's precision, and stable across platforms."""


@dataclass(frozen=True, slots=True)
class InstanceShape:
    """An instance type's size, as the price list describes it."""

    vcpus: float
    memory_mib: float
    gpus: int = 0


@dataclass(frozen=True, slots=True)
class HourlyPrice:
    """One hourly instance price: on-demand for a region, or spot for an availability zone, as of a day."""

    usd_per_hour: float
    as_of: str
    source: str


@dataclass(frozen=True, slots=True)
class FargateRates:
    """Fargate's rates in a region (Linux/x86), on-demand or spot, as of a day."""

    usd_per_vcpu_hour: float
    usd_per_gb_hour: float
    as_of: str
    source: str


class PriceLookup(Protocol):
    """The prices costing needs; `None` when the price list has no such price (or had none on that day)."""

    def shape(self, instance_type: str) -> InstanceShape | None:
        """The instance type's vCPUs, memory and GPUs."""

    def on_demand(self, region: str, instance_type: str, day: str) -> HourlyPrice | None:
        """The on-demand Linux price of the type in the region in effect on `day` (YYYY-MM-DD)."""

    def spot(self, availability_zone: str, instance_type: str, day: str) -> HourlyPrice | None:
        """The spot price of the type in the availability zone in effect on `day`."""

    def fargate(self, region: str, spot: bool, day: str) -> FargateRates | None:
        """Fargate's (or Fargate Spot's) rates in the region in effect on `day`."""


@dataclass(frozen=True, slots=True)
class AttemptUsage:
    """What costing reads of one attempt: where and how long it ran, what the job asked for."""

    attempt: int
    region: str
    platform: str
    pricing: str
    instance_type: str | None
    availability_zone: str | None
    vcpus: float | None
    memory_mib: float | None
    gpus: int
    started_at: str | None
    run_seconds: float | None


@dataclass(frozen=True, slots=True)
class AttemptCost:
    """An attempt's cost (None: unknown), the basis it was computed on (or why it is unknown)."""

    attempt: int
    cost_usd: float | None
    basis: str


@dataclass(frozen=True, slots=True)
class JobCost:
    """A job's cost: the sum of its attempts, what of it was wasted, the bases used, and each attempt's cost."""

    cost_usd: float | None
    wasted_cost_usd: float | None
    cost_basis: str
    attempts: tuple[AttemptCost, ...]
    wasted_attempts: frozenset[int]


def _float(value: Any) -> float | None:
    if value is None or value == "":
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) and number >= 0 else None


def usage_of(job: Mapping[str, Any], attempt: Mapping[str, Any]) -> AttemptUsage:
    """An attempt row (ATTEMPT_FIELDS) with its job row's request and pricing (JOB_FIELDS)."""
    gpus = _float(job.get("gpus"))
    return AttemptUsage(
        attempt=int(attempt["attempt"]),
        region=str(job["region"]),
        platform=str(job.get("platform") or "EC2"),
        pricing=str(job.get("pricing") or "unknown"),
        instance_type=attempt.get("instance_type"),
        availability_zone=attempt.get("availability_zone"),
        vcpus=_float(job.get("vcpus")),
        memory_mib=_float(job.get("memory_mib")),
        gpus=int(gpus) if gpus else 0,
        started_at=attempt.get("started_at"),
        run_seconds=_float(attempt.get("run_seconds")),
    )


def attempt_cost(usage: AttemptUsage, prices: PriceLookup) -> AttemptCost:
    """One attempt's cost on its instance share or Fargate task size; None with the reason when an input is unknown."""
    if usage.started_at is None:
        return AttemptCost(usage.attempt, 0.0, "never started")
    if usage.run_seconds is None:
        return AttemptCost(usage.attempt, None, "unknown: still running or its end not seen")
    day = usage.started_at[:10]
    if usage.platform == "FARGATE":
        return _fargate_cost(usage, prices, day)
    return _ec2_cost(usage, prices, day)


def _fargate_cost(usage: AttemptUsage, prices: PriceLookup, day: str) -> AttemptCost:
    spot = usage.pricing == "spot"
    label = "fargate-spot" if spot else "fargate"
    if usage.vcpus is None or usage.memory_mib is None:
        return AttemptCost(usage.attempt, None, f"unknown: {label} task size not known")
    rates = prices.fargate(usage.region, spot, day)
    if rates is None:
        return AttemptCost(usage.attempt, None, f"unknown: no {label} price in {usage.region}")
    hours = max(usage.run_seconds or 0.0, FARGATE_MINIMUM_SECONDS) / 3600
    per_hour = usage.vcpus * rates.usd_per_vcpu_hour + usage.memory_mib / 1024 * rates.usd_per_gb_hour
    basis = f"{label} {usage.region} {rates.source} {rates.as_of}; vcpu-hour + GB-hour, 60 s minimum"
    return AttemptCost(usage.attempt, round(per_hour * hours, _DIGITS), basis)


def _ec2_cost(usage: AttemptUsage, prices: PriceLookup, day: str) -> AttemptCost:
    if usage.instance_type is None:
        return AttemptCost(usage.attempt, None, "unknown: instance type not known")
    shape = prices.shape(usage.instance_type)
    if shape is None:
        return AttemptCost(usage.attempt, None, f"unknown: no size for {usage.instance_type}")
    share, rule = _share(usage, shape)
    if share is None:
        return AttemptCost(usage.attempt, None, f"unknown: {rule}")
    price, where = _hourly_price(usage, prices, day)
    if price is None:
        return AttemptCost(usage.attempt, None, f"unknown: {where}")
    cost = price.usd_per_hour * share * (usage.run_seconds or 0.0) / 3600
    basis = f"{where} {price.source} {price.as_of}; {rule}"
    return AttemptCost(usage.attempt, round(cost, _DIGITS), basis)


def _hourly_price(usage: AttemptUsage, prices: PriceLookup, day: str) -> tuple[HourlyPrice | None, str]:
    """The attempt's hourly instance price and a label of which one (or why there is none)."""
    instance_type = usage.instance_type or ""
    if usage.pricing == "spot":
        if usage.availability_zone is None:
            return None, f"spot {instance_type}: availability zone not known"
        price = prices.spot(usage.availability_zone, instance_type, day)
        label = f"spot {instance_type} {usage.availability_zone}"
        return price, label if price else f"no {label} price"
    if usage.pricing == "on-demand":
        price = prices.on_demand(usage.region, instance_type, day)
        label = f"on-demand {instance_type} {usage.region}"
        return price, label if price else f"no {label} price"
    return None, f"pricing model of {instance_type} not known (on-demand or spot)"


def _share(usage: AttemptUsage, shape: InstanceShape) -> tuple[float | None, str]:
    """The job's share of the instance and the rule that gave it (or why it cannot be known)."""
    if usage.gpus > 0:
        if shape.gpus <= 0:
            return None, f"GPUs requested but {usage.instance_type} has none in the price list"
        return min(1.0, usage.gpus / shape.gpus), f"GPU share {usage.gpus}/{shape.gpus}"
    if usage.vcpus is None or usage.memory_mib is None or shape.vcpus <= 0 or shape.memory_mib <= 0:
        return None, "the job's vCPUs or memory not known"
    vcpu_share = usage.vcpus / shape.vcpus
    memory_share = usage.memory_mib / shape.memory_mib
    rule = "vCPU share" if vcpu_share >= memory_share else "memory share"
    return min(1.0, max(vcpu_share, memory_share)), f"{rule} (larger of vCPU and memory)"


def wasted_attempts(status: str | None, attempts: Iterable[AttemptUsage]) -> frozenset[int]:
    """The attempts that did not give the job its result: all but the last of a job that succeeded, every one of a
    job that failed, every ended one of a job still going (a reclaimed, failed or cancelled attempt's run is lost)."""
    ran = sorted((a for a in attempts if a.started_at is not None), key=lambda a: a.attempt)
    if not ran:
        return frozenset()
    if status == "SUCCEEDED":
        return frozenset(a.attempt for a in ran[:-1])
    if status == "FAILED":
        return frozenset(a.attempt for a in ran)
    # Still going: an attempt that ended did not succeed (else the job would have); the running one may yet.
    return frozenset(a.attempt for a in ran if a is not ran[-1] or a.run_seconds is not None)


def _sum(costs: Sequence[float | None]) -> float | None:
    """An exact sum (order-independent), None as soon as one part is unknown."""
    if any(c is None for c in costs):
        return None
    return round(math.fsum(c for c in costs if c is not None), _DIGITS)


def job_cost(job: Mapping[str, Any], attempt_rows: Iterable[Mapping[str, Any]], prices: PriceLookup) -> JobCost:
    """A job row's cost from its attempt rows: the sum of the attempts, the wasted part, the distinct bases."""
    usages = sorted((usage_of(job, a) for a in attempt_rows), key=lambda u: u.attempt)
    costs = tuple(attempt_cost(u, prices) for u in usages)
    wasted = wasted_attempts(job.get("status"), usages)
    bases = list(dict.fromkeys(c.basis for c in costs if c.basis != "never started"))
    return JobCost(
        cost_usd=_sum([c.cost_usd for c in costs]),
        wasted_cost_usd=_sum([c.cost_usd for c in costs if c.attempt in wasted]),
        cost_basis=" | ".join(bases) if bases else _no_attempt_basis(job),
        attempts=costs,
        wasted_attempts=wasted,
    )


def _no_attempt_basis(job: Mapping[str, Any]) -> str:
    """Why a job without a run costs nothing itself (an array parent's children are jobs with costs of their own)."""
    return "array parent: its children carry the cost" if job.get("array_size") is not None else "no attempt ran"


def cost_fields(cost: JobCost) -> dict[str, Any]:
    """The job row's COST_FIELDS."""
    return {"cost_usd": cost.cost_usd, "wasted_cost_usd": cost.wasted_cost_usd, "cost_basis": cost.cost_basis}


def attempt_cost_fields(cost: JobCost, attempt: int) -> dict[str, Any]:
    """An attempt row's COST_FIELDS: its cost, all of it wasted when the attempt was lost, and its basis."""
    found = next((c for c in cost.attempts if c.attempt == attempt), None)
    if found is None:
        return {"cost_usd": None, "wasted_cost_usd": None, "cost_basis": "attempt not known"}
    wasted: float | None = 0.0
    if attempt in cost.wasted_attempts:
        wasted = found.cost_usd
    elif found.cost_usd is None:
        wasted = None
    return {"cost_usd": found.cost_usd, "wasted_cost_usd": wasted, "cost_basis": found.basis}
