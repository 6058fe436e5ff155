"""What `BatchOpsApplication.record_batch` takes and gives back: a batch of translated inputs, how those that fail
alone are reported, and what recording the batch did."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from batchops.facts import Parsed
from batchops.metrics import MetricPoint
from batchops.views import PipelineCounters, RejectedEvent


@dataclass(frozen=True)
class Untranslatable:
    """An input whose translation raised (an SQS body that is not JSON): it fails its batch, and alone it is poison."""

    error: Exception


BatchInput = Parsed | RejectedEvent | Untranslatable
PipelineTime = Callable[[Sequence[Parsed], Sequence[MetricPoint]], int]
"""When a batch's pipeline points are stamped, from its facts and their points."""


class PoisonReport(Protocol):
    """How the inputs of a batch that can fail one at a time are reported (the messages of an SQS batch)."""

    def batch_failed(self, error: Exception) -> None:
        """The whole batch failed (called while `error` is handled); its inputs are now recorded one at a time."""

    def input_failed(self, index: int, error: Exception) -> tuple[str, RejectedEvent]:
        """The id under which the input at `index`, failed alone, is reported, and the record kept of it (called while
        `error` is handled)."""


def latest_event_time(facts: Sequence[Parsed], points: Sequence[MetricPoint]) -> int:
    """The time of the batch's latest fact (0 when it holds none)."""
    return max((f.fact["at"] for f in facts), default=0)


@dataclass(frozen=True)
class BatchOutcome:
    """Counts per account and region (new, duplicates, rejected, ignored), the metric points to emit (the facts' and
    the pipeline's own), and the ids of the inputs that failed even alone (poison SQS messages; none on the CLI)."""

    counters: tuple[PipelineCounters, ...] = ()
    points: tuple[MetricPoint, ...] = ()
    failed: tuple[str, ...] = ()
    reread: int = 0
    """Aggregates read back from the store because the cache no longer held them: many mean the input is out of
    time order (see `batchops.time_order`)."""

    @property
    def new(self) -> int:
        """Facts recorded for the first time."""
        return sum(c.ingested for c in self.counters)

    @property
    def duplicates(self) -> int:
        """Facts the store already held."""
        return sum(c.duplicates for c in self.counters)

    @property
    def rejected(self) -> int:
        """Events kept aside as bad or unknown."""
        return sum(c.rejected for c in self.counters)

    @property
    def ignored(self) -> int:
        """Events kept aside as not about Batch."""
        return sum(c.ignored for c in self.counters)


def combined(outcomes: Iterable[BatchOutcome]) -> BatchOutcome:
    """Several outcomes as one (a batch's inputs recorded one at a time): counts added per account and region."""
    counters: dict[tuple[str, str], PipelineCounters] = {}
    points: list[MetricPoint] = []
    failed: list[str] = []
    reread = 0
    for outcome in outcomes:
        for c in outcome.counters:
            was = counters.get((c.account_id, c.region))
            if was is not None:
                c = PipelineCounters(
                    c.account_id,
                    c.region,
                    was.ingested + c.ingested,
                    was.duplicates + c.duplicates,
                    was.rejected + c.rejected,
                    was.ignored + c.ignored,
                )
            counters[(c.account_id, c.region)] = c
        points.extend(outcome.points)
        failed.extend(outcome.failed)
        reread += outcome.reread
    return BatchOutcome(tuple(counters.values()), tuple(points), tuple(failed), reread)
