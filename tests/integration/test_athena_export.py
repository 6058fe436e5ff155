"""The Athena export on moto: a simulated workload projected into the DynamoDB views, the views' stream records
(NEW_AND_OLD_IMAGES, Lambda-shaped) handed to the exporter handler, the Parquet objects on S3 read with DuckDB
and compared field for field with the views; Glue partitions; the dashboards' Athena SQL over the export."""

from __future__ import annotations

import base64
import json
from datetime import datetime
from pathlib import Path
from typing import Any

import boto3
import duckdb
import pytest
from botocore.config import Config
from test_dashboards import Grafana, athena_queries, run_athena, time_range_of

from batchops.adapters.athena_export import AthenaExporter, glue_table_input
from batchops.adapters.dynamodb.stream_projection import stream_fed
from batchops.adapters.dynamodb.views import view_table_definitions
from batchops.application import BatchOpsApplication
from batchops.bootstrap import Settings, build_application
from batchops.dashboards import DashboardSettings, render_dashboards
from batchops.entrypoints.export_lambda import handle_export_batch, settings_from_environment
from batchops.export_layout import COLUMNS, GENERATION_KEY, OPEN_DT, TABLES
from batchops.inbound import Parsed, translate
from batchops.parquet import read_parquet
from batchops.simulation import SimulationSettings, simulate
from conftest import AWS_REGION

REGION = AWS_REGION  # where the `aws` fixture (tests/conftest.py) puts the central account
PREFIX = "ex"
BUCKET = "ex-projections"
DATABASE = "batchops"
DUCKDB_TYPES = {"string": "VARCHAR", "bigint": "BIGINT", "double": "DOUBLE", "boolean": "BOOLEAN"}


def client(service: str) -> Any:
    return boto3.client(service, region_name=REGION, config=Config(account_id_endpoint_mode="disabled"))


@pytest.fixture
def central(aws: None) -> BatchOpsApplication:
    """The view tables as the central template declares them (streams with both images), the export bucket,
    the Glue database and tables, and the central application projecting inline."""
    dynamodb = client("dynamodb")
    for definition in view_table_definitions(PREFIX):
        dynamodb.create_table(**definition)
    client("s3").create_bucket(Bucket=BUCKET)
    glue = client("glue")
    glue.create_database(DatabaseInput={"Name": DATABASE})
    for table in TABLES:
        glue.create_table(DatabaseName=DATABASE, TableInput=glue_table_input(table, BUCKET))
    app = build_application(Settings.from_environment(store=f"dynamodb://{PREFIX}"), project_inline=True)
    stream_fed(app)  # wired to DynamoDB
    return app


def make_exporter() -> AthenaExporter:
    environment = {
        "BATCHOPS_STORE": f"dynamodb://{PREFIX}",
        "BATCHOPS_EXPORT_BUCKET": BUCKET,
        "BATCHOPS_GLUE_DATABASE": DATABASE,
    }
    return AthenaExporter(client("s3"), client("glue"), client("dynamodb"), settings_from_environment(environment))


def workload(jobs: int = 6, seed: int = 1) -> list[Parsed]:
    events = simulate(SimulationSettings(accounts=2, regions=1, jobs=jobs, seed=seed))
    return [f for f in map(translate, events) if isinstance(f, Parsed)]


class Streams:
    """The projection tables' stream records since the last read, in the shape Lambda delivers them."""

    def __init__(self) -> None:
        self.positions: dict[str, str] = {}

    def read(self, table: str) -> list[dict[str, Any]]:
        arn = client("dynamodb").describe_table(TableName=f"{PREFIX}-{table}")["Table"]["LatestStreamArn"]
        streams = client("dynamodbstreams")
        records = []
        for shard in streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]:
            shard_id = shard["ShardId"]
            position = f"{arn}|{shard_id}"
            if position in self.positions:
                where = {"ShardIteratorType": "AFTER_SEQUENCE_NUMBER", "SequenceNumber": self.positions[position]}
            else:
                where = {"ShardIteratorType": "TRIM_HORIZON"}
            iterator = streams.get_shard_iterator(StreamArn=arn, ShardId=shard_id, **where)["ShardIterator"]
            while iterator:
                response = streams.get_records(ShardIterator=iterator, Limit=1000)
                if not response["Records"]:
                    break
                records.extend(response["Records"])
                self.positions[position] = response["Records"][-1]["dynamodb"]["SequenceNumber"]
                iterator = response.get("NextShardIterator")
        return [lambda_shaped(r, arn) for r in records]

    def export(self, exporter: AthenaExporter, batch_size: int = 100) -> list[dict[str, Any]]:
        """Hand every new record of both tables to the exporter handler, as the event source mappings do."""
        responses = []
        for table in ("jobs", "instances"):
            records = self.read(table)
            for start in range(0, len(records), batch_size):
                responses.append(handle_export_batch(exporter, {"Records": records[start : start + batch_size]}))
        return responses


def lambda_shaped(record: dict[str, Any], stream_arn: str) -> dict[str, Any]:
    """A GetRecords record as a Lambda event record: JSON, binary attributes in base64, the source ARN."""

    def encode(value: Any) -> Any:
        if isinstance(value, bytes):
            return base64.b64encode(value).decode()
        if isinstance(value, datetime):
            return value.timestamp()
        raise TypeError(type(value))

    shaped: dict[str, Any] = json.loads(json.dumps(record, default=encode))
    shaped["eventSourceARN"] = stream_arn
    return shaped


def exported_files(tmp_path: Path) -> Path:
    """Copy the bucket's projections to a local folder (DuckDB stands in for Athena on it)."""
    s3 = client("s3")
    root = tmp_path / "bucket"
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix="projections/"):
        for obj in page.get("Contents", []):
            target = root / obj["Key"]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(s3.get_object(Bucket=BUCKET, Key=obj["Key"])["Body"].read())
    return root


def athena(root: Path) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute(f'CREATE SCHEMA "{DATABASE}"')
    for table in TABLES:
        con.execute(
            f'CREATE VIEW "{DATABASE}"."{table}" AS SELECT * FROM read_parquet('
            f"'{root}/projections/{table}/**/*.parquet', hive_partitioning = true, "
            "hive_types = {'account_id': 'VARCHAR', 'dt': 'DATE'}, union_by_name = true)"
        )
    return con


def table_rows(con: duckdb.DuckDBPyConnection, table: str) -> list[dict[str, Any]]:
    names = [c.name for c in COLUMNS[table]]
    cursor = con.execute(f'SELECT {", ".join(names)}, CAST(dt AS VARCHAR) FROM "{DATABASE}"."{table}"')
    return [{**dict(zip(names, row[:-1], strict=True)), "dt": row[-1]} for row in cursor.fetchall()]


def without_dt(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in r.items() if k != "dt"} for r in rows]


def key(row: dict[str, Any], *names: str) -> tuple[Any, ...]:
    return tuple(row[n] for n in names)


def assert_export_equals_views(app: BatchOpsApplication, tmp_path: Path) -> duckdb.DuckDBPyConnection:
    con = athena(exported_files(tmp_path))
    jobs = table_rows(con, "jobs")
    expected = sorted(app.views.jobs(), key=lambda r: key(r, "account_id", "region", "job_id"))
    assert sorted(without_dt(jobs), key=lambda r: key(r, "account_id", "region", "job_id")) == expected
    instances = table_rows(con, "instances")
    expected_instances = sorted(app.views.instances(), key=lambda r: key(r, "account_id", "region", "instance_id"))
    assert sorted(without_dt(instances), key=lambda r: key(r, "account_id", "region", "instance_id")) == (
        expected_instances
    )
    events = sorted(without_dt(table_rows(con, "job_events")), key=lambda r: json.dumps(r, sort_keys=True))
    assert events == sorted(app.views.timeline(), key=lambda r: json.dumps(r, sort_keys=True))
    attempts = sorted(without_dt(table_rows(con, "job_attempts")), key=lambda r: json.dumps(r, sort_keys=True))
    assert attempts == sorted(app.views.attempts(), key=lambda r: json.dumps(r, sort_keys=True))
    return con


# ------------------------------------------------------------------------------------------------ tests


def test_the_export_equals_the_views_field_for_field_with_the_doc_types(central: BatchOpsApplication, tmp_path: Path):
    central.record_with_retry(workload())
    responses = Streams().export(make_exporter())
    assert responses and all(r == {"batchItemFailures": []} for r in responses)
    con = assert_export_equals_views(central, tmp_path)
    for table in TABLES:
        described = con.execute(f'DESCRIBE SELECT * FROM "{DATABASE}"."{table}"').fetchall()
        types = {name: kind for name, kind, *_ in described}
        assert types == {
            **{c.name: DUCKDB_TYPES[c.type] for c in COLUMNS[table]},
            "dt": "DATE",
        }, table
    jobs = table_rows(con, "jobs")
    assert {j["status"] for j in jobs} >= {"SUCCEEDED", "FAILED"}
    for job in jobs:  # the doc's dt rule: the end date of a finished job, 9999-12-31 while open
        ended = job["stopped_at"] or job["last_event_time"]
        assert job["dt"] == (ended[:10] if job["status"] in ("SUCCEEDED", "FAILED") else OPEN_DT)
    assert all(isinstance(j["created_at"], str) and j["created_at"].endswith("Z") for j in jobs)
    assert any(i["jobs_run"] for i in table_rows(con, "instances"))
    attempts = table_rows(con, "job_attempts")
    for attempt in attempts:  # the date an attempt stopped, 9999-12-31 while it runs
        assert attempt["dt"] == (attempt["stopped_at"][:10] if attempt["stopped_at"] else OPEN_DT)
    assert all(a["attempt"] >= 1 for a in attempts)
    assert any(a["instance_id"] and a["instance_type"] for a in attempts)


def test_a_job_that_finishes_moves_out_of_the_open_partition_and_stays_one_row(
    central: BatchOpsApplication, tmp_path: Path
) -> None:
    facts = workload()
    streams, exporter = Streams(), make_exporter()
    half = len(facts) // 2
    central.record_with_retry(facts[:half])
    streams.export(exporter)
    first = athena(exported_files(tmp_path / "1"))
    before = {key(j, "account_id", "job_id"): j["dt"] for j in table_rows(first, "jobs")}
    attempt_key = ("account_id", "region", "job_id", "attempt")
    attempts_before = {key(a, *attempt_key): a["dt"] for a in table_rows(first, "job_attempts")}
    central.record_with_retry(facts[half:])
    streams.export(exporter)
    con = assert_export_equals_views(central, tmp_path / "2")
    after = table_rows(con, "jobs")
    moved = [j for j in after if before.get(key(j, "account_id", "job_id")) == OPEN_DT and j["dt"] != OPEN_DT]
    assert moved, "no job went from open to finished between the two halves"
    for job in moved:
        ident = ("account_id", "region", "job_id")
        same = [j for j in after if key(j, *ident) == key(job, *ident)]
        assert len(same) == 1
    counts = con.execute(
        f'SELECT count(*), count(DISTINCT (account_id, region, job_id)) FROM "{DATABASE}"."jobs"'
    ).fetchone()
    assert counts is not None and counts[0] == counts[1]
    # a job's attempts are replaced together: one row per attempt, whichever partition the attempt left
    attempts_after = {key(a, *attempt_key): a["dt"] for a in table_rows(con, "job_attempts")}
    assert any(dt == OPEN_DT and attempts_after[k] != OPEN_DT for k, dt in attempts_before.items())
    counts = con.execute(
        f'SELECT count(*), count(DISTINCT (account_id, region, job_id, attempt)) FROM "{DATABASE}"."job_attempts"'
    ).fetchone()
    assert counts is not None and counts[0] == counts[1] > 0


def test_glue_has_every_partition_written(central: BatchOpsApplication) -> None:
    central.record_with_retry(workload())
    Streams().export(make_exporter())
    s3, glue = client("s3"), client("glue")
    for table in TABLES:
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix=f"projections/{table}/")["Contents"]]
        in_s3 = {tuple(part.split("=", 1)[1] for part in k.split("/")[2:4]) for k in keys}
        partitions = glue.get_partitions(DatabaseName=DATABASE, TableName=table)["Partitions"]
        assert {tuple(p["Values"]) for p in partitions} == in_s3
        for p in partitions:
            location = p["StorageDescriptor"]["Location"]
            assert location == f"s3://{BUCKET}/projections/{table}/account_id={p['Values'][0]}/dt={p['Values'][1]}/"
    assert any(v[1] == OPEN_DT for v in in_s3) or table != "jobs"


def test_a_replay_ends_with_the_new_generation_and_its_cleanup_deletes_none_of_it(
    central: BatchOpsApplication, tmp_path: Path
) -> None:
    central.record_with_retry(workload())
    streams, exporter = Streams(), make_exporter()
    streams.export(exporter)
    assert stream_fed(central).replay(segments=2) > 0
    assert central.views.current_generation() == 2
    records = streams.read("jobs")
    assert {r["eventName"] for r in records} >= {"INSERT", "REMOVE"}  # new generation written, old one deleted
    for start in range(0, len(records), 100):
        assert handle_export_batch(exporter, {"Records": records[start : start + 100]}) == {"batchItemFailures": []}
    for record in streams.read("instances"):
        assert handle_export_batch(exporter, {"Records": [record]}) == {"batchItemFailures": []}
    assert_export_equals_views(central, tmp_path)
    s3 = client("s3")
    for obj in s3.list_objects_v2(Bucket=BUCKET, Prefix="projections/")["Contents"]:
        parsed = read_parquet(s3.get_object(Bucket=BUCKET, Key=obj["Key"])["Body"].read())
        assert parsed.metadata[GENERATION_KEY] == "2", obj["Key"]


def test_a_lost_race_is_retried_on_fresh_data_with_if_match(central: BatchOpsApplication, tmp_path: Path) -> None:
    facts = workload()
    central.record_with_retry(facts)
    streams = Streams()
    records = streams.read("jobs")
    first, rest = records[:1], records[1:]
    other = make_exporter()  # a second shard's exporter, rewriting the same partitions
    racer = make_exporter()
    sent: list[dict[str, Any]] = []
    interfered = []

    def before_put(params: dict[str, Any], **_: Any) -> None:
        sent.append({k: v for k, v in params.items() if k in ("Key", "IfMatch", "IfNoneMatch")})
        if not interfered and params["Key"].startswith("projections/jobs/") and "IfMatch" in params:
            interfered.append(params["Key"])
            other.export(rest)  # wins: rewrites the partition between our read and our put

    handle_export_batch(make_exporter(), {"Records": first})  # the partition exists: the race is on If-Match
    racer.s3.meta.events.register("before-parameter-build.s3.PutObject", before_put)
    outcome = racer.export(records)
    assert outcome.lost_races == 1
    tries = [s for s in sent if s["Key"] == interfered[0]]
    assert len(tries) == 2 and tries[0]["IfMatch"] != tries[1]["IfMatch"]  # tried again on the fresh ETag
    streams.read("instances")
    con = athena(exported_files(tmp_path))
    expected = sorted(central.views.jobs(), key=lambda r: key(r, "account_id", "region", "job_id"))
    assert sorted(without_dt(table_rows(con, "jobs")), key=lambda r: key(r, "account_id", "region", "job_id")) == (
        expected
    )


def test_a_new_partition_is_created_only_if_absent(central: BatchOpsApplication) -> None:
    central.record_with_retry(workload(jobs=2))
    sent: list[dict[str, Any]] = []
    exporter = make_exporter()
    exporter.s3.meta.events.register(
        "before-parameter-build.s3.PutObject",
        lambda params, **_: sent.append({k: params.get(k) for k in ("IfMatch", "IfNoneMatch")}),
    )
    streams = Streams()
    for response in streams.export(exporter):
        assert response == {"batchItemFailures": []}
    assert sent and all(s == {"IfMatch": None, "IfNoneMatch": "*"} or s["IfMatch"] for s in sent)
    assert any(s["IfNoneMatch"] == "*" for s in sent)


def test_a_batch_that_cannot_be_exported_reports_its_first_record(central: BatchOpsApplication) -> None:
    central.record_with_retry(workload(jobs=2))
    records = Streams().read("jobs")
    client("s3").delete_bucket(Bucket=BUCKET)  # nowhere to write
    response = handle_export_batch(make_exporter(), {"Records": records})
    assert response == {"batchItemFailures": [{"itemIdentifier": records[0]["dynamodb"]["SequenceNumber"]}]}


def test_the_dashboards_athena_sql_returns_rows_over_the_export(central: BatchOpsApplication, tmp_path: Path) -> None:
    central.record_with_retry(workload(jobs=8))
    Streams().export(make_exporter())
    con = athena(exported_files(tmp_path))
    jobs, instances = list(central.views.jobs()), list(central.views.instances())
    time = time_range_of(jobs, instances)
    finished = [j for j in jobs if j["status"] in ("SUCCEEDED", "FAILED") and j["instance_id"]]
    returned: dict[str, int] = {}
    for uid, dashboard in render_dashboards(DashboardSettings(athena_database=DATABASE)).items():
        grafana = Grafana(dashboard, con, time, {"job_id": finished[0]["job_id"]})
        for where, _, sql in athena_queries(dashboard):
            rows, _ = run_athena(con, grafana.interpolate(sql, where), time, where)
            returned[f"{uid} {where}"] = len(rows)
    assert all(count > 0 for name, count in returned.items() if name.startswith("batch-jobs")), returned
    assert sum(1 for count in returned.values() if count) >= len(returned) * 0.8, returned
