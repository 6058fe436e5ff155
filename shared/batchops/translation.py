"""Raw events into facts, or into the records of why they cannot be used; and the compact form in which a chunk's
results cross from a translating process to the ingesting one.

A kept-aside record is an allow-list: the envelope's identifying fields, the reason, the position in the input, the
size when that is the reason, and a redacted excerpt (every scalar under a user-data key replaced, also in text that is
not JSON; scrubbed before it is cut). One size rule for every path (a file, a pipe, an SQS body): EventBridge's limit
of 256 KB per entry, measured as the UTF-8 bytes of the entry's JSON.
"""

from __future__ import annotations

import marshal
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import IO, Any

import orjson

from batchops.facts import Parsed
from batchops.inbound import Unusable, translate, valid_account, valid_region
from batchops.redaction import redact, scrub_text, without_surrogates
from batchops.views import RejectedEvent

MAX_EVENT_BYTES = 256 * 1024
"""EventBridge's limit for one entry (PutEvents), the UTF-8 bytes of its JSON: nothing bigger is a real event."""
READ_LINE_BYTES = 16 * MAX_EVENT_BYTES
"""A line longer than this is not read whole (only its size is measured): even a line holding an array of events
that big is kept aside for its size."""
EXCERPT_CHARS = 2000
"""Characters of the redacted text a kept-aside record shows."""
SCRUB_WINDOW = 64 * 1024
"""Characters scrubbed before the excerpt is cut from them (scrubbing first: a cut never leaves a secret's start)."""
_ENVELOPE_KEYS = ("id", "version", "source", "detail-type", "account", "region", "time")
_ENVELOPE_IN_TEXT = re.compile(r'"(id|version|source|detail-type|account|region|time)"\s*:\s*"([^"\\\n]{0,200})"')
_DETAIL_IN_TEXT = re.compile(r'"detail"\s*:')
_PLAIN = re.compile(r"[^\x00-\x1f\x7f\ud800-\udfff]{1,200}")


@dataclass(frozen=True, slots=True)
class RawEvent:
    """One decoded event, or the text and error of a line that could not be decoded (`size`: over the limit)."""

    value: Any
    line: int
    error: str | None = None
    text: str | None = None
    size: int | None = None


class OversizedLine(bytes):
    """The first bytes of a line too long to be read whole (more than an event holds), with the line's full size."""

    size: int


def bounded_lines(stream: IO[bytes]) -> Iterator[bytes]:
    """The stream's lines; one longer than `READ_LINE_BYTES` is not held in memory: its first `SCRUB_WINDOW` bytes
    come as an `OversizedLine` that knows its size."""
    while line := stream.readline(READ_LINE_BYTES):
        if len(line) < READ_LINE_BYTES or line.endswith(b"\n"):
            yield line
            continue
        size = len(line)
        rest = line
        while not rest.endswith(b"\n") and (rest := stream.readline(1 << 20)):
            size += len(rest)
        long = OversizedLine(line[: MAX_EVENT_BYTES + 1])  # longer than an event: the fast paths never take it
        long.size = size - 1 if rest.endswith(b"\n") else size
        yield long


def oversized(size: int) -> str:
    """The reason an event of `size` bytes is kept aside."""
    return f"event of {size:,} bytes is over EventBridge's limit of {MAX_EVENT_BYTES:,} bytes per entry: body not kept"


def entry_size(value: Any) -> int:
    """An entry's size as EventBridge measures it: the UTF-8 bytes of its JSON."""
    return len(orjson.dumps(value))


def decode_line(number: int, line: bytes) -> Iterator[RawEvent]:
    """The events of one line of JSON Lines (an event, or an array of events), or why it cannot be read."""
    if len(line) <= MAX_EVENT_BYTES:  # the common case: nothing to measure
        try:
            value = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            yield RawEvent(None, number, f"invalid JSON: {exc}", line[:SCRUB_WINDOW].decode("utf-8", "replace"))
            return
        yield from expand(value, number)
        return
    if isinstance(line, OversizedLine):
        head = line[:SCRUB_WINDOW].decode("utf-8", "replace")
        yield RawEvent(None, number, oversized(line.size), head, line.size)
        return
    try:
        value = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        yield RawEvent(None, number, f"invalid JSON: {exc}", line[:SCRUB_WINDOW].decode("utf-8", "replace"))
        return
    for raw in expand(value, number):
        size = entry_size(raw.value)
        yield raw if size <= MAX_EVENT_BYTES else RawEvent(raw.value, number, oversized(size), None, size)


def expand(value: Any, line: int) -> Iterator[RawEvent]:
    """The events of a decoded line: each element of a JSON array, or the value itself."""
    if isinstance(value, list):
        for item in value:
            yield RawEvent(item, line)
    else:
        yield RawEvent(value, line)


def translate_raw(raw: RawEvent) -> Parsed | RejectedEvent:
    """A decoded event's fact, or the record of why it cannot be used."""
    if raw.error is not None:
        position = f"line {raw.line}"
        if raw.size is not None:
            return _record(f"{position}: {raw.error}", True, position, raw.value, raw.text, raw.size, excerpt=False)
        return _record(f"{position}: {raw.error}", True, position, None, raw.text or "", None)
    result = translate(raw.value)
    if isinstance(result, Parsed):
        return result
    return kept_aside(result, raw.value, f"line {raw.line}")


def translate_body(body: str, position: str) -> Parsed | RejectedEvent:
    """An SQS message body (one EventBridge event) as a fact or a kept-aside record, by the same rules as a line of
    a file. A body that is not JSON raises (orjson's error): it is a poison message."""
    if len(body) > MAX_EVENT_BYTES // 4:  # shorter, it cannot be over the limit in UTF-8 (4 bytes a character at most)
        size = len(body.encode("utf-8", "surrogatepass"))
        if size > MAX_EVENT_BYTES:
            return _record(oversized(size), True, position, None, body[:SCRUB_WINDOW], size, excerpt=False)
    value = orjson.loads(body)
    result = translate(value)
    if isinstance(result, Parsed):
        return result
    return kept_aside(result, value, position)


def poison_record(reason: str, body: str, position: str) -> RejectedEvent:
    """The record of a message that failed for a reason of its own: its text scrubbed, then cut."""
    return _record(reason, True, position, None, body, None)


def kept_aside(result: Unusable, value: Any, position: str) -> RejectedEvent:
    """An unusable decoded event as it is kept: allow-listed, redacted, with its reason."""
    return _record(
        result.reason,
        result.rejected,
        position,
        value,
        None,
        None,
        detail_type=result.detail_type,
        account=result.account,
        region=result.region,
    )


def _record(
    reason: str,
    rejected: bool,
    position: str,
    value: Any,
    text: str | None,
    size: int | None,
    *,
    excerpt: bool = True,
    detail_type: str | None = None,
    account: str | None = None,
    region: str | None = None,
) -> RejectedEvent:
    if text is not None:
        text = without_surrogates(text[:SCRUB_WINDOW])
    envelope = _envelope(value) if text is None else _envelope_in_text(text)
    shown = ""
    if excerpt:
        shown = _excerpt_of_value(value) if text is None else scrub_text(text)[:EXCERPT_CHARS]
    if detail_type is None:
        detail_type = envelope.get("detail-type")
    account = account or envelope.get("account")
    region = region or envelope.get("region")
    record: dict[str, Any] = {"position": position, "envelope": envelope, "excerpt": shown}
    if size is not None:
        record["size"] = size
    return RejectedEvent(
        reason=reason,
        rejected=rejected,
        detail_type=detail_type,
        account_id=account if account is not None and valid_account(account) else None,
        region=region if region is not None and valid_region(region) else None,
        body=orjson.dumps(record).decode(),
        received_at=now(),
    )


def _plain(value: Any) -> str | None:
    """A short printable string, or None."""
    return value if isinstance(value, str) and _PLAIN.fullmatch(value) else None


def _envelope(value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        return {}
    return {key: text for key in _ENVELOPE_KEYS if (text := _plain(value.get(key))) is not None}


def _envelope_in_text(text: str) -> dict[str, str]:
    """The envelope's fields found before `"detail"` (where EventBridge writes them) in text that is not JSON."""
    head = text[:SCRUB_WINDOW]
    detail = _DETAIL_IN_TEXT.search(head)
    found: dict[str, str] = {}
    for match in _ENVELOPE_IN_TEXT.finditer(head, 0, detail.start() if detail else len(head)):
        if (plain := _plain(match.group(2))) is not None:
            found.setdefault(match.group(1), plain)
    return found


def _excerpt_of_value(value: Any) -> str:
    try:
        text = orjson.dumps(redact(value)).decode()
    except RecursionError:
        return "<nested too deeply to show>"
    return text[:EXCERPT_CHARS]


def translate_lines(start: int, lines: list[bytes]) -> bytes:
    """Decode and translate lines numbered from `start`; the results marshalled (see `translate_numbered`)."""
    return translate_numbered(enumerate(lines, start=start))


def translate_numbered(lines: Iterable[tuple[int, bytes]]) -> bytes:
    """Decode and translate lines, each with its own number; the results marshalled (see `from_wire`).

    `marshal`, not JSON, between the worker and this process: the results are plain lists, dicts and scalars, made
    and read by the same Python, and `marshal.loads` takes 1.1 µs an event on the bench stream where orjson takes 2.3
    (marshal is not for data from elsewhere: only the worker's own output is read this way)."""
    out: list[list[Any]] = []
    for number, line in lines:
        if not line.strip():
            continue
        results: Iterable[Parsed | RejectedEvent]
        if len(line) <= MAX_EVENT_BYTES:  # the common case, without the detours of `decode_line`
            try:
                value = orjson.loads(line)
            except orjson.JSONDecodeError:
                value = None
            if isinstance(value, dict):
                fact = translate(value)
                results = (fact if isinstance(fact, Parsed) else kept_aside(fact, value, f"line {number}"),)
            else:
                results = map(translate_raw, decode_line(number, line))
        else:
            results = map(translate_raw, decode_line(number, line))
        for result in results:
            if isinstance(result, Parsed):
                out.append([result.kind, result.account, result.region, result.key, result.fact])
            else:
                out.append(
                    [
                        result.reason,
                        result.rejected,
                        result.detail_type,
                        result.account_id,
                        result.region,
                        result.body,
                        result.received_at,
                    ]
                )
    return marshal.dumps(out)


def from_wire(data: bytes) -> Iterator[Parsed | RejectedEvent]:
    """The results `translate_lines` marshalled, in order."""
    for item in marshal.loads(data):
        if len(item) == 5:
            yield Parsed(*item)
        else:
            yield RejectedEvent(*item)


def now() -> str:
    """The current time as the views write it (ISO-8601 UTC, milliseconds)."""
    return datetime.now(tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
