"""JSON that is not one value per line, decoded one value at a time: a pretty-printed event, a big array of events
spanning lines, or values one after the other as `jq` prints them. The text is read in chunks into a bounded buffer, so
memory stays flat whatever the size (an array of 50,000 pretty-printed events took 990 MiB when parsed whole).

A value that cannot be decoded is kept aside with its line, and decoding goes on from the next line.
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Iterator
from typing import IO

from batchops.translation import RawEvent

CHUNK_BYTES = 1 << 20
"""Bytes read at a time."""
NEAR_END = 256 * 1024
"""An error this close to the end of what has been read may be the value going on past it: more is read first (an
EventBridge event is at most 256 KB)."""
_BLANK = re.compile(r"[ \t\n\r]*")


def json_values(stream: IO[bytes], first: bytes) -> Iterator[RawEvent]:
    """The values of the stream, whose first line (`first`) the caller has read already; each element of an array is a
    value of its own."""
    decoder = json.JSONDecoder()
    utf8 = codecs.getincrementaldecoder("utf-8")()
    text = ""
    pos = 0
    line = 1  # the line of `text[pos]`
    ended = False
    in_array = False

    def read_more(data: bytes | None = None) -> None:
        nonlocal text, pos, ended
        if data is None:
            data = stream.read(CHUNK_BYTES)
            ended = not data
        text = text[pos:] + utf8.decode(data, final=ended)
        pos = 0

    def advance(to: int) -> None:
        nonlocal pos, line
        line += text.count("\n", pos, to)
        pos = to

    try:
        read_more(first)
        while True:
            blank = _BLANK.match(text, pos)
            advance(blank.end() if blank else pos)
            if pos >= len(text):
                if ended:
                    return
                read_more()
                continue
            char = text[pos]
            if in_array and char in ",]":
                in_array = char == ","
                advance(pos + 1)
                continue
            if not in_array and char == "[":
                in_array = True
                advance(pos + 1)
                continue
            try:
                value, end = decoder.raw_decode(text, pos)
            except json.JSONDecodeError as error:
                if not ended and error.pos >= len(text) - NEAR_END:
                    read_more()
                    continue
                stop = text.find("\n", pos)
                while stop < 0 and not ended:
                    read_more()
                    stop = text.find("\n", pos)
                stop = len(text) if stop < 0 else stop
                yield RawEvent(None, line, f"invalid JSON: {error.msg}", text[pos:stop][:4000])
                advance(stop)
                continue
            if end >= len(text) and not ended:  # a number at the end of what is read may go on
                read_more()
                continue
            yield RawEvent(value, line)
            advance(end)
    except UnicodeDecodeError as error:
        yield RawEvent(None, line, f"invalid JSON: the text is not UTF-8 ({error.reason}); the rest is not read", "")
