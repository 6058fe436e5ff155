"""DynamoDB view store: the projections of the central account, shared by concurrent Lambdas.

Tables (under a prefix): `jobs` and `instances` hold one item per aggregate and generation (`pk` =
"<generation>#<aggregate uuid>") with the contract fields, the compressed fold and a revision number;
`meta` holds the generation pointer, compute environments, join edges, counters and rejected events.

Concurrency: every item write is conditional on the revision read (optimistic), so two projectors that
touch the same job never overwrite each other: the loser raises `ConcurrentViewUpdate` and its batch is
retried with fresh state (folds are idempotent, so re-applying events is harmless). Joins go through
base-table items read with strong consistency (never a GSI), and a job row whose instance was unknown is
checked again after its own write, so a job and its instance projected at the same moment still meet.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

import orjson
from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

from batchops import views
from batchops.adapters.dynamodb.tables import MAX_ITEM_BYTES, item_size, table_name
from batchops.compute_environments import compute_environment_key
from batchops.instances import instance_key
from batchops.projection import (
    INSTANCE_FIELDS,
    JOB_EXTRA_FIELDS,
    JOB_FIELDS,
    TIME_FIELDS,
    InstanceFacts,
    attempt_rows,
    instance_row,
    instance_spot_signal,
    job_row,
    timeline_rows,
)
from batchops.times import parse_instant
from batchops.views import ALL_JOBS, JobFilter, PipelineCounters, RejectedEvent

JOBS = "jobs"
INSTANCES = "instances"
META = "meta"
DEFAULT_RETENTION_DAYS = 90
JOB_WRITERS = 10
"""Job items one flush writes at once (each its own conditional PutItem). One by one, an instance change that
reaches 10,000 jobs took 10,000 round trips in a row: at 5 ms each, 50 s of the projector Lambda's 60. Ten is
botocore's default connection pool per client, so no connection is opened and thrown away."""
_JOB_COLUMNS = (*JOB_FIELDS, *JOB_EXTRA_FIELDS)
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
                "pk", "by_queue", "created_at", "by_status", "last_event_time", "by_instance", "by_job_id"
            ),
            # Keys only: index items stay small (no fold or timeline copies), readers fetch the base item.
            # by_status is "<generation>#<account>#<status>" so one status of a busy Organization is not one
            # hot index partition.
            "GlobalSecondaryIndexes": [
                gsi("by-queue", "by_queue", "created_at", keys_only=True),
                gsi("by-status", "by_status", "last_event_time", keys_only=True),
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


def _unpack(blob: Any) -> Any:
    return orjson.loads(zlib.decompress(bytes(blob)))


def _now() -> str:
    return datetime.now(tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _unpack_fold(blob: Any) -> dict[str, Any]:
    """A stored fold, ready to fold more events into (`seen` is left out of an item that would not fit otherwise)."""
    fold: dict[str, Any] = _unpack(blob)
    fold.setdefault("seen", {})
    return fold


def _without_seen(item: dict[str, Any]) -> dict[str, Any] | None:
    """The item with its fold's fingerprints left out (the first trimming step of `DynamoDBSession._put`), or None
    when it has no fold to trim."""
    if "fold" not in item:
        return None
    fold = _unpack(item["fold"]["B"])
    if not fold.get("seen"):
        return None
    fold.pop("seen")
    return {**item, "fold": {"B": _pack(fold)}}


def _to_item(values: dict[str, Any]) -> dict[str, Any]:
    item: dict[str, Any] = {}
    for key, value in values.items():
        if value is None:
            continue
        if isinstance(value, float):
            value = Decimal(repr(value))
        item[key] = _serializer.serialize(value)
    return item


def _from_item(item: dict[str, Any]) -> dict[str, Any]:
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


class DynamoDBViewStore:
    """The ViewStore port on DynamoDB tables named `<prefix>-jobs`, `<prefix>-instances`, `<prefix>-meta`."""

    def __init__(self, client: Any, prefix: str, *, retention_days: int = DEFAULT_RETENTION_DAYS) -> None:
        self.client = client
        self.prefix = prefix
        self.jobs_table = table_name(prefix, JOBS)
        self.instances_table = table_name(prefix, INSTANCES)
        self.meta_table = table_name(prefix, META)
        self.retention_days = retention_days

    def close(self) -> None:
        """Nothing to release (boto3 clients are thread-safe and pooled)."""

    # generations ---------------------------------------------------------------------------------------
    def _meta(self, pk: str, sk: str) -> dict[str, Any] | None:
        item = self.client.get_item(
            TableName=self.meta_table, Key=_to_item({"pk": pk, "sk": sk}), ConsistentRead=True
        ).get("Item")
        return _from_item(item) if item else None

    def current_generation(self) -> int:
        """The generation readers see (1 until a replay switches)."""
        found = self._meta("generation", "current")
        return int(found["generation"]) if found else 1

    def start_generation(self) -> int:
        """The generation a replay builds (resumes an unfinished one)."""
        building = self._meta("generation", "building")
        if building:
            return int(building["generation"])
        generation = self.current_generation() + 1
        self.client.put_item(
            TableName=self.meta_table, Item=_to_item({"pk": "generation", "sk": "building", "generation": generation})
        )
        return generation

    def switch_generation(self, generation: int) -> None:
        """Point readers at a rebuilt generation, then delete the old generation's items."""
        old = self.current_generation()
        self.client.transact_write_items(
            TransactItems=[
                {
                    "Put": {
                        "TableName": self.meta_table,
                        "Item": _to_item({"pk": "generation", "sk": "current", "generation": generation}),
                    }
                },
                {"Delete": {"TableName": self.meta_table, "Key": _to_item({"pk": "generation", "sk": "building"})}},
            ]
        )
        self.delete_generation(old)

    def delete_generation(self, generation: int) -> int:
        """Delete every item of a generation; returns how many."""
        deleted = 0
        prefix = f"{generation}#"
        for table, keys in (
            (self.jobs_table, ("pk",)),
            (self.instances_table, ("pk",)),
            (self.meta_table, ("pk", "sk")),
        ):
            for item in self._scan(table, "begins_with(pk, :g)", {":g": {"S": prefix}}, keys):
                self.client.delete_item(TableName=table, Key={k: item[k] for k in keys})
                deleted += 1
        return deleted

    def _scan(
        self,
        table: str,
        condition: str | None = None,
        values: dict[str, Any] | None = None,
        keys: tuple[str, ...] | None = None,
    ) -> Iterator[dict[str, Any]]:
        request: dict[str, Any] = {"TableName": table}
        if condition:
            request["FilterExpression"] = condition
            request["ExpressionAttributeValues"] = values
        if keys:
            request["ProjectionExpression"] = ", ".join(f"#k{i}" for i in range(len(keys)))
            request["ExpressionAttributeNames"] = {f"#k{i}": k for i, k in enumerate(keys)}
        while True:
            response = self.client.scan(**request)
            yield from response["Items"]
            if "LastEvaluatedKey" not in response:
                return
            request["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def position(self, generation: int | None = None) -> int:
        """DynamoDB views are fed by the events table's stream, not a notification log: always 0."""
        return 0

    @contextmanager
    def session(self, generation: int | None = None) -> Iterator[DynamoDBSession]:
        """A unit of work; its writes are conditional and happen on exit."""
        session = DynamoDBSession(self, generation or self.current_generation())
        yield session
        session.flush()

    # queries -------------------------------------------------------------------------------------------
    def _generation_items(self, table: str) -> Iterator[dict[str, Any]]:
        prefix = f"{self.current_generation()}#"
        for item in self._scan(table, "begins_with(pk, :g)", {":g": {"S": prefix}}):
            yield _from_item(item)

    def jobs(self, query: JobFilter = ALL_JOBS) -> Iterator[dict[str, Any]]:
        """Job rows, filtered, in (account, region, created, job id) order.

        With accounts and statuses (or accounts, regions and queues) the by-status (by-queue) index names the
        jobs and only those items are read; any other filter scans the generation."""
        keys = self._indexed_job_keys(query)
        items = self._generation_items(self.jobs_table) if keys is None else self._job_items(keys)
        rows = []
        for item in items:
            row = {c: item.get(c) for c in _JOB_COLUMNS}
            if _matches(row, query):
                rows.append(row)
        rows.sort(key=lambda r: (r["account_id"], r["region"], r["created_at"] or "", r["job_id"]))
        yield from rows[: query.limit] if query.limit else rows

    def _indexed_job_keys(self, query: JobFilter) -> list[str] | None:
        """The keys of the jobs an index finds for the filter (a superset of the matches), or None: no index fits."""
        generation = self.current_generation()
        if query.accounts and query.statuses:
            index, values = "by-status", [f"{generation}#{a}#{s}" for a in query.accounts for s in query.statuses]
        elif query.accounts and query.regions and query.queues:
            index = "by-queue"
            values = [f"{generation}#{a}#{r}#{q}" for a in query.accounts for r in query.regions for q in query.queues]
        else:
            return None
        attribute = "by_status" if index == "by-status" else "by_queue"
        keys: dict[str, None] = {}
        for value in values:
            request: dict[str, Any] = {
                "TableName": self.jobs_table,
                "IndexName": index,
                "KeyConditionExpression": "#k = :v",
                "ExpressionAttributeNames": {"#k": attribute},
                "ExpressionAttributeValues": {":v": {"S": value}},
            }
            while True:
                response = self.client.query(**request)
                keys.update((item["pk"]["S"], None) for item in response["Items"])
                if "LastEvaluatedKey" not in response:
                    break
                request["ExclusiveStartKey"] = response["LastEvaluatedKey"]
        return list(keys)

    def _job_items(self, keys: list[str]) -> Iterator[dict[str, Any]]:
        """The job items of these keys, read 100 at a time (an item deleted meanwhile is skipped)."""
        for start in range(0, len(keys), 100):
            request = {self.jobs_table: {"Keys": [{"pk": {"S": k}} for k in keys[start : start + 100]]}}
            for _, item in _batch_get(self.client, request, "job items"):
                yield _from_item(item)

    def job(self, job_id: str, account: str | None = None) -> list[dict[str, Any]]:
        """Every job with that id (by the job-id index), with attempts and timeline."""
        generation = self.current_generation()
        response = self.client.query(
            TableName=self.jobs_table,
            IndexName="by-job-id",
            KeyConditionExpression="by_job_id = :j",
            ExpressionAttributeValues={":j": {"S": f"{generation}#{job_id}"}},
        )
        joins = DynamoDBSession(self, generation)  # read-only: answers the attempts' instance joins
        found = []
        for key in response["Items"]:
            item = self.client.get_item(TableName=self.jobs_table, Key={"pk": key["pk"]}).get("Item")
            if not item:
                continue
            values = _from_item(item)
            if account and values.get("account_id") != account:
                continue
            job = {c: values.get(c) for c in _JOB_COLUMNS}
            fold = _unpack(values["fold"])
            job["timeline"] = _unpack(values["timeline"])
            job["attempt_details"] = attempt_rows(fold, joins)
            found.append(job)
        return sorted(found, key=lambda j: (j["account_id"], j["region"]))

    def instances(self) -> Iterator[dict[str, Any]]:
        """Compute-instance rows with the number of distinct jobs that ran on each."""
        generation = self.current_generation()
        rows = []
        for item in self._generation_items(self.instances_table):
            row = {f: item.get(f) for f in INSTANCE_FIELDS}
            row["spot_interrupted"] = bool(row["spot_interrupted"])
            row["jobs_run"] = self._jobs_run(generation, row)
            rows.append(row)
        rows.sort(key=lambda r: (r["account_id"], r["region"], r["registered_at"] or "", r["instance_id"]))
        yield from rows

    def _jobs_run(self, generation: int, row: dict[str, Any]) -> int:
        jobs: set[str] = set()
        for pk in (
            f"{generation}#ran-on#{row['account_id']}#{row['region']}#{row['instance_id']}",
            f"{generation}#ran-on#{row['account_id']}#{row['region']}#{row['container_instance_arn']}",
        ):
            for item in self._query_meta(pk):
                jobs.add(item["sk"]["S"].split("#", 1)[0])
        return len(jobs)

    def _query_meta(self, pk: str) -> Iterator[dict[str, Any]]:
        request: dict[str, Any] = {
            "TableName": self.meta_table,
            "KeyConditionExpression": "pk = :p",
            "ExpressionAttributeValues": {":p": {"S": pk}},
            "ConsistentRead": True,
        }
        while True:
            response = self.client.query(**request)
            yield from response["Items"]
            if "LastEvaluatedKey" not in response:
                return
            request["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def timeline(self) -> Iterator[dict[str, Any]]:
        """Job state-change rows for every job."""
        items = sorted(
            self._generation_items(self.jobs_table), key=lambda i: (i["account_id"], i["region"], i["job_id"])
        )
        for item in items:
            yield from _unpack(item["timeline"])

    def attempts(self) -> Iterator[dict[str, Any]]:
        """Every job's attempt rows, each with the instance it ran on (a read-only session answers the joins)."""
        generation = self.current_generation()
        joins = DynamoDBSession(self, generation)
        items = sorted(
            self._generation_items(self.jobs_table), key=lambda i: (i["account_id"], i["region"], i["job_id"])
        )
        for item in items:
            yield from attempt_rows(_unpack(item["fold"]), joins)

    # ingestion bookkeeping -------------------------------------------------------------------------------
    def add_counters(self, counters: list[PipelineCounters]) -> None:
        """Add to the per-account counters (atomic ADD)."""
        for c in counters:
            self.client.update_item(
                TableName=self.meta_table,
                Key=_to_item({"pk": "counters", "sk": f"{c.account_id}#{c.region}"}),
                UpdateExpression="ADD ingested :i, duplicates :d, rejected :r, ignored :g",
                ExpressionAttributeValues=_to_item(
                    {":i": c.ingested, ":d": c.duplicates, ":r": c.rejected, ":g": c.ignored}
                ),
            )

    def counters(self) -> list[PipelineCounters]:
        """Ingestion counters per account and region."""
        found = []
        for item in self._query_meta("counters"):
            values = _from_item(item)
            account, region = values["sk"].split("#", 1)
            found.append(
                PipelineCounters(
                    account,
                    region,
                    int(values.get("ingested", 0)),
                    int(values.get("duplicates", 0)),
                    int(values.get("rejected", 0)),
                    int(values.get("ignored", 0)),
                )
            )
        return sorted(found, key=lambda c: (c.account_id, c.region))

    def keep_rejected(self, events: list[RejectedEvent]) -> int:
        """Keep unusable events once per distinct body."""
        import hashlib

        kept = 0
        for e in events:
            digest = hashlib.blake2b(e.body.encode(), digest_size=12).hexdigest()
            item = _to_item(
                {
                    "pk": "rejected",
                    "sk": digest,
                    "reason": e.reason[:MAX_REASON_CHARACTERS],
                    "rejected": e.rejected,
                    "detail_type": e.detail_type,
                    "account_id": e.account_id,
                    "region": e.region,
                    "body": e.body,
                    "received_at": e.received_at,
                }
            )
            size = item_size(item)
            if size > MAX_ITEM_BYTES:
                # Kept with the start of its body: the whole would not fit DynamoDB's 400 KB (the marker < 100 bytes).
                body = e.body.encode()
                cut = body[: max(0, len(body) - (size - KEPT_ASIDE_BYTES) - 100)].decode("utf-8", "ignore")
                dropped = len(body) - len(cut.encode())
                item["body"] = {"S": f"{cut}...[{dropped:,} more bytes not kept: over DynamoDB's item limit]"}
            try:
                self.client.put_item(
                    TableName=self.meta_table, Item=item, ConditionExpression="attribute_not_exists(sk)"
                )
                kept += 1
            except ClientError as error:
                if error.response["Error"]["Code"] != "ConditionalCheckFailedException":
                    raise
        return kept

    def rejected(self, limit: int = 100) -> list[RejectedEvent]:
        """The most recently kept unusable events."""
        items = [_from_item(i) for i in self._query_meta("rejected")]
        items.sort(key=lambda v: v.get("received_at") or "", reverse=True)
        return [
            RejectedEvent(
                v["reason"],
                bool(v["rejected"]),
                v.get("detail_type"),
                v.get("account_id"),
                v.get("region"),
                v["body"],
                v.get("received_at"),
            )
            for v in items[:limit]
        ]


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


def _matches(row: dict[str, Any], query: JobFilter) -> bool:
    for column, values in (
        ("account_id", query.accounts),
        ("region", query.regions),
        ("status", query.statuses),
        ("queue", query.queues),
        ("compute_environment", query.compute_environments),
    ):
        if values and row.get(column) not in values:
            return False
    return True


class DynamoDBSession:
    """One projection unit of work on DynamoDB; reads are strongly consistent, writes conditional."""

    def __init__(self, store: DynamoDBViewStore, generation: int) -> None:
        self.store = store
        self.client = store.client
        self.g = generation
        self._revisions: dict[str, int] = {}
        self._pending_jobs: dict[str, tuple[dict[str, Any], dict[str, Any], list[dict[str, Any]]]] = {}
        self._instances: dict[str, dict[str, Any] | None] = {}  # instance items written or read in this phase
        self._container_instances: dict[str, str | None] = {}  # container-instance edges written or read
        self._environments: dict[UUID, tuple[dict[str, Any] | None, bool, str | None]] = {}
        self._pending_edges: dict[tuple[str, str], dict[str, Any]] = {}  # job edges, written before the joins are read
        self._written_instances: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {}  # pk → (fold, row)
        # Job items read ahead by `prefetch_jobs` (pk → (revision, packed fold) or None): each used once, by the
        # first `job_fold` of its job, as the GetItem it replaces would have been.
        self._prefetched_jobs: dict[str, tuple[int, Any] | None] = {}
        self.kept_aside: list[RejectedEvent] = []  # items that would not fit DynamoDB's 400 KB even trimmed

    def _pk(self, key: UUID | str) -> str:
        return f"{self.g}#{key}"

    def _get(self, table: str, pk: str, sk: str | None = None) -> dict[str, Any] | None:
        key = {"pk": {"S": pk}} if sk is None else {"pk": {"S": pk}, "sk": {"S": sk}}
        if sk is None:
            self._prefetched_jobs.pop(pk, None)  # read again here: a revision and its values come from one read
        item = self.client.get_item(TableName=table, Key=key, ConsistentRead=True).get("Item")
        revision_key = pk if sk is None else f"{pk}|{sk}"
        if not item:
            self._revisions.setdefault(revision_key, 0)
            return None
        values = _from_item(item)
        self._revisions.setdefault(revision_key, int(values.get("rev", 0)))
        return values

    def _put(self, table: str, pk: str, values: dict[str, Any], sk: str | None = None) -> None:
        """Write an item only if it is still at the revision this session read (or still absent)."""
        revision_key = pk if sk is None else f"{pk}|{sk}"
        revision = self._revisions.get(revision_key)
        if revision is None:
            self._get(table, pk, sk)
            revision = self._revisions[revision_key]
        key = {"pk": pk} if sk is None else {"pk": pk, "sk": sk}
        item = _to_item({**values, **key, "rev": revision + 1, "gen": self.g})
        fitted = self._fit(table, revision_key, item)
        if fitted is None:
            return
        item = fitted
        condition = "attribute_not_exists(pk)" if revision == 0 else "rev = :rev"
        request: dict[str, Any] = {"TableName": table, "Item": item, "ConditionExpression": condition}
        if revision:
            request["ExpressionAttributeValues"] = {":rev": {"N": str(revision)}}
        try:
            self.client.put_item(**request)
        except ClientError as error:
            if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
                raise ConcurrentViewUpdate(f"{table} item {revision_key} changed since it was read") from error
            raise
        self._revisions[revision_key] = revision + 1

    def _fit(self, table: str, key: str, item: dict[str, Any]) -> dict[str, Any] | None:
        """The item as written: whole when DynamoDB takes it (400 KB by its rules, `item_size`); else without its
        fold's fingerprints (`seen`: what the aggregate needs to recognise a redelivery, never read by the views,
        whose folds give the same rows with or without it); else None, and the item is kept aside with its
        reason (`batchops rejected`), the rest of the batch written. See docs/dynamodb-capacity.md."""
        size = item_size(item)
        if size <= MAX_ITEM_BYTES:
            return item
        trimmed = _without_seen(item)
        if trimmed is not None and item_size(trimmed) <= MAX_ITEM_BYTES:
            return trimmed
        names = ("account_id", "region", "job_id", "instance_id", "name")
        values = _from_item({k: item[k] for k in names if k in item})
        self.kept_aside.append(
            RejectedEvent(
                reason=(
                    f"view item too large: the {table} item {key} would be {size:,} bytes, over DynamoDB's "
                    f"{MAX_ITEM_BYTES:,}; not written (its events are in the event store)"
                ),
                rejected=True,
                detail_type=None,
                account_id=values.get("account_id"),
                region=values.get("region"),
                body=orjson.dumps({"table": table, "key": key, "bytes": size, **values}).decode(),
                received_at=_now(),
            )
        )
        return None

    def _put_meta(self, pk: str, sk: str, values: dict[str, Any] | None = None) -> None:
        self.client.put_item(TableName=self.store.meta_table, Item=_to_item({**(values or {}), "pk": pk, "sk": sk}))

    def _put_meta_items(self, items: dict[tuple[str, str], dict[str, Any]]) -> None:
        """Unconditional meta items (join edges) in BatchWriteItem requests of up to 25: the same puts as one
        PutItem each (a batch write is not atomic either), in fewer round trips; unprocessed items are sent again."""
        requests = [
            {"PutRequest": {"Item": _to_item({**values, "pk": pk, "sk": sk})}} for (pk, sk), values in items.items()
        ]
        for start in range(0, len(requests), 25):
            pending: dict[str, Any] = {self.store.meta_table: requests[start : start + 25]}
            for attempt in range(10):
                unprocessed = self.client.batch_write_item(RequestItems=pending).get("UnprocessedItems") or {}
                if not unprocessed:
                    break
                pending = unprocessed
                time.sleep(min(0.05 * 2**attempt, 1.0))
            else:
                raise RuntimeError(f"{self.store.meta_table}: edge items still unprocessed after 10 batch writes")

    # folds -----------------------------------------------------------------------------------------------
    def prefetch(self, events: Iterable[Any], known: Mapping[UUID, Any] | None = None) -> None:
        """Read ahead, in BatchGetItem requests, what projecting these events will look up one item at a time: the
        stored folds of their jobs, then their instances and compute environments and the joins of those jobs'
        rows (container-instance edges, the instances behind them, compute environments). Not the aggregates whose
        folds are `known` (given to the projector).

        Performance only, at the start of the session, before anything is written: the same strongly consistent
        reads, a little earlier in the same phase, recorded as `_get` records them (a revision and the values it
        goes with, from one read). Writes stay conditional on those revisions, and `flush` still reads every join
        again after the session's writes; a lookup not foreseen here still reads its item itself."""
        from batchops.compute_environments import ComputeEnvironment
        from batchops.instances import Instance
        from batchops.jobs import Job

        known = known or {}
        jobs: list[UUID] = []
        instances: list[str] = []
        environments: list[UUID] = []
        for event in events:
            key = event.originator_id
            if key in known:
                continue
            if isinstance(event, (Job.Tracked, Job.StateObserved, Job.TaskObserved)):
                jobs.append(key)
            elif isinstance(event, (Instance.Tracked, Instance.Observed)):
                instances.append(self._pk(key))
            elif isinstance(event, (ComputeEnvironment.Tracked, ComputeEnvironment.Configured)):
                environments.append(key)
        self.prefetch_jobs(jobs)
        rows: list[dict[str, Any]] = [
            {"account_id": None, "region": None, "compute_environment": None, "environment_key": key}
            for key in environments
        ]
        for prefetched in list(self._prefetched_jobs.values()):
            if prefetched is not None:
                rows.extend(_JoinRecorder.rows_of(_unpack(prefetched[1])))
        self._read_joins(rows, instance_pks=instances)
        behind = [self._pk(UUID(i)) for i in self._container_instances.values() if i]
        self._read_joins([], instance_pks=behind)

    def prefetch_jobs(self, keys: Iterable[UUID]) -> None:
        """Read the stored folds and revisions of these jobs in BatchGetItem requests (strongly consistent, as each
        GetItem of `job_fold`), at the start of the session, before anything is written.

        Performance only: one request per 100 jobs instead of one GetItem each. The guarantees are those of the
        reads they replace: a job's revision is taken from the same read as its fold, the first time `job_fold`
        uses it (nothing else of the session has read the item before), and every write stays conditional on that
        revision, so a job another projector wrote since is a `ConcurrentViewUpdate` and a retry on fresh state,
        as before. Only the fold and revision are fetched (ProjectionExpression): less to send and decode.
        """
        wanted = [pk for pk in dict.fromkeys(self._pk(key) for key in keys) if pk not in self._revisions]
        for start in range(0, len(wanted), 100):
            chunk = wanted[start : start + 100]
            request: dict[str, Any] = {
                self.store.jobs_table: {
                    "Keys": [{"pk": {"S": pk}} for pk in chunk],
                    "ConsistentRead": True,
                    "ProjectionExpression": "#pk, #rev, #fold",
                    "ExpressionAttributeNames": {"#pk": "pk", "#rev": "rev", "#fold": "fold"},
                }
            }
            found: dict[str, tuple[int, Any]] = {}
            for _, item in _batch_get(self.client, request, "job items"):
                found[item["pk"]["S"]] = (int(item["rev"]["N"]) if "rev" in item else 0, item["fold"]["B"])
            for pk in chunk:
                self._prefetched_jobs[pk] = found.get(pk)

    def job_fold(self, key: UUID) -> dict[str, Any] | None:
        """The stored fold of a job."""
        pk = self._pk(key)
        pending = self._pending_jobs.get(pk)
        if pending is not None:
            return pending[0]
        if pk in self._prefetched_jobs:
            prefetched = self._prefetched_jobs.pop(pk)
            self._revisions.setdefault(pk, prefetched[0] if prefetched else 0)
            return _unpack_fold(prefetched[1]) if prefetched else None
        found = self._get(self.store.jobs_table, pk)
        return _unpack_fold(found["fold"]) if found else None

    def instance_fold(self, key: UUID) -> dict[str, Any] | None:
        """The stored fold of an instance."""
        found = self._instance_values(key)
        return _unpack_fold(found["fold"]) if found else None

    def compute_environment(self, key: UUID) -> tuple[dict[str, Any] | None, bool, str | None]:
        """A compute environment's fold, spot signal and pricing."""
        cached = self._environments.get(key)
        if cached is not None:
            return cached
        found = self._get(self.store.meta_table, f"{self.g}#ce", str(key))
        return self._remember_environment(key, found)

    def _remember_environment(
        self, key: UUID, found: dict[str, Any] | None
    ) -> tuple[dict[str, Any] | None, bool, str | None]:
        result = (
            (None, False, None)
            if found is None
            else (
                _unpack_fold(found["fold"]) if found.get("fold") else None,
                bool(found.get("spot_signal")),
                found.get("pricing"),
            )
        )
        self._environments[key] = result
        return result

    def _read_joins(self, rows: list[dict[str, Any]], instance_pks: Iterable[str] = ()) -> None:
        """Read, in BatchGetItem requests (strongly consistent, as each GetItem), what the joins of these rows will
        look up: their compute environments, container-instance edges and instances. The same reads as the lookups
        would make one by one, at the same point (after this session's writes); a lookup not foreseen here still
        reads its item itself."""
        meta: dict[tuple[str, str], Any] = {}
        instances: dict[str, Any] = {}
        for pk in instance_pks:
            if pk not in self._instances:
                instances[pk] = pk
        for row in rows:
            account, region = row["account_id"], row["region"]
            if row.get("environment_key") and row["environment_key"] not in self._environments:
                key = row["environment_key"]
                meta[(f"{self.g}#ce", str(key))] = ("ce", key)
            if row.get("compute_environment"):
                key = compute_environment_key(account, region, row["compute_environment"])
                if key not in self._environments:
                    meta[(f"{self.g}#ce", str(key))] = ("ce", key)
            ci = row.get("container_instance_arn")
            if ci and f"{account}#{region}#{ci}" not in self._container_instances:
                meta[(f"{self.g}#ci", f"{account}#{region}#{ci}")] = ("ci", f"{account}#{region}#{ci}")
            if row.get("instance_id"):
                pk = self._pk(instance_key(account, region, row["instance_id"]))
                if pk not in self._instances:
                    instances[pk] = pk
        keys = [(self.store.meta_table, {"pk": pk, "sk": sk}) for pk, sk in meta]
        keys += [(self.store.instances_table, {"pk": pk}) for pk in instances]
        found: dict[tuple[str, str, str | None], dict[str, Any]] = {}
        for start in range(0, len(keys), 100):
            request: dict[str, Any] = {}
            for table, item_key in keys[start : start + 100]:
                entry = request.setdefault(table, {"Keys": [], "ConsistentRead": True})
                entry["Keys"].append({k: {"S": v} for k, v in item_key.items()})
            for table, item in _batch_get(self.client, request, "join items"):
                values = _from_item(item)
                found[(table, values["pk"], values.get("sk"))] = values
        for (pk, sk), (kind, key) in meta.items():
            stored = found.get((self.store.meta_table, pk, sk))
            self._revisions.setdefault(f"{pk}|{sk}", int(stored.get("rev", 0)) if stored else 0)
            if kind == "ce":
                self._remember_environment(key, stored)
            else:
                self._container_instances[key] = stored["instance"] if stored else None
        for pk in instances:
            stored = found.get((self.store.instances_table, pk, None))
            self._revisions.setdefault(pk, int(stored.get("rev", 0)) if stored else 0)
            self._instances[pk] = stored

    # writes ----------------------------------------------------------------------------------------------
    def put_job(self, key: UUID, fold: dict[str, Any], row: dict[str, Any], attempts: list[dict[str, Any]]) -> None:
        """Queue a job write (done by `flush`, after the instance and CE writes of the same batch; early once
        `views.JOB_ROWS_QUEUED` are queued, as the projector puts jobs only after every instance and CE of the
        batch)."""
        self._pending_jobs[self._pk(key)] = (fold, row, attempts)
        if len(self._pending_jobs) >= views.JOB_ROWS_QUEUED:
            self.flush()

    def put_instance(self, key: UUID, fold: dict[str, Any], row: dict[str, Any]) -> None:
        """Write an instance and its container-instance edge."""
        values = {**row, "fold": _pack(fold), "spot_signal": instance_spot_signal(fold)}
        self._put(self.store.instances_table, self._pk(key), values)
        self._instances[self._pk(key)] = values
        self._written_instances[self._pk(key)] = (fold, row)
        edges: dict[tuple[str, str], dict[str, Any]] = {}
        if row.get("compute_environment"):
            ce = row["compute_environment"]
            edges[(f"{self.g}#ce-instances#{row['account_id']}#{row['region']}#{ce}", str(key))] = {}
        ci = row.get("container_instance_arn")
        if ci:
            edges[(f"{self.g}#ci", f"{row['account_id']}#{row['region']}#{ci}")] = {"instance": str(key)}
            self._container_instances[f"{row['account_id']}#{row['region']}#{ci}"] = str(key)
        if edges:  # before put_instance returns, as before: the projector reads the instance's jobs next
            self._put_meta_items(edges)

    def put_compute_environment(
        self,
        key: UUID,
        account: str,
        region: str,
        name: str,
        fold: dict[str, Any] | None,
        spot_signal: bool,
        pricing: str | None,
    ) -> None:
        """Write a compute environment's fold, spot signal and pricing, and its membership edge."""
        self._environments[key] = (fold, spot_signal, pricing)
        self._put(
            self.store.meta_table,
            f"{self.g}#ce",
            {
                "account_id": account,
                "region": region,
                "name": name,
                "fold": _pack(fold) if fold else None,
                "spot_signal": spot_signal,
                "pricing": pricing,
            },
            sk=str(key),
        )

    def flush(self) -> None:
        """Write queued job rows with their join edges and check their joins again (`_flush_jobs`), then keep aside
        with its reason every item too large to write."""
        try:
            self._flush_jobs()
        finally:
            kept, self.kept_aside = self.kept_aside, []
            if kept:
                self.store.keep_rejected(kept)

    def _flush_jobs(self) -> None:
        """Write queued job rows with their join edges, then check their joins again.

        Write-then-read: a job and the instance or compute environment it joins may be projected at the same
        moment by two Lambdas. Each writes its item (and edges) before reading the other's, so at least one of
        them sees the other; re-reading after our own write makes sure a stale join never stays.

        Round trips: the job items are written `JOB_WRITERS` at a time (each conditional on its revision), then
        their edges in batch writes, and only then are the joins read again; within one round of reads an item or
        edge is read once and reused by every job that joins it (each of those reads still comes after all of our
        writes).
        """
        self._verify_instance_pricing()
        written = list(self._pending_jobs.items())
        self._write_jobs(written)
        self._pending_jobs.clear()
        self._write_pending_edges()
        for _ in range(3):
            self._environments.clear()
            self._instances.clear()
            self._container_instances.clear()
            self._read_joins([row for _, (_, row, _) in written])
            stale = []
            for pk, (fold, row, attempts) in written:
                fresh = job_row(fold, self, attempts)
                if fresh != row:
                    stale.append((pk, (fold, fresh, attempts)))
            if not stale:
                return
            self._write_jobs(stale)
            self._write_pending_edges()
            written = stale

    def _verify_instance_pricing(self) -> None:
        """Write-then-read for the instance rows' pricing, as for the job rows' joins: an instance written with its
        compute environment's pricing while another projector changes that pricing (a spot signal) and looks for
        the environment's instances (the membership edges) must not keep the old pricing. Our instance and edge
        writes came first; reading the pricing again now, either we see the new pricing (and rewrite the row) or
        the other projector's edge query came after our edge and it rewrites the row."""
        for _ in range(3):
            self._environments.clear()
            self._read_joins(
                [
                    {**row, "container_instance_arn": None, "instance_id": None}
                    for _, row in self._written_instances.values()
                ]
            )
            stale = []
            for pk, (fold, row) in self._written_instances.items():
                ce = row.get("compute_environment")
                pricing = self.compute_environment_pricing(row["account_id"], row["region"], ce) if ce else None
                fresh = instance_row(fold, pricing)
                if fresh != row:
                    stale.append((pk, fold, fresh))
            if not stale:
                return
            for pk, fold, fresh in stale:
                self.put_instance(UUID(pk.split("#", 1)[1]), fold, fresh)

    def _write_pending_edges(self) -> None:
        if self._pending_edges:
            self._put_meta_items(self._pending_edges)
            self._pending_edges = {}

    def _write_jobs(self, jobs: list[tuple[str, tuple[dict[str, Any], dict[str, Any], list[dict[str, Any]]]]]) -> None:
        """Write job items, `JOB_WRITERS` at a time: distinct items, each conditional on its own revision, so their
        order does not matter (boto3 clients are thread-safe; each write touches only its own entries of the
        session's dictionaries). Every write is attempted; the first error is raised once all have ended, and the
        session's retry reads again whatever the failed ones left."""
        if len(jobs) <= 1 or JOB_WRITERS <= 1:
            for pk, (fold, row, attempts) in jobs:
                self._write_job(pk, fold, row, attempts)
            return
        with ThreadPoolExecutor(max_workers=min(JOB_WRITERS, len(jobs)), thread_name_prefix="batchops-jobs") as pool:
            futures = [pool.submit(self._write_job, pk, fold, row, attempts) for pk, (fold, row, attempts) in jobs]
        for future in futures:
            future.result()

    def _write_job(self, pk: str, fold: dict[str, Any], row: dict[str, Any], attempts: list[dict[str, Any]]) -> None:
        account, region = row["account_id"], row["region"]
        values: dict[str, Any] = {c: row[c] for c in _JOB_COLUMNS}
        values.update(
            fold=_pack(fold),
            timeline=_pack(timeline_rows(fold)),
            by_queue=f"{self.g}#{account}#{region}#{row['queue']}",
            by_status=f"{self.g}#{account}#{row['status']}",
            by_job_id=f"{self.g}#{row['job_id']}",
            by_instance=f"{self.g}#{account}#{region}#{row['instance_id']}" if row["instance_id"] else None,
        )
        if row["status"] in ("SUCCEEDED", "FAILED") and row["last_event_time"]:
            values["expires_at"] = parse_instant(row["last_event_time"]) // 1000 + self.store.retention_days * 86400
        if values.get("created_at") is None:
            values.pop("created_at")
        self._put(self.store.jobs_table, pk, values)
        job = pk.split("#", 1)[1]
        for attempt in attempts:
            for target in (
                attempt.get("container_instance_arn"),
                row["instance_id"] if attempt["attempt"] == row["attempts"] else None,
            ):
                if target:
                    self._pending_edges[
                        (f"{self.g}#ran-on#{account}#{region}#{target}", f"{job}#{attempt['attempt']}")
                    ] = {}
        if row["compute_environment"]:
            self._pending_edges[(f"{self.g}#ce-jobs#{account}#{region}#{row['compute_environment']}", job)] = {}

    # joins -----------------------------------------------------------------------------------------------
    def _instance_values(self, key: UUID) -> dict[str, Any] | None:
        """An instance item as written or (consistently) read in this phase of the session: read once per phase."""
        pk = self._pk(key)
        if pk not in self._instances:
            self._instances[pk] = self._get(self.store.instances_table, pk)
        return self._instances[pk]

    def instance_by_container_instance(self, account: str, region: str, arn: str) -> InstanceFacts | None:
        """The instance behind a container instance (consistent read of the edge item, once per phase)."""
        edge_key = f"{account}#{region}#{arn}"
        if edge_key not in self._container_instances:
            edge = self.store._meta(f"{self.g}#ci", edge_key)
            self._container_instances[edge_key] = edge["instance"] if edge else None
        instance = self._container_instances[edge_key]
        return None if instance is None else _facts(self._instance_values(UUID(instance)))

    def instance_by_id(self, account: str, region: str, instance_id: str) -> InstanceFacts | None:
        """An instance by its EC2 id."""
        return _facts(self._instance_values(instance_key(account, region, instance_id)))

    def compute_environment_pricing(self, account: str, region: str, name: str) -> str | None:
        """A compute environment's pricing as last written."""
        return self.compute_environment(compute_environment_key(account, region, name))[2]

    def jobs_on_instance(
        self, account: str, region: str, instance_id: str, container_instance_arn: str | None
    ) -> list[UUID]:
        """Jobs that ran on the instance (from the ran-on edges)."""
        found: set[UUID] = set()
        for target in (instance_id, container_instance_arn):
            if target:
                for item in self.store._query_meta(f"{self.g}#ran-on#{account}#{region}#{target}"):
                    found.add(UUID(item["sk"]["S"].split("#", 1)[0]))
        return sorted(found)

    def jobs_in_compute_environment(self, account: str, region: str, name: str) -> list[UUID]:
        """Jobs that ran in the compute environment."""
        return [UUID(i["sk"]["S"]) for i in self.store._query_meta(f"{self.g}#ce-jobs#{account}#{region}#{name}")]

    def instances_in_compute_environment(self, account: str, region: str, name: str) -> list[UUID]:
        """Instances registered in the compute environment (from the membership edges)."""
        return [UUID(i["sk"]["S"]) for i in self.store._query_meta(f"{self.g}#ce-instances#{account}#{region}#{name}")]

    def track(self, notification_id: int) -> None:
        """Stream-fed views keep no notification position."""


class _JoinRecorder:
    """The Joins of `job_row` answering nothing, noting what a job's row would look up (for `prefetch`)."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []

    @classmethod
    def rows_of(cls, fold: dict[str, Any]) -> list[dict[str, Any]]:
        recorder = cls()
        job_row(fold, recorder)
        return recorder.rows

    def instance_by_container_instance(self, account: str, region: str, arn: str) -> InstanceFacts | None:
        self.rows.append({"account_id": account, "region": region, "container_instance_arn": arn})
        return None

    def instance_by_id(self, account: str, region: str, instance_id: str) -> InstanceFacts | None:
        self.rows.append({"account_id": account, "region": region, "instance_id": instance_id})
        return None

    def compute_environment_pricing(self, account: str, region: str, name: str) -> str | None:
        self.rows.append({"account_id": account, "region": region, "compute_environment": name})
        return None


def _facts(values: dict[str, Any] | None) -> InstanceFacts | None:
    if values is None:
        return None
    return InstanceFacts(
        instance_id=values["instance_id"],
        instance_type=values.get("instance_type"),
        availability_zone=values.get("availability_zone"),
        compute_environment=values.get("compute_environment"),
        spot_signal=bool(values.get("spot_signal")),
        spot_interrupted=bool(values.get("spot_interrupted")),
    )


__all__ = ["TIME_FIELDS", "ConcurrentViewUpdate", "DynamoDBViewStore", "ensure_view_tables", "time"]
