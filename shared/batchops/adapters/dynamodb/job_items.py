"""A job item's layout: its keys in plain attributes, everything else in one compressed attribute.

DynamoDB bills a write per started KB of the item, and a job item is the view write made most often. Written as
plain attributes (some 50 contract fields, each with its name) plus the compressed fold and timeline, the average
job item was ~2.7 KB: 3 write units. The row and the fold say much the same things (the same ARNs, names and
times) in the same JSON shapes every time, so they are packed together as one zlib stream primed with a preset
dictionary of typical job items (`PrimedZlib`, `job_item_dictionary_v1.jsonl`), and the timeline, a function of the fold
(`timeline_rows`), is not stored: ~0.95 KB, mostly 1 write unit (docs/dynamodb-capacity.md, section 6).

Plain, because DynamoDB reads them: the key, the revision and generation, the index keys and the TTL. A reader
decodes the rest with `job_parts`, which also reads items of the earlier layout (every field plain), so a table
written before this layout stays readable until a replay rewrites it.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from typing import Any, NamedTuple

import orjson

from batchops.adapters.dynamodb.primed_zlib import PrimedZlib
from batchops.projection import JOB_EXTRA_FIELDS, JOB_FIELDS, LIST_FIELDS, timeline_rows

JOB_COLUMNS = (*JOB_FIELDS, *JOB_EXTRA_FIELDS)
PACKED = "job"
"""The attribute that holds a job item's row and fold."""
PLAIN = (
    "pk",
    "rev",
    "gen",
    "by_queue",
    "by_status",
    "status_since",
    "by_job_id",
    "by_instance",
    "created_at",
    "expires_at",
)
"""The attributes of a job item DynamoDB itself reads (key, condition, index keys, TTL): never packed. A row field
among them (`created_at`, the range key of two indexes) is stored plain only."""

_PLAIN = frozenset(PLAIN)
_CODEC = PrimedZlib("a job item", {b"\x01": "job_item_dictionary_v1.jsonl"})


class JobParts(NamedTuple):
    row: dict[str, Any]
    timeline: list[dict[str, Any]]
    fold: dict[str, Any] | None


def pack_job(row: Mapping[str, Any], fold: Mapping[str, Any]) -> bytes:
    """The packed attribute of a job item (None fields of the row are left out, as a plain item leaves them out)."""
    return _CODEC.pack(orjson.dumps(job_payload(row, fold)))


def job_payload(row: Mapping[str, Any], fold: Mapping[str, Any]) -> list[Any]:
    """What a job item packs: the row but its plain fields, and the fold."""
    return [{k: v for k, v in row.items() if v is not None and k not in _PLAIN}, fold]


def unpack_job(blob: bytes) -> tuple[dict[str, Any], dict[str, Any]]:
    """The row (without its plain fields) and the fold of a packed attribute."""
    stored_row, fold = orjson.loads(_CODEC.unpack(blob))
    return stored_row, fold


def stored_job_row(values: Mapping[str, Any]) -> dict[str, Any]:
    """A job item's contract row, from its attribute values (`from_item`), in either layout."""
    packed = values.get(PACKED)
    if packed is None:
        return _contract_row(values)
    return _contract_row({**values, **unpack_job(bytes(packed))[0]})


def job_row_and_fold(values: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """A job item's row and fold, from its attribute values (`from_item`), in either layout (no timeline: it costs
    a formatted time per state change, and only readers that show it need it)."""
    packed = values.get(PACKED)
    if packed is not None:
        stored_row, fold = unpack_job(bytes(packed))
        return _contract_row({**values, **stored_row}), fold
    return _contract_row(values), _unpack_plain(values["fold"]) if values.get("fold") else None


def job_parts(values: Mapping[str, Any]) -> JobParts:
    """A job item's row, timeline and fold, from its attribute values (`from_item`), in either layout."""
    row, fold = job_row_and_fold(values)
    if PACKED in values:
        timeline = timeline_rows(fold) if fold else []
    else:
        timeline = _unpack_plain(values["timeline"]) if values.get("timeline") else []
    return JobParts(row, timeline, fold)


def job_fold_of_item(item: Mapping[str, Any]) -> dict[str, Any] | None:
    """The fold of a job item as DynamoDB returns it (typed attributes), in either layout."""
    if PACKED in item:
        return unpack_job(bytes(item[PACKED]["B"]))[1]
    return _unpack_plain(item["fold"]["B"]) if "fold" in item else None


def _contract_row(values: Mapping[str, Any]) -> dict[str, Any]:
    """Every contract column (None when absent); a list field an item written before it existed reads as empty."""
    row = {c: values.get(c) for c in JOB_COLUMNS}
    for column in LIST_FIELDS:
        if row[column] is None:
            row[column] = []
    return row


def _unpack_plain(blob: Any) -> Any:
    return orjson.loads(zlib.decompress(bytes(blob)))
