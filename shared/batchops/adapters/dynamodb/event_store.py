"""eventsourcing 9.5 recorders on DynamoDB: conditional writes, no global sequence, no hot item.

Events table: partition key ``originator_id`` (string), sort key ``originator_version`` (number),
attributes ``topic`` (string) and ``state`` (binary). A save writes every item with
``attribute_not_exists``, so a stale save raises :class:`IntegrityError` and never wins.

Atomicity: a save of up to 100 items (events plus the optional tracking item) is one
TransactWriteItems call (one event alone is a single conditional PutItem, half the write
cost). A larger save is split **per aggregate**: each aggregate's new events are always written
in one transaction, aggregates are packed into transactions of at most 100 items, so a save above
100 items is atomic per aggregate, not as a whole. One aggregate with more than 100 new events in
one save, or a tracked save that does not fit one transaction, is refused with DataError.
The application's own saves go another way (`DynamoDBEventStore.append`): each aggregate on its own, atomic per
aggregate, so that one stale aggregate fails alone and a lone event costs a PutItem, not half a transaction.

There is no application sequence (no gap-free counter on one item: see docs/dynamodb-capacity.md).
``insert_events`` returns None, as the interface allows, and the notification-log queries raise
NotSupportedError: projections are fed by the events table's DynamoDB stream, and a rebuild scans
the table in parallel segments (:meth:`DynamoDBAggregateRecorder.scan_events`).
"""

from __future__ import annotations

import base64
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal, cast
from uuid import UUID

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from eventsourcing.persistence import (
    AggregateRecorder,
    ApplicationRecorder,
    DatabaseError,
    DataError,
    InfrastructureFactory,
    IntegrityError,
    Mapper,
    Notification,
    NotSupportedError,
    OperationalError,
    PersistenceError,
    ProcessRecorder,
    ProgrammingError,
    StoredEvent,
    Subscription,
    Tracking,
    TrackingRecorder,
)
from eventsourcing.utils import Environment, EnvType, resolve_topic, strtobool

from batchops.adapters.dynamodb.tables import (
    APPLICATION_NAME,
    EVENTS_PURPOSE,
    MAX_ITEM_BYTES,
    NOTIFICATION_ID,
    ORIGINATOR_ID,
    ORIGINATOR_VERSION,
    STATE,
    TOPIC,
    TRACKING_PURPOSE,
    ensure_events_table,
    ensure_tracking_table,
    item_size,
    table_name,
)
from batchops.ports import PartlyAppended
from batchops.recorder_store import RecorderEventStore

OriginatorIdType = Literal["uuid", "text"]
Item = dict[str, Any]

MAX_TRANSACTION_ITEMS = 100
# TransactWriteItems also caps the request at 4 MB; stay below it with room for key overhead.
MAX_TRANSACTION_BYTES = 4_000_000
_ITEM_OVERHEAD_BYTES = 200

_NOT_SUPPORTED = (
    "DynamoDB recorders keep no application sequence (a gap-free counter would be one hot item): "
    "feed projections from the events table's stream, rebuild them with scan_events()"
)

# Codes that mean "try again later": capacity, throttling, service trouble, a concurrent transaction.
_RETRYABLE_CODES = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "RequestLimitExceeded",
        "InternalServerError",
        "ServiceUnavailable",
        "TransactionConflictException",
        "TransactionInProgressException",
        "LimitExceededException",
        "ResourceNotFoundException",
    }
)


class ItemTooLarge(DataError):
    """An event item over DynamoDB's 400 KB: nothing of the save was sent (the domain keeps its events smaller)."""


def _error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def translate_client_error(error: ClientError) -> PersistenceError:
    """Map a DynamoDB error to the PEP 249 style exceptions eventsourcing expects."""
    code = _error_code(error)
    message = str(error)
    if code == "ConditionalCheckFailedException":
        return IntegrityError(message)
    if code == "TransactionCanceledException":
        reasons = [str(r.get("Code", "None")) for r in error.response.get("CancellationReasons", [])]
        if "ConditionalCheckFailed" in reasons:
            # A failed condition means some item already exists: the save is stale, whatever
            # else was wrong with the transaction.
            return IntegrityError(message)
        if "ValidationError" in reasons or "ItemCollectionSizeLimitExceeded" in reasons:
            return DataError(message)
        # TransactionConflict, ProvisionedThroughputExceeded, ThrottlingError: retryable.
        return OperationalError(message)
    if code in _RETRYABLE_CODES:
        return OperationalError(message)
    if code == "ValidationException":
        if "size" in message.lower():
            return DataError(message)
        return ProgrammingError(message)
    return DatabaseError(message)


@contextmanager
def _dynamodb_errors() -> Iterator[None]:
    try:
        yield
    except ClientError as error:
        raise translate_client_error(error) from error
    except BotoCoreError as error:
        # Connection failures, timeouts, missing credentials or region.
        raise OperationalError(str(error)) from error


def _encode_originator_id(originator_id: UUID | str) -> str:
    return str(originator_id)


def _decode_originator_id(value: str, originator_id_type: OriginatorIdType) -> UUID | str:
    return UUID(value) if originator_id_type == "uuid" else value


def _attribute_bytes(value: Any) -> bytes:
    # boto3 returns bytes; a stream record delivered to Lambda as JSON carries base64 text.
    if isinstance(value, bytes | bytearray):
        return bytes(value)
    if isinstance(value, str):
        return base64.b64decode(value)
    msg = f"Unexpected binary attribute value: {type(value).__name__}"
    raise DataError(msg)


def stored_event_from_item(item: Mapping[str, Any], originator_id_type: OriginatorIdType) -> StoredEvent:
    """A StoredEvent from an events-table item (low-level attribute values) or a stream NewImage."""
    try:
        return StoredEvent(
            originator_id=_decode_originator_id(item[ORIGINATOR_ID]["S"], originator_id_type),
            originator_version=int(item[ORIGINATOR_VERSION]["N"]),
            topic=str(item[TOPIC]["S"]),
            state=_attribute_bytes(item[STATE]["B"]),
        )
    except (KeyError, TypeError, ValueError) as error:
        msg = f"Not an event item: {sorted(item)}"
        raise DataError(msg) from error


def stored_event_from_stream_record(
    record: Mapping[str, Any], originator_id_type: OriginatorIdType
) -> StoredEvent | None:
    """The StoredEvent of a DynamoDB stream record of the events table, or None if not an INSERT."""
    if record.get("eventName") != "INSERT":
        return None
    return stored_event_from_item(record["dynamodb"]["NewImage"], originator_id_type)


@dataclass(frozen=True)
class EventPage:
    """One page of a parallel scan: events, and the key to resume after them (None when done)."""

    events: list[StoredEvent]
    next_key: dict[str, Any] | None


class DynamoDBRecorder:
    """Holds the client and how originator ids are typed."""

    def __init__(self, client: Any, *, originator_id_type: OriginatorIdType = "uuid") -> None:
        if originator_id_type not in ("uuid", "text"):
            msg = f"originator_id_type must be 'uuid' or 'text', not {originator_id_type!r}"
            raise ValueError(msg)
        self.client = client
        self.originator_id_type: OriginatorIdType = originator_id_type


class DynamoDBAggregateRecorder(DynamoDBRecorder, AggregateRecorder):
    """Aggregate sequences on one DynamoDB table, written with conditional puts."""

    def __init__(
        self,
        client: Any,
        table_name: str,
        *,
        originator_id_type: OriginatorIdType = "uuid",
        stream: bool = True,
    ) -> None:
        super().__init__(client, originator_id_type=originator_id_type)
        self.table_name = table_name
        self.stream = stream

    def create_table(self) -> None:
        """Create the table (on-demand billing; NEW_IMAGE stream if enabled) unless it exists."""
        with _dynamodb_errors():
            ensure_events_table(self.client, self.table_name, stream=self.stream)

    def insert_events(self, stored_events: Sequence[StoredEvent], **kwargs: Any) -> Sequence[int] | None:
        """Write events so that a stale or duplicate save raises IntegrityError; returns None."""
        self._write(stored_events, tracking=None)
        return None

    def _put(self, stored_event: StoredEvent) -> Item:
        return {
            "TableName": self.table_name,
            "Item": {
                ORIGINATOR_ID: {"S": _encode_originator_id(stored_event.originator_id)},
                ORIGINATOR_VERSION: {"N": str(stored_event.originator_version)},
                TOPIC: {"S": stored_event.topic},
                STATE: {"B": stored_event.state},
            },
            "ConditionExpression": "attribute_not_exists(#id)",
            "ExpressionAttributeNames": {"#id": ORIGINATOR_ID},
        }

    def _tracking_update(self, tracking: Tracking) -> Item:
        msg = "This recorder does not record tracking"
        raise ProgrammingError(msg)

    def _write(self, stored_events: Sequence[StoredEvent], tracking: Tracking | None) -> None:
        _check_unique(stored_events)
        extra = [{"Update": self._tracking_update(tracking)}] if tracking is not None else []
        self._check_sizes(stored_events)
        groups = _group_by_aggregate(stored_events)
        transactions = _pack(groups, reserved=len(extra))
        if extra:
            if len(transactions) > 1:
                msg = (
                    f"A tracked save of {len(stored_events)} events does not fit one transaction "
                    f"of {MAX_TRANSACTION_ITEMS} items: it could not be atomic with its tracking"
                )
                raise DataError(msg)
            if not transactions:
                transactions = [[]]
        committed: list[str] = []
        for index, events in enumerate(transactions):
            items = [{"Put": self._put(s)} for s in events] + (extra if index == 0 else [])
            try:
                self._write_items(items)
            except PersistenceError as error:
                if committed:
                    error.add_note(
                        "Recorded in part: aggregates committed before this failure: " + ", ".join(committed)
                    )
                raise
            committed.extend(dict.fromkeys(_encode_originator_id(s.originator_id) for s in events))

    def insert_each_aggregate(self, stored_events: Sequence[StoredEvent], *, writers: int) -> dict[str, Exception]:
        """Write each aggregate's new events on their own, `writers` aggregates at a time: one event is a conditional
        PutItem (1 WRU a KB, half a transactional write), several one transaction of that aggregate's items. An
        aggregate another writer has moved on fails alone instead of cancelling everyone's. What failed, by encoded
        originator id; nothing is sent when an item is too large or an aggregate's events could not be atomic."""
        _check_unique(stored_events)
        self._check_sizes(stored_events)
        groups = _group_by_aggregate(stored_events)
        for group in groups:
            _pack([group], reserved=0)  # refuses an aggregate whose events would not fit one transaction

        def write(group: list[StoredEvent]) -> Exception | None:
            try:
                self._write_items([{"Put": self._put(s)} for s in group])
            except PersistenceError as error:
                return error
            return None

        if len(groups) <= 1 or writers <= 1:
            outcomes = [write(group) for group in groups]
        else:
            with ThreadPoolExecutor(max_workers=min(writers, len(groups))) as pool:
                outcomes = list(pool.map(write, groups))
        return {
            _encode_originator_id(group[0].originator_id): error
            for group, error in zip(groups, outcomes, strict=True)
            if error is not None
        }

    def _check_sizes(self, stored_events: Sequence[StoredEvent]) -> None:
        """Refuse, before any request, a save with an item DynamoDB would refuse (measured by its rules): a
        transaction would fail whole, and a save split in several would be recorded in part."""
        over = [
            (s, size)
            for s in stored_events
            if _estimated_bytes(s) > MAX_ITEM_BYTES - _ITEM_OVERHEAD_BYTES
            and (size := item_size(self._put(s)["Item"])) > MAX_ITEM_BYTES
        ]
        if over:
            described = ", ".join(f"{s.originator_id} v{s.originator_version} ({size:,} bytes)" for s, size in over)
            msg = f"event items over DynamoDB's {MAX_ITEM_BYTES:,}-byte item limit, nothing saved: {described}"
            raise ItemTooLarge(msg)

    def _write_items(self, items: list[Item]) -> None:
        if not items:
            return
        with _dynamodb_errors():
            if len(items) == 1 and "Put" in items[0]:
                # One event alone: a conditional PutItem costs half a transactional write.
                self.client.put_item(**items[0]["Put"])
            elif len(items) == 1:
                self.client.update_item(**items[0]["Update"])
            else:
                # botocore fills ClientRequestToken, so its own retries of this call are idempotent.
                self.client.transact_write_items(TransactItems=items)

    def select_events(
        self,
        originator_id: UUID | str,
        *,
        gt: int | None = None,
        lte: int | None = None,
        desc: bool = False,
        limit: int | None = None,
    ) -> Sequence[StoredEvent]:
        """Read one aggregate's events with a strongly consistent Query."""
        if limit is not None and limit <= 0:
            return []
        condition = "#id = :id"
        values: Item = {":id": {"S": _encode_originator_id(originator_id)}}
        if gt is not None and lte is not None:
            if lte <= gt:
                return []
            condition += " AND #v BETWEEN :low AND :high"
            values[":low"] = {"N": str(gt + 1)}
            values[":high"] = {"N": str(lte)}
        elif gt is not None:
            condition += " AND #v > :gt"
            values[":gt"] = {"N": str(gt)}
        elif lte is not None:
            condition += " AND #v <= :lte"
            values[":lte"] = {"N": str(lte)}
        request: Item = {
            "TableName": self.table_name,
            "KeyConditionExpression": condition,
            "ExpressionAttributeNames": {
                "#id": ORIGINATOR_ID,
                **({"#v": ORIGINATOR_VERSION} if "#v" in condition else {}),
            },
            "ExpressionAttributeValues": values,
            # Strong consistency: a command must see the latest version before it saves.
            "ConsistentRead": True,
            "ScanIndexForward": not desc,
        }
        events: list[StoredEvent] = []
        with _dynamodb_errors():
            while True:
                if limit is not None:
                    request["Limit"] = limit - len(events)
                response = self.client.query(**request)
                events.extend(stored_event_from_item(i, self.originator_id_type) for i in response["Items"])
                next_key = response.get("LastEvaluatedKey")
                if not next_key or (limit is not None and len(events) >= limit):
                    return events
                request["ExclusiveStartKey"] = next_key

    def scan_events(
        self,
        segment: int = 0,
        total_segments: int = 1,
        *,
        start_key: dict[str, Any] | None = None,
        page_size: int | None = None,
        consistent_read: bool = False,
    ) -> Iterator[EventPage]:
        """Pages of one parallel-scan segment, each with the key to resume after it."""
        request: Item = {"TableName": self.table_name, "ConsistentRead": consistent_read}
        if total_segments > 1:
            request["Segment"] = segment
            request["TotalSegments"] = total_segments
        if page_size is not None:
            request["Limit"] = page_size
        if start_key is not None:
            request["ExclusiveStartKey"] = start_key
        while True:
            with _dynamodb_errors():
                response = self.client.scan(**request)
            next_key = response.get("LastEvaluatedKey")
            yield EventPage(
                events=[stored_event_from_item(i, self.originator_id_type) for i in response["Items"]],
                next_key=next_key,
            )
            if not next_key:
                return
            request["ExclusiveStartKey"] = next_key


class DynamoDBApplicationRecorder(DynamoDBAggregateRecorder, ApplicationRecorder):
    """The recorder an Application saves through: aggregate sequences only, no notification log."""

    def select_notifications(
        self,
        start: int | None,
        limit: int,
        stop: int | None = None,
        topics: Sequence[str] = (),
        *,
        inclusive_of_start: bool = True,
    ) -> Sequence[Notification]:
        """Not supported: there is no application sequence."""
        raise NotSupportedError(_NOT_SUPPORTED)

    def max_notification_id(self) -> int | None:
        """Not supported: there is no application sequence."""
        raise NotSupportedError(_NOT_SUPPORTED)

    def subscribe(self, gt: int | None = None, topics: Sequence[str] = ()) -> Subscription[ApplicationRecorder]:
        """Not supported: subscribe to the events table's DynamoDB stream instead."""
        raise NotSupportedError(_NOT_SUPPORTED)


class DynamoDBTrackingRecorder(DynamoDBRecorder, TrackingRecorder):
    """Tracking positions, one item per upstream application, advanced only forwards."""

    def __init__(
        self,
        client: Any,
        tracking_table_name: str,
        *,
        originator_id_type: OriginatorIdType = "uuid",
    ) -> None:
        super().__init__(client, originator_id_type=originator_id_type)
        self.tracking_table_name = tracking_table_name

    def create_table(self) -> None:
        """Create the tracking table unless it exists."""
        with _dynamodb_errors():
            ensure_tracking_table(self.client, self.tracking_table_name)

    def _tracking_update(self, tracking: Tracking) -> Item:
        # Like eventsourcing's single-row tracking: the position only moves forwards, so an
        # already-recorded or lower notification id fails the condition.
        return {
            "TableName": self.tracking_table_name,
            "Key": {APPLICATION_NAME: {"S": tracking.application_name}},
            "UpdateExpression": "SET #n = :n",
            "ConditionExpression": "attribute_not_exists(#n) OR #n < :n",
            "ExpressionAttributeNames": {"#n": NOTIFICATION_ID},
            "ExpressionAttributeValues": {":n": {"N": str(tracking.notification_id)}},
        }

    def insert_tracking(self, tracking: Tracking) -> None:
        """Record a position; IntegrityError if it is not beyond the recorded one."""
        with _dynamodb_errors():
            self.client.update_item(**self._tracking_update(tracking))

    def max_tracking_id(self, application_name: str) -> int | None:
        """The recorded position of an upstream application, or None."""
        with _dynamodb_errors():
            response = self.client.get_item(
                TableName=self.tracking_table_name,
                Key={APPLICATION_NAME: {"S": application_name}},
                ConsistentRead=True,
            )
        item = response.get("Item")
        if not item or NOTIFICATION_ID not in item:
            return None
        return int(item[NOTIFICATION_ID]["N"])


class DynamoDBProcessRecorder(DynamoDBTrackingRecorder, DynamoDBApplicationRecorder, ProcessRecorder):
    """Events and their tracking position written in one transaction."""

    def __init__(
        self,
        client: Any,
        table_name: str,
        tracking_table_name: str,
        *,
        originator_id_type: OriginatorIdType = "uuid",
        stream: bool = True,
    ) -> None:
        DynamoDBRecorder.__init__(self, client, originator_id_type=originator_id_type)
        self.table_name = table_name
        self.tracking_table_name = tracking_table_name
        self.stream = stream

    def create_table(self) -> None:
        """Create the events and tracking tables unless they exist."""
        DynamoDBApplicationRecorder.create_table(self)
        DynamoDBTrackingRecorder.create_table(self)

    def insert_events(self, stored_events: Sequence[StoredEvent], **kwargs: Any) -> Sequence[int] | None:
        """Write events and the optional ``tracking`` kwarg atomically; returns None."""
        tracking = kwargs.get("tracking")
        if tracking is not None and not isinstance(tracking, Tracking):
            msg = f"tracking must be a Tracking, not {type(tracking).__name__}"
            raise ProgrammingError(msg)
        self._write(stored_events, tracking=tracking)
        return None


def _check_unique(stored_events: Sequence[StoredEvent]) -> None:
    keys = {(_encode_originator_id(s.originator_id), s.originator_version) for s in stored_events}
    if len(keys) < len(stored_events):
        # DynamoDB rejects two operations on one item in a transaction as a validation error;
        # for the caller it is a conflict, as in the library's other recorders.
        msg = "Stored events are not unique by (originator_id, originator_version)"
        raise IntegrityError(msg)


def _group_by_aggregate(stored_events: Sequence[StoredEvent]) -> list[list[StoredEvent]]:
    groups: dict[str, list[StoredEvent]] = {}
    for s in stored_events:
        groups.setdefault(_encode_originator_id(s.originator_id), []).append(s)
    return list(groups.values())


def _estimated_bytes(stored_event: StoredEvent) -> int:
    return (
        len(stored_event.state)
        + len(stored_event.topic)
        + len(_encode_originator_id(stored_event.originator_id))
        + _ITEM_OVERHEAD_BYTES
    )


def _pack(groups: list[list[StoredEvent]], *, reserved: int) -> list[list[StoredEvent]]:
    """Pack whole aggregates, in order, into transactions within the item and size limits."""
    capacity = MAX_TRANSACTION_ITEMS - reserved
    transactions: list[list[StoredEvent]] = []
    current: list[StoredEvent] = []
    current_bytes = 0
    for group in groups:
        group_bytes = sum(_estimated_bytes(s) for s in group)
        if len(group) > capacity or group_bytes > MAX_TRANSACTION_BYTES:
            msg = (
                f"{len(group)} new events ({group_bytes} bytes) of aggregate "
                f"{group[0].originator_id} in one save exceed one DynamoDB transaction "
                f"({capacity} items, {MAX_TRANSACTION_BYTES} bytes): they could not be atomic"
            )
            raise DataError(msg)
        if current and (len(current) + len(group) > capacity or current_bytes + group_bytes > MAX_TRANSACTION_BYTES):
            transactions.append(current)
            current, current_bytes = [], 0
        current.extend(group)
        current_bytes += group_bytes
    if current:
        transactions.append(current)
    return transactions


def build_client(env: Environment | Mapping[str, str] | None = None) -> Any:
    """A DynamoDB client from the standard AWS environment (profile, region, endpoint URL)."""
    env = env if isinstance(env, Environment) else Environment(env=dict(env or {}))
    session = boto3.session.Session(
        profile_name=env.get("AWS_PROFILE") or None,
        region_name=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or None,
    )
    endpoint_url = env.get("AWS_ENDPOINT_URL_DYNAMODB") or env.get("AWS_ENDPOINT_URL") or None
    # Account-based endpoints add nothing here, and emulators (moto in process) only answer the regional one.
    return session.client("dynamodb", endpoint_url=endpoint_url, config=Config(account_id_endpoint_mode="disabled"))


class DynamoDBFactory(InfrastructureFactory[DynamoDBTrackingRecorder]):
    """Infrastructure factory: ``PERSISTENCE_MODULE=batchops.adapters.dynamodb.event_store:DynamoDBFactory``.

    Environment: DYNAMODB_TABLE_PREFIX (required), CREATE_TABLE (default no), ORIGINATOR_ID_TYPE
    (uuid or text, default uuid), and the standard AWS_PROFILE, AWS_REGION / AWS_DEFAULT_REGION,
    AWS_ENDPOINT_URL[_DYNAMODB]. A client given to the constructor is used as it is.
    """

    DYNAMODB_TABLE_PREFIX = "DYNAMODB_TABLE_PREFIX"
    CREATE_TABLE = "CREATE_TABLE"
    ORIGINATOR_ID_TYPE = "ORIGINATOR_ID_TYPE"

    aggregate_recorder_class = DynamoDBAggregateRecorder
    application_recorder_class = DynamoDBApplicationRecorder
    tracking_recorder_class = DynamoDBTrackingRecorder
    process_recorder_class = DynamoDBProcessRecorder

    def __init__(self, env: Environment | EnvType | None, *, client: Any = None) -> None:
        super().__init__(env)
        prefix = self.env.get(self.DYNAMODB_TABLE_PREFIX)
        if not prefix:
            msg = (
                "DynamoDB table prefix not found in environment with keys: "
                f"{', '.join(self.env.create_keys(self.DYNAMODB_TABLE_PREFIX))}"
            )
            raise OSError(msg)
        self.table_prefix = prefix
        originator_id_type = self.env.get(self.ORIGINATOR_ID_TYPE, "uuid").lower()
        if originator_id_type not in ("uuid", "text"):
            msg = f"Invalid {self.ORIGINATOR_ID_TYPE} {originator_id_type!r}, must be 'uuid' or 'text'"
            raise OSError(msg)
        self.originator_id_type = cast(OriginatorIdType, originator_id_type)
        self.client = client if client is not None else build_client(self.env)

    def table_name(self, purpose: str) -> str:
        """The table name for a purpose under this factory's prefix."""
        return table_name(self.table_prefix, purpose)

    def env_create_table(self) -> bool:
        """Whether to create missing tables (CREATE_TABLE, default no: tables belong to the template)."""
        return strtobool(self.env.get(self.CREATE_TABLE) or "no")

    def aggregate_recorder(self, purpose: str = "events") -> AggregateRecorder:
        """A recorder on the table of `purpose`; only the events table has a stream."""
        recorder = self.aggregate_recorder_class(
            self.client,
            self.table_name(purpose),
            originator_id_type=self.originator_id_type,
            stream=purpose == EVENTS_PURPOSE,
        )
        if self.env_create_table():
            recorder.create_table()
        return recorder

    def application_recorder(self) -> ApplicationRecorder:
        """The recorder of the events table (no notification log)."""
        topic = self.env.get(self.APPLICATION_RECORDER_TOPIC)
        cls: type[DynamoDBApplicationRecorder] = resolve_topic(topic) if topic else self.application_recorder_class
        assert issubclass(cls, DynamoDBApplicationRecorder)
        recorder = cls(self.client, self.table_name(EVENTS_PURPOSE), originator_id_type=self.originator_id_type)
        if self.env_create_table():
            recorder.create_table()
        return recorder

    def tracking_recorder(
        self, tracking_recorder_class: type[DynamoDBTrackingRecorder] | None = None
    ) -> DynamoDBTrackingRecorder:
        """A tracking recorder on the tracking table."""
        if tracking_recorder_class is None:
            topic = self.env.get(self.TRACKING_RECORDER_TOPIC)
            tracking_recorder_class = resolve_topic(topic) if topic else self.tracking_recorder_class
        assert tracking_recorder_class is not None
        assert issubclass(tracking_recorder_class, DynamoDBTrackingRecorder)
        recorder = tracking_recorder_class(
            self.client, self.table_name(TRACKING_PURPOSE), originator_id_type=self.originator_id_type
        )
        if self.env_create_table():
            recorder.create_table()
        return recorder

    def process_recorder(self) -> ProcessRecorder:
        """Events and tracking written together in one transaction."""
        topic = self.env.get(self.PROCESS_RECORDER_TOPIC)
        cls: type[DynamoDBProcessRecorder] = resolve_topic(topic) if topic else self.process_recorder_class
        assert issubclass(cls, DynamoDBProcessRecorder)
        recorder = cls(
            self.client,
            self.table_name(EVENTS_PURPOSE),
            self.table_name(TRACKING_PURPOSE),
            originator_id_type=self.originator_id_type,
        )
        if self.env_create_table():
            recorder.create_table()
        return recorder


Factory = DynamoDBFactory


class DynamoDBEventStore(RecorderEventStore):
    """The AWS store's `EventStore`: conditional writes, histories read concurrently, DynamoDB's item count."""

    def __init__(
        self, recorder: DynamoDBAggregateRecorder, mapper: Mapper[UUID], *, readers: int, writers: int
    ) -> None:
        super().__init__(recorder, mapper)
        self.dynamodb = recorder
        self.readers = readers
        self.writers = writers

    def append(self, events: Sequence[Any]) -> list[int]:
        """Each aggregate's events written on their own (`insert_each_aggregate`): a batch whose cached aggregate
        another container moved on loses that aggregate's write only, and its other writes cost half as much as in
        one transaction. Raises PartlyAppended naming the stale aggregates (the others are stored), or the first
        other error (what was stored is named in a note)."""
        stored = [self.mapper.to_stored_event(event) for event in events]
        failed = self.dynamodb.insert_each_aggregate(stored, writers=self.writers)
        if not failed:
            return []
        committed = {_encode_originator_id(s.originator_id) for s in stored} - set(failed)
        other = [error for error in failed.values() if not isinstance(error, IntegrityError)]
        if other:
            if committed:
                other[0].add_note(f"Recorded: the events of {len(committed)} aggregates; not: {len(failed)}")
            raise other[0]
        stale = frozenset(UUID(key) for key in failed)
        msg = f"{len(stale)} of {len(stale) + len(committed)} aggregates were saved by another writer first"
        raise PartlyAppended(stale, msg)

    def histories(self, ids: Sequence[UUID]) -> dict[UUID, list[StoredEvent]]:
        """One Query per aggregate, `readers` at a time (boto3 clients are thread-safe): a batch's missed aggregates
        cost a round trip per `readers`, not one each."""
        if len(ids) <= 1:
            return super().histories(ids)
        with ThreadPoolExecutor(max_workers=min(self.readers, len(ids))) as pool:
            found = dict(zip(ids, pool.map(lambda key: list(self.dynamodb.select_events(key)), ids), strict=True))
        return {key: events for key, events in found.items() if events}

    def newer_events(self, versions: Mapping[UUID, int]) -> dict[UUID, list[StoredEvent]]:
        """One strongly consistent Query per cached aggregate for what follows its version, `readers` at a time: 1
        RRU where nothing follows, instead of a conditional write that fails (1 WRU, five times the price) and a
        read of the whole history when another container moved the aggregate on."""
        ids = list(versions)
        if not ids:
            return {}

        def newer(key: UUID) -> list[StoredEvent]:
            return list(self.dynamodb.select_events(key, gt=versions[key]))

        with ThreadPoolExecutor(max_workers=max(1, min(self.readers, len(ids)))) as pool:
            found = dict(zip(ids, pool.map(newer, ids), strict=True))
        return {key: events for key, events in found.items() if events}

    def stored_events(self) -> int:
        """Approximate number of stored events (DynamoDB's item count, refreshed about every 6 hours)."""
        table = self.dynamodb.client.describe_table(TableName=self.dynamodb.table_name)["Table"]
        return int(table.get("ItemCount", 0))
