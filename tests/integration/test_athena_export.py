"""The Athena data path on moto: a simulated workload projected into the DynamoDB views, the views' stream records
(NEW_AND_OLD_IMAGES, Lambda-shaped) handed to the exporter handler, its PutRecordBatch calls answered by a sink
(moto's Firehose does not deliver to Iceberg) and applied to DuckDB tables as Firehose's Iceberg destination applies
them (tests/firehose_sink.py); the tables compared field for field with the views, and the dashboards' SQL run on
them."""

from __future__ import annotations

import base64
import json
from datetime import datetime
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.stub import Stubber
from test_dashboards import Grafana, athena_queries, run_athena, time_range_of

from batchops.adapters.dynamodb.stream_projection import stream_fed
from batchops.adapters.dynamodb.views import from_item, job_row_of_item, view_table_definitions
from batchops.adapters.firehose_export import MAX_BATCH_RECORDS, TTL_PRINCIPAL, ExportOutcome, FirehoseExporter
from batchops.application import BatchOpsApplication
from batchops.athena_tables import COLUMNS, NOT_EXPORTED_JOB_FIELDS, OPEN_DT, TABLES, UNIQUE_KEYS
from batchops.bootstrap import Settings, build_application
from batchops.dashboards import DashboardSettings, render_dashboards
from batchops.entrypoints.export_lambda import handle_export_batch, settings_from_environment
from batchops.inbound import Parsed, translate
from batchops.price_service import costed_rows
from batchops.simulation import SimulationSettings, simulate
from conftest import AWS_REGION
from firehose_sink import DUCKDB_TYPES, FirehoseSink, IcebergTables

REGION = AWS_REGION  # where the `aws` fixture (tests/conftest.py) puts the central account
PREFIX = "ex"
STREAM = "ex-export"
DATABASE = "batchops"


def client(service: str) -> Any:
    return boto3.client(service, region_name=REGION, config=Config(account_id_endpoint_mode="disabled"))


@pytest.fixture
def central(aws: None) -> BatchOpsApplication:
    """The view tables as the central template declares them (streams with both images), and the central
    application projecting inline."""
    dynamodb = client("dynamodb")
    for definition in view_table_definitions(PREFIX):
        dynamodb.create_table(**definition)
    app = build_application(Settings.from_environment(store=f"dynamodb://{PREFIX}"), project_inline=True)
    stream_fed(app)  # wired to DynamoDB
    return app


def make_exporter(**sink: Any) -> tuple[FirehoseExporter, FirehoseSink]:
    environment = {"BATCHOPS_STORE": f"dynamodb://{PREFIX}", "BATCHOPS_EXPORT_STREAM": STREAM}
    settings = settings_from_environment(environment)
    exporter = FirehoseExporter(client("firehose"), client("dynamodb"), settings)
    return exporter, FirehoseSink(exporter.firehose, **sink)


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

    def export(self, exporter: FirehoseExporter, batch_size: int = 100) -> list[dict[str, Any]]:
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


def without_dt(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in r.items() if k != "dt"} for r in rows]


def key(row: dict[str, Any], *names: str) -> tuple[Any, ...]:
    return tuple(row[n] for n in names)


def by_json(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(rows, key=lambda r: json.dumps(r, sort_keys=True))


def tables_of(sink: FirehoseSink) -> IcebergTables:
    tables = IcebergTables(DATABASE)
    tables.apply(sink.records())
    return tables


def assert_tables_equal_views(app: BatchOpsApplication, tables: IcebergTables) -> None:
    job_key = ("account_id", "region", "job_id")
    jobs = sorted(without_dt(tables.rows("jobs")), key=lambda r: key(r, *job_key))
    assert not NOT_EXPORTED_JOB_FIELDS, "every field of the views' job rows is a column of the jobs table"
    costed_jobs, costed_attempts = costed_rows(Settings.from_environment(store=f"dynamodb://{PREFIX}"), app.views)
    assert jobs == sorted(costed_jobs, key=lambda r: key(r, *job_key))
    instance_key = ("account_id", "region", "instance_id")
    instances = sorted(without_dt(tables.rows("instances")), key=lambda r: key(r, *instance_key))
    assert instances == sorted(app.views.instances(), key=lambda r: key(r, *instance_key))
    assert by_json(without_dt(tables.rows("job_events"))) == by_json(list(app.views.timeline()))
    assert by_json(without_dt(tables.rows("job_attempts"))) == by_json(costed_attempts)


# ------------------------------------------------------------------------------------------------ tests


def test_the_tables_equal_the_views_field_for_field_with_the_doc_types(central: BatchOpsApplication) -> None:
    central.record_with_retry(workload(seed=4))  # a seed whose jobs fail, depend on others, have shares
    exporter, sink = make_exporter()
    responses = Streams().export(exporter)
    assert responses and all(r == {"batchItemFailures": []} for r in responses)
    tables = tables_of(sink)
    assert_tables_equal_views(central, tables)
    for table in TABLES:
        described = tables.con.execute(f'DESCRIBE SELECT * FROM "{DATABASE}"."{table}"').fetchall()
        assert {name: kind for name, kind, *_ in described} == {n: DUCKDB_TYPES[k] for n, k in COLUMNS[table]}
    jobs = tables.rows("jobs")
    assert {j["status"] for j in jobs} >= {"SUCCEEDED", "FAILED"}
    for job in jobs:  # the doc's dt rule: the end date of a finished job, 9999-12-31 while open
        ended = job["stopped_at"] or job["last_event_time"]
        assert job["dt"] == (ended[:10] if job["status"] in ("SUCCEEDED", "FAILED") else OPEN_DT)
    assert all(isinstance(j["created_at"], str) and j["created_at"].endswith("Z") for j in jobs)
    # the submission fields: a SubmitJob record's time and caller, the jobs waited on as a list
    assert any(j["submitted_at"] and j["submitted_at"].endswith("Z") and j["submitted_by"] for j in jobs)
    assert all(isinstance(j["depends_on"], list) for j in jobs) and any(j["depends_on"] for j in jobs)
    service = [j for j in jobs if j["platform"] == "SAGEMAKER"]  # a service job: its priority and capacity
    assert service and all(isinstance(j["capacity_usage"], float) and j["capacity_unit"] for j in service)
    assert any(isinstance(j["scheduling_priority"], int) and j["share_identifier"] for j in jobs)
    assert any(i["jobs_run"] for i in tables.rows("instances"))
    attempts = tables.rows("job_attempts")
    for attempt in attempts:  # the date an attempt stopped, 9999-12-31 while it runs
        assert attempt["dt"] == (attempt["stopped_at"][:10] if attempt["stopped_at"] else OPEN_DT)
    assert all(a["attempt"] >= 1 for a in attempts) and any(a["instance_id"] and a["instance_type"] for a in attempts)


def test_a_job_item_written_before_depends_on_existed_exports_it_empty_as_the_views_read_it(
    central: BatchOpsApplication,
) -> None:
    central.record_with_retry(workload(jobs=2))
    streams, (exporter, sink) = Streams(), make_exporter()
    streams.export(exporter)
    dynamodb = client("dynamodb")
    items = dynamodb.scan(TableName=f"{PREFIX}-jobs")["Items"]
    for item in items:  # as an item of an earlier batchops version is
        dynamodb.update_item(TableName=f"{PREFIX}-jobs", Key={"pk": item["pk"]}, UpdateExpression="REMOVE depends_on")
    streams.export(exporter)
    tables = tables_of(sink)
    assert_tables_equal_views(central, tables)
    assert len(items) > 1 and all(row["depends_on"] == [] for row in tables.rows("jobs"))


def test_each_call_names_a_row_once_routes_it_and_stays_within_firehose_limits(central: BatchOpsApplication) -> None:
    central.record_with_retry(workload(jobs=20))
    exporter, sink = make_exporter()
    Streams().export(exporter, batch_size=1000)
    assert sink.calls and all(c["DeliveryStreamName"] == STREAM for c in sink.calls)
    for call in sink.calls:
        assert len(call["Records"]) <= MAX_BATCH_RECORDS
        assert sum(len(r["Data"]) for r in call["Records"]) <= 4 * 1024 * 1024
        records = [json.loads(r["Data"]) for r in call["Records"]]
        # Firehose does not keep a call's records in order: no two of them may be about the same row
        keys = [(r["_table"], *(r[k] for k in UNIQUE_KEYS[r["_table"]])) for r in records]
        assert len(keys) == len(set(keys))
        for record in records:
            assert record["_op"] in ("update", "delete") and record["_table"] in TABLES
            columns = {name for name, _ in COLUMNS[record["_table"]]}
            expected = columns if record["_op"] == "update" else set(UNIQUE_KEYS[record["_table"]])
            assert set(record) - {"_table", "_op"} == expected
            assert all(len(r["Data"]) < 1000 * 1024 for r in call["Records"])  # Firehose's 1,000 KiB a record


def test_a_job_that_finishes_moves_out_of_the_open_partition_and_stays_one_row(central: BatchOpsApplication) -> None:
    facts = workload()
    streams, (exporter, sink) = Streams(), make_exporter()
    half = len(facts) // 2
    central.record_with_retry(facts[:half])
    streams.export(exporter)
    first = tables_of(sink)
    before = {key(j, "account_id", "job_id"): j["dt"] for j in first.rows("jobs")}
    attempt_key = ("account_id", "region", "job_id", "attempt")
    attempts_before = {key(a, *attempt_key): a["dt"] for a in first.rows("job_attempts")}
    central.record_with_retry(facts[half:])
    streams.export(exporter)
    tables = tables_of(sink)
    assert_tables_equal_views(central, tables)
    after = tables.rows("jobs")
    moved = [j for j in after if before.get(key(j, "account_id", "job_id")) == OPEN_DT and j["dt"] != OPEN_DT]
    assert moved, "no job went from open to finished between the two halves"
    deletes = [r for r in sink.records() if r["_op"] == "delete" and r["_table"] == "jobs"]
    assert {key(d, "account_id", "job_id") for d in deletes if d["dt"] == OPEN_DT} >= {
        key(j, "account_id", "job_id") for j in moved
    }  # the open partition's row is deleted by a delete of its own (Iceberg deletes within a partition)
    attempts_after = {key(a, *attempt_key): a["dt"] for a in tables.rows("job_attempts")}
    assert any(dt == OPEN_DT and attempts_after[k] != OPEN_DT for k, dt in attempts_before.items())
    assert len(attempts_after) == len(tables.rows("job_attempts"))


def test_a_batch_delivered_twice_leaves_the_same_tables(central: BatchOpsApplication) -> None:
    central.record_with_retry(workload())
    records = Streams().read("jobs")
    exporter, sink = make_exporter()
    handle_export_batch(exporter, {"Records": records})
    once = tables_of(sink)
    handle_export_batch(exporter, {"Records": records})  # Lambda retries a batch: every update again
    twice = tables_of(sink)
    for table in TABLES:
        assert by_json(twice.rows(table)) == by_json(once.rows(table)), table


def test_a_replay_refills_the_tables_from_the_new_generation(central: BatchOpsApplication) -> None:
    central.record_with_retry(workload())
    streams, (exporter, sink) = Streams(), make_exporter()
    streams.export(exporter)
    exported = len(sink.records())
    assert stream_fed(central).replay(segments=2) > 0
    assert central.views.current_generation() == 2
    records = streams.read("jobs")
    assert {r["eventName"] for r in records} >= {"INSERT", "REMOVE"}  # new generation written, old one deleted
    for start in range(0, len(records), 100):
        assert handle_export_batch(exporter, {"Records": records[start : start + 100]}) == {"batchItemFailures": []}
    for record in streams.read("instances"):
        assert handle_export_batch(exporter, {"Records": [record]}) == {"batchItemFailures": []}
    refill = sink.records()[exported:]
    assert {r["_op"] for r in refill} == {"update"}  # the old generation's REMOVEs delete nothing the new one has
    assert_tables_equal_views(central, tables_of(sink))
    # only the refill, on empty tables (new tables, or a stream that lost its records): the same tables
    fresh = IcebergTables(DATABASE)
    fresh.apply(refill)
    assert_tables_equal_views(central, fresh)


def test_a_replay_that_drops_a_job_deletes_its_rows(central: BatchOpsApplication) -> None:
    central.record_with_retry(workload())
    streams, (exporter, sink) = Streams(), make_exporter()
    streams.export(exporter)
    stream_fed(central).replay(segments=1)
    records = streams.read("jobs")
    removed = next(r for r in records if r["eventName"] == "REMOVE")
    aggregate = removed["dynamodb"]["Keys"]["pk"]["S"].split("#", 1)[1]
    dropped = client("dynamodb").delete_item(  # the new projection has no such job
        TableName=f"{PREFIX}-jobs", Key={"pk": {"S": f"2#{aggregate}"}}, ReturnValues="ALL_OLD"
    )["Attributes"]
    job_id = job_row_of_item(from_item(dropped))["job_id"]
    handle_export_batch(exporter, {"Records": [r for r in records if r["eventName"] == "INSERT"]})
    assert any(r["job_id"] == job_id for r in tables_of(sink).rows("jobs"))  # the old generation's row
    handle_export_batch(exporter, {"Records": [removed]})
    tables = tables_of(sink)
    for table in ("jobs", "job_events", "job_attempts"):
        assert all(r["job_id"] != job_id for r in tables.rows(table)), table


def test_a_job_expired_by_ttl_is_deleted_from_every_table(central: BatchOpsApplication) -> None:
    central.record_with_retry(workload())
    streams, (exporter, sink) = Streams(), make_exporter()
    streams.export(exporter)
    item = client("dynamodb").scan(TableName=f"{PREFIX}-jobs", Limit=1)["Items"][0]
    job_id = job_row_of_item(from_item(item))["job_id"]
    client("dynamodb").delete_item(TableName=f"{PREFIX}-jobs", Key={"pk": item["pk"]})
    [removed] = [r for r in streams.read("jobs") if r["eventName"] == "REMOVE"]
    reads: list[str] = []
    exporter.views.client.meta.events.register(
        "before-parameter-build.dynamodb.GetItem", lambda params, **_: reads.append(params["TableName"])
    )
    assert handle_export_batch(exporter, {"Records": [dict(removed, userIdentity=TTL_PRINCIPAL)]}) == {
        "batchItemFailures": []
    }
    assert f"{PREFIX}-jobs" not in reads  # expired: nothing to look up, its rows go
    tables = tables_of(sink)
    for table in ("jobs", "job_events", "job_attempts"):
        assert all(r["job_id"] != job_id for r in tables.rows(table)), table
    assert any(r["_op"] == "delete" and r["_table"] == "job_events" for r in sink.records())


def test_refused_records_are_sent_again_and_a_batch_firehose_keeps_refusing_reports_its_first_record(
    central: BatchOpsApplication,
) -> None:
    central.record_with_retry(workload(jobs=2))
    records = Streams().read("jobs")
    exporter, sink = make_exporter(refuse=lambda call, rows: {0} if call == 0 else set())
    exporter.settings = type(exporter.settings)(**{**exporter.settings.__dict__, "backoff_seconds": 0.0})
    outcome = exporter.export(records)
    assert outcome.retried == 1 and len(sink.calls) == 2
    assert sink.calls[1]["Records"] == sink.calls[0]["Records"][:1]  # only the refused record again
    stubborn, _ = make_exporter(refuse=lambda call, rows: {0})
    stubborn.settings = type(stubborn.settings)(**{**stubborn.settings.__dict__, "backoff_seconds": 0.0})
    response = handle_export_batch(stubborn, {"Records": records})
    assert response == {"batchItemFailures": [{"itemIdentifier": records[0]["dynamodb"]["SequenceNumber"]}]}


def test_the_put_record_batch_request_has_firehoses_shape(central: BatchOpsApplication) -> None:
    central.record_with_retry(workload(jobs=1))
    instances = Streams().read("instances")
    exporter = FirehoseExporter(
        client("firehose"),
        client("dynamodb"),
        settings_from_environment({"BATCHOPS_STORE": f"dynamodb://{PREFIX}", "BATCHOPS_EXPORT_STREAM": STREAM}),
    )
    _, operations = exporter.operations(instances)
    expected = [
        {"Data": json.dumps({"_table": o.table, "_op": o.operation, **o.row}, separators=(",", ":")).encode()}
        for o in operations
    ]
    with Stubber(exporter.firehose) as stub:
        stub.add_response(
            "put_record_batch",
            {"FailedPutCount": 0, "RequestResponses": [{"RecordId": str(i)} for i in range(len(expected))]},
            {"DeliveryStreamName": STREAM, "Records": expected},
        )
        outcome = exporter.export(instances)
        stub.assert_no_pending_responses()
    assert outcome.calls == 1 and outcome.updates == len(expected) > 0


def test_the_dashboards_athena_sql_returns_rows_over_the_tables(central: BatchOpsApplication) -> None:
    central.record_with_retry(workload(jobs=8))
    exporter, sink = make_exporter()
    Streams().export(exporter)
    con = tables_of(sink).con
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


def test_put_record_batch_takes_at_most_500_records_and_4_mib_a_call(aws: None) -> None:
    exporter, sink = make_exporter()
    small = [{"Data": json.dumps({"_table": "jobs", "_op": "update", "n": i}).encode()} for i in range(1200)]
    big = [
        {"Data": json.dumps({"_table": "jobs", "_op": "update", "pad": "x" * 900_000, "n": i}).encode()}
        for i in range(5)
    ]
    exporter.send(small, ExportOutcome())
    assert [len(c["Records"]) for c in sink.calls] == [500, 500, 200]
    sink.calls.clear()
    outcome = ExportOutcome()
    exporter.send(big, outcome)
    assert [len(c["Records"]) for c in sink.calls] == [4, 1] and outcome.calls == 2  # 5 x 900 KB > 4 MiB
    assert [json.loads(r["Data"])["n"] for c in sink.calls for r in c["Records"]] == list(range(5))
