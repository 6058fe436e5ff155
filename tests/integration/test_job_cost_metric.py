"""The `JobCost` EMF metric: one point per ended, priced job, on the CLI and on the projector Lambda, whatever the
order, duplicates and redeliveries; its sums per queue are the cost figures the CLI shows."""

from __future__ import annotations

import json
import random
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from batchops.adapters.dynamodb.prices import DynamoDBPriceStore
from batchops.application import BatchOpsApplication
from batchops.bootstrap import Settings, build_application
from batchops.cli import main
from batchops.entrypoints.lambdas import handle_stream_batch
from batchops.facts import Parsed
from batchops.inbound import translate
from batchops.ingest import Ingestor
from batchops.metrics import MetricPoint
from batchops.price_service import costed_rows
from batchops.prices import table_entries
from batchops.simulation import SimulationSettings, simulate
from batchops.times import parse_instant
from batchops.translation import RawEvent
from conftest import AWS_REGION

_TERMINAL = ("SUCCEEDED", "FAILED")
_Queue = tuple[str, str, str]


def _job_cost_documents(lines: list[str]) -> list[dict[str, Any]]:
    return [d for d in map(json.loads, lines) if "JobCost" in d]


def _sums_by_queue(documents: list[dict[str, Any]]) -> tuple[dict[_Queue, float], int]:
    """JobCost summed per (AccountId, Region, JobQueue), and how many values there were."""
    sums: dict[_Queue, float] = defaultdict(float)
    values = 0
    for document in documents:
        [directive] = document["_aws"]["CloudWatchMetrics"]
        assert directive["Dimensions"] == [["AccountId", "Region", "JobQueue"]]
        assert directive["Metrics"] == [{"Name": "JobCost", "Unit": "None"}]
        found = document["JobCost"] if isinstance(document["JobCost"], list) else [document["JobCost"]]
        sums[document["AccountId"], document["Region"], document["JobQueue"]] += sum(found)
        values += len(found)
    return sums, values


def _ended_priced(jobs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [j for j in jobs if j["status"] in _TERMINAL and j["array_size"] is None and j["cost_usd"] is not None]


def _fargate_unsettled(app: BatchOpsApplication, jobs: list[dict[str, Any]]) -> set[tuple[str, str, str]]:
    """Fargate jobs whose compute environment's type (FARGATE or FARGATE_SPOT) no record has told: their rows cost
    them at on-demand rates, which the configuration may yet contradict, so no JobCost is emitted for them."""
    with app.views.session() as session:
        return {
            (j["account_id"], j["region"], j["job_id"])
            for j in jobs
            if j["platform"] == "FARGATE"
            and (
                not j["compute_environment"]
                or session.compute_environment_pricing(j["account_id"], j["region"], j["compute_environment"]) is None
            )
        }


def _expected_by_queue(app: BatchOpsApplication, jobs: list[dict[str, Any]]) -> tuple[dict[_Queue, float], int]:
    """What JobCost should sum to per queue: the rows' costs of the ended, priced jobs whose pricing is settled."""
    unsettled = _fargate_unsettled(app, jobs)
    by_queue: dict[_Queue, float] = defaultdict(float)
    count = 0
    for job in _ended_priced(jobs):
        if (job["account_id"], job["region"], job["job_id"]) not in unsettled:
            by_queue[job["account_id"], job["region"], job["queue"]] += job["cost_usd"]
            count += 1
    return by_queue, count


def _rounded(sums: dict[_Queue, float]) -> dict[_Queue, float]:
    return {queue: round(total, 6) for queue, total in sums.items()}


def test_the_cli_emits_one_job_cost_per_ended_job_summing_to_the_summary_per_queue(tmp_path: Path, capsys: Any) -> None:
    events = list(simulate(SimulationSettings(accounts=2, regions=1, jobs=150, seed=3, chaos=True)))
    stream = tmp_path / "events.jsonl"
    stream.write_text("".join(json.dumps(e) + "\n" for e in events))
    emf = tmp_path / "emf.jsonl"
    store = f"sqlite:///{tmp_path / 'b.db'}"
    assert main(["--store", store, "ingest", str(stream), "--emf-out", str(emf), "--batch-size", "97"]) == 0
    capsys.readouterr()
    assert main(["--store", store, "jobs", "--format", "json"]) == 0
    jobs = json.loads(capsys.readouterr().out)
    assert main(["--store", store, "summary", "--format", "json"]) == 0
    by_queue = json.loads(capsys.readouterr().out)["cost"]["by_queue"]

    app = build_application(Settings.from_environment(store=store), metrics=False)
    try:
        expected, count = _expected_by_queue(app, jobs)
        unsettled = _fargate_unsettled(app, jobs)
    finally:
        app.close()
    documents = _job_cost_documents(emf.read_text().splitlines())
    sums, values = _sums_by_queue(documents)
    assert values == count > 90  # one per ended, priced job (array parents' children carry the cost)
    assert _rounded(sums) == _rounded(expected)
    unfinished = {(j["account_id"], j["region"], j["queue"]) for j in jobs if j["status"] not in _TERMINAL}
    unfinished |= {
        (j["account_id"], j["region"], j["queue"])
        for j in jobs
        if (j["account_id"], j["region"], j["job_id"]) in unsettled
    }
    from_summary = {
        queue: figures["cost_usd"]
        for queue, figures in ((tuple(name.split("/")), f) for name, f in by_queue.items())
        if queue not in unfinished  # a queue's summary figures include its jobs still going and unsettled ones
    }
    assert len(from_summary) >= 3 and {q: round(sums[q], 6) for q in from_summary} == from_summary
    ended = _ended_priced(jobs)
    ends = {parse_instant(j["stopped_at"] or j["last_event_time"]) for j in ended}  # one that never ran: its last event
    assert ends >= {d["_aws"]["Timestamp"] for d in documents}

    emf.unlink()  # the same stream again (all duplicates), then a replay: nothing is emitted twice
    assert main(["--store", store, "ingest", str(stream), "--emf-out", str(emf)]) == 0
    assert main(["--store", store, "replay", "--quiet"]) == 0
    assert _job_cost_documents(emf.read_text().splitlines()) == []


def _points_of_ingests(store: Path, deliveries: list[list[dict[str, Any]]]) -> list[MetricPoint]:
    """Each delivery ingested by a process of its own (a fresh application on the same store), JobCost points kept."""
    points: list[MetricPoint] = []
    for events in deliveries:
        app = build_application(Settings.from_environment(store=f"sqlite:///{store}"), metrics=True)
        try:
            ingestor = Ingestor(app, batch_size=53, on_points=points.extend)
            ingestor.ingest(RawEvent(e, i + 1) for i, e in enumerate(events))
        finally:
            app.close()
    return [p for p in points if p.name == "JobCost"]


_EVENTS = list(simulate(SimulationSettings(accounts=1, regions=1, jobs=25, seed=11, chaos=True)))


@settings(max_examples=8, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), runs=st.integers(1, 3), duplicated=st.floats(0, 0.5))
def test_any_order_split_and_duplication_emits_each_job_cost_once_with_the_same_values(
    seed: int, runs: int, duplicated: float
) -> None:
    shuffler = random.Random(seed)
    delivered = _EVENTS + shuffler.sample(_EVENTS, int(len(_EVENTS) * duplicated))
    shuffler.shuffle(delivered)
    cut = sorted(shuffler.sample(range(1, len(delivered)), runs - 1))
    deliveries = [delivered[a:b] for a, b in zip([0, *cut], [*cut, len(delivered)], strict=True)]
    with tempfile.TemporaryDirectory() as folder:
        in_order = _points_of_ingests(Path(folder) / "in_order.db", [_EVENTS])
        shuffled = _points_of_ingests(Path(folder) / "shuffled.db", deliveries)
        store = Settings.from_environment(store=f"sqlite:///{Path(folder) / 'shuffled.db'}")
        app = build_application(store, metrics=False)
        try:
            jobs, _ = costed_rows(store, app.views)
            by_queue, count = _expected_by_queue(app, jobs)
        finally:
            app.close()
    assert len(shuffled) == count > 0
    emitted: dict[_Queue, float] = defaultdict(float)
    for point in shuffled:
        emitted[point.dimensions[0][1], point.dimensions[1][1], point.dimensions[2][1]] += point.value
    assert _rounded(emitted) == _rounded(by_queue)
    key = lambda p: (p.dimensions, p.value, p.timestamp_ms)  # noqa: E731
    assert sorted(map(key, shuffled)) == sorted(map(key, in_order))


def _client(service: str) -> Any:
    return boto3.client(service, region_name=AWS_REGION, config=Config(account_id_endpoint_mode="disabled"))


def _stream_records() -> list[dict[str, Any]]:
    streams = _client("dynamodbstreams")
    arn = _client("dynamodb").describe_table(TableName="jc-events")["Table"]["LatestStreamArn"]
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


def _project(app: BatchOpsApplication, batches: list[list[dict[str, Any]]], capsys: Any) -> list[dict[str, Any]]:
    capsys.readouterr()
    for batch in batches:
        assert handle_stream_batch(app, {"Records": batch}) == {"batchItemFailures": []}
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith('{"_aws"')]
    return _job_cost_documents(lines)


def test_the_projector_lambda_emits_each_job_cost_once_at_the_stored_prices(aws: None, capsys: Any) -> None:
    settings_ = Settings.from_environment(store="dynamodb://jc")
    aggregator = build_application(settings_, project_inline=False, metrics=False)
    events = simulate(SimulationSettings(accounts=2, regions=1, jobs=40, seed=5, chaos=True))
    aggregator.record_with_retry([f for f in map(translate, events) if isinstance(f, Parsed)], project=False)
    DynamoDBPriceStore(_client("dynamodb"), "jc-meta").save_price_entries(table_entries())  # as a refresh stores
    records = _stream_records()
    batches = [records[i : i + 40] for i in range(0, len(records), 40)]

    projector = build_application(settings_, project_inline=False)
    documents = _project(projector, batches, capsys)
    jobs, _ = costed_rows(settings_, projector.views)
    by_queue, count = _expected_by_queue(projector, jobs)
    sums, values = _sums_by_queue(documents)
    assert values == count > 10
    assert _rounded(sums) == _rounded(by_queue)

    assert _project(projector, batches, capsys) == []  # redelivered to the same container
    fresh = build_application(settings_, project_inline=False)  # and to a fresh one, in another order
    assert _project(fresh, list(reversed(batches)), capsys) == []
