"""The `JobCost` metric: one point per job, the first time the projection writes it ended with a known cost.

Why here and not with the other job metrics: a cost needs the job's attempts joined to their instances and the dated
prices, which only the projection has (the aggregator sees folds). "Once" is decided by a ledger kept outside every
view generation (a replay rebuilds rows, never a second point): the projection proposes the jobs it wrote ended and
priced, and after its views are committed the ledger claims each job once; only the claimed ones give points. A crash
between the claim and the write of the points loses them: at most once, never twice.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Protocol

from batchops.cost_report import job_cost_point, with_costs
from batchops.job_cost import PriceLookup
from batchops.metrics import MetricPoint
from batchops.projection import Joins, attempt_rows
from batchops.times import parse_instant

JobKey = tuple[str, str, str]
"""(account, region, job id): a job across every generation of the views."""
_TERMINAL = frozenset(("SUCCEEDED", "FAILED"))


class JobCostLedger(Protocol):
    """Which jobs have had their `JobCost` point, kept where replays and redeliveries see it."""

    def claim(self, jobs: Iterable[JobKey]) -> set[JobKey]:
        """Mark the jobs as emitted; those that were not marked before (each is claimed by one caller only)."""

    def close(self) -> None:
        """Release what the ledger holds open."""


class JobCostMeter:
    """Collects the `JobCost` points of the job rows a projection writes; `settle` hands them out once per job."""

    def __init__(self, prices: Callable[[], PriceLookup], ledger: JobCostLedger) -> None:
        self.prices = prices
        self.ledger = ledger
        self._proposed: dict[JobKey, MetricPoint] = {}
        self._claimed: set[JobKey] = set()
        """Jobs this process saw claimed: not costed again (a job is rewritten whenever its joins change)."""

    def consider(self, fold: dict[str, Any], row: dict[str, Any], joins: Joins) -> None:
        """Propose the point of a job row being written, if the job has ended with a known cost."""
        key: JobKey = (row["account_id"], row["region"], row["job_id"])
        if row.get("status") not in _TERMINAL or row.get("array_size") is not None or key in self._claimed:
            return
        if not _pricing_settled(row, joins):
            return
        [costed], _ = with_costs([row], attempt_rows(fold, joins), self.prices())
        point = job_cost_point(costed, _ended_ms(row))
        if point is not None:
            self._proposed[key] = point  # the latest write of the job wins: it is the one committed

    def settle(self) -> list[MetricPoint]:
        """After the views that were proposed from are committed: the points of the jobs claimed now."""
        proposed, self._proposed = self._proposed, {}
        if not proposed:
            return []
        claimed = self.ledger.claim(sorted(proposed))
        self._claimed.update(proposed)  # claimed now or before: either way never again
        return [proposed[key] for key in sorted(claimed)]

    def close(self) -> None:
        """Close the ledger."""
        self.ledger.close()

    def discard(self) -> None:
        """Drop what a failed projection proposed (its views were not committed; a retry proposes again)."""
        self._proposed = {}


def _pricing_settled(row: dict[str, Any], joins: Joins) -> bool:
    """Whether the row's pricing model can no longer change: a point, once emitted, cannot be corrected. A Fargate
    row says `fargate` (on-demand rates) until its compute environment's configuration says FARGATE_SPOT, so its
    cost is final only once that configuration is known (EC2 rows cost nothing until their pricing is known)."""
    if row.get("platform") != "FARGATE":
        return True
    name = row.get("compute_environment")
    if not isinstance(name, str):
        return False
    return joins.compute_environment_pricing(row["account_id"], row["region"], name) is not None


def _ended_ms(row: dict[str, Any]) -> int:
    """When the job ended: its last attempt's stop, else its last event (a job that failed before it ran)."""
    ended = row.get("stopped_at") or row.get("last_event_time")
    return parse_instant(ended) if ended else 0


__all__ = ["JobCostLedger", "JobCostMeter", "JobKey"]
