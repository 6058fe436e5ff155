"""The DynamoDB event store on moto: the library's recorder test cases, and our own guarantees."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any
from unittest import TestCase
from uuid import NAMESPACE_URL, UUID, uuid4, uuid5

import boto3
import eventsourcing.tests.persistence as cases
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.domain import Aggregate, event
from eventsourcing.persistence import (
    DataError,
    InfrastructureFactory,
    IntegrityError,
    NotSupportedError,
    OperationalError,
    StoredEvent,
    Tracking,
)
from eventsourcing.utils import Environment, get_topic
from moto import mock_aws

from batchops.adapters.dynamodb.event_store import (
    DynamoDBAggregateRecorder,
    DynamoDBApplicationRecorder,
    DynamoDBFactory,
    DynamoDBProcessRecorder,
    DynamoDBTrackingRecorder,
    stored_event_from_stream_record,
    translate_client_error,
)
from batchops.adapters.dynamodb.tables import table_name

REGION = "us-east-1"
FACTORY_TOPIC = "batchops.adapters.dynamodb.event_store:DynamoDBFactory"
AWS_ENV = {
    "AWS_DEFAULT_REGION": REGION,
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    # In-process moto serves DynamoDB Streams only without account-based endpoints (NOTES.md).
    "AWS_ACCOUNT_ID_ENDPOINT_MODE": "disabled",
}


def _client(service: str = "dynamodb") -> Any:
    return boto3.client(
        service,
        region_name=REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(account_id_endpoint_mode="disabled"),
    )


class _Moto(TestCase):
    """Each test gets its own moto backend, so every table starts empty and small."""

    def setUp(self) -> None:
        mock = mock_aws()
        mock.start()
        self.addCleanup(mock.stop)
        self.client = _client()
        super().setUp()


# --- The library's own recorder test cases ------------------------------------------------------


class TestAggregateRecorder(_Moto, cases.AggregateRecorderTestCase):
    def create_recorder(self) -> DynamoDBAggregateRecorder:
        recorder = DynamoDBAggregateRecorder(self.client, "test-events")
        recorder.create_table()
        return recorder


class TestAggregateRecorderWithTextIds(_Moto, cases.AggregateRecorderTestCase):
    def new_originator_id(self) -> str:
        return f"arn:aws:batch:{REGION}:123456789012:job/{uuid4()}"

    def create_recorder(self) -> DynamoDBAggregateRecorder:
        recorder = DynamoDBAggregateRecorder(self.client, "test-events", originator_id_type="text")
        recorder.create_table()
        return recorder


class TestTrackingRecorder(_Moto, cases.TrackingRecorderTestCase):
    def create_recorder(self) -> DynamoDBTrackingRecorder:
        recorder = DynamoDBTrackingRecorder(self.client, "test-tracking")
        recorder.create_table()
        return recorder


class TestProcessRecorder(_Moto, cases.ProcessRecorderTestCase):
    def create_recorder(self) -> DynamoDBProcessRecorder:
        recorder = DynamoDBProcessRecorder(self.client, "test-events", "test-tracking")
        recorder.create_table()
        return recorder


# ApplicationRecorderTestCase is deliberately not run: it asserts gap-free notification ids
# 1, 2, 3 across aggregates, which needs one counter item that every write serialises on, the
# hot item the design rules out. The recorder refuses the notification log instead (tested below).


class _TrackingRecorderSubclass(DynamoDBTrackingRecorder):
    pass


class TestDynamoDBFactory(cases.InfrastructureFactoryTestCase[DynamoDBFactory]):
    def setUp(self) -> None:
        mock = mock_aws()
        mock.start()
        self.addCleanup(mock.stop)
        self.env = Environment(
            "TestCase",
            {
                InfrastructureFactory.PERSISTENCE_MODULE: FACTORY_TOPIC,
                DynamoDBFactory.DYNAMODB_TABLE_PREFIX: "factory-test",
                DynamoDBFactory.CREATE_TABLE: "y",
                **AWS_ENV,
            },
        )
        super().setUp()

    def expected_factory_class(self) -> type[DynamoDBFactory]:
        return DynamoDBFactory

    def expected_aggregate_recorder_class(self) -> type[DynamoDBAggregateRecorder]:
        return DynamoDBAggregateRecorder

    def expected_application_recorder_class(self) -> type[DynamoDBApplicationRecorder]:
        return DynamoDBApplicationRecorder

    def expected_tracking_recorder_class(self) -> type[DynamoDBTrackingRecorder]:
        return DynamoDBTrackingRecorder

    def tracking_recorder_subclass(self) -> type[DynamoDBTrackingRecorder]:
        return _TrackingRecorderSubclass

    def expected_process_recorder_class(self) -> type[DynamoDBProcessRecorder]:
        return DynamoDBProcessRecorder


# --- A tiny application on the store ------------------------------------------------------------


class Counter(Aggregate):
    """A named counter; its id is a uuid5 of the name, so a re-created counter collides."""

    @staticmethod
    def create_id(name: str) -> UUID:
        return uuid5(NAMESPACE_URL, f"counter/{name}")

    def __init__(self, name: str) -> None:
        self.name = name
        self.count = 0

    @event("Incremented")
    def increment(self) -> None:
        self.count += 1


class Counters(Application[UUID]):
    """Counters saved through DynamoDBFactory, with an injected client when one is given."""

    snapshotting_intervals = {Counter: 3}

    def __init__(self, env: dict[str, str] | None = None, client: Any = None) -> None:
        self.client = client
        super().__init__(env)

    def construct_factory(self, env: Environment) -> InfrastructureFactory[Any]:
        if self.client is None:
            return super().construct_factory(env)
        return DynamoDBFactory(env, client=self.client)

    def create(self, name: str) -> UUID:
        counter = Counter(name)
        self.save(counter)
        return counter.id

    def increment(self, counter_id: UUID) -> int:
        counter: Counter = self.repository.get(counter_id)
        counter.increment()
        self.save(counter)
        return counter.count


APP_ENV = {"PERSISTENCE_MODULE": FACTORY_TOPIC, "DYNAMODB_TABLE_PREFIX": "test", "CREATE_TABLE": "y"}


@pytest.fixture
def client() -> Iterator[Any]:
    with mock_aws():
        yield _client()


@pytest.fixture
def recorder(client: Any) -> DynamoDBProcessRecorder:
    recorder = DynamoDBProcessRecorder(client, "test-events", "test-tracking")
    recorder.create_table()
    return recorder


def _events(originator_id: UUID | str, versions: range) -> list[StoredEvent]:
    return [StoredEvent(originator_id, v, "topic", f"state {v}".encode()) for v in versions]


def test_stale_save_raises_and_retry_with_fresh_state_succeeds(client: Any) -> None:
    writer1, writer2 = Counters(APP_ENV, client), Counters(APP_ENV, client)
    counter_id = writer1.create("jobs")

    # Both writers load version 1; writer1 saves version 2 first.
    seen_by_1: Counter = writer1.repository.get(counter_id)
    seen_by_2: Counter = writer2.repository.get(counter_id)
    seen_by_1.increment()
    writer1.save(seen_by_1)

    # writer2's save is based on stale state: it must raise, never overwrite version 2.
    seen_by_2.increment()
    with pytest.raises(IntegrityError):
        writer2.save(seen_by_2)
    assert [e.originator_version for e in writer1.events.get(counter_id)] == [1, 2]

    # The retry reloads fresh state and succeeds on top of writer1's event.
    assert writer2.increment(counter_id) == 2
    assert writer1.repository.get(counter_id).count == 2
    assert [e.originator_version for e in writer2.events.get(counter_id)] == [1, 2, 3]


def test_recreating_an_aggregate_with_a_natural_id_conflicts(client: Any) -> None:
    app1, app2 = Counters(APP_ENV, client), Counters(APP_ENV, client)
    app1.create("queues")
    with pytest.raises(IntegrityError):
        app2.create("queues")


def test_save_of_several_aggregates_is_atomic(client: Any) -> None:
    app, other = Counters(APP_ENV, client), Counters(APP_ENV, client)
    b_id = app.create("b")
    stale_b: Counter = app.repository.get(b_id)
    other.increment(b_id)

    # A new aggregate and a stale one in one save: nothing of it is recorded.
    a = Counter("a")
    stale_b.increment()
    with pytest.raises(IntegrityError):
        app.save(a, stale_b)
    with pytest.raises(AggregateNotFoundError):
        app.repository.get(a.id)
    assert app.repository.get(b_id).version == 2

    # With fresh state the same save records both.
    a = Counter("a")
    fresh_b: Counter = app.repository.get(b_id)
    fresh_b.increment()
    assert app.save(a, fresh_b) == []  # no application sequence, so no notification ids
    assert app.repository.get(a.id).version == 1
    assert app.repository.get(b_id).count == 2


def test_insert_of_several_aggregates_is_one_transaction(recorder: DynamoDBProcessRecorder) -> None:
    existing, new = uuid4(), uuid4()
    recorder.insert_events(_events(existing, range(1, 2)))
    with pytest.raises(IntegrityError):
        recorder.insert_events(_events(new, range(1, 4)) + _events(existing, range(1, 3)))
    assert recorder.select_events(new) == []
    assert len(recorder.select_events(existing)) == 1


def test_save_above_100_items_is_atomic_per_aggregate(recorder: DynamoDBProcessRecorder) -> None:
    a, b, c = uuid4(), uuid4(), uuid4()
    # 120 items: a and b (80) fit the first transaction, c (40) goes in a second one.
    recorder.insert_events(_events(a, range(1, 41)) + _events(b, range(1, 41)) + _events(c, range(1, 41)))
    assert [len(recorder.select_events(x)) for x in (a, b, c)] == [40, 40, 40]

    # A conflict in the second transaction: the first one's aggregates stay recorded (whole), the
    # conflicting aggregate's events are not recorded at all.
    d, e, f = uuid4(), uuid4(), uuid4()
    recorder.insert_events(_events(f, range(1, 2)))
    with pytest.raises(IntegrityError) as raised:
        recorder.insert_events(_events(d, range(1, 51)) + _events(e, range(1, 51)) + _events(f, range(1, 11)))
    assert "Recorded in part" in "".join(getattr(raised.value, "__notes__", []))
    assert [len(recorder.select_events(x)) for x in (d, e, f)] == [50, 50, 1]


def _operations(client: Any) -> list[str]:
    """The DynamoDB operations `client` sends from now on, in order."""
    sent: list[str] = []
    client.meta.events.register("before-call.dynamodb.*", lambda model, **_: sent.append(model.name))
    return sent


def test_each_aggregate_is_written_on_its_own_and_a_stale_one_fails_alone(
    recorder: DynamoDBProcessRecorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    from batchops.local.emulator import patch_moto

    patch_moto(monkeypatch.setattr)  # the writes run in threads: moto's tables must serve one request at a time, as AWS
    one, several, stale = uuid4(), uuid4(), uuid4()
    recorder.insert_events(_events(stale, range(1, 3)))
    sent = _operations(recorder.client)
    failed = recorder.insert_each_aggregate(
        _events(one, range(1, 2)) + _events(several, range(1, 4)) + _events(stale, range(2, 4)), writers=3
    )
    # A lone event is a PutItem (1 WRU a KB), an aggregate's several events one transaction (2 WRU a KB each).
    assert sorted(sent) == ["PutItem", "TransactWriteItems", "TransactWriteItems"]
    assert list(failed) == [str(stale)]
    assert isinstance(failed[str(stale)], IntegrityError)
    assert [len(recorder.select_events(x)) for x in (one, several, stale)] == [1, 3, 2]


def test_a_per_aggregate_save_with_an_item_too_large_sends_nothing(recorder: DynamoDBProcessRecorder) -> None:
    small, big = uuid4(), uuid4()
    sent = _operations(recorder.client)
    too_big = StoredEvent(big, 1, "topic", b"x" * 410_000)
    with pytest.raises(DataError):
        recorder.insert_each_aggregate([*_events(small, range(1, 3)), too_big], writers=2)
    with pytest.raises(DataError):
        recorder.insert_each_aggregate(_events(big, range(1, 102)), writers=2)
    assert sent == []
    assert recorder.select_events(small) == []


def test_more_than_100_events_of_one_aggregate_are_refused(recorder: DynamoDBProcessRecorder) -> None:
    big, small = uuid4(), uuid4()
    with pytest.raises(DataError):
        recorder.insert_events(_events(small, range(1, 3)) + _events(big, range(1, 102)))
    assert recorder.select_events(big) == []
    assert recorder.select_events(small) == []


def test_tracked_save_must_fit_one_transaction(recorder: DynamoDBProcessRecorder) -> None:
    tracking = Tracking("upstream", 7)
    with pytest.raises(DataError):
        recorder.insert_events(_events(uuid4(), range(1, 60)) + _events(uuid4(), range(1, 42)), tracking=tracking)
    assert recorder.max_tracking_id("upstream") is None
    events = _events(uuid4(), range(1, 100))  # 99 events + the tracking item = 100
    recorder.insert_events(events, tracking=tracking)
    assert recorder.max_tracking_id("upstream") == 7
    assert len(recorder.select_events(events[0].originator_id)) == 99


def test_select_events_pages_and_bounds(recorder: DynamoDBProcessRecorder) -> None:
    originator_id = uuid4()
    recorder.insert_events(_events(originator_id, range(1, 31)))
    versions = [e.originator_version for e in recorder.select_events(originator_id, gt=5, lte=12, desc=True)]
    assert versions == list(range(12, 5, -1))
    assert [e.originator_version for e in recorder.select_events(originator_id, lte=3)] == [1, 2, 3]
    assert [e.originator_version for e in recorder.select_events(originator_id, gt=27)] == [28, 29, 30]
    assert recorder.select_events(originator_id, gt=5, lte=5) == []
    assert recorder.select_events(originator_id, limit=0) == []


def test_notification_log_is_refused_not_faked(recorder: DynamoDBProcessRecorder) -> None:
    with pytest.raises(NotSupportedError):
        recorder.select_notifications(start=None, limit=10)
    with pytest.raises(NotSupportedError):
        recorder.max_notification_id()
    with pytest.raises(NotSupportedError):
        recorder.subscribe()


def test_scan_segments_cover_every_event_once_and_resume(recorder: DynamoDBProcessRecorder) -> None:
    ids = [uuid4() for _ in range(6)]
    for originator_id in ids:
        recorder.insert_events(_events(originator_id, range(1, 6)))
    seen = [
        (e.originator_id, e.originator_version)
        for segment in range(3)
        for page in recorder.scan_events(segment, 3, page_size=4)
        for e in page.events
    ]
    assert sorted(seen) == sorted((i, v) for i in ids for v in range(1, 6))

    # Resume after the first page, as an interrupted replay would.
    first = next(recorder.scan_events(page_size=7))
    assert first.next_key is not None
    rest = [e for page in recorder.scan_events(start_key=first.next_key, page_size=7) for e in page.events]
    assert len(first.events) + len(rest) == 30


def test_application_through_persistence_module_topic(client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in AWS_ENV.items():
        monkeypatch.setenv(key, value)
    app = Counters(APP_ENV)  # no client given: the factory builds one from the environment
    assert isinstance(app.factory, DynamoDBFactory)
    counter_id = app.create("jobs")
    for _ in range(4):
        app.increment(counter_id)

    fresh = Counters(APP_ENV)
    counter: Counter = fresh.repository.get(counter_id)
    assert (counter.name, counter.count, counter.version) == ("jobs", 4, 5)
    assert fresh.repository.get(counter_id, version=2).count == 1

    # The snapshot at version 3 is in its own table, which has no stream.
    assert fresh.snapshots is not None
    assert [s.originator_version for s in fresh.snapshots.get(counter_id)] == [3]
    events = client.describe_table(TableName="test-events")["Table"]
    snapshots = client.describe_table(TableName="test-snapshots")["Table"]
    assert events["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    assert events["StreamSpecification"] == {"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"}
    assert not snapshots.get("StreamSpecification", {}).get("StreamEnabled", False)


def test_stream_records_carry_the_saved_events(client: Any) -> None:
    app = Counters(APP_ENV, client)
    counter_id = app.create("streams")
    app.increment(counter_id)
    app.increment(counter_id)

    streams = _client("dynamodbstreams")
    arn = client.describe_table(TableName="test-events")["Table"]["LatestStreamArn"]
    records = []
    for shard in streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]:
        iterator = streams.get_shard_iterator(
            StreamArn=arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        records.extend(streams.get_records(ShardIterator=iterator)["Records"])

    decoded = [stored_event_from_stream_record(r, "uuid") for r in records]
    domain_events = [app.mapper.to_domain_event(s) for s in decoded if s is not None]
    assert [(e.originator_id, e.originator_version) for e in domain_events] == [
        (counter_id, 1),
        (counter_id, 2),
        (counter_id, 3),
    ]
    assert [type(e).__qualname__ for e in domain_events] == [
        "Counter.Created",
        "Counter.Incremented",
        "Counter.Incremented",
    ]

    # A Lambda receives the same record as JSON, with binary attributes in base64.
    as_lambda_json = dict(records[0])
    image = dict(as_lambda_json["dynamodb"]["NewImage"])
    image["state"] = {"B": base64.b64encode(image["state"]["B"]).decode()}
    as_lambda_json["dynamodb"] = {**as_lambda_json["dynamodb"], "NewImage": image}
    assert stored_event_from_stream_record(as_lambda_json, "uuid") == decoded[0]
    assert stored_event_from_stream_record({**records[0], "eventName": "REMOVE"}, "uuid") is None


def _client_error(code: str, reasons: list[str] | None = None) -> ClientError:
    response: dict[str, Any] = {"Error": {"Code": code, "Message": code}}
    if reasons is not None:
        response["CancellationReasons"] = [{"Code": r} for r in reasons]
    return ClientError(response, "TransactWriteItems")


@pytest.mark.parametrize(
    ("code", "reasons", "expected"),
    [
        ("ConditionalCheckFailedException", None, IntegrityError),
        ("TransactionCanceledException", ["None", "ConditionalCheckFailed"], IntegrityError),
        ("TransactionCanceledException", ["TransactionConflict", "ConditionalCheckFailed"], IntegrityError),
        ("TransactionCanceledException", ["None", "TransactionConflict"], OperationalError),
        ("TransactionCanceledException", ["ThrottlingError", "None"], OperationalError),
        ("TransactionCanceledException", ["ValidationError"], DataError),
        ("ProvisionedThroughputExceededException", None, OperationalError),
        ("ThrottlingException", None, OperationalError),
        ("ResourceNotFoundException", None, OperationalError),
    ],
)
def test_errors_map_to_integrity_only_for_failed_conditions(
    code: str, reasons: list[str] | None, expected: type[Exception]
) -> None:
    assert type(translate_client_error(_client_error(code, reasons))) is expected


def test_missing_table_is_an_operational_error(client: Any) -> None:
    recorder = DynamoDBAggregateRecorder(client, "absent-events")
    with pytest.raises(OperationalError):
        recorder.insert_events(_events(uuid4(), range(1, 2)))
    with pytest.raises(OperationalError):
        recorder.select_events(uuid4())


def test_factory_needs_a_prefix_and_creates_tables_only_when_asked(client: Any) -> None:
    with pytest.raises(OSError, match="DYNAMODB_TABLE_PREFIX"):
        DynamoDBFactory({}, client=client)
    with pytest.raises(OSError, match="ORIGINATOR_ID_TYPE"):
        DynamoDBFactory({"DYNAMODB_TABLE_PREFIX": "p", "ORIGINATOR_ID_TYPE": "int"}, client=client)
    DynamoDBFactory({"DYNAMODB_TABLE_PREFIX": "p"}, client=client).application_recorder()
    assert client.list_tables()["TableNames"] == []
    factory = DynamoDBFactory({"DYNAMODB_TABLE_PREFIX": "p", "CREATE_TABLE": "yes"}, client=client)
    factory.process_recorder()
    assert sorted(client.list_tables()["TableNames"]) == ["p-events", "p-tracking"]
    assert get_topic(type(factory)) == FACTORY_TOPIC


def test_table_names() -> None:
    assert table_name("batchops", "events") == "batchops-events"
    assert table_name("batchops-prod-", "tracking") == "batchops-prod-tracking"
    assert table_name("batchops_", "snapshots") == "batchops_snapshots"


def test_client_follows_the_standard_aws_environment(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from batchops.adapters.dynamodb.event_store import build_client

    config = tmp_path / "config"
    config.write_text("[profile central]\nregion = eu-west-1\naws_access_key_id = a\naws_secret_access_key = b\n")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    for name in ("AWS_PROFILE", "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_DYNAMODB"):
        monkeypatch.delenv(name, raising=False)
    profiled = build_client({"AWS_PROFILE": "central"})
    assert profiled.meta.region_name == "eu-west-1"
    assert build_client({"AWS_PROFILE": "central", "AWS_REGION": "ap-south-1"}).meta.region_name == "ap-south-1"
    local = build_client({**AWS_ENV, "AWS_ENDPOINT_URL": "http://127.0.0.1:4566"})
    assert local.meta.endpoint_url == "http://127.0.0.1:4566"
    only = {
        **AWS_ENV,
        "AWS_ENDPOINT_URL": "http://127.0.0.1:4566",
        "AWS_ENDPOINT_URL_DYNAMODB": "http://127.0.0.1:8000",
    }
    assert build_client(only).meta.endpoint_url == "http://127.0.0.1:8000"
    assert build_client(AWS_ENV).meta.endpoint_url == "https://dynamodb.us-east-1.amazonaws.com"
