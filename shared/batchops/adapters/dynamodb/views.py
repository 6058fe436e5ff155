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

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from botocore.exceptions import ClientError

from batchops.adapters.dynamodb.items import (
    DEFAULT_RETENTION_DAYS,
    EXPORTED_STREAM,
    INSTANCES,
    JOBS,
    KEPT_ASIDE_BYTES,
    MAX_REASON_CHARACTERS,
    META,
    ConcurrentViewUpdate,
    _batch_get,
    _deserializer,
    _now,
    _pack,
    _serializer,
    _unpack_fold,
    _without_seen,
    ensure_view_tables,
    from_item,
    to_item,
    unpack,
    view_table_definitions,
)
from batchops.adapters.dynamodb.job_items import job_parts, stored_job_row
from batchops.adapters.dynamodb.session import DynamoDBSession
from batchops.adapters.dynamodb.tables import MAX_ITEM_BYTES, item_size, table_name
from batchops.projection import (
    INSTANCE_FIELDS,
    attempt_rows,
)
from batchops.tuning import DEFAULT_TUNING
from batchops.views import ALL_JOBS, JobFilter, PipelineCounters, RejectedEvent


class DynamoDBViewStore:
    """The ViewStore port on DynamoDB tables named `<prefix>-jobs`, `<prefix>-instances`, `<prefix>-meta`."""

    def __init__(
        self,
        client: Any,
        prefix: str,
        *,
        retention_days: int = DEFAULT_RETENTION_DAYS,
        queued_rows: int = DEFAULT_TUNING.job_rows_queued,
        job_writers: int = DEFAULT_TUNING.job_writers,
    ) -> None:
        """`queued_rows` and `job_writers`: see `Tuning.job_rows_queued` and `Tuning.job_writers`."""
        self.client = client
        self.queued_rows = queued_rows
        self.job_writers = job_writers
        self.prefix = prefix
        self.jobs_table = table_name(prefix, JOBS)
        self.instances_table = table_name(prefix, INSTANCES)
        self.meta_table = table_name(prefix, META)
        self.retention_days = retention_days

    def close(self) -> None:
        """Nothing to release (boto3 clients are thread-safe and pooled)."""

    # generations ---------------------------------------------------------------------------------------
    def meta_item(self, pk: str, sk: str) -> dict[str, Any] | None:
        """One item of the meta table (a generation pointer, a join edge, a compute environment), read consistently."""
        item = self.client.get_item(
            TableName=self.meta_table, Key=to_item({"pk": pk, "sk": sk}), ConsistentRead=True
        ).get("Item")
        return from_item(item) if item else None

    def current_generation(self) -> int:
        """The generation readers see (1 until a replay switches)."""
        found = self.meta_item("generation", "current")
        return int(found["generation"]) if found else 1

    def start_generation(self) -> int:
        """The generation a replay builds (resumes an unfinished one)."""
        building = self.meta_item("generation", "building")
        if building:
            return int(building["generation"])
        generation = self.current_generation() + 1
        self.client.put_item(
            TableName=self.meta_table, Item=to_item({"pk": "generation", "sk": "building", "generation": generation})
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
                        "Item": to_item({"pk": "generation", "sk": "current", "generation": generation}),
                    }
                },
                {"Delete": {"TableName": self.meta_table, "Key": to_item({"pk": "generation", "sk": "building"})}},
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
            yield from_item(item)

    def jobs(self, query: JobFilter = ALL_JOBS) -> Iterator[dict[str, Any]]:
        """Job rows, filtered, in (account, region, created, job id) order.

        With accounts and statuses (or accounts, regions and queues) the by-status-since (by-queue) index names the
        jobs and only those items are read; any other filter scans the generation."""
        keys = self._indexed_job_keys(query)
        items = self._generation_items(self.jobs_table) if keys is None else self._job_items(keys)
        rows = []
        for item in items:
            row = job_row_of_item(item)
            if _matches(row, query):
                rows.append(row)
        rows.sort(key=lambda r: (r["account_id"], r["region"], r["created_at"] or "", r["job_id"]))
        yield from rows[: query.limit] if query.limit else rows

    def _indexed_job_keys(self, query: JobFilter) -> list[str] | None:
        """The keys of the jobs an index finds for the filter (a superset of the matches), or None: no index fits."""
        generation = self.current_generation()
        if query.accounts and query.statuses:
            index, values = "by-status-since", [f"{generation}#{a}#{s}" for a in query.accounts for s in query.statuses]
        elif query.accounts and query.regions and query.queues:
            index = "by-queue"
            values = [f"{generation}#{a}#{r}#{q}" for a in query.accounts for r in query.regions for q in query.queues]
        else:
            return None
        attribute = "by_status" if index == "by-status-since" else "by_queue"
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
                yield from_item(item)

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
            job, timeline, fold = job_parts(from_item(item))
            if account and job["account_id"] != account:
                continue
            job["timeline"] = timeline
            job["attempt_details"] = attempt_rows(fold, joins) if fold else []
            found.append(job)
        return sorted(found, key=lambda j: (j["account_id"], j["region"]))

    def instances(self) -> Iterator[dict[str, Any]]:
        """Compute-instance rows with the number of distinct jobs that ran on each."""
        generation = self.current_generation()
        rows = []
        for item in self._generation_items(self.instances_table):
            row = {f: item.get(f) for f in INSTANCE_FIELDS}
            row["spot_interrupted"] = bool(row["spot_interrupted"])
            row["jobs_run"] = self.jobs_run(generation, row)
            rows.append(row)
        rows.sort(key=lambda r: (r["account_id"], r["region"], r["registered_at"] or "", r["instance_id"]))
        yield from rows

    def jobs_run(self, generation: int, row: dict[str, Any]) -> int:
        """How many jobs ran on an instance row's instance (by EC2 id or container instance), from the ran-on edges."""
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
        jobs = sorted(
            map(job_parts, self._generation_items(self.jobs_table)),
            key=lambda j: (j.row["account_id"], j.row["region"], j.row["job_id"]),
        )
        for job in jobs:
            yield from job.timeline

    def attempts(self) -> Iterator[dict[str, Any]]:
        """Every job's attempt rows, each with the instance it ran on (a read-only session answers the joins)."""
        generation = self.current_generation()
        joins = DynamoDBSession(self, generation)
        jobs = sorted(
            map(job_parts, self._generation_items(self.jobs_table)),
            key=lambda j: (j.row["account_id"], j.row["region"], j.row["job_id"]),
        )
        for job in jobs:
            if job.fold:
                yield from attempt_rows(job.fold, joins)

    # ingestion bookkeeping -------------------------------------------------------------------------------
    def add_counters(self, counters: list[PipelineCounters]) -> None:
        """Add to the per-account counters (atomic ADD)."""
        for c in counters:
            self.client.update_item(
                TableName=self.meta_table,
                Key=to_item({"pk": "counters", "sk": f"{c.account_id}#{c.region}"}),
                UpdateExpression="ADD ingested :i, duplicates :d, rejected :r, ignored :g",
                ExpressionAttributeValues=to_item(
                    {":i": c.ingested, ":d": c.duplicates, ":r": c.rejected, ":g": c.ignored}
                ),
            )

    def counters(self) -> list[PipelineCounters]:
        """Ingestion counters per account and region."""
        found = []
        for item in self._query_meta("counters"):
            values = from_item(item)
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
            item = to_item(
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
        items = [from_item(i) for i in self._query_meta("rejected")]
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


def job_row_of_item(values: dict[str, Any]) -> dict[str, Any]:
    """A job item's contract row (from its attribute values, `from_item`, in either layout: `job_parts`)."""
    return stored_job_row(values)


__all__ = [
    "DEFAULT_RETENTION_DAYS",
    "EXPORTED_STREAM",
    "INSTANCES",
    "JOBS",
    "KEPT_ASIDE_BYTES",
    "MAX_REASON_CHARACTERS",
    "META",
    "ConcurrentViewUpdate",
    "DynamoDBSession",
    "DynamoDBViewStore",
    "_deserializer",
    "_now",
    "_pack",
    "_serializer",
    "_unpack_fold",
    "_without_seen",
    "ensure_view_tables",
    "from_item",
    "to_item",
    "unpack",
    "view_table_definitions",
]
