"""Firehose's Iceberg destination as the tests see it: moto's Firehose delivers nothing to Iceberg, so the sink answers
PutRecordBatch itself (after botocore has validated the request against Firehose's API model, as a Stubber's reply
would) and keeps every call; `IcebergTables` then applies the records as the destination does, in DuckDB: an update
deletes the row of its unique key and writes the new one, a delete removes the row of its unique key, both within
the record's partition, since the keys end in dt (docs/athena-data-path.md)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

import duckdb
from botocore.awsrequest import AWSResponse

from batchops.athena_tables import COLUMNS, TABLES, UNIQUE_KEYS

DUCKDB_TYPES = {
    "string": "VARCHAR",
    "bigint": "BIGINT",
    "double": "DOUBLE",
    "boolean": "BOOLEAN",
    "date": "DATE",
    "array<string>": "VARCHAR[]",
}


class FirehoseSink:
    """Answers a Firehose client's PutRecordBatch calls and keeps them; `refuse` decides, per call, which records
    come back with an error (as Firehose does when it throttles)."""

    def __init__(self, client: Any, refuse: Callable[[int, list[dict[str, Any]]], set[int]] | None = None) -> None:
        self.calls: list[dict[str, Any]] = []
        self.accepted: list[list[dict[str, Any]]] = []
        self.refuse = refuse or (lambda call, records: set())
        client.meta.events.register("before-parameter-build.firehose.PutRecordBatch", self._keep)
        client.meta.events.register("before-call.firehose.PutRecordBatch", self._answer)

    def _keep(self, params: dict[str, Any], **_: Any) -> None:
        self.calls.append(dict(params))  # the call as our code made it; botocore validates it next

    def _answer(self, **_: Any) -> tuple[AWSResponse, dict[str, Any]]:
        params = self.calls[-1]
        records = [json.loads(r["Data"]) for r in params["Records"]]
        refused = self.refuse(len(self.calls) - 1, records)
        self.accepted.append([r for i, r in enumerate(records) if i not in refused])
        responses = [
            {"ErrorCode": "ServiceUnavailableException", "ErrorMessage": "Slow down."}
            if i in refused
            else {"RecordId": f"r{i}"}
            for i in range(len(records))
        ]
        body = {"FailedPutCount": len(refused), "Encrypted": True, "RequestResponses": responses}
        return AWSResponse("https://firehose.invalid", 200, {}, None), body

    def records(self) -> list[dict[str, Any]]:
        """Every record Firehose accepted, in the order it took them."""
        return [record for call in self.accepted for record in call]


class IcebergTables:
    """The four tables in DuckDB, under the Glue database's name, as Firehose's Iceberg destination leaves them."""

    def __init__(self, database: str = "batchops") -> None:
        self.database = database
        self.con = duckdb.connect()
        self.con.execute("SET TimeZone = 'UTC'")
        self.con.execute(f'CREATE SCHEMA "{database}"')
        for table in TABLES:
            columns = ", ".join(f"{name} {DUCKDB_TYPES[kind]}" for name, kind in COLUMNS[table])
            self.con.execute(f'CREATE TABLE "{database}"."{table}" ({columns})')

    def apply(self, records: Iterable[dict[str, Any]]) -> None:
        for record in records:
            table, operation = record["_table"], record["_op"]
            keys = UNIQUE_KEYS[table]
            where = " AND ".join(f"{k} IS NOT DISTINCT FROM ?" for k in keys)
            self.con.execute(f'DELETE FROM "{self.database}"."{table}" WHERE {where}', [record.get(k) for k in keys])
            if operation == "update":
                names = [name for name, _ in COLUMNS[table]]
                marks = ", ".join("?" for _ in names)
                values = [record.get(n) for n in names]
                self.con.execute(f'INSERT INTO "{self.database}"."{table}" VALUES ({marks})', values)
            else:
                assert operation == "delete", record

    def rows(self, table: str) -> list[dict[str, Any]]:
        names = [name for name, _ in COLUMNS[table]]
        selected = ", ".join(n if n != "dt" else "CAST(dt AS VARCHAR)" for n in names)
        cursor = self.con.execute(f'SELECT {selected} FROM "{self.database}"."{table}"')
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
