"""What DynamoDB stores packed: job items (keys plain, the rest packed with a preset dictionary) and events' states
(compressed with theirs); a table written before either still reads.

DynamoDB bills a write per started KB and storage per byte: what a job item weighs is what every job state change
costs, and the events table only grows."""

from __future__ import annotations

import hashlib
import zlib
from importlib import resources
from typing import Any

import boto3
import orjson
import pytest

from batchops.adapters.dynamodb.event_state import EventStateCompressor
from batchops.adapters.dynamodb.job_items import PACKED, PLAIN, job_parts, unpack_job
from batchops.adapters.dynamodb.stream_projection import stream_fed
from batchops.adapters.dynamodb.tables import item_size
from batchops.adapters.dynamodb.views import from_item, to_item
from batchops.application import BatchOpsApplication
from batchops.bootstrap import Settings, build_application
from batchops.entrypoints.lambdas import handle_stream_batch
from batchops.inbound import Parsed, translate
from batchops.simulation import SimulationSettings, simulate
from conftest import AWS_REGION


def _central(prefix: str, *, inline: bool = True) -> BatchOpsApplication:
    app = build_application(Settings.from_environment(store=f"dynamodb://{prefix}"), project_inline=inline)
    stream_fed(app)
    return app


def _facts(seed: int) -> list[Any]:
    events = simulate(SimulationSettings(accounts=2, regions=1, jobs=30, seed=seed, chaos=True))
    return [f for f in map(translate, events) if isinstance(f, Parsed)]


def _job_items(prefix: str) -> list[dict[str, Any]]:
    client = boto3.client("dynamodb", region_name=AWS_REGION)
    return [i for page in client.get_paginator("scan").paginate(TableName=f"{prefix}-jobs") for i in page["Items"]]


def _legacy(item: dict[str, Any]) -> dict[str, Any]:
    """The item as the earlier layout wrote it: every contract field plain, the fold and timeline compressed apart."""
    row, timeline, fold = job_parts(from_item(item))
    plain = {k: v for k, v in item.items() if k != PACKED}
    return {
        **to_item({k: v for k, v in row.items() if k not in PLAIN}),
        **plain,
        "fold": {"B": zlib.compress(orjson.dumps(fold), 1)},
        "timeline": {"B": zlib.compress(orjson.dumps(timeline), 1)},
    }


def test_a_job_item_holds_its_keys_plain_and_mostly_fits_one_write_unit(aws: None) -> None:
    app = _central("lay")
    app.record_with_retry(_facts(seed=5))
    items = _job_items("lay")
    assert items and all(set(item) <= {*PLAIN, PACKED} for item in items)
    units = [-(-item_size(item) // 1024) for item in items]
    # the earlier layout: ~2.7 KB, 3 write units on the same events
    assert sum(u == 1 for u in units) >= 0.7 * len(units) and max(units) <= 2, units
    details = {(j["account_id"], j["job_id"]): j for j in app.views.jobs()}
    for item in items:
        row, timeline, fold = job_parts(from_item(item))
        assert fold is not None and details[(row["account_id"], row["job_id"])] == row
        [job] = app.views.job(row["job_id"], row["account_id"])
        assert job["timeline"] == timeline and [t["status"] for t in timeline][-1:] == [row["status"]]


def _project_new_records(app: BatchOpsApplication, prefix: str, positions: dict[str, str]) -> None:
    """Project the events table's stream records after `positions` as the projector Lambda does (batches of 100):
    from the folds stored in the views, not from aggregates in memory."""
    streams = boto3.client("dynamodbstreams", region_name=AWS_REGION)
    dynamodb = boto3.client("dynamodb", region_name=AWS_REGION)
    arn = dynamodb.describe_table(TableName=f"{prefix}-events")["Table"]["LatestStreamArn"]
    records = []
    for shard in streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]:
        shard_id = shard["ShardId"]
        start = (
            {"ShardIteratorType": "AFTER_SEQUENCE_NUMBER", "SequenceNumber": positions[shard_id]}
            if shard_id in positions
            else {"ShardIteratorType": "TRIM_HORIZON"}
        )
        iterator = streams.get_shard_iterator(StreamArn=arn, ShardId=shard_id, **start)["ShardIterator"]
        while iterator:
            page = streams.get_records(ShardIterator=iterator, Limit=1000)
            if not page["Records"]:
                break
            records += page["Records"]
            positions[shard_id] = page["Records"][-1]["dynamodb"]["SequenceNumber"]
            iterator = page.get("NextShardIterator")
    for i in range(0, len(records), 100):
        assert handle_stream_batch(app, {"Records": records[i : i + 100]}) == {"batchItemFailures": []}


def test_items_of_the_earlier_layout_are_read_and_projected_on_as_before(aws: None) -> None:
    facts = _facts(seed=6)
    half = len(facts) // 2
    fresh = _central("new")
    fresh.record_with_retry(facts)
    upgraded = _central("old", inline=False)
    positions: dict[str, str] = {}
    upgraded.record_with_retry(facts[:half])
    _project_new_records(upgraded, "old", positions)
    client = boto3.client("dynamodb", region_name=AWS_REGION)

    def everything() -> list[Any]:
        views = upgraded.views
        jobs = list(views.jobs())
        details = [views.job(j["job_id"], j["account_id"]) for j in jobs]
        return [jobs, details, list(views.timeline()), list(views.attempts())]

    before = everything()
    for item in _job_items("old"):
        client.put_item(TableName="old-jobs", Item=_legacy(item))
    assert all(PACKED not in item for item in _job_items("old"))
    assert everything() == before  # read as they were
    upgraded.record_with_retry(facts[half:])
    _project_new_records(upgraded, "old", positions)  # projected on from the stored folds
    assert list(upgraded.views.jobs()) == list(fresh.views.jobs())
    assert any(PACKED in item for item in _job_items("old"))  # the jobs the second half moved: the new layout


def test_an_item_packed_with_the_first_dictionary_reads_back_for_good() -> None:
    # The dictionary is part of the stored format: changing it would leave every item written with it unreadable.
    dictionary = resources.files("batchops.adapters.dynamodb").joinpath("job_item_dictionary_v1.jsonl").read_bytes()
    assert hashlib.sha256(dictionary).hexdigest() == "2f97906abf9c098fa5f7345d9274bb0727787000dd0ea3b3313952ac0f6fdfa4"
    written = bytes.fromhex(  # pack_job at the commit that introduced the layout
        "0178f98ac6e54c435f156168640cda506a01acca8c089ecf9d05e6c2131c6c9c157d8e0e75168d0c1bb01c390b1ecf058d289a1b19"
        "999ac1375dd5d6c60200bd2a3d9c"
    )
    row, fold = unpack_job(written)
    assert row == {"account_id": "123456789012", "region": "eu-west-1", "job_id": "j-1", "status": "RUNNING"} | {
        "depends_on": []
    }
    assert fold["transitions"] == {"RUNNING": [1767225600000, ""]}
    with pytest.raises(ValueError, match="unknown layout"):
        unpack_job(b"\x02" + written[1:])


def _event_items(prefix: str) -> list[dict[str, Any]]:
    client = boto3.client("dynamodb", region_name=AWS_REGION)
    return [i for page in client.get_paginator("scan").paginate(TableName=f"{prefix}-events") for i in page["Items"]]


def test_events_are_stored_compressed_and_each_fits_one_write_unit(aws: None) -> None:
    app = _central("evc")
    app.record_with_retry(_facts(seed=7))
    items = _event_items("evc")
    states = [bytes(item["state"]["B"]) for item in items]
    assert items and all(not s.startswith(b"{") for s in states)  # JSON stored as is would start with a brace
    assert all(item_size(item) <= 1024 for item in items)
    unpacked = [EventStateCompressor().decompress(s) for s in states]
    assert sum(map(len, states)) < 0.6 * sum(map(len, unpacked))  # what the table holds
    assert all(orjson.loads(state)["timestamp"] for state in unpacked)


def test_a_store_written_before_events_were_compressed_reads_and_replays_as_before(aws: None) -> None:
    facts = _facts(seed=8)
    app = _central("evo")
    app.record_with_retry(facts[: len(facts) // 2])
    client = boto3.client("dynamodb", region_name=AWS_REGION)
    for item in _event_items("evo"):  # as the events table held them before
        raw = EventStateCompressor().decompress(bytes(item["state"]["B"]))
        client.put_item(TableName="evo-events", Item={**item, "state": {"B": raw}})
    assert all(bytes(i["state"]["B"]).startswith(b"{") for i in _event_items("evo"))
    reopened = _central("evo")  # no aggregate in memory: every history is read from the table
    reopened.record_with_retry(facts[len(facts) // 2 :])
    fresh = _central("evn")
    fresh.record_with_retry(facts)
    assert list(reopened.views.jobs()) == list(fresh.views.jobs())
    stream_fed(reopened).replay(segments=1)  # every stored event, of both kinds, read again
    assert list(reopened.views.jobs()) == list(fresh.views.jobs())


def test_a_state_compressed_with_the_first_dictionary_reads_back_for_good() -> None:
    dictionary = resources.files("batchops.adapters.dynamodb").joinpath("event_state_dictionary_v1.jsonl").read_bytes()
    assert hashlib.sha256(dictionary).hexdigest() == "59f7488f2724c3b1623ebc3b5a07dd2624a25cca34f440512db4562ac22b29de"
    written = bytes.fromhex("0178f9fdd423beab26cb2d8646c6c06831b7b0343034c2d53787bb250bc8ad050043e3212a")
    assert orjson.loads(EventStateCompressor().decompress(written)) == {
        "originator_topic": "batchops.jobs:Job",
        "account_id": "123456789012",
        "region": "eu-west-1",
        "job_id": "j-1",
    }
    with pytest.raises(ValueError, match="unknown layout"):
        EventStateCompressor().decompress(b"\x07" + written[1:])
