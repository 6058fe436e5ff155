"""Costs over a range: per account, queue, compute environment and job definition, wasted cost by failure kind, the
costliest jobs, and the `JobCost` metric point of a finished job. Pure: rows in, figures out."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from batchops.job_cost import PriceLookup, attempt_cost_fields, cost_fields, job_cost
from batchops.metrics import MetricPoint
from batchops.projection import failure_kind

TOP_JOBS = 20
JOB_COST_METRIC = "JobCost"
_TERMINAL = ("SUCCEEDED", "FAILED")
_Key = tuple[str, str, str]


def with_costs(
    jobs: Iterable[dict[str, Any]], attempts: Iterable[dict[str, Any]], prices: PriceLookup
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Job and attempt rows with their COST_FIELDS, at the prices in effect on each attempt's day."""
    by_job: dict[_Key, list[dict[str, Any]]] = defaultdict(list)
    for attempt in attempts:
        by_job[(attempt["account_id"], attempt["region"], attempt["job_id"])].append(attempt)
    costed_jobs: list[dict[str, Any]] = []
    costed_attempts: list[dict[str, Any]] = []
    for job in jobs:
        mine = by_job.get((job["account_id"], job["region"], job["job_id"]), [])
        cost = job_cost(job, mine, prices)
        costed_jobs.append({**job, **cost_fields(cost)})
        costed_attempts += [{**a, **attempt_cost_fields(cost, int(a["attempt"]))} for a in mine]
    return costed_jobs, costed_attempts


def _in_range(started_at: str | None, since: str | None, until: str | None) -> bool:
    if started_at is None:
        return since is None and until is None
    return (since is None or started_at >= since) and (until is None or started_at < until)


class _Total:
    """A running cost total that knows how many of its jobs had no price."""

    def __init__(self) -> None:
        self.costs: list[float] = []
        self.wasted: list[float] = []
        self.jobs = 0
        self.unpriced = 0

    def add(self, cost: float | None, wasted: float | None) -> None:
        self.jobs += 1
        if cost is None:
            self.unpriced += 1
            return
        self.costs.append(cost)
        self.wasted.append(wasted or 0.0)

    def figures(self) -> dict[str, Any]:
        return {
            "cost_usd": round(math.fsum(self.costs), 6),
            "wasted_cost_usd": round(math.fsum(self.wasted), 6),
            "jobs": self.jobs,
            "unpriced_jobs": self.unpriced,
        }


def cost_summary(
    jobs: Iterable[dict[str, Any]],
    attempts: Iterable[dict[str, Any]],
    *,
    since: str | None = None,
    until: str | None = None,
    top: int = TOP_JOBS,
) -> dict[str, Any]:
    """The cost figures of costed rows (`with_costs`) whose jobs started in [since, until) (ISO-8601; None: open):
    totals per account, queue, compute environment and job definition, wasted cost by the kind of failure that lost
    each attempt, and the `top` costliest jobs. An unpriced job is counted, never summed as zero."""
    groups: dict[str, dict[str, _Total]] = {
        "by_account": defaultdict(_Total),
        "by_queue": defaultdict(_Total),
        "by_compute_environment": defaultdict(_Total),
        "by_job_definition": defaultdict(_Total),
    }
    total = _Total()
    kept: dict[_Key, dict[str, Any]] = {}
    for job in jobs:
        if job.get("array_size") is not None or not _in_range(job.get("started_at"), since, until):
            continue  # an array parent costs nothing itself: its children carry the cost
        kept[(job["account_id"], job["region"], job["job_id"])] = job
        cost, wasted = job.get("cost_usd"), job.get("wasted_cost_usd")
        total.add(cost, wasted)
        where = f"{job['account_id']}/{job['region']}"
        groups["by_account"][job["account_id"]].add(cost, wasted)
        groups["by_queue"][f"{where}/{job.get('queue')}"].add(cost, wasted)
        groups["by_compute_environment"][f"{where}/{job.get('compute_environment')}"].add(cost, wasted)
        groups["by_job_definition"][str(job.get("job_definition"))].add(cost, wasted)
    priced = [j for j in kept.values() if j.get("cost_usd") is not None]
    priced.sort(key=lambda j: (-j["cost_usd"], j["account_id"], j["region"], j["job_id"]))
    return {
        "range": {"since": since, "until": until},
        "total": total.figures(),
        **{name: _ordered(group) for name, group in groups.items()},
        "wasted_by_failure_kind": _wasted_by_kind(kept, attempts),
        "top_jobs": [_top_row(j) for j in priced[:top]],
    }


def _ordered(group: dict[str, _Total]) -> dict[str, dict[str, Any]]:
    """A group's figures, the costliest first."""
    figures = {name: total.figures() for name, total in group.items()}
    return dict(sorted(figures.items(), key=lambda item: (-item[1]["cost_usd"], item[0])))


def _wasted_by_kind(kept: dict[_Key, dict[str, Any]], attempts: Iterable[dict[str, Any]]) -> dict[str, float]:
    """Wasted cost per failure kind of the lost attempt (spot_reclaim, oom, exit_nonzero, ...)."""
    wasted: dict[str, list[float]] = defaultdict(list)
    for attempt in attempts:
        job = kept.get((attempt["account_id"], attempt["region"], attempt["job_id"]))
        lost = attempt.get("wasted_cost_usd")
        if job is None or job.get("cost_usd") is None or not lost:
            continue  # an unpriced job's wasted part is not summed anywhere else either
        spot = job.get("pricing") == "spot"
        kind = failure_kind("FAILED", attempt.get("status_reason"), attempt.get("exit_code"), spot) or "other"
        if kind == "other" and job.get("status") not in _TERMINAL:
            kind = "retried"
        wasted[kind].append(lost)
    totals = {kind: round(math.fsum(values), 6) for kind, values in wasted.items()}
    return dict(sorted(totals.items(), key=lambda item: (-item[1], item[0])))


def _top_row(job: dict[str, Any]) -> dict[str, Any]:
    fields = ("account_id", "region", "job_id", "job_name", "queue", "job_definition", "status", "attempts")
    return {**{f: job.get(f) for f in fields}, **{f: job.get(f) for f in ("cost_usd", "wasted_cost_usd", "cost_basis")}}


def job_cost_point(job: dict[str, Any], at: int) -> MetricPoint | None:
    """`JobCost` (USD, per AccountId, Region, JobQueue) for a job that has ended with a known cost, else None; the
    caller emits it once per job (when the ended job's cost first becomes known), as the other job metrics."""
    if job.get("status") not in _TERMINAL or job.get("cost_usd") is None or job.get("array_size") is not None:
        return None
    dimensions = (
        ("AccountId", job["account_id"]),
        ("Region", job["region"]),
        ("JobQueue", job.get("queue") or "unknown"),
    )
    return MetricPoint(JOB_COST_METRIC, "None", float(job["cost_usd"]), dimensions, at)
