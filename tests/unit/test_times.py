"""Instants as ISO-8601 UTC text: the same text as the standard library's, for any instant a job can have."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from batchops.times import iso_ms, parse_instant


@given(st.integers(min_value=0, max_value=253_402_300_799_999))  # 1970 to 9999: four-digit years
def test_iso_ms_is_the_standard_librarys_text_and_reads_back(epoch_ms: int) -> None:
    expected = (
        datetime.fromtimestamp(epoch_ms // 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{epoch_ms % 1000:03d}Z"
    )
    assert iso_ms(epoch_ms) == expected
    assert parse_instant(expected) == epoch_ms


def test_none_stays_none() -> None:
    assert iso_ms(None) is None
