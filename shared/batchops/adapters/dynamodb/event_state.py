"""The state of an event in the DynamoDB event store, compressed: what the library's mapper calls a compressor.

The events table is the one that only grows (every event, for as long as the store is kept), and an event item is
written once per event, in a transaction when an aggregate gets several at once (2 units per started KB). Its
state, JSON of a few hundred bytes, packs with zlib primed with one typical state of each event class
(`event_state_dictionary_v1.jsonl`) to ~40% of its size: every event item fits one write unit and the table holds
half the bytes (docs/dynamodb-capacity.md, section 6).

A state stored before it was compressed is JSON (it starts with `{`): it is read as it is, so a table written before
stays readable; the embedded SQLite store does not compress (its appends are CPU-bound, its bytes are free).
"""

from __future__ import annotations

from eventsourcing.persistence import Compressor

from batchops.adapters.dynamodb.primed_zlib import PrimedZlib

_CODEC = PrimedZlib("an event's state", {b"\x01": "event_state_dictionary_v1.jsonl"})

TOPIC = f"{__name__}:EventStateCompressor"
"""What the application's environment names (`COMPRESSOR_TOPIC`) for the DynamoDB store."""


class EventStateCompressor(Compressor):
    def compress(self, data: bytes) -> bytes:
        return _CODEC.pack(data)

    def decompress(self, data: bytes) -> bytes:
        if data[:1] == b"{":  # stored before states were compressed
            return data
        return _CODEC.unpack(data)
