"""EventBridge-like delivery: at-least-once (duplicates), no order guarantee, a few late events."""

from __future__ import annotations

import heapq
import marshal
import random
from collections.abc import Iterator
from typing import Any

DUPLICATE_RATE = 0.05


def deliver_with_chaos(timed: Iterator[tuple[int, dict[str, Any]]], seed: int) -> Iterator[dict[str, Any]]:
    """EventBridge-like delivery: at-least-once (same id twice), no order guarantee, a few late events."""
    rng = random.Random(f"batchops-simulate-delivery:{seed}")
    in_flight: list[tuple[int, int, dict[str, Any]]] = []
    sequence = 0
    for event_ms, event in timed:
        # Anything still in flight that is due before this event's own time can go: no later event
        # can be delivered before its own event time.
        while in_flight and in_flight[0][0] <= event_ms:
            yield heapq.heappop(in_flight)[2]
        delivered = event_ms + _delivery_delay(rng)
        heapq.heappush(in_flight, (delivered, sequence, event))
        sequence += 1
        if rng.random() < DUPLICATE_RATE:
            again = delivered + 500 + int(rng.random() * 120_000)
            heapq.heappush(in_flight, (again, sequence, _copy_json(event)))
            sequence += 1
    while in_flight:
        yield heapq.heappop(in_flight)[2]


def _delivery_delay(rng: random.Random) -> int:
    """Mostly within 3 s, some within 4 min, one in 200 late by 5 to 30 min."""
    roll = rng.random()
    if roll < 0.80:
        return int(rng.random() * 3_000)
    if roll < 0.995:
        return 3_000 + int(rng.random() * 237_000)
    return 300_000 + int(rng.random() * 1_500_000)


def _copy_json(event: dict[str, Any]) -> dict[str, Any]:
    """A deep copy of JSON-like data; marshal does it in C, several times faster than `copy.deepcopy`."""
    copied: dict[str, Any] = marshal.loads(marshal.dumps(event))
    return copied
