"""Planned events in a time-ordered heap, built only when released; envelope ids drawn at release."""

from __future__ import annotations

import heapq
import math
import random
from collections.abc import Callable, Iterator
from typing import Any

from batchops.simulation.randomness import uuid4

Builder = Callable[..., dict[str, Any]]
"""Builds an event from (envelope id, event time in ms, *the planned arguments)."""

Planned = tuple[int, int, Builder, tuple[Any, ...]]


class Timeline:
    """Every planned event, in time order; the sequence numbers keep plans of the same millisecond in order."""

    def __init__(self, seed: int) -> None:
        self.envelope_ids = random.Random(f"batchops-simulate-envelope-ids:{seed}")
        self.planned: list[Planned] = []
        self.sequence = 0

    def next_sequence(self) -> int:
        sequence = self.sequence
        self.sequence += 1
        return sequence

    def at(self, epoch_ms: int, builder: Builder, *args: Any) -> None:
        heapq.heappush(self.planned, (epoch_ms, self.sequence, builder, args))
        self.sequence += 1

    def release(self, before: int | None) -> Iterator[tuple[int, dict[str, Any]]]:
        """Build and yield, in time order, every planned event older than `before` (all of them for None)."""
        planned = self.planned
        ids = self.envelope_ids
        pop = heapq.heappop
        limit = math.inf if before is None else before
        while planned and planned[0][0] < limit:
            epoch_ms, _, builder, args = pop(planned)
            yield epoch_ms, builder(uuid4(ids), epoch_ms, *args)
