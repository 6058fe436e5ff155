"""Time conversions: every instant inside batchops is epoch milliseconds (int), shown as ISO-8601 UTC."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import lru_cache


def iso_ms(epoch_ms: int | None) -> str | None:
    """Format epoch milliseconds as `2025-11-13T02:13:20.000Z` (None stays None)."""
    if epoch_ms is None:
        return None
    seconds, millis = divmod(int(epoch_ms), 1000)
    day, second_of_day = divmod(seconds, 86_400)
    hour, second_of_hour = divmod(second_of_day, 3600)
    minute, second = divmod(second_of_hour, 60)
    return f"{_iso_day(day)}T{hour:02d}:{minute:02d}:{second:02d}.{millis:03d}Z"


@lru_cache(maxsize=4096)
def _iso_day(day: int) -> str:
    """The date of a day since the epoch: a stream spans few days, and strftime per instant was a tenth of a replay."""
    return datetime.fromtimestamp(day * 86_400, tz=UTC).strftime("%Y-%m-%d")


def parse_instant(text: str) -> int:
    """Parse an ISO-8601 instant (any number of fraction digits, `Z` or offset) to epoch milliseconds."""
    try:
        moment = datetime.fromisoformat(text)  # Python 3.11 reads `Z` and any number of fraction digits
    except ValueError:
        moment = _parse_lenient(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return round(moment.timestamp() * 1000)


def _parse_lenient(text: str) -> datetime:
    """What `fromisoformat` refuses: surrounding blanks, a lowercase `z`."""
    value = text.strip()
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    head, sep, rest = value.partition(".")
    if sep:
        digits = ""
        tail = ""
        for i, ch in enumerate(rest):
            if not ch.isdigit():
                tail = rest[i:]
                break
            digits += ch
        value = head + "." + (digits + "000000")[:6] + tail
    return datetime.fromisoformat(value)


def seconds_between(start_ms: int | None, end_ms: int | None) -> float | None:
    """Seconds from start to end, or None when either is unknown or the order is impossible."""
    if start_ms is None or end_ms is None or end_ms < start_ms:
        return None
    return (end_ms - start_ms) / 1000
