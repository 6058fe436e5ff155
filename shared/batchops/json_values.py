"""JSON that is not one value per line, decoded one value at a time: a pretty-printed event, a big array of events
spanning lines, or values one after the other as `jq` prints them. The text is read in chunks into a bounded buffer, so
memory stays flat whatever the size (an array of 50,000 pretty-printed events took 990 MiB when parsed whole).

Nothing in the text stops the reading. A value that cannot be decoded (broken, truncated, nested too deep, a number
too long, bytes that are not UTF-8) or that is bigger than an EventBridge entry is one kept-aside event with its line;
reading goes on with the next value, found as the next line that opens a value no deeper than the bad one did.
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Iterator
from typing import IO, Any

import orjson

from batchops.translation import MAX_EVENT_BYTES, SCRUB_WINDOW, RawEvent, entry_size, oversized
from batchops.tuning import DEFAULT_TUNING, Tuning

LONGEST_VALUE = 16 * MAX_EVENT_BYTES
"""Characters a value may span (whitespace included) before it is skipped unread as too big to be an event."""
_BLANK = re.compile(r"[ \t\n\r]*")
_UNDECODABLE = re.compile("[\udc80-\udcff]")  # the bytes that are not UTF-8, as `surrogateescape` keeps them
_BRACKET_OR_STRING = re.compile(r'"(?:[^"\\]++|\\.)*+"?|[\[\]{}]', re.DOTALL)
_LINE_OPENING = re.compile(r"\n([ \t]*)[{\[]")
_STRING_REST = re.compile(r'(?:[^"\\]++|\\.)*+"?', re.DOTALL)
_BARE = re.compile(r"[^\s,\]}]*")


def _closed(token: str) -> bool:
    """True for a whole string token (its last quote not escaped)."""
    if len(token) < 2 or not token.endswith('"'):
        return False
    body = token[1:-1]
    return (len(body) - len(body.rstrip("\\"))) % 2 == 0


def _constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def json_values(stream: IO[bytes], first: bytes, tuning: Tuning = DEFAULT_TUNING) -> Iterator[RawEvent]:
    """The values of the stream, whose first line (`first`) the caller has read already; each element of an array is a
    value of its own. `tuning` gives the bytes read at a time (`json_read_bytes`, `json_near_end`)."""
    return _Reader(stream, tuning.json_read_bytes, tuning.json_near_end).values(first)


class _Reader:
    """The text read so far from `stream` and the place in it: `text[pos]` is on line `line`."""

    def __init__(self, stream: IO[bytes], read_bytes: int, near_end: int) -> None:
        self.stream = stream
        self.read_bytes = read_bytes
        self.near_end = near_end
        self.decoder = json.JSONDecoder(parse_constant=_constant)  # orjson's rules: NaN and Infinity are not JSON
        self.utf8 = codecs.getincrementaldecoder("utf-8")("surrogateescape")
        self.text = ""
        self.pos = 0
        self.line = 1
        self.ended = False
        self.undecodable = False  # some text read so far was not UTF-8

    def values(self, first: bytes) -> Iterator[RawEvent]:
        """The values, one event each, reading on as needed; nothing in the text stops the reading."""
        self.read_more(first)
        in_array = False
        while True:
            blank = _BLANK.match(self.text, self.pos)
            self.advance(blank.end() if blank else self.pos)
            text, pos = self.text, self.pos
            if pos >= len(text):
                if self.ended:
                    return
                self.read_more()
                continue
            char = text[pos]
            if in_array and char in ",]":
                in_array = char == ","
                self.advance(pos + 1)
                continue
            if not in_array and char == "[":
                in_array = True
                self.advance(pos + 1)
                continue
            start_line = self.line
            try:
                value, end = self.decoder.raw_decode(text, pos)
            except json.JSONDecodeError as error:
                if self.ended or not _going_on(error, len(text), self.near_end):
                    yield self.invalid(error, start_line)
                    self.resync_after(pos)
                elif len(text) - pos > LONGEST_VALUE:
                    head = text[pos : pos + SCRUB_WINDOW]
                    size = self.skip_value()  # its bytes as written, whitespace included: it is not decoded
                    yield RawEvent(None, start_line, oversized(size), head, size)
                else:
                    self.read_more()
                continue
            except (RecursionError, ValueError) as error:  # nested too deep; NaN or Infinity; a number too long
                problem = "nested too deeply" if isinstance(error, RecursionError) else str(error).split(";")[0]
                yield self.kept(f"invalid JSON: {problem}", start_line)
                self.skip_value()
                continue
            if end >= len(text) and not self.ended:  # a number at the end of what is read may go on
                self.read_more()
                continue
            yield self.decoded(value, start_line, end)
            self.advance(end)

    def read_more(self, data: bytes | None = None) -> None:
        """Append the next chunk (or `data`) to what is left of the text from `pos`, which becomes 0."""
        if data is None:
            data = self.stream.read(self.read_bytes)
            self.ended = not data
        new = self.utf8.decode(data, final=self.ended)
        if not self.undecodable and not data.isascii() and _UNDECODABLE.search(new):
            self.undecodable = True
        self.text = self.text[self.pos :] + new
        self.pos = 0

    def advance(self, to: int) -> None:
        self.line += self.text.count("\n", self.pos, to)
        self.pos = to

    def column(self, at: int) -> int:
        return at - (self.text.rfind("\n", 0, at) + 1)

    def kept(self, reason: str, start_line: int, size: int | None = None) -> RawEvent:
        return RawEvent(None, start_line, reason, self.text[self.pos : self.pos + SCRUB_WINDOW], size)

    def invalid(self, error: json.JSONDecodeError, start_line: int) -> RawEvent:
        """The value at `pos` kept aside as not JSON, with where the decoding failed."""
        text, pos = self.text, self.pos
        where = f"at line {self.line + text.count(chr(10), pos, error.pos)} column {self.column(error.pos) + 1}"
        undecodable_here = self.undecodable and _UNDECODABLE.search(text, pos, error.pos + 1)
        problem = "the text is not UTF-8" if undecodable_here else error.msg.removesuffix(" at")
        return self.kept(f"invalid JSON: {problem} {where}", start_line)

    def resync_after(self, pos: int) -> None:
        """Past the bad value that opens at `pos`, to the next line opening a value no deeper than it."""
        indent = self.column(pos)
        self.advance(pos + 1)
        self.resync(indent)

    def decoded(self, value: Any, start_line: int, end: int) -> RawEvent:
        """The event for the value decoded from `pos` to `end`: kept aside if not UTF-8 or too big for an entry."""
        if self.undecodable and _UNDECODABLE.search(self.text, self.pos, end):
            return self.kept("invalid JSON: the text is not UTF-8", start_line)
        if end - self.pos > MAX_EVENT_BYTES // 4:  # shorter, it cannot be over the limit (4 bytes a character at most)
            try:
                size = entry_size(value)
            except (orjson.JSONEncodeError, OverflowError):
                size = 0  # what orjson cannot write, translation rejects
            if size > MAX_EVENT_BYTES:
                return RawEvent(value, start_line, oversized(size), None, size)
        return RawEvent(value, start_line)

    def written_size(self, end: int) -> int:
        """The bytes from `pos` to `end` as written."""
        return len(self.text[self.pos : end].encode("utf-8", "surrogateescape"))

    def skip_value(self) -> int:
        """Skip the value at `pos` by its brackets, reading on as needed (memory stays bounded); its bytes as
        written."""
        if self.text[self.pos] not in '[{"':
            return self.skip_bare()
        depth = 0
        size = 0
        scan = self.pos
        in_string = False
        while True:
            if in_string:  # a string that went on past the last buffer
                rest = _STRING_REST.match(self.text, scan)
                assert rest is not None  # the pattern matches the empty string
                scan = rest.end()
                in_string = not (rest.group().endswith('"') and rest.end() > rest.start())
            text = self.text
            for match in [] if in_string else _BRACKET_OR_STRING.finditer(text, scan):
                token = match.group()
                if match.end() >= len(text) - 1 and not self.ended and token[0] == '"' and not _closed(token):
                    in_string = True  # it goes on past what is read: what is read of it is skipped
                    scan = match.end()
                    break
                scan = match.end()
                if token[0] == '"':
                    continue
                depth += 1 if token in "[{" else -1
                if depth <= 0:
                    size += self.written_size(scan)
                    self.advance(scan)
                    return size
            else:
                if not in_string:
                    scan = len(text)
            if self.ended:
                size += self.written_size(len(text))
                self.advance(len(text))
                return size
            size += self.written_size(scan)
            self.advance(scan)
            self.read_more()
            scan = self.pos

    def skip_bare(self) -> int:
        """Skip a bare number or constant at `pos`: up to the next delimiter; its bytes as written."""
        pos = self.pos
        while (bare := _BARE.match(self.text, pos)) is not None and bare.end() >= len(self.text) and not self.ended:
            self.read_more()
            pos = self.pos
        end = bare.end() if bare is not None else pos + 1
        size = self.written_size(end)
        self.advance(max(end, pos + 1))
        return size

    def resync(self, indent: int) -> None:
        """Move to the next line that opens a value at most `indent` deep (or to the end), reading on as needed."""
        while True:
            text, pos = self.text, self.pos
            found = _LINE_OPENING.search(text, pos)
            while found is not None and len(found.group(1)) > indent:
                found = _LINE_OPENING.search(text, found.end())
            if found is not None:
                self.advance(found.start(1))
                return
            cut = text.rfind("\n", pos)
            if self.ended:
                self.advance(len(text))
                return
            # Keep the last line start (an opening may follow it), or a short tail of a long line already looked at.
            self.advance(max(cut, len(text) - 256, pos))
            self.read_more()


def _going_on(error: json.JSONDecodeError, read: int, near_end: int) -> bool:
    """True if the error, near the end of the `read` characters or a string still open there (the error is where it
    starts), may be the value going on past them."""
    return error.pos >= read - near_end or error.msg.startswith("Unterminated string")
