"""The library's JSON format for stored events, written and read with orjson.

eventsourcing's `JSONTranscoder` runs the standard `json` module with an object hook on every dict; decoding
was a quarter of replay's time. This transcoder produces and accepts the same bytes (compact separators, UTF-8,
registered types as `{"_type_": name, "_data_": value}`), so stores written by either read with both.

orjson writes UUIDs and datetimes natively; to keep the format, registered types are tagged before orjson sees
them: at the top level of the state (where the library puts `timestamp`), and datetimes at any depth (orjson
hands them back to `default`). A UUID nested inside a value would come back as its string: stored events carry
none (the originator id is a column), and `tests/unit/test_transcoder.py` holds every event type to that.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

import orjson
from eventsourcing.persistence import JSONTranscoder, Mapper, StoredEvent
from eventsourcing.utils import get_topic

_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_NON_STR_KEYS
_TAG = b'"_type_":'


class OrjsonTranscoder(JSONTranscoder):
    """`JSONTranscoder`'s format at orjson's speed."""

    def encode(self, obj: Any) -> bytes:
        """Encode as the library's JSON (registered types tagged)."""
        if isinstance(obj, dict):
            types = self.types
            obj = {k: (self._encode_obj(v) if type(v) in types else v) for k, v in obj.items()}
        return orjson.dumps(obj, default=self._encode_obj, option=_OPTIONS)

    def decode(self, data: bytes) -> Any:
        """Decode the library's JSON, turning tagged values back into their types."""
        value = orjson.loads(data)
        tags = data.count(_TAG)
        if not tags:
            return value
        if isinstance(value, dict):
            found = 0
            for key, item in value.items():
                if type(item) is dict and len(item) == 2 and "_type_" in item:
                    value[key] = self._decode_obj(item)
                    found += 1
            if found == tags:
                return value
        return self._decode_nested(value)

    def _decode_nested(self, value: Any) -> Any:
        if type(value) is dict:
            return self._decode_obj({k: self._decode_nested(v) for k, v in value.items()})
        if type(value) is list:
            return [self._decode_nested(v) for v in value]
        return value


class OrjsonMapper(Mapper[UUID]):
    """The library's mapper, with a direct path for batchops' own domain events (when nothing compresses or
    encrypts): the same stored bytes as `to_stored_event` through `OrjsonTranscoder`, without its generic steps.

    Those events carry a `timestamp` datetime and JSON-native values only (`tests/unit/test_transcoder.py` holds every
    event type to that, and compares both paths byte for byte); any other event takes the library's path."""

    fast_classes: frozenset[type] = frozenset()
    """Event classes taking the direct path (set by the application: its aggregates' event classes)."""

    def to_stored_event(self, domain_event: Any) -> StoredEvent:
        """The stored event of a domain event."""
        if type(domain_event) not in self.fast_classes or self.compressor is not None or self.cipher is not None:
            return super().to_stored_event(domain_event)
        originator_id, originator_version, topic, state = self._direct(domain_event)
        return StoredEvent(originator_id=originator_id, originator_version=originator_version, topic=topic, state=state)

    def stored_rows(self, domain_events: list[Any]) -> list[tuple[UUID, int, str, bytes]] | None:
        """(originator id, originator version, topic, state) of each event: what `to_stored_event` gives, as plain
        tuples for a recorder's `insert_rows` (without a StoredEvent object per event, unpacked again by the recorder:
        on the bench stream, 0.4 s less of the ingest process's 8.7 s); None unless every event takes the direct
        path."""
        if self.compressor is not None or self.cipher is not None:
            return None
        fast = self.fast_classes
        if any(type(event) not in fast for event in domain_events):
            return None
        return [self._direct(event) for event in domain_events]

    @staticmethod
    def _direct(domain_event: Any) -> tuple[UUID, int, str, bytes]:
        state = domain_event.__dict__.copy()
        originator_id = state.pop("originator_id")
        originator_version = state.pop("originator_version")
        state["timestamp"] = {"_type_": "datetime_iso", "_data_": state["timestamp"].isoformat()}
        return originator_id, originator_version, get_topic(type(domain_event)), orjson.dumps(state)
