"""DynamoDB table layouts of the event store, and helpers that create them on demand."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

from botocore.exceptions import ClientError

# Attribute names of an event item. The events table is keyed by aggregate and version, so a
# conditional put on the key is the optimistic-concurrency check, and a Query is one aggregate's
# history in order.
ORIGINATOR_ID = "originator_id"
ORIGINATOR_VERSION = "originator_version"
TOPIC = "topic"
STATE = "state"

# Attribute names of a tracking item: one item per upstream application name.
APPLICATION_NAME = "application_name"
NOTIFICATION_ID = "notification_id"

EVENTS_PURPOSE = "events"
SNAPSHOTS_PURPOSE = "snapshots"
TRACKING_PURPOSE = "tracking"

_SEPARATORS = "-_."

MAX_ITEM_BYTES = 400 * 1024
"""DynamoDB's largest item: 400 KB, in binary units (1 KB = 1,024 bytes), measured by `item_size`."""


def item_size(item: Mapping[str, Mapping[str, Any]]) -> int:
    """An item's size (low-level attribute values) by DynamoDB's documented rules: every attribute name's UTF-8
    bytes plus its value's size (`value_size`). moto measures otherwise (binary as its base64 text, a number as its
    digits): our adapters check with this one, as AWS does."""
    return sum(len(name.encode()) + value_size(value) for name, value in item.items())


def value_size(value: Mapping[str, Any]) -> int:
    """An attribute value's size: a string's UTF-8 bytes; a number 1 byte per 2 significant digits, plus 1; binary
    its raw bytes; null and boolean 1 byte; a list or map 3 bytes plus 1 per element plus the elements (a map's
    element counts its name's UTF-8 bytes too); a set the sum of its elements."""
    ((kind, data),) = value.items()
    if kind == "S":
        return len(str(data).encode())
    if kind == "N":
        return _number_size(str(data))
    if kind == "B":
        return _binary_size(data)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "SS":
        return sum(len(str(s).encode()) for s in data)
    if kind == "NS":
        return sum(_number_size(str(n)) for n in data)
    if kind == "BS":
        return sum(_binary_size(b) for b in data)
    if kind == "L":
        return 3 + sum(1 + value_size(v) for v in data)
    if kind == "M":
        return 3 + sum(1 + len(k.encode()) + value_size(v) for k, v in data.items())
    msg = f"Not a DynamoDB attribute value type: {kind!r}"
    raise ValueError(msg)


def _number_size(text: str) -> int:
    mantissa = text.lower().split("e", 1)[0].lstrip("+-").replace(".", "")
    significant = len(mantissa.strip("0")) or 1
    return (significant + 1) // 2 + 1


def _binary_size(data: Any) -> int:
    # boto3 takes bytes; a JSON request or stream record carries base64 text.
    if isinstance(data, bytes | bytearray | memoryview):
        return len(data)
    if isinstance(data, str):
        return len(base64.b64decode(data))
    return len(bytes(data.value if hasattr(data, "value") else data))


def table_name(prefix: str, purpose: str) -> str:
    """Name of the table for `purpose` ("events", "snapshots", "tracking") under a prefix."""
    if prefix and prefix[-1] not in _SEPARATORS:
        prefix += "-"
    return f"{prefix}{purpose}"


def events_table_definition(name: str, *, stream: bool) -> dict[str, Any]:
    """CreateTable parameters of an events (or snapshots) table: on-demand, optional NEW_IMAGE stream."""
    definition: dict[str, Any] = {
        "TableName": name,
        "KeySchema": [
            {"AttributeName": ORIGINATOR_ID, "KeyType": "HASH"},
            {"AttributeName": ORIGINATOR_VERSION, "KeyType": "RANGE"},
        ],
        "AttributeDefinitions": [
            {"AttributeName": ORIGINATOR_ID, "AttributeType": "S"},
            {"AttributeName": ORIGINATOR_VERSION, "AttributeType": "N"},
        ],
        "BillingMode": "PAY_PER_REQUEST",
    }
    if stream:
        # NEW_IMAGE: events are immutable, so the projector needs only the inserted item.
        definition["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"}
    return definition


def tracking_table_definition(name: str) -> dict[str, Any]:
    """CreateTable parameters of a tracking table: on-demand, one item per upstream application."""
    return {
        "TableName": name,
        "KeySchema": [{"AttributeName": APPLICATION_NAME, "KeyType": "HASH"}],
        "AttributeDefinitions": [{"AttributeName": APPLICATION_NAME, "AttributeType": "S"}],
        "BillingMode": "PAY_PER_REQUEST",
    }


def ensure_table(client: Any, definition: dict[str, Any], *, poll_seconds: int = 2) -> None:
    """Create a table unless it exists, and wait until it is ACTIVE."""
    try:
        client.create_table(**definition)
    except ClientError as error:
        # Another process may have created it concurrently; that is the outcome we want.
        if error.response.get("Error", {}).get("Code") != "ResourceInUseException":
            raise
    client.get_waiter("table_exists").wait(
        TableName=definition["TableName"],
        WaiterConfig={"Delay": poll_seconds, "MaxAttempts": 150},
    )


def ensure_events_table(client: Any, name: str, *, stream: bool = True) -> None:
    """Create an events table (stream on) or a snapshots table (stream off) if missing."""
    ensure_table(client, events_table_definition(name, stream=stream))


def ensure_tracking_table(client: Any, name: str) -> None:
    """Create a tracking table if missing."""
    ensure_table(client, tracking_table_definition(name))


def events_stream_arn(client: Any, name: str) -> str | None:
    """The latest stream ARN of an events table, or None when its stream is off."""
    arn = client.describe_table(TableName=name)["Table"].get("LatestStreamArn")
    return str(arn) if arn else None
