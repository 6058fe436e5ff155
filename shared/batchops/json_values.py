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

CHUNK_BYTES = 1 << 20
"""Bytes read at a time."""
NEAR_END = 256 * 1024
"""An error this close to the end of what has been read may be the value going on past it: more is read first (an
EventBridge event is at most 256 KB)."""
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


def json_values(stream: IO[bytes], first: bytes) -> Iterator[RawEvent]:
    """The values of the stream, whose first line (`first`) the caller has read already; each element of an array is a
    value of its own."""
    decoder = json.JSONDecoder(parse_constant=_constant)  # orjson's rules: NaN and Infinity are not JSON
    utf8 = codecs.getincrementaldecoder("utf-8")("surrogateescape")
    text = ""
    pos = 0
    line = 1  # the line of `text[pos]`
    ended = False
    in_array = False
    undecodable = False  # some text read so far was not UTF-8

    def read_more(data: bytes | None = None) -> None:
        nonlocal text, pos, ended, undecodable
        if data is None:
            data = stream.read(CHUNK_BYTES)
            ended = not data
        new = utf8.decode(data, final=ended)
        if not undecodable and not data.isascii() and _UNDECODABLE.search(new):
            undecodable = True
        text = text[pos:] + new
        pos = 0

    def advance(to: int) -> None:
        nonlocal pos, line
        line += text.count("\n", pos, to)
        pos = to

    def column(at: int) -> int:
        return at - (text.rfind("\n", 0, at) + 1)

    def skip_value() -> int:
        """Skip the value at `pos` by its brackets, reading on as needed (memory stays bounded); its bytes as
        written."""
        depth = 0
        size = 0
        scan = pos
        if text[pos] not in '[{"':  # a bare number or constant: up to the next delimiter
            while (bare := _BARE.match(text, pos)) is not None and bare.end() >= len(text) and not ended:
                read_more()
            end = bare.end() if bare is not None else pos + 1
            size = len(text[pos:end].encode("utf-8", "surrogateescape"))
            advance(max(end, pos + 1))
            return size
        in_string = False
        while True:
            if in_string:  # a string that went on past the last buffer
                rest = _STRING_REST.match(text, scan)
                assert rest is not None  # the pattern matches the empty string
                scan = rest.end()
                in_string = not (rest.group().endswith('"') and rest.end() > rest.start())
            for match in [] if in_string else _BRACKET_OR_STRING.finditer(text, scan):
                token = match.group()
                if match.end() >= len(text) - 1 and not ended and token[0] == '"' and not _closed(token):
                    in_string = True  # it goes on past what is read: what is read of it is skipped
                    scan = match.end()
                    break
                scan = match.end()
                if token[0] == '"':
                    continue
                depth += 1 if token in "[{" else -1
                if depth <= 0:
                    size += len(text[pos:scan].encode("utf-8", "surrogateescape"))
                    advance(scan)
                    return size
            else:
                if not in_string:
                    scan = len(text)
            if ended:
                size += len(text[pos:].encode("utf-8", "surrogateescape"))
                advance(len(text))
                return size
            size += len(text[pos:scan].encode("utf-8", "surrogateescape"))
            advance(scan)
            read_more()
            scan = pos

    def resync(indent: int) -> None:
        """Move to the next line that opens a value at most `indent` deep (or to the end), reading on as needed."""
        while True:
            found = _LINE_OPENING.search(text, pos)
            while found is not None and len(found.group(1)) > indent:
                found = _LINE_OPENING.search(text, found.end())
            if found is not None:
                advance(found.start(1))
                return
            cut = text.rfind("\n", pos)
            if ended:
                advance(len(text))
                return
            # Keep the last line start (an opening may follow it), or a short tail of a long line already looked at.
            advance(max(cut, len(text) - 256, pos))
            read_more()

    def kept(reason: str, start_line: int, size: int | None = None) -> RawEvent:
        return RawEvent(None, start_line, reason, text[pos : pos + SCRUB_WINDOW], size)

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
        start_line = line
        try:
            value, end = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as error:
            # An error near the end of what is read, or a string still open there (the error is where it starts),
            # may be the value going on past it.
            going_on = error.pos >= len(text) - NEAR_END or error.msg.startswith("Unterminated string")
            if not ended and going_on:
                if len(text) - pos > LONGEST_VALUE:
                    head = text[pos : pos + SCRUB_WINDOW]
                    size = skip_value()  # its bytes as written, whitespace included: it is not decoded
                    yield RawEvent(None, start_line, oversized(size), head, size)
                    continue
                read_more()
                continue
            where = f"at line {line + text.count(chr(10), pos, error.pos)} column {column(error.pos) + 1}"
            undecodable_here = undecodable and _UNDECODABLE.search(text, pos, error.pos + 1)
            problem = "the text is not UTF-8" if undecodable_here else error.msg.removesuffix(" at")
            yield kept(f"invalid JSON: {problem} {where}", start_line)
            indent = column(pos)
            advance(pos + 1)
            resync(indent)
            continue
        except (RecursionError, ValueError) as error:  # nested too deep; NaN or Infinity; a number too long
            problem = "nested too deeply" if isinstance(error, RecursionError) else str(error).split(";")[0]
            yield kept(f"invalid JSON: {problem}", start_line)
            skip_value()
            continue
        if end >= len(text) and not ended:  # a number at the end of what is read may go on
            read_more()
            continue
        if undecodable and _UNDECODABLE.search(text, pos, end):
            yield kept("invalid JSON: the text is not UTF-8", start_line)
            advance(end)
            continue
        if end - pos > MAX_EVENT_BYTES // 4:  # shorter, it cannot be over the limit (4 bytes a character at most)
            try:
                size = entry_size(value)
            except (orjson.JSONEncodeError, OverflowError):
                size = 0  # what orjson cannot write, translation rejects
            if size > MAX_EVENT_BYTES:
                yield RawEvent(value, start_line, oversized(size), None, size)
                advance(end)
                continue
        yield RawEvent(value, start_line)
        advance(end)
