"""A file's lines sorted by event time by position, and read back from the file at those positions."""

from __future__ import annotations

import io
from pathlib import Path

from batchops import translation
from batchops.line_order import PositionedLines, SortedLines

EVENT = '{{"time": "{}", "source": "aws.batch", "detail-type": "Batch Job State Change", "detail": {{}}}}\n'


def test_lines_come_back_oldest_first_with_their_own_numbers_and_bytes(tmp_path: Path) -> None:
    lines = [
        EVENT.format("2026-12-02T00:00:00Z"),
        "\n",
        EVENT.format("2026-12-01T00:00:00Z"),
        "not json\n",
        EVENT.format("2026-12-02T00:00:00Z"),
        EVENT.format("2026-11-30T23:59:59Z"),
    ]
    path = tmp_path / "events.jsonl"
    path.write_text("".join(lines))
    with SortedLines(str(tmp_path)) as sorted_lines, path.open("rb") as stream:
        sorted_lines.scan(stream, 10)
        assert len(sorted_lines) == 5  # the blank line is left out
        positions = [p for chunk in sorted_lines.chunks(2) for p in chunk]
    assert [number for number, _, _ in positions] == [13, 15, 12, 10, 14]  # no time first, then by time and number
    data = path.read_bytes()
    assert [data[offset : offset + length].decode() for _, offset, length in positions] == [
        lines[n - 10] for n in (13, 15, 12, 10, 14)
    ]
    assert list(tmp_path.iterdir()) == [path]  # the sorting file is gone


def test_a_line_too_long_to_read_whole_is_translated_as_in_file_order(tmp_path: Path) -> None:
    """Positioned, a line of more than `READ_LINE_BYTES` is read as its first bytes and its size, as `bounded_lines`
    gives it, so it is kept aside with the same reason; the line after it is where it was."""
    huge = '{"time": "2026-12-01T00:00:00Z", "detail": "' + "x" * translation.READ_LINE_BYTES + '"}\n'
    after = EVENT.format("2026-12-01T00:00:01Z")
    path = tmp_path / "events.jsonl"
    path.write_text(huge + after)
    in_file_order = translation.translate_lines(1, list(translation.bounded_lines(io.BytesIO(path.read_bytes()))))
    with SortedLines(str(tmp_path)) as sorted_lines, path.open("rb") as stream:
        sorted_lines.scan(stream, 1)
        (chunk,) = sorted_lines.chunks(10)
    read = PositionedLines(str(path))
    try:
        positioned = read(chunk)
    finally:
        read.close()
    expected = list(translation.from_wire(in_file_order))
    got = list(translation.from_wire(positioned))
    assert len(got) == 2 and got[0].reason.startswith("line 1: event of 4,194,35")
    assert [(r.reason, r.body) for r in got] == [(r.reason, r.body) for r in expected]
