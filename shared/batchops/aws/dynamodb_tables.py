"""DynamoDB table layouts of the event store, and helpers that create them on demand."""

from __future__ import annotations

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
