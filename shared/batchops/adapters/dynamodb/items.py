"""DynamoDB items of the view store: the tables' definitions, the attribute encoding, the sizes AWS enforces."""

from __future__ import annotations

import time
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import orjson
from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

from batchops.adapters.dynamodb.job_items import PACKED, pack_job, unpack_job
from batchops.adapters.dynamodb.tables import table_name

JOBS = "jobs"
INSTANCES = "instances"
META = "meta"
DEFAULT_RETENTION_DAYS = 90

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


class ConcurrentViewUpdate(RuntimeError):
    """Another projector changed an item since it was read: retry the batch with fresh state."""


# The Athena exporter reads the jobs and instances tables' streams; it needs the old image to see a row leave
# its partition.
EXPORTED_STREAM = {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}


def view_table_definitions(prefix: str) -> list[dict[str, Any]]:
    """CreateTable requests of the projection tables (the central template declares the same)."""

    def gsi(name: str, hash_key: str, range_key: str | None = None, keys_only: bool = False) -> dict[str, Any]:
        schema = [{"AttributeName": hash_key, "KeyType": "HASH"}]
        if range_key:
            schema.append({"AttributeName": range_key, "KeyType": "RANGE"})
        return {
            "IndexName": name,
            "KeySchema": schema,
            "Projection": {"ProjectionType": "KEYS_ONLY" if keys_only else "ALL"},
        }

    def attributes(*names: str) -> list[dict[str, str]]:
        return [{"AttributeName": n, "AttributeType": "S"} for n in names]

    return [
        {
            "TableName": table_name(prefix, JOBS),
            "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
            "AttributeDefinitions": attributes(
                "pk", "by_queue", "created_at", "by_status", "status_since", "by_instance", "by_job_id"
            ),
            # Keys only: index items stay small (no fold or timeline copies), readers fetch the base item.
            # by_status is "<generation>#<account>#<status>" so one status of a busy Organization is not one
            # hot index partition. Sorted by when the job entered its status, which changes only with the status: an
            # index key that changed at every write (last_event_time) cost two index writes at every job write.
            "GlobalSecondaryIndexes": [
                gsi("by-queue", "by_queue", "created_at", keys_only=True),
                gsi("by-status-since", "by_status", "status_since", keys_only=True),
                gsi("by-instance", "by_instance", "created_at", keys_only=True),
                gsi("by-job-id", "by_job_id", keys_only=True),
            ],
            "BillingMode": "PAY_PER_REQUEST",
            "StreamSpecification": EXPORTED_STREAM,
        },
        {
            "TableName": table_name(prefix, INSTANCES),
            "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
            "AttributeDefinitions": attributes("pk"),
            "BillingMode": "PAY_PER_REQUEST",
            "StreamSpecification": EXPORTED_STREAM,
        },
        {
            "TableName": table_name(prefix, META),
            "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
            "AttributeDefinitions": attributes("pk", "sk"),
            "BillingMode": "PAY_PER_REQUEST",
        },
    ]


def ensure_view_tables(client: Any, prefix: str) -> None:
    """Create the projection tables unless they exist (tests and `--store dynamodb://` on an emulator)."""
    for definition in view_table_definitions(prefix):
        try:
            client.create_table(**definition)
        except ClientError as error:
            if error.response["Error"]["Code"] != "ResourceInUseException":
                raise
        client.get_waiter("table_exists").wait(TableName=definition["TableName"])
    try:
        client.update_time_to_live(
            TableName=table_name(prefix, JOBS), TimeToLiveSpecification={"Enabled": True, "AttributeName": "expires_at"}
        )
    except ClientError as error:
        if "already enabled" not in str(error).lower():
            raise


def _pack(value: Any) -> bytes:
    return zlib.compress(orjson.dumps(value), 1)


def unpack(blob: Any) -> Any:
    return orjson.loads(zlib.decompress(bytes(blob)))


def _now() -> str:
    return datetime.now(tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _unpack_fold(blob: Any) -> dict[str, Any]:
    """A stored fold, ready to fold more events into (`seen` is left out of an item that would not fit otherwise)."""
    fold: dict[str, Any] = unpack(blob)
    fold.setdefault("seen", {})
    return fold


def _without_seen(item: dict[str, Any]) -> dict[str, Any] | None:
    """The item with its fold's fingerprints left out (the first trimming step of `DynamoDBSession._put`), or None
    when it has no fold to trim."""
    if PACKED in item:
        row, fold = unpack_job(bytes(item[PACKED]["B"]))
    elif "fold" in item:
        row, fold = None, unpack(item["fold"]["B"])
    else:
        return None
    if not fold or not fold.get("seen"):
        return None
    fold.pop("seen")
    if row is None:
        return {**item, "fold": {"B": _pack(fold)}}
    return {**item, PACKED: {"B": pack_job(row, fold)}}


def to_item(values: dict[str, Any]) -> dict[str, Any]:
    item: dict[str, Any] = {}
    for key, value in values.items():
        if value is None:
            continue
        if isinstance(value, float):
            value = Decimal(repr(value))
        item[key] = _serializer.serialize(value)
    return item


def from_item(item: dict[str, Any]) -> dict[str, Any]:
    values = {k: _deserializer.deserialize(v) for k, v in item.items()}
    for key, value in values.items():
        if isinstance(value, Decimal):
            values[key] = int(value) if value == value.to_integral_value() else float(value)
        elif isinstance(value, bytes | bytearray) or type(value).__name__ == "Binary":
            values[key] = bytes(value.value if hasattr(value, "value") else value)
    return values


KEPT_ASIDE_BYTES = 400_000
"""What a kept-aside event's item is cut to when it would pass DynamoDB's 409,600 bytes: a little below, since moto
(the emulator of the tests and of `--local`) refuses an item above 405,000 bytes."""
MAX_REASON_CHARACTERS = 4000
"""A kept-aside event's reason as kept (a reason quotes its cause, never a whole event)."""


def _batch_get(client: Any, request: dict[str, Any], what: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every (table, item) a BatchGetItem request (at most 100 keys) finds, asking again for unprocessed keys
    with a growing pause; an item that does not exist is simply not yielded."""
    for attempt in range(10):
        response = client.batch_get_item(RequestItems=request)
        for table, items in response.get("Responses", {}).items():
            for item in items:
                yield table, item
        request = response.get("UnprocessedKeys") or {}
        if not request:
            return
        time.sleep(min(0.05 * 2**attempt, 1.0))
    raise RuntimeError(f"{what} still unprocessed after 10 batch reads")
