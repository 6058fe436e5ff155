"""The projections' way to Athena: DynamoDB stream batches of the jobs and instances tables -> row operations ->
Amazon Data Firehose (PutRecordBatch), which applies them to the Apache Iceberg tables (docs/athena-data-path.md).

For each batch: the net change of every item (its image before the batch's first record, after its last), the
rows each image gives (batchops.athena_tables), and the operations between them, one Firehose record each:
the row's JSON with `_table` and `_op`, from which the stream's JSONQuery routes it to its table and operation.

A REMOVE by DynamoDB's TTL deletes the item's rows. Any other REMOVE is a replay deleting the generation it
replaced: the item of the current generation, read once, says what the rows are now, so only rows the new
projection no longer has (or has in another partition) are deleted.

The only DynamoDB reads: the current view generation (once per batch); for instances the `jobs_run` count, which
the views keep as join edges in the meta table (a job change therefore also refreshes the rows of the instances
its attempts ran on); for a job's `job_attempts` rows the instance each attempt ran on, joined as the views join
it; and the current item behind a replay's REMOVE.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from batchops.adapters.dynamodb.items import META
from batchops.adapters.dynamodb.job_items import job_parts, job_row_and_fold
from batchops.adapters.dynamodb.prices import HourlyPriceBook
from batchops.adapters.dynamodb.tables import table_name
from batchops.adapters.dynamodb.views import (
    INSTANCES,
    JOBS,
    DynamoDBSession,
    DynamoDBViewStore,
    from_item,
)
from batchops.athena_tables import Operation, Rows, instance_rows, job_rows, operations
from batchops.cost_report import with_costs
from batchops.instances import instance_key
from batchops.projection import INSTANCE_FIELDS, InstanceFacts, Joins, attempt_rows, attempts_of

TTL_PRINCIPAL = {"type": "Service", "principalId": "dynamodb.amazonaws.com"}
"""The userIdentity of a stream record whose item DynamoDB's TTL deleted."""
MAX_BATCH_RECORDS = 500
MAX_BATCH_BYTES = 4 * 1024 * 1024
"""PutRecordBatch takes at most 500 records and 4 MiB a call."""


class ExportFailed(RuntimeError):
    """Firehose kept refusing records: the batch fails and the stream retries it (updates are safe to repeat)."""


class StreamViewError(ValueError):
    """A stream record lacks the old image: the table's stream must be NEW_AND_OLD_IMAGES."""


@dataclass(frozen=True)
class ExportSettings:
    """Where the operations go and which tables feed them."""

    stream: str
    store_prefix: str
    max_attempts: int = 5
    backoff_seconds: float = 0.2


@dataclass
class ExportOutcome:
    """What one batch did, for the log line and the tests."""

    records: int = 0
    items: int = 0
    updates: int = 0
    deletes: int = 0
    calls: int = 0
    retried: int = 0
    bytes_sent: int = 0
    seconds: float = 0.0


def _image(image: Mapping[str, Any]) -> dict[str, Any]:
    """A stream image as boto3 would return the item: Lambda delivers binary attributes as base64 text."""
    found = {}
    for name, value in image.items():
        if "B" in value and isinstance(value["B"], str):
            value = {"B": base64.b64decode(value["B"])}
        found[name] = value
    return from_item(found)


def _table_of(record: Mapping[str, Any]) -> str:
    _, _, rest = str(record.get("eventSourceARN", "")).partition(":table/")
    return rest.split("/", 1)[0]


def _split_key(pk: str) -> tuple[int, str]:
    head, sep, aggregate = pk.partition("#")
    if not sep or not head.isdigit():
        raise ValueError(f"stream record key {pk!r} is not '<generation>#<aggregate>'")
    return int(head), aggregate


def firehose_record(operation: Operation) -> dict[str, bytes]:
    """The PutRecordBatch entry of an operation: the row's JSON with the routing fields the stream's JSONQuery reads."""
    body = {"_table": operation.table, "_op": operation.operation, **operation.row}
    return {"Data": json.dumps(body, separators=(",", ":")).encode()}


class _NoJoins:
    """Joins that know nothing: an old image only tells which rows to delete, and an attempt's key and partition
    do not depend on its instance."""

    def instance_by_container_instance(self, account: str, region: str, arn: str) -> InstanceFacts | None:
        return None

    def instance_by_id(self, account: str, region: str, instance_id: str) -> InstanceFacts | None:
        return None

    def compute_environment_pricing(self, account: str, region: str, name: str) -> str | None:
        return None


class FirehoseExporter:
    """Turns stream batches of the projection tables into Firehose records for the Iceberg tables."""

    def __init__(self, firehose: Any, dynamodb: Any, settings: ExportSettings) -> None:
        self.firehose = firehose
        self.settings = settings
        self.views = DynamoDBViewStore(dynamodb, settings.store_prefix)
        self.tables = {table_name(settings.store_prefix, kind): kind for kind in (JOBS, INSTANCES)}
        self._sessions: dict[int, DynamoDBSession] = {}
        self._prices = HourlyPriceBook(dynamodb, table_name(settings.store_prefix, META))

    # items -> rows -------------------------------------------------------------------------------------------
    def _joins(self, generation: int) -> Joins:
        """A read-only view session of the generation: the attempts' instances, each read once per batch."""
        if generation not in self._sessions:
            self._sessions[generation] = DynamoDBSession(self.views, generation)
        return self._sessions[generation]

    def _rows(self, kind: str, generation: int, values: Mapping[str, Any] | None, *, fresh: bool) -> Rows | None:
        if values is None:
            return None
        if kind == JOBS:
            row, timeline, fold = job_parts(values)
            joins = self._joins(generation) if fresh else _NoJoins()
            costed, attempts = self._costed(row, attempt_rows(fold, joins) if fold else [])
            return job_rows(costed, timeline, attempts)
        return instance_rows(self._instance_row(generation, values) if fresh else values)

    def _costed(
        self, row: dict[str, Any], attempts: list[dict[str, Any]]
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """The job row and its attempts with their costs, at the stored prices (read once an hour per container:
        prices are refreshed daily, and a job exported before its prices were stored keeps a null cost until its
        item changes again)."""
        [job], costed = with_costs([row], attempts, self._prices())
        return job, costed

    def _instance_row(self, generation: int, values: Mapping[str, Any]) -> dict[str, Any]:
        """The instance row as the views show it: jobs_run counted from the ran-on edges."""
        row = {f: values.get(f) for f in INSTANCE_FIELDS}
        row["spot_interrupted"] = bool(row["spot_interrupted"])
        row["jobs_run"] = self.views.jobs_run(generation, row)
        return row

    def _current_item(self, kind: str, aggregate: str, current: int) -> dict[str, Any] | None:
        """The item of the current generation (what a replay's REMOVE of the old one leaves in the views)."""
        table = self.views.jobs_table if kind == JOBS else self.views.instances_table
        item = self.views.client.get_item(
            TableName=table, Key={"pk": {"S": f"{current}#{aggregate}"}}, ConsistentRead=True
        ).get("Item")
        return from_item(item) if item else None

    # stream records -> operations ---------------------------------------------------------------------------
    def _net(self, records: Sequence[Mapping[str, Any]]) -> dict[tuple[str, str], tuple[Mapping[str, Any], ...]]:
        """Each item's first and last record of the batch."""
        found: dict[tuple[str, str], tuple[Mapping[str, Any], ...]] = {}
        for record in records:
            kind = self.tables.get(_table_of(record))
            if kind is None:
                continue
            stream = record["dynamodb"]
            if record["eventName"] != "INSERT" and "OldImage" not in stream:
                raise StreamViewError(
                    f"a {record['eventName']} record of {_table_of(record)} has no OldImage: set the table's stream "
                    "to NEW_AND_OLD_IMAGES (the exporter deletes the rows an item leaves)"
                )
            key = (kind, str(stream["Keys"]["pk"]["S"]))
            found[key] = (found.get(key, (record,))[0], record)
        return found

    def _after(self, kind: str, last: Mapping[str, Any], current: int) -> Rows | None:
        generation, aggregate = _split_key(str(last["dynamodb"]["Keys"]["pk"]["S"]))
        image = last["dynamodb"].get("NewImage")
        if image is not None:
            return self._rows(kind, generation, _image(image), fresh=True)
        if last.get("userIdentity") == TTL_PRINCIPAL:
            return None  # expired: its rows go
        return self._rows(kind, current, self._current_item(kind, aggregate, current), fresh=True)

    def operations(self, records: Sequence[Mapping[str, Any]]) -> tuple[int, list[Operation]]:
        """The batch's items and the row operations they ask for (instances refreshed for the jobs that ran on them)."""
        net = self._net(records)
        if not net:
            return 0, []
        current = self.views.current_generation()
        found: list[Operation] = []
        for (kind, pk), (first, last) in net.items():
            generation, _ = _split_key(pk)
            old = first["dynamodb"].get("OldImage")
            before = self._rows(kind, generation, _image(old), fresh=False) if old is not None else None
            found += operations(before, self._after(kind, last, current))
        return len(net), found + self._instances_of_jobs(net)

    def _instances_of_jobs(self, net: Mapping[tuple[str, str], tuple[Mapping[str, Any], ...]]) -> list[Operation]:
        """Fresh rows of the instances the batch's jobs ran on (their jobs_run may have changed)."""
        wanted: set[tuple[int, str]] = set()
        for (kind, pk), (_, last) in net.items():
            image = last["dynamodb"].get("NewImage")
            if kind != JOBS or image is None:
                continue
            (values, fold), (generation, _) = job_row_and_fold(_image(image)), _split_key(pk)
            account, region = values["account_id"], values["region"]
            if values.get("instance_id"):
                wanted.add((generation, str(instance_key(account, region, values["instance_id"]))))
            for attempt in attempts_of(fold) if fold else []:
                arn = attempt.get("container_instance_arn")
                edge = self.views.meta_item(f"{generation}#ci", f"{account}#{region}#{arn}") if arn else None
                if edge and edge.get("instance"):
                    wanted.add((generation, str(UUID(edge["instance"]))))
        found = []
        for generation, uuid in sorted(wanted):
            if (INSTANCES, f"{generation}#{uuid}") in net:
                continue
            item = self._current_item(INSTANCES, uuid, generation)
            if item:
                found += operations(None, instance_rows(self._instance_row(generation, item)))
        return found

    # operations -> Firehose ---------------------------------------------------------------------------------
    def send(self, entries: Sequence[dict[str, bytes]], outcome: ExportOutcome) -> None:
        """PutRecordBatch in calls of at most 500 records and 4 MiB; records Firehose refused are sent again."""
        pending = list(entries)
        for attempt in range(self.settings.max_attempts):
            refused: list[dict[str, bytes]] = []
            for chunk in _chunks(pending):
                outcome.calls += 1
                outcome.bytes_sent += sum(len(e["Data"]) for e in chunk)
                response = self.firehose.put_record_batch(DeliveryStreamName=self.settings.stream, Records=chunk)
                if response.get("FailedPutCount"):
                    results = response["RequestResponses"]
                    refused += [e for e, r in zip(chunk, results, strict=True) if r.get("ErrorCode")]
            if not refused:
                return
            outcome.retried += len(refused)
            pending = refused
            time.sleep(self.settings.backoff_seconds * 2**attempt)
        raise ExportFailed(f"Firehose refused {len(pending)} records {self.settings.max_attempts} times")

    def export(self, records: Sequence[Mapping[str, Any]]) -> ExportOutcome:
        """Send a stream batch's row operations; raises when Firehose would not take them (the stream retries)."""
        started = time.perf_counter()
        self._sessions = {}  # joins are read afresh for every batch
        outcome = ExportOutcome(records=len(records))
        outcome.items, found = self.operations(records)
        outcome.updates = sum(1 for o in found if o.operation == "update")
        outcome.deletes = len(found) - outcome.updates
        if found:
            self.send([firehose_record(o) for o in found], outcome)
        outcome.seconds = time.perf_counter() - started
        return outcome


def _chunks(entries: Sequence[dict[str, bytes]]) -> list[list[dict[str, bytes]]]:
    chunks: list[list[dict[str, bytes]]] = []
    size = 0
    for entry in entries:
        length = len(entry["Data"])
        if not chunks or len(chunks[-1]) == MAX_BATCH_RECORDS or size + length > MAX_BATCH_BYTES:
            chunks.append([])
            size = 0
        chunks[-1].append(entry)
        size += length
    return chunks
