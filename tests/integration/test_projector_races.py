"""A job and the instance it ran on, projected at the same moment by two projector Lambdas, in a fixed interleaving.

Whichever order their reads and writes take, the job's row ends up joined to the instance: either the job's
projector reads the instance again after its own writes (when it wrote the job's edge to the instance just now),
or the instance's projector finds the job through an edge stored before and rewrites it, the two job writes kept
apart by their revision conditions."""

from __future__ import annotations

from typing import Any

import boto3
import pytest

from batchops.adapters.dynamodb.event_store import stored_event_from_stream_record
from batchops.adapters.dynamodb.stream_projection import stream_fed
from batchops.application import BatchOpsApplication
from batchops.bootstrap import Settings, build_application
from batchops.entrypoints.lambdas import handle_stream_batch
from batchops.inbound import Parsed, translate
from batchops.job_cost import COST_FIELDS
from batchops.simulation import SimulationSettings, simulate
from conftest import AWS_REGION, ingest, rows_by_job

PREFIX = "race"


def _central() -> BatchOpsApplication:
    app = build_application(Settings.from_environment(store=f"dynamodb://{PREFIX}"), project_inline=False)
    stream_fed(app)
    return app


def _stream_records() -> list[dict[str, Any]]:
    streams = boto3.client("dynamodbstreams", region_name=AWS_REGION)
    arn = boto3.client("dynamodb", region_name=AWS_REGION).describe_table(TableName=f"{PREFIX}-events")["Table"][
        "LatestStreamArn"
    ]
    records: list[dict[str, Any]] = []
    for shard in streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]:
        iterator = streams.get_shard_iterator(StreamArn=arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON")
        position = iterator["ShardIterator"]
        while position:
            page = streams.get_records(ShardIterator=position, Limit=1000)
            if not page["Records"]:
                break
            records += page["Records"]
            position = page.get("NextShardIterator")
    return records


def _project(app: BatchOpsApplication, records: list[dict[str, Any]]) -> None:
    for start in range(0, len(records), 100):
        assert handle_stream_batch(app, {"Records": records[start : start + 100]}) == {"batchItemFailures": []}


def _when_first(app: BatchOpsApplication, operation: str, then: Any) -> list[bool]:
    """Run `then` once, just before the first `operation` request of this app's view store that writes a job or its
    edges (the stream batch marker aside)."""
    ran: list[bool] = []

    def hook(params: dict[str, Any], **_: Any) -> None:
        if ran:
            return
        if operation == "PutItem" and params.get("TableName") != f"{PREFIX}-jobs":
            return
        if operation == "BatchWriteItem" and not any(
            "#ran-on#" in r["PutRequest"]["Item"]["pk"]["S"] for rs in params["RequestItems"].values() for r in rs
        ):
            return
        ran.append(True)
        then()

    stream_fed(app).views.client.meta.events.register(f"before-parameter-build.dynamodb.{operation}", hook)
    return ran


@pytest.fixture
def placed(aws: None, make_app: Any) -> dict[str, Any]:
    """A recorded workload split by aggregate kind, one job that ran on an EC2 container instance, and the rows
    the embedded store gives for the whole workload."""
    events = list(simulate(SimulationSettings(accounts=1, regions=1, jobs=8, seed=3, chaos=False)))
    recorder = _central()
    recorder.record_with_retry([f for f in map(translate, events) if isinstance(f, Parsed)])
    records = _stream_records()
    topics = [stored_event_from_stream_record(r, "uuid").topic for r in records]  # type: ignore[union-attr]
    local = make_app()
    ingest(local, events)
    expected = rows_by_job(local)
    job = next(r for r in expected.values() if r["container_instance_arn"] and r["instance_type"])
    return {
        "hosts": [r for r, t in zip(records, topics, strict=True) if ":ComputeEnvironment." in t],
        "instances": [r for r, t in zip(records, topics, strict=True) if ":Instance." in t],
        "job": _records_of_job(records, topics, job),
        "expected": _without_cost(job),
    }


def _records_of_job(records: list[dict[str, Any]], topics: list[str], job: dict[str, Any]) -> list[dict[str, Any]]:
    from batchops.jobs import Job

    key = str(Job.create_id(job["account_id"], job["region"], job["job_id"]))
    return [r for r, t in zip(records, topics, strict=True) if ":Job." in t and _key(r) == key]


def _key(record: dict[str, Any]) -> str:
    return str(stored_event_from_stream_record(record, "uuid").originator_id)  # type: ignore[union-attr]


def _job_row(app: BatchOpsApplication, expected: dict[str, Any]) -> dict[str, Any]:
    [row] = [r for r in app.views.jobs() if r["job_id"] == expected["job_id"]]
    return _without_cost(row)


def _without_cost(row: dict[str, Any]) -> dict[str, Any]:
    """The row but its costs: the embedded store prices from the packaged table, an AWS store from stored prices."""
    return {k: v for k, v in row.items() if k not in COST_FIELDS}


def test_the_instance_projected_between_the_jobs_reads_and_its_new_edge_is_joined_by_reading_again(
    placed: dict[str, Any],
) -> None:
    jobs, instances = _central(), _central()
    _project(jobs, placed["hosts"])
    # The job's projector has read everything (no instance yet) and is about to write the job's ran-on edge: the
    # instance's projector runs whole now, and finds no job on the instance.
    ran = _when_first(jobs, "BatchWriteItem", lambda: _project(instances, placed["instances"]))
    _project(jobs, placed["job"])
    assert ran
    assert _job_row(jobs, placed["expected"]) == placed["expected"]


def test_the_instance_projected_between_the_jobs_reads_and_writes_finds_a_job_whose_edge_was_stored_before(
    placed: dict[str, Any],
) -> None:
    jobs, instances = _central(), _central()
    _project(jobs, placed["hosts"])
    *earlier, last = placed["job"]
    _project(jobs, earlier)  # the job's edges are stored; the instance is not known yet
    assert _job_row(jobs, placed["expected"])["container_instance_arn"] == placed["expected"]["container_instance_arn"]
    assert _job_row(jobs, placed["expected"])["instance_type"] is None
    # The job's next batch has read the job and found no instance; before its job write, the instance's projector
    # runs whole: it finds the job by the stored edge and rewrites it, so the job's write fails its revision
    # condition and its batch is run again on fresh reads.
    ran = _when_first(jobs, "PutItem", lambda: _project(instances, placed["instances"]))
    _project(jobs, [last])
    assert ran
    assert _job_row(jobs, placed["expected"]) == placed["expected"]
