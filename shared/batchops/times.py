"""Time conversions: every instant inside batchops is epoch milliseconds (int), shown as ISO-8601 UTC."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import lru_cache

_TWO_DIGITS = tuple(f"{i:02d}" for i in range(60))
_THREE_DIGITS = tuple(f"{i:03d}" for i in range(1000))


def iso_ms(epoch_ms: int | None) -> str | None:
    """Format epoch milliseconds as `2025-11-13T02:13:20.000Z` (None stays None)."""
    if epoch_ms is None:
        return None
    # Formatting with field widths was a tenth of a replay's job rows; these are lookups and one join.
    minute, millis_of_minute = divmod(int(epoch_ms), 60_000)
    second, millis = divmod(millis_of_minute, 1000)
    return f"{_iso_minute(minute)}{_TWO_DIGITS[second]}.{_THREE_DIGITS[millis]}Z"


@lru_cache(maxsize=16384)
def _iso_minute(minute: int) -> str:
    """`2025-11-13T02:13:` of a minute since the epoch (a job's instants share few minutes)."""
    day, minute_of_day = divmod(minute, 1440)
    hour, minute_of_hour = divmod(minute_of_day, 60)
    return f"{_iso_day(day)}T{hour:02d}:{minute_of_hour:02d}:"


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
