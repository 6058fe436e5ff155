"""The Parquet export of the projections for Athena: DynamoDB stream batches of the jobs and instances tables
→ one Parquet object per table, account and date on S3 → Glue partitions (docs/athena-data-path.md).

For each batch: the net change of every item (its image before the batch, its image after), the partitions
those touch (a row that moved, e.g. a job that finished, also touches the partition it left), and for each
partition: read its object, replace the changed rows by key, write it back conditionally (`If-Match` on the
ETag read, `If-None-Match: *` for a new object) and start again from the read when another writer won.
Partitions written are registered in Glue (`BatchCreatePartition`; an existing one is fine).

The only DynamoDB reads: the current view generation (once per batch); for instances the `jobs_run` count,
which the views keep as join edges in the meta table rather than on the instance item (a job change therefore
also refreshes the rows of the instances its attempts ran on); and for a job's `job_attempts` rows, the
instance each attempt ran on, joined as the views join it (container-instance edge, then the instance item,
each read once per batch).
"""

from __future__ import annotations

import base64
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from botocore.exceptions import ClientError

from batchops.adapters.dynamodb.tables import table_name
from batchops.adapters.dynamodb.views import (
    INSTANCES,
    JOBS,
    META,
    DynamoDBSession,
    DynamoDBViewStore,
    _from_item,
    _unpack,
)
from batchops.export_layout import (
    COLUMNS,
    GENERATION_KEY,
    PARTITION_KEYS,
    ItemChange,
    ItemState,
    Partition,
    plan,
    rewrite,
)
from batchops.instances import instance_key
from batchops.parquet import read_parquet, write_parquet
from batchops.projection import INSTANCE_FIELDS, InstanceFacts, Joins, attempt_rows, attempts_of

PARQUET_INPUT = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat"
PARQUET_OUTPUT = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat"
PARQUET_SERDE = "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"
_LOST_RACE = frozenset({"PreconditionFailed", "ConditionalRequestConflict", "NoSuchKey", "412", "409"})


class ExportConflict(RuntimeError):
    """A partition kept changing under the exporter: the batch fails and the stream retries it."""


class StreamViewError(ValueError):
    """A stream record lacks the old image: the table's stream must be NEW_AND_OLD_IMAGES."""


@dataclass(frozen=True)
class ExportSettings:
    """Where the export goes and which tables feed it."""

    bucket: str
    store_prefix: str
    key_prefix: str = "projections"
    database: str = "batchops"
    codec: str = "gzip"
    max_attempts: int = 8


@dataclass
class ExportOutcome:
    """What one batch did, for the log line and the tests."""

    records: int = 0
    items: int = 0
    generation: int = 0
    partitions_written: int = 0
    partitions_unchanged: int = 0
    lost_races: int = 0
    partitions_registered: int = 0
    bytes_written: int = 0
    seconds: float = 0.0
    written: list[str] = field(default_factory=list)


def glue_columns(table: str) -> list[dict[str, str]]:
    """The Glue/Athena data columns of an exported table (the central template declares the same): every column
    but the partition keys. The files also hold account_id; Athena reads Parquet columns by name and takes
    account_id from the partition, which has the same value."""
    partition_keys = {name for name, _ in PARTITION_KEYS}
    return [{"Name": c.name, "Type": c.type} for c in COLUMNS[table] if c.name not in partition_keys]


def glue_table_input(table: str, bucket: str, key_prefix: str = "projections") -> dict[str, Any]:
    """The Glue CreateTable input of an exported table (what the central template declares)."""
    return {
        "Name": table,
        "TableType": "EXTERNAL_TABLE",
        "Parameters": {"classification": "parquet", "EXTERNAL": "TRUE"},
        "PartitionKeys": [{"Name": name, "Type": kind} for name, kind in PARTITION_KEYS],
        "StorageDescriptor": {
            "Columns": glue_columns(table),
            "Location": f"s3://{bucket}/{key_prefix.strip('/')}/{table}/",
            "InputFormat": PARQUET_INPUT,
            "OutputFormat": PARQUET_OUTPUT,
            "SerdeInfo": {"SerializationLibrary": PARQUET_SERDE, "Parameters": {"serialization.format": "1"}},
        },
    }


def _image(image: Mapping[str, Any]) -> dict[str, Any]:
    """A stream image as boto3 would return the item: Lambda delivers binary attributes as base64 text."""
    found = {}
    for name, value in image.items():
        if "B" in value and isinstance(value["B"], str):
            value = {"B": base64.b64decode(value["B"])}
        found[name] = value
    return _from_item(found)


def _table_of(record: Mapping[str, Any]) -> str:
    arn = str(record.get("eventSourceARN", ""))
    _, _, rest = arn.partition(":table/")
    return rest.split("/", 1)[0]


def _generation_of(record: Mapping[str, Any]) -> int:
    pk = record["dynamodb"]["Keys"]["pk"]["S"]
    head, sep, _ = str(pk).partition("#")
    if not sep or not head.isdigit():
        raise ValueError(f"stream record key {pk!r} is not '<generation>#<aggregate>'")
    return int(head)


class _NoJoins:
    """Joins that know nothing: a job's old image only tells which partitions its rows leave, and an attempt's
    partition does not depend on its instance."""

    def instance_by_container_instance(self, account: str, region: str, arn: str) -> InstanceFacts | None:
        return None

    def instance_by_id(self, account: str, region: str, instance_id: str) -> InstanceFacts | None:
        return None

    def compute_environment_pricing(self, account: str, region: str, name: str) -> str | None:
        return None


class AthenaExporter:
    """Applies stream batches of the projection tables to the Parquet export."""

    def __init__(self, s3: Any, glue: Any, dynamodb: Any, settings: ExportSettings) -> None:
        self.s3 = s3
        self.glue = glue
        self.settings = settings
        self.views = DynamoDBViewStore(dynamodb, settings.store_prefix)
        self.tables = {table_name(settings.store_prefix, kind): kind for kind in (JOBS, INSTANCES)}
        self._registered: set[Partition] = set()

    # stream records -> item changes ---------------------------------------------------------------------
    def _state(
        self, kind: str, generation: int, image: Mapping[str, Any] | None, *, fresh: bool, joins: Joins
    ) -> ItemState | None:
        if image is None:
            return None
        values = _image(image)
        if kind == JOBS:
            timeline = _unpack(values["timeline"]) if values.get("timeline") else []
            fold = _unpack(values["fold"]) if values.get("fold") else None
            attempts = attempt_rows(fold, joins if fresh else _NoJoins()) if fold else []
            return ItemState.job(values, timeline, attempts)
        return ItemState.instance(self._instance_row(generation, values) if fresh else values)

    def _joins(self, sessions: dict[int, DynamoDBSession], generation: int) -> Joins:
        """A read-only view session of the generation: the attempts' instances, each read once per batch."""
        if generation not in sessions:
            sessions[generation] = DynamoDBSession(self.views, generation)
        return sessions[generation]

    def _instance_row(self, generation: int, values: Mapping[str, Any]) -> dict[str, Any]:
        """The instance row as the views show it: jobs_run counted from the ran-on edges."""
        row = {f: values.get(f) for f in INSTANCE_FIELDS}
        row["spot_interrupted"] = bool(row["spot_interrupted"])
        row["jobs_run"] = self.views._jobs_run(generation, row)
        return row

    def changes(self, records: Sequence[Mapping[str, Any]]) -> list[ItemChange]:
        """Each item's net change over the batch: the image before its first record, after its last."""
        first: dict[tuple[str, str], Mapping[str, Any]] = {}
        last: dict[tuple[str, str], Mapping[str, Any]] = {}
        for record in records:
            kind = self.tables.get(_table_of(record))
            if kind is None:
                continue
            stream = record["dynamodb"]
            if record["eventName"] != "INSERT" and "OldImage" not in stream:
                raise StreamViewError(
                    f"a {record['eventName']} record of {_table_of(record)} has no OldImage: set the table's stream "
                    "to NEW_AND_OLD_IMAGES (the exporter needs the partition a row leaves)"
                )
            key = (kind, str(stream["Keys"]["pk"]["S"]))
            first.setdefault(key, record)
            last[key] = record
        found = []
        sessions: dict[int, DynamoDBSession] = {}
        for key, record in first.items():
            kind = key[0]
            generation = _generation_of(record)
            joins = self._joins(sessions, generation)
            before = self._state(kind, generation, record["dynamodb"].get("OldImage"), fresh=False, joins=joins)
            after = self._state(kind, generation, last[key]["dynamodb"].get("NewImage"), fresh=True, joins=joins)
            if before is None and after is None:
                continue
            found.append(ItemChange(generation, before, after))
        return found + self._instances_of_jobs(first, last)

    def _instances_of_jobs(
        self, first: Mapping[tuple[str, str], Mapping[str, Any]], last: Mapping[tuple[str, str], Mapping[str, Any]]
    ) -> list[ItemChange]:
        """Fresh rows of the instances the batch's jobs ran on (their jobs_run may have changed)."""
        wanted: set[tuple[int, str]] = set()
        in_batch = {pk for kind, pk in first if kind == INSTANCES}
        for (kind, _), record in last.items():
            image = record["dynamodb"].get("NewImage")
            if kind != JOBS or image is None:
                continue
            values = _image(image)
            generation = _generation_of(record)
            account, region = values["account_id"], values["region"]
            if values.get("instance_id"):
                wanted.add((generation, str(instance_key(account, region, values["instance_id"]))))
            fold = _unpack(values["fold"]) if values.get("fold") else None
            for attempt in attempts_of(fold) if fold else []:
                arn = attempt.get("container_instance_arn")
                if not arn:
                    continue
                edge = self.views._meta(f"{generation}#ci", f"{account}#{region}#{arn}")
                if edge and edge.get("instance"):
                    wanted.add((generation, str(UUID(edge["instance"]))))
        changes = []
        for generation, uuid in sorted(wanted):
            pk = f"{generation}#{uuid}"
            if pk in in_batch:
                continue
            item = self.views.client.get_item(
                TableName=self.views.instances_table, Key={"pk": {"S": pk}}, ConsistentRead=True
            ).get("Item")
            if item:
                row = self._instance_row(generation, _from_item(item))
                changes.append(ItemChange(generation, None, ItemState.instance(row)))
        return changes

    # partitions -------------------------------------------------------------------------------------------
    def _read(self, key: str) -> tuple[list[dict[str, Any]], int, str | None]:
        try:
            found = self.s3.get_object(Bucket=self.settings.bucket, Key=key)
        except ClientError as error:
            if error.response["Error"]["Code"] in ("NoSuchKey", "404"):
                return [], 0, None
            raise
        parsed = read_parquet(found["Body"].read())
        return parsed.rows, int(parsed.metadata.get(GENERATION_KEY, "0")), str(found["ETag"])

    def _write(self, key: str, data: bytes, etag: str | None) -> bool:
        """Put the object only if it is still the one read (or still absent); False when another writer won."""
        condition = {"IfMatch": etag} if etag else {"IfNoneMatch": "*"}
        try:
            self.s3.put_object(
                Bucket=self.settings.bucket,
                Key=key,
                Body=data,
                ContentType="application/vnd.apache.parquet",
                **condition,
            )
        except ClientError as error:
            if error.response["Error"]["Code"] in _LOST_RACE:
                return False
            raise
        return True

    def _export_partition(self, partition: Partition, edits: Any, generation: int, outcome: ExportOutcome) -> bool:
        key = partition.key(self.settings.key_prefix)
        for _ in range(self.settings.max_attempts):
            rows, file_generation, etag = self._read(key)
            result = rewrite(edits, rows, file_generation, generation)
            if result is None:
                outcome.partitions_unchanged += 1
                return False
            data = write_parquet(
                COLUMNS[partition.table],
                result.rows,
                codec=self.settings.codec,
                metadata={GENERATION_KEY: str(result.generation)},
            )
            if self._write(key, data, etag):
                outcome.partitions_written += 1
                outcome.bytes_written += len(data)
                outcome.written.append(key)
                return True
            outcome.lost_races += 1
        raise ExportConflict(f"s3://{self.settings.bucket}/{key} changed {self.settings.max_attempts} times under us")

    def register(self, partitions: Iterable[Partition]) -> int:
        """BatchCreatePartition for partitions not known to be registered; returns how many were created."""
        created = 0
        by_table: dict[str, list[Partition]] = {}
        for partition in sorted(set(partitions) - self._registered):
            by_table.setdefault(partition.table, []).append(partition)
        for table, found in by_table.items():
            for start in range(0, len(found), 100):
                chunk = found[start : start + 100]
                response = self.glue.batch_create_partition(
                    DatabaseName=self.settings.database,
                    TableName=table,
                    PartitionInputList=[self._partition_input(p) for p in chunk],
                )
                errors = [
                    e for e in response.get("Errors", []) if e["ErrorDetail"]["ErrorCode"] != "AlreadyExistsException"
                ]
                if errors:
                    raise RuntimeError(f"Glue refused partitions of {table}: {errors}")
                created += len(chunk) - len(response.get("Errors", []))
                self._registered.update(chunk)
        return created

    def _partition_input(self, partition: Partition) -> dict[str, Any]:
        return {
            "Values": partition.values,
            "StorageDescriptor": {
                "Columns": glue_columns(partition.table),
                "Location": f"s3://{self.settings.bucket}/{partition.folder(self.settings.key_prefix)}",
                "InputFormat": PARQUET_INPUT,
                "OutputFormat": PARQUET_OUTPUT,
                "SerdeInfo": {"SerializationLibrary": PARQUET_SERDE, "Parameters": {"serialization.format": "1"}},
                "Compressed": self.settings.codec != "uncompressed",
            },
        }

    def export(self, records: Sequence[Mapping[str, Any]]) -> ExportOutcome:
        """Apply a stream batch to the export; raises when it could not (the stream retries the batch)."""
        started = time.perf_counter()
        outcome = ExportOutcome(records=len(records))
        changes = self.changes(records)
        outcome.items = len(changes)
        if changes:
            outcome.generation = self.views.current_generation()
            written = [
                partition
                for partition, edits in sorted(plan(changes).items())
                if self._export_partition(partition, edits, outcome.generation, outcome)
            ]
            outcome.partitions_registered = self.register(written)
        outcome.seconds = time.perf_counter() - started
        return outcome


__all__ = [
    "META",
    "PARQUET_INPUT",
    "PARQUET_OUTPUT",
    "PARQUET_SERDE",
    "PARTITION_KEYS",
    "AthenaExporter",
    "ExportConflict",
    "ExportOutcome",
    "ExportSettings",
    "StreamViewError",
    "glue_columns",
    "glue_table_input",
]
