"""Draws from the simulation's random stream: ids, ranges and weighted picks."""

from __future__ import annotations

import bisect
import random

_UUID4_CLEAR = ~((0xF << 76) | (0x3 << 62))
_UUID4_SET = (0x4 << 76) | (0x2 << 62)


def uuid4(rng: random.Random) -> str:
    text = ((rng.getrandbits(128) & _UUID4_CLEAR) | _UUID4_SET).to_bytes(16).hex()
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


def hex_digits(rng: random.Random, digits: int) -> str:
    return f"{rng.getrandbits(digits * 4):0{digits}x}"


def between(rng: random.Random, low: int, high: int) -> int:
    return low + int(rng.random() * (high - low))


def pick(rng: random.Random, cumulative_weights: tuple[float, ...]) -> int:
    """Index drawn with the given cumulative weights (what `random.choices` does, without its overhead)."""
    return bisect.bisect(cumulative_weights, rng.random() * cumulative_weights[-1])


def cumulative(weights: list[float]) -> list[float]:
    total = 0.0
    out: list[float] = []
    for weight in weights:
        total += weight
        out.append(total)
    return out
