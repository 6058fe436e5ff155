"""Raw events into facts, or into the redacted records of why they cannot be used; and the compact form in which a
chunk's results cross from a translating process to the ingesting one."""

from __future__ import annotations

import marshal
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from batchops.facts import Parsed
from batchops.inbound import Unusable, translate
from batchops.redaction import redact
from batchops.views import RejectedEvent

_VALUE_IN_TEXT = re.compile(r'("(?:value|Value|command|parameters)"\s*:\s*)("(?:[^"\\]|\\.)*"|\[[^\]]*\]|\{[^}]*\})')


@dataclass(frozen=True, slots=True)
class RawEvent:
    """One decoded event, or the text and error of a line that could not be decoded."""

    value: Any
    line: int
    error: str | None = None
    text: str | None = None


def expand(value: Any, line: int) -> Iterator[RawEvent]:
    """The events of a decoded line: each element of a JSON array, or the value itself."""
    if isinstance(value, list):
        for item in value:
            yield RawEvent(item, line)
    else:
        yield RawEvent(value, line)


def scrub_text(text: str) -> str:
    """Best-effort redaction of text that is not valid JSON: blank every value, command and parameter."""
    return _VALUE_IN_TEXT.sub(lambda m: m.group(1) + '"<redacted>"', text)


def translate_raw(raw: RawEvent) -> Parsed | RejectedEvent:
    """A decoded event's fact, or the redacted record of why it cannot be used."""
    if raw.error is not None:
        return RejectedEvent(
            reason=f"line {raw.line}: {raw.error}",
            rejected=True,
            detail_type=None,
            account_id=None,
            region=None,
            body=scrub_text(raw.text or ""),
            received_at=now(),
        )
    result = translate(raw.value)
    if isinstance(result, Parsed):
        return result
    return kept_aside(result, raw)


def translate_lines(start: int, lines: list[bytes]) -> bytes:
    """Decode and translate lines numbered from `start`; the results marshalled (see `from_wire`).

    `marshal`, not JSON, between the worker and this process: the results are plain lists, dicts and scalars, made
    and read by the same Python, and `marshal.loads` takes 1.1 µs an event on the bench stream where orjson takes 2.3
    (marshal is not for data from elsewhere: only the worker's own output is read this way)."""
    out: list[list[Any]] = []
    for number, line in enumerate(lines, start=start):
        if not line.strip():
            continue
        try:
            value = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            raws: Iterable[RawEvent] = (
                RawEvent(None, number, f"invalid JSON: {exc}", line[:4000].decode("utf-8", "replace")),
            )
        else:
            raws = expand(value, number)
        for raw in raws:
            result = translate_raw(raw)
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


def kept_aside(result: Unusable, raw: RawEvent) -> RejectedEvent:
    """An unusable event as it is kept: redacted, with its reason."""
    return RejectedEvent(
        reason=result.reason,
        rejected=result.rejected,
        detail_type=result.detail_type,
        account_id=result.account,
        region=result.region,
        body=orjson.dumps(redact(raw.value)).decode(),
        received_at=now(),
    )


def now() -> str:
    """The current time as the views write it (ISO-8601 UTC, milliseconds)."""
    return datetime.now(tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
