"""What the Lambda path is billed for: the capacity meter of bench/cost_per_million.py against AWS's rounding rules, and
view writes that are not made when they would change nothing (a stream batch again, an edge already written)."""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

from batchops.adapters.dynamodb.stream_projection import stream_fed
from batchops.adapters.dynamodb.views import from_item, job_row_of_item
from batchops.application import BatchOpsApplication
from batchops.bootstrap import Settings, build_application
from batchops.entrypoints.lambdas import handle_stream_batch
from batchops.inbound import Parsed, translate
from batchops.simulation import SimulationSettings, simulate
from conftest import AWS_REGION

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
from capacity_meter import CapacityMeter, table_shape

WRITES = ("PutItem", "DeleteItem", "UpdateItem", "BatchWriteItem", "TransactWriteItems")


def _client(service: str) -> Any:
    return boto3.client(service, region_name=AWS_REGION, config=Config(account_id_endpoint_mode="disabled"))


def _metered_table(client: Any, name: str, *, sort_key: bool) -> CapacityMeter:
    keys = [{"AttributeName": "pk", "KeyType": "HASH"}]
    attributes = [{"AttributeName": n, "AttributeType": "S"} for n in ("pk", "g", "t")]
    if sort_key:
        keys.append({"AttributeName": "sk", "KeyType": "RANGE"})
        attributes.append({"AttributeName": "sk", "AttributeType": "S"})
    client.create_table(
        TableName=name,
        KeySchema=keys,
        AttributeDefinitions=attributes,
        BillingMode="PAY_PER_REQUEST",
        GlobalSecondaryIndexes=[
            {
                "IndexName": "by-g",
                "KeySchema": [{"AttributeName": "g", "KeyType": "HASH"}, {"AttributeName": "t", "KeyType": "RANGE"}],
                "Projection": {"ProjectionType": "KEYS_ONLY"},
            }
        ],
    )
    meter = CapacityMeter(
        {name: table_shape(client.describe_table(TableName=name)["Table"])}, lambda o, t, _: f"{o} {t}"
    )
    meter.attach(client)
    return meter


def _item(pk: str, body_bytes: int, t: str = "1", **more: str) -> dict[str, Any]:
    item = {"pk": {"S": pk}, "g": {"S": "x"}, "t": {"S": t}, "body": {"S": "b" * body_bytes}}
    return {**item, **{k: {"S": v} for k, v in more.items()}}


def test_writes_are_billed_per_started_kilobyte_of_the_larger_image_and_twice_in_a_transaction(aws: None) -> None:
    client = _client("dynamodb")
    meter = _metered_table(client, "m", sort_key=False)
    client.put_item(TableName="m", Item=_item("a", 1500))  # ~1.5 KB: 2 WRU; a new index entry: 1
    client.put_item(TableName="m", Item=_item("a", 10, t="2"))  # the old image is the larger: 2; entry moved: 1 + 1
    client.put_item(TableName="m", Item=_item("a", 20, t="2"))  # small, index keys unchanged: 1 WRU and no index write
    assert meter.usage["PutItem m"].write_units == 5
    assert meter.usage["PutItem m#indexes"].write_units == 3
    try:
        client.put_item(TableName="m", Item=_item("a", 30), ConditionExpression="attribute_not_exists(pk)")
    except client.exceptions.ConditionalCheckFailedException:
        pass
    assert meter.usage["PutItem m"].write_units == 6  # a failed condition is billed; nothing reaches the index
    assert meter.usage["PutItem m#indexes"].write_units == 3
    client.transact_write_items(TransactItems=[{"Put": {"TableName": "m", "Item": _item(k, 500)}} for k in ("b", "c")])
    assert meter.usage["TransactWriteItems m"].write_units == 4
    client.delete_item(TableName="m", Key={"pk": {"S": "b"}})
    assert meter.usage["DeleteItem m"].write_units == 1
    assert meter.usage["DeleteItem m#indexes"].write_units == 1


def test_reads_are_billed_per_started_4_kb_per_item_or_per_query_page(aws: None) -> None:
    client = _client("dynamodb")
    meter = _metered_table(client, "q", sort_key=True)
    for sk in ("1", "2", "3"):
        client.put_item(TableName="q", Item={**_item("p", 1500), "sk": {"S": sk}})
    key = {"pk": {"S": "p"}, "sk": {"S": "1"}}
    client.get_item(TableName="q", Key=key, ConsistentRead=True)
    client.get_item(TableName="q", Key=key)
    client.get_item(TableName="q", Key={"pk": {"S": "p"}, "sk": {"S": "none"}}, ConsistentRead=True)
    assert meter.usage["GetItem q"].read_units == 1 + 0.5 + 1  # a read that finds nothing costs the minimum
    keys = [{"pk": {"S": "p"}, "sk": {"S": sk}} for sk in ("1", "2", "3")]
    client.batch_get_item(RequestItems={"q": {"Keys": keys, "ConsistentRead": True}})
    assert meter.usage["BatchGetItem q"].read_units == 3  # rounded per item
    client.query(
        TableName="q",
        KeyConditionExpression="pk = :p",
        ExpressionAttributeValues={":p": {"S": "p"}},
        ConsistentRead=True,
        ProjectionExpression="pk, sk",  # billed for the whole items all the same
    )
    assert meter.usage["Query q"].read_units == 2  # 3 x ~1.5 KB summed, then rounded up to 4 KB units


def _recorded_stream(app: BatchOpsApplication) -> list[dict[str, Any]]:
    """The simulated workload recorded (not projected), and the events table's stream records."""
    events = simulate(SimulationSettings(accounts=2, regions=1, jobs=20, seed=5, chaos=True))
    app.record_with_retry([f for f in map(translate, events) if isinstance(f, Parsed)], project=False)
    streams = _client("dynamodbstreams")
    arn = _client("dynamodb").describe_table(TableName="cw-events")["Table"]["LatestStreamArn"]
    records: list[dict[str, Any]] = []
    for shard in streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]:
        iterator = streams.get_shard_iterator(StreamArn=arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON")
        position = iterator["ShardIterator"]
        while position:
            response = streams.get_records(ShardIterator=position)
            if not response["Records"]:
                break
            records.extend(response["Records"])
            position = response.get("NextShardIterator")
    return records


def _writes_of(app: BatchOpsApplication) -> Counter[str]:
    """Every write request of the projector's view store, by operation and table (and edge items put)."""
    writes: Counter[str] = Counter()

    def count(params: dict[str, Any], model: Any, **_: Any) -> None:
        if model.name == "BatchWriteItem":
            for table, requests in params["RequestItems"].items():
                writes[f"edges put in {table}"] += len(requests)
        elif model.name in WRITES:
            writes[f"{model.name} {params.get('TableName')}"] += 1

    stream_fed(app).views.client.meta.events.register("before-parameter-build.dynamodb", count)
    return writes


def test_a_stream_batch_projected_again_writes_only_its_marker(aws: None) -> None:
    app = build_application(Settings.from_environment(store="dynamodb://cw"), project_inline=False)
    records = _recorded_stream(app)
    batches = [records[i : i + 40] for i in range(0, len(records), 40)]
    for batch in batches:
        assert handle_stream_batch(app, {"Records": batch}) == {"batchItemFailures": []}
    jobs, instances = list(app.views.jobs()), list(app.views.instances())
    writes = _writes_of(app)
    for batch in batches:  # delivered again after it succeeded (a Lambda retried after a timeout, say)
        assert handle_stream_batch(app, {"Records": batch}) == {"batchItemFailures": []}
    assert writes == Counter({"PutItem cw-meta": len(batches), "DeleteItem cw-meta": len(batches)})
    assert list(app.views.jobs()) == jobs
    assert list(app.views.instances()) == instances


def test_every_join_edge_is_put_once_however_many_batches_touch_its_job(aws: None) -> None:
    app = build_application(Settings.from_environment(store="dynamodb://cw"), project_inline=False)
    records = _recorded_stream(app)
    writes = _writes_of(app)
    for start in range(0, len(records), 25):
        assert handle_stream_batch(app, {"Records": records[start : start + 25]}) == {"batchItemFailures": []}
    edges = [
        i
        for i in _client("dynamodb").scan(TableName="cw-meta")["Items"]
        if any(f"#{kind}" in i["pk"]["S"] for kind in ("ran-on#", "ce-jobs#", "ce-instances#", "ci"))
    ]
    assert len(edges) > 20
    assert writes["edges put in cw-meta"] == len(edges)
    jobs = len(list(app.views.jobs()))
    assert writes["PutItem cw-jobs"] > jobs  # the jobs were written in many batches, their edges once


def test_the_by_status_index_finds_the_jobs_that_entered_a_status_in_a_time_window(aws: None) -> None:
    app = build_application(Settings.from_environment(store="dynamodb://cw"), project_inline=False)
    records = _recorded_stream(app)
    for start in range(0, len(records), 25):
        assert handle_stream_batch(app, {"Records": records[start : start + 25]}) == {"batchItemFailures": []}
    rows = list(app.views.jobs())
    entered = {
        r["job_id"]: max(
            t["event_time"]
            for t in app.views.job(r["job_id"], r["account_id"])[0]["timeline"]
            if t["status"] == r["status"]
        )
        for r in rows
        if r["status"] == "SUCCEEDED"
    }
    times = sorted(entered.values())
    assert len(times) > 4
    low, high = times[1], times[-2]
    account = {r["account_id"] for r in rows if r["job_id"] in entered}
    dynamodb = _client("dynamodb")
    found: set[str] = set()
    for a in account:
        response = dynamodb.query(
            TableName="cw-jobs",
            IndexName="by-status-since",
            KeyConditionExpression="by_status = :s AND status_since BETWEEN :a AND :b",
            ExpressionAttributeValues={":s": {"S": f"1#{a}#SUCCEEDED"}, ":a": {"S": low}, ":b": {"S": high}},
        )
        for key in response["Items"]:
            item = dynamodb.get_item(TableName="cw-jobs", Key={"pk": key["pk"]})["Item"]
            found.add(job_row_of_item(from_item(item))["job_id"])
    assert found == {job for job, at in entered.items() if low <= at <= high}
