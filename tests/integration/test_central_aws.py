"""The central account on moto: EventBridge envelopes → SQS → aggregator handler → DynamoDB event store →
stream records → projector handler → DynamoDB views, compared field for field with the embedded store."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config

from batchops.adapters.dynamodb.stream_projection import STREAM_MARKER_SECONDS, stream_fed
from batchops.application import BatchOpsApplication
from batchops.bootstrap import Settings, build_application
from batchops.entrypoints.lambdas import handle_sqs_batch, handle_stream_batch
from batchops.simulation import SimulationSettings, simulate
from conftest import AWS_REGION, ingest, rows_by_job

REGION = AWS_REGION  # where the `aws` fixture (tests/conftest.py) puts the central account


def _client(service: str) -> Any:
    return boto3.client(service, region_name=REGION, config=Config(account_id_endpoint_mode="disabled"))


def _central(prefix: str = "bt", *, inline: bool = False) -> BatchOpsApplication:
    app = build_application(Settings.from_environment(store=f"dynamodb://{prefix}"), project_inline=inline)
    stream_fed(app)  # wired to DynamoDB
    return app


def _queues() -> tuple[str, str]:
    sqs = _client("sqs")
    dlq = sqs.create_queue(QueueName="bt-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    queue = sqs.create_queue(
        QueueName="bt-events",
        Attributes={
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "3"}),
            "VisibilityTimeout": "0",
        },
    )["QueueUrl"]
    return queue, dlq


def _lambda_event(messages: list[dict[str, Any]], queue_arn: str) -> dict[str, Any]:
    """The SQS event Lambda builds from received messages."""
    return {
        "Records": [
            {
                "messageId": m["MessageId"],
                "receiptHandle": m["ReceiptHandle"],
                "body": m["Body"],
                "attributes": {
                    "ApproximateReceiveCount": m["Attributes"]["ApproximateReceiveCount"],
                    "SentTimestamp": m["Attributes"]["SentTimestamp"],
                    "SenderId": "AIDAEXAMPLE",
                    "ApproximateFirstReceiveTimestamp": m["Attributes"]["ApproximateFirstReceiveTimestamp"],
                },
                "messageAttributes": {},
                "md5OfBody": m["MD5OfBody"],
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": REGION,
            }
            for m in messages
        ]
    }


def _drain_queue(app: BatchOpsApplication, queue: str, rounds: int = 20) -> list[dict[str, Any]]:
    """Receive → aggregator handler → delete what succeeded (what Lambda's event source mapping does)."""
    sqs = _client("sqs")
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    responses = []
    for _ in range(rounds):
        messages = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, AttributeNames=["All"]).get(
            "Messages", []
        )
        if not messages:
            break
        response = handle_sqs_batch(app, _lambda_event(messages, arn))
        responses.append(response)
        failed = {f["itemIdentifier"] for f in response["batchItemFailures"]}
        for m in messages:
            if m["MessageId"] not in failed:
                sqs.delete_message(QueueUrl=queue, ReceiptHandle=m["ReceiptHandle"])
    return responses


def _stream_records(after: dict[str, str] | None = None) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """Every new stream record of the events table, in the Lambda event shape, per shard in order."""
    dynamodb = _client("dynamodb")
    streams = _client("dynamodbstreams")
    arn = dynamodb.describe_table(TableName="bt-events")["Table"]["LatestStreamArn"]
    positions = dict(after or {})
    records = []
    for shard in streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]:
        shard_id = shard["ShardId"]
        if shard_id in positions:
            iterator = streams.get_shard_iterator(
                StreamArn=arn,
                ShardId=shard_id,
                ShardIteratorType="AFTER_SEQUENCE_NUMBER",
                SequenceNumber=positions[shard_id],
            )["ShardIterator"]
        else:
            iterator = streams.get_shard_iterator(StreamArn=arn, ShardId=shard_id, ShardIteratorType="TRIM_HORIZON")[
                "ShardIterator"
            ]
        got = streams.get_records(ShardIterator=iterator, Limit=1000)["Records"]
        if got:
            positions[shard_id] = got[-1]["dynamodb"]["SequenceNumber"]
        records.extend(got)
    return records, positions


def _workload() -> list[dict[str, Any]]:
    return list(simulate(SimulationSettings(accounts=2, regions=1, jobs=25, seed=4, chaos=True)))


def _send(queue: str, events: list[dict[str, Any]]) -> None:
    sqs = _client("sqs")
    for i in range(0, len(events), 10):
        sqs.send_message_batch(
            QueueUrl=queue,
            Entries=[{"Id": str(j), "MessageBody": json.dumps(e)} for j, e in enumerate(events[i : i + 10])],
        )


def test_sqs_to_store_to_stream_to_views_equals_the_embedded_store(aws: None, make_app) -> None:
    events = _workload()
    queue, _ = _queues()
    _send(queue, events)
    app = _central()
    responses = _drain_queue(app, queue, rounds=200)
    assert all(r["batchItemFailures"] == [] for r in responses)
    records, _ = _stream_records()
    assert records and all(r["eventName"] == "INSERT" for r in records)
    for i in range(0, len(records), 100):  # the projector's batch size
        assert handle_stream_batch(app, {"Records": records[i : i + 100]}) == {"batchItemFailures": []}
    local = make_app()
    local_summary = ingest(local, events).summary
    expected = rows_by_job(local)
    got = {(r["account_id"], r["region"], r["job_id"]): r for r in app.views.jobs()}
    assert got == expected
    assert list(app.views.instances()) == list(local.views.instances())
    counters = {(c.account_id, c.region): c for c in app.views.counters()}
    assert sum(c.duplicates for c in counters.values()) == local_summary.duplicates
    assert sum(c.ingested for c in counters.values()) == local_summary.new


def test_a_poison_message_goes_to_the_dlq_and_the_rest_of_its_batch_is_kept(aws: None) -> None:
    events = _workload()[:9]
    queue, dlq = _queues()
    sqs = _client("sqs")
    sqs.send_message(QueueUrl=queue, MessageBody="{not json")
    _send(queue, events)
    app = _central(inline=True)
    responses = _drain_queue(app, queue)
    assert any(r["batchItemFailures"] for r in responses)
    moved = sqs.receive_message(QueueUrl=dlq, MaxNumberOfMessages=10).get("Messages", [])
    assert [m["Body"] for m in moved] == ["{not json"]
    jobs_in_stream = {e["detail"]["jobId"] for e in events if "jobId" in e["detail"]}
    assert {r["job_id"] for r in app.views.jobs()} >= jobs_in_stream
    kept = [r for r in app.views.rejected() if json.loads(r.body)["excerpt"] == "{not json"]
    assert kept and all("JSONDecodeError" in r.reason and moved[0]["MessageId"] in r.reason for r in kept)


def test_a_poison_message_changes_nothing_in_the_pipeline_figures_of_its_batch(aws: None, capsys) -> None:
    events = _workload()[:6]
    unusable = [dict(events[0], **{"detail-type": "Something Else"}), dict(events[0], detail={"jobId": 5})]
    bodies = [json.dumps(e) for e in [*events, events[0], *unusable]]  # a duplicate, a rejected, an ignored
    sqs = _client("sqs")
    figures = []
    for prefix, poison in (("clean", []), ("poisoned", ["{not json"])):
        queue = sqs.create_queue(QueueName=f"{prefix}-events")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        for body in [*poison, *bodies]:
            sqs.send_message(QueueUrl=queue, MessageBody=body)
        messages = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, AttributeNames=["All"])["Messages"]
        assert len(messages) == len(poison) + len(bodies)
        app = _central(prefix, inline=True)
        capsys.readouterr()
        response = handle_sqs_batch(app, _lambda_event(messages, arn))
        assert len(response["batchItemFailures"]) == len(poison)
        emitted: dict[str, float] = {}
        for line in capsys.readouterr().out.splitlines():
            document = json.loads(line)
            for metric in document.get("_aws", {}).get("CloudWatchMetrics", [{}])[0].get("Metrics", []):
                if metric["Name"] in ("EventsIngested", "DuplicatesDropped", "EventsRejected"):
                    value = document[metric["Name"]]
                    emitted[metric["Name"]] = emitted.get(metric["Name"], 0) + sum(
                        value if isinstance(value, list) else [value]
                    )
        counters = sorted(
            (c.account_id, c.region, c.ingested, c.duplicates, c.rejected, c.ignored) for c in app.views.counters()
        )
        figures.append((emitted, counters))
    assert figures[0] == figures[1]
    assert figures[0][0] == {"EventsIngested": 6, "DuplicatesDropped": 1, "EventsRejected": 1}


def test_two_workers_with_overlapping_batches_converge(aws: None, make_app) -> None:
    events = _workload()
    first, second = _central(inline=True), _central(inline=True)
    # Both workers load the same aggregates, then take turns saving overlapping batches: each brings the aggregates
    # it cached up to date with what the other saved before recording, so no save is stale (a save that loses a race
    # anyway: test_an_aggregate_moved_on_during_a_save_fails_alone...).
    from batchops.inbound import Parsed, translate

    facts = [f for f in map(translate, events) if isinstance(f, Parsed)]
    failed = [_failed_writes(first), _failed_writes(second)]
    first.record_with_retry(facts[:10])
    second.record_with_retry(facts[:10])
    for i in range(10, len(facts), 15):
        first.record_with_retry(facts[i : i + 15])
        second.record_with_retry(facts[max(10, i - 7) : i + 8])  # overlaps what the first just saved
    local = make_app()
    ingest(local, events)
    assert {(r["account_id"], r["region"], r["job_id"]): r for r in first.views.jobs()} == rows_by_job(local)
    assert {(r["account_id"], r["region"], r["job_id"]): r for r in second.views.jobs()} == rows_by_job(local)
    assert failed == [[], []]


def _aggregate(p: Any) -> tuple[str, str, str, str]:
    return ("job" if p.kind.startswith("job") else p.kind, p.account, p.region, p.key)


def _moved_on_elsewhere() -> tuple[BatchOpsApplication, BatchOpsApplication, Any, list[Any]]:
    """Two containers; the second has cached aggregates; a fact of one of them, and a dozen facts of other
    aggregates, some cached in the second and some new."""
    from batchops.inbound import Parsed, translate

    facts = [f for f in map(translate, _workload()) if isinstance(f, Parsed)]
    first, second = _central(), _central()
    second.record_with_retry(facts[:40])
    cached = {_aggregate(f) for f in facts[:40]}
    moved = next(f for f in facts[40:] if _aggregate(f) in cached)
    others = list({_aggregate(f): f for f in facts[40:] if _aggregate(f) != _aggregate(moved)}.values())[:12]
    assert 0 < len([f for f in others if _aggregate(f) in cached]) < len(others)
    return first, second, moved, others


def _failed_writes(app: BatchOpsApplication) -> list[str]:
    """The error codes of the writes `app`'s event store sends from now on."""
    failed: list[str] = []

    def note(model: Any, parsed: dict[str, Any], **_: Any) -> None:
        if model.name in ("PutItem", "TransactWriteItems") and "Error" in parsed:
            failed.append(parsed["Error"]["Code"])

    app.recorder.client.meta.events.register("after-call.dynamodb.*", note)  # type: ignore[attr-defined]
    return failed


def test_a_cached_aggregate_another_container_moved_on_is_brought_up_to_date_before_the_save(aws: None) -> None:
    first, second, moved, others = _moved_on_elsewhere()
    first.record_with_retry([moved])  # the second's copy is now behind the store
    failed = _failed_writes(second)
    outcome = second.record_with_retry([moved, *others])
    assert failed == []  # no conditional write failed: the cached copy read what followed it first
    assert outcome.reread == 1
    assert (outcome.new, outcome.duplicates) == (len(others), 1)


def test_an_aggregate_moved_on_during_a_save_fails_alone_and_only_its_facts_are_recorded_again(aws: None) -> None:
    first, second, moved, others = _moved_on_elsewhere()
    raced: list[bool] = []
    writes_wait = threading.Lock()  # the second's writes run in threads: none is sent before the race is over

    def race(**_: Any) -> None:  # the first container saves between the second's reads and its writes
        with writes_wait:
            if not raced:
                raced.append(True)
                first.record_with_retry([moved])

    second.recorder.client.meta.events.register("before-call.dynamodb.PutItem", race)  # type: ignore[attr-defined]
    second.recorder.client.meta.events.register("before-call.dynamodb.TransactWriteItems", race)  # type: ignore[attr-defined]
    failed = _failed_writes(second)
    outcome = second.record_with_retry([moved, *others])
    assert raced and len(failed) == 1  # one aggregate's write failed; the others' were stored
    # Only the stale aggregate was read again (`reread` counts aggregates the store held) and recorded again; the
    # others are counted as new once.
    assert outcome.reread == 1
    assert (outcome.new, outcome.duplicates) == (len(others), 1)
    again = second.record_with_retry([moved, *others])
    assert (again.new, again.duplicates) == (0, len(others) + 1)


def test_concurrent_projectors_on_the_stream_converge_to_the_embedded_store(aws: None, make_app) -> None:
    import zlib
    from concurrent.futures import ThreadPoolExecutor

    from batchops.inbound import Parsed, translate

    events = _workload()
    _central().record_with_retry([f for f in map(translate, events) if isinstance(f, Parsed)])
    records, _ = _stream_records()
    # Lambda keeps the order of each partition key (aggregate), not across them: 4 concurrent invocations, one per
    # share of the aggregates, each in its own container, in batches of 25. Jobs and their instances and compute
    # environments land in different invocations, so the joins are made under concurrency.
    shares: list[list[dict[str, Any]]] = [[], [], [], []]
    for record in records:
        shares[zlib.crc32(record["dynamodb"]["Keys"]["originator_id"]["S"].encode()) % 4].append(record)
    workers = [_central() for _ in shares]

    def run(worker: BatchOpsApplication, share: list[dict[str, Any]]) -> list[Any]:
        return [handle_stream_batch(worker, {"Records": share[i : i + 25]}) for i in range(0, len(share), 25)]

    with ThreadPoolExecutor(max_workers=4) as pool:
        responses = [r for done in pool.map(run, workers, shares) for r in done]
    assert all(r == {"batchItemFailures": []} for r in responses)
    local = make_app()
    ingest(local, events)
    assert rows_by_job(workers[0]) == rows_by_job(local)
    assert list(workers[0].views.instances()) == list(local.views.instances())


def test_replay_on_dynamodb_equals_live_and_switches_generation(aws: None) -> None:
    events = _workload()
    app = _central(inline=True)
    from batchops.inbound import Parsed, translate

    app.record_with_retry([f for f in map(translate, events) if isinstance(f, Parsed)])
    live = list(app.views.jobs())
    live_instances = list(app.views.instances())
    assert app.views.current_generation() == 1
    applied = stream_fed(app).replay(segments=3)
    assert applied > 0
    assert app.views.current_generation() == 2
    assert list(app.views.jobs()) == live
    assert list(app.views.instances()) == live_instances
    leftovers = _client("dynamodb").scan(
        TableName="bt-jobs", FilterExpression="begins_with(pk, :g)", ExpressionAttributeValues={":g": {"S": "1#"}}
    )["Items"]
    assert leftovers == []


def test_cli_works_on_a_dynamodb_store(aws: None, tmp_path: Path, capsys) -> None:
    from batchops.cli import main

    stream = tmp_path / "events.jsonl"
    stream.write_text("".join(json.dumps(e) + "\n" for e in _workload()))
    assert main(["--store", "dynamodb://cli", "ingest", str(stream)]) == 0
    capsys.readouterr()
    assert main(["--store", "dynamodb://cli", "jobs", "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows and {r["status"] for r in rows} <= {"SUCCEEDED", "FAILED", "RUNNABLE", "RUNNING"}
    assert main(["--store", "dynamodb://cli", "job", rows[0]["job_id"], "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["job_id"] == rows[0]["job_id"]
    assert main(["--store", "dynamodb://cli", "instances", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)
    assert main(["--store", "dynamodb://cli", "timeline", "--format", "json"]) == 0
    assert {t["job_id"] for t in json.loads(capsys.readouterr().out)} == {r["job_id"] for r in rows}
    assert main(["--store", "dynamodb://cli", "attempts", "--format", "json"]) == 0
    attempts = json.loads(capsys.readouterr().out)
    assert attempts and {a["job_id"] for a in attempts} <= {r["job_id"] for r in rows}
    assert all(a["attempt"] >= 1 for a in attempts) and any(a["instance_id"] for a in attempts)
    assert main(["--store", "dynamodb://cli", "summary", "--format", "json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert sum(sum(c.values()) for c in summary["jobs_by_status"].values()) == len(rows)
    assert main(["--store", "dynamodb://cli", "rejected"]) == 0
    capsys.readouterr()
    assert main(["--store", "dynamodb://cli", "replay", "--quiet"]) == 0
    assert "replayed" in capsys.readouterr().out
    assert main(["--store", "dynamodb://cli", "jobs", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == rows


def test_a_redelivered_batch_after_a_crash_has_no_double_effect(aws: None) -> None:
    events = _workload()[:40]
    queue, _ = _queues()
    _send(queue, events[:10])
    sqs = _client("sqs")
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    messages = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, AttributeNames=["All"])["Messages"]
    app = _central(inline=True)
    handle_sqs_batch(app, _lambda_event(messages, arn))  # ...and the Lambda dies before SQS deletes them
    rows = list(app.views.jobs())
    before = {(c.account_id, c.region): c for c in app.views.counters()}
    again = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, AttributeNames=["All"])["Messages"]
    assert {m["MessageId"] for m in again} == {m["MessageId"] for m in messages}
    fresh = _central(inline=True)  # a new container: nothing cached
    assert handle_sqs_batch(fresh, _lambda_event(again, arn)) == {"batchItemFailures": []}
    assert list(fresh.views.jobs()) == rows
    after = {(c.account_id, c.region): c for c in fresh.views.counters()}
    assert sum(c.ingested for c in after.values()) == sum(c.ingested for c in before.values())
    assert sum(c.duplicates for c in after.values()) == sum(c.duplicates for c in before.values()) + len(messages)


def test_a_projector_crash_after_the_instance_write_still_joins_the_jobs_on_redelivery(aws: None, make_app) -> None:
    events = _workload()
    app = _central()
    from batchops.adapters.dynamodb.event_store import stored_event_from_stream_record
    from batchops.inbound import Parsed, translate

    app.record_with_retry([f for f in map(translate, events) if isinstance(f, Parsed)])
    records, _ = _stream_records()
    topics = [stored_event_from_stream_record(r, "uuid").topic for r in records]  # type: ignore[union-attr]
    job_records = [r for r, t in zip(records, topics, strict=True) if ":Job." in t]
    other_records = [r for r, t in zip(records, topics, strict=True) if ":Job." not in t]
    assert job_records and other_records
    assert handle_stream_batch(app, {"Records": job_records}) == {"batchItemFailures": []}
    crashed = []

    def time_out_on_the_first_job_write(params: dict[str, Any], **_: Any) -> None:
        if params.get("TableName") == "bt-jobs" and not crashed:
            crashed.append(True)
            raise TimeoutError("Task timed out after 60.00 seconds")

    client = stream_fed(app).views.client
    client.meta.events.register("before-parameter-build.dynamodb.PutItem", time_out_on_the_first_job_write)
    before = int(time.time())
    first = handle_stream_batch(app, {"Records": other_records})
    after = int(time.time())
    resume_from = other_records[0]["dynamodb"]["SequenceNumber"]
    assert crashed and first["batchItemFailures"] == [{"itemIdentifier": resume_from}]
    # The crashed batch's marker expires by TTL should the batch end in the dead-letter queue instead.
    markers = client.query(
        TableName="bt-meta", KeyConditionExpression="pk = :p", ExpressionAttributeValues={":p": {"S": "projecting"}}
    )["Items"]
    assert len(markers) == 1
    assert before + STREAM_MARKER_SECONDS <= int(markers[0]["expires_at"]["N"]) <= after + STREAM_MARKER_SECONDS
    # Lambda delivers the batch again from the failed record; the instances are stored already, so only the
    # in-progress marker tells the projector to pass their facts on to the jobs.
    fresh = _central()
    assert handle_stream_batch(fresh, {"Records": other_records}) == {"batchItemFailures": []}
    local = make_app()
    ingest(local, events)
    assert {(r["account_id"], r["region"], r["job_id"]): r for r in fresh.views.jobs()} == rows_by_job(local)


def test_an_interrupted_replay_resumes_and_completes(aws: None) -> None:
    from batchops.inbound import Parsed, translate

    app = _central(inline=True)
    app.record_with_retry([f for f in map(translate, _workload()) if isinstance(f, Parsed)])
    live = list(app.views.jobs())
    seen = [0]

    def crash_midway(count: int) -> None:
        seen[0] += count
        if seen[0] > 60:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        stream_fed(app).replay(page=20, segments=1, progress=crash_midway)
    assert app.views.current_generation() == 1  # readers still see the complete old generation
    assert list(app.views.jobs()) == live
    resumed = stream_fed(app).replay(page=20, segments=1)
    assert app.views.current_generation() == 2
    assert list(app.views.jobs()) == live
    assert 0 < resumed < stream_fed(app).replay(page=20, segments=1)  # the pages done before the crash were not redone


def test_a_replay_resumed_with_another_number_of_segments_starts_its_scan_again(aws: None) -> None:
    from batchops.inbound import Parsed, translate

    app = _central(inline=True)
    app.record_with_retry([f for f in map(translate, _workload()) if isinstance(f, Parsed)])
    live = list(app.views.jobs())
    first_segment = {e.originator_id for p in stream_fed(app).recorder.scan_events(0, 3) for e in p.events}
    project_stored = stream_fed(app).project_stored

    def crash_outside_the_first_segment(history: Any, generation: Any = None) -> int:
        if history[0].originator_id not in first_segment:
            raise KeyboardInterrupt
        return project_stored(history, generation)

    stream_fed(app).project_stored = crash_outside_the_first_segment  # type: ignore[method-assign]
    with pytest.raises(KeyboardInterrupt):
        stream_fed(app).replay(page=10, segments=3)  # segment 0 of 3 completes, the two others stop at once
    stream_fed(app).project_stored = project_stored  # type: ignore[method-assign]
    assert app.views.current_generation() == 1
    stream_fed(app).replay(page=10, segments=1)
    assert app.views.current_generation() == 2
    assert list(app.views.jobs()) == live
    leftovers = _client("dynamodb").scan(
        TableName="bt-meta", FilterExpression="begins_with(pk, :r)", ExpressionAttributeValues={":r": {"S": "replay#"}}
    )["Items"]
    assert leftovers == []  # the progress of a finished replay is not kept


def test_events_saved_while_a_replay_runs_reach_the_new_generation(aws: None, make_app) -> None:
    from batchops.inbound import Parsed, translate

    events = _workload()
    half = len(events) // 2
    app = _central()  # the projector follows the stream, as in AWS
    app.record_with_retry([f for f in map(translate, events[:half]) if isinstance(f, Parsed)])
    records, positions = _stream_records()
    assert handle_stream_batch(app, {"Records": records}) == {"batchItemFailures": []}
    seen = [0]

    def crash_midway(count: int) -> None:
        seen[0] += count
        if seen[0] > 40:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        stream_fed(app).replay(page=20, segments=1, progress=crash_midway)
    # The aggregator and the projector go on while the replay is away: part of this lands behind its scan.
    app.record_with_retry([f for f in map(translate, events[half:]) if isinstance(f, Parsed)])
    records, _ = _stream_records(positions)
    assert handle_stream_batch(app, {"Records": records}) == {"batchItemFailures": []}
    stream_fed(app).replay(page=20, segments=1)
    assert app.views.current_generation() == 2
    local = make_app()
    ingest(local, events)
    assert rows_by_job(app) == rows_by_job(local)
    assert list(app.views.instances()) == list(local.views.instances())


def test_redrive_command_moves_dead_letters_back(aws: None, capsys) -> None:
    from batchops.cli import main

    queue, dlq = _queues()
    sqs = _client("sqs")
    for i in range(3):
        sqs.send_message(QueueUrl=dlq, MessageBody=json.dumps({"n": i}))
    assert main(["redrive", "--dlq-url", dlq, "--queue-url", queue]) == 0
    assert "moved 3 messages" in capsys.readouterr().out
    bodies = sorted(m["Body"] for m in sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10)["Messages"])
    assert bodies == [json.dumps({"n": i}) for i in range(3)]


def _job_items(prefix: str, generation: int) -> list[dict[str, Any]]:
    """The stored job items of a generation, as the jobs table holds them."""
    dynamodb = _client("dynamodb")
    request: dict[str, Any] = {
        "TableName": f"{prefix}-jobs",
        "FilterExpression": "begins_with(pk, :g)",
        "ExpressionAttributeValues": {":g": {"S": f"{generation}#"}},
    }
    items = []
    while True:
        response = dynamodb.scan(**request)
        items.extend(response["Items"])
        if "LastEvaluatedKey" not in response:
            return items
        request["ExclusiveStartKey"] = response["LastEvaluatedKey"]


@pytest.mark.parametrize("days", [None, 7])
def test_finished_jobs_expire_after_the_retention_and_the_others_never(
    aws: None, monkeypatch: pytest.MonkeyPatch, days: int | None
) -> None:
    from datetime import datetime

    from batchops.inbound import Parsed, translate

    if days is not None:
        monkeypatch.setenv("BATCHOPS_RETENTION_DAYS", str(days))
    app = _central(inline=True)
    events = _workload()
    app.record_with_retry([f for f in map(translate, events[: len(events) // 2]) if isinstance(f, Parsed)])
    ttl = _client("dynamodb").describe_time_to_live(TableName="bt-jobs")["TimeToLiveDescription"]
    assert (ttl["TimeToLiveStatus"], ttl["AttributeName"]) == ("ENABLED", "expires_at")
    from batchops.adapters.dynamodb.views import from_item, job_row_of_item

    items = [(item, job_row_of_item(from_item(item))) for item in _job_items("bt", app.views.current_generation())]
    finished = [(item, row) for item, row in items if row["status"] in ("SUCCEEDED", "FAILED")]
    assert finished and len(finished) < len(items)  # half the workload leaves some jobs queued or running
    for item, row in items:
        if (item, row) in finished:
            ended = datetime.fromisoformat(row["last_event_time"]).timestamp()
            assert int(item["expires_at"]["N"]) == int(ended) + (days or 90) * 86400
        else:
            assert "expires_at" not in item


def test_job_listings_by_account_and_status_or_queue_read_the_index_not_the_whole_table(aws: None) -> None:
    from batchops.inbound import Parsed, translate
    from batchops.views import JobFilter

    app = _central(inline=True)
    app.record_with_retry([f for f in map(translate, _workload()) if isinstance(f, Parsed)])
    rows = list(app.views.jobs())
    calls: list[str] = []
    app.views.client.meta.events.register(  # type: ignore[attr-defined]
        "before-call.dynamodb.*", lambda model, **_: calls.append(model.name)
    )
    account, region, queue = rows[0]["account_id"], rows[0]["region"], rows[0]["queue"]
    statuses = tuple(sorted({r["status"] for r in rows if r["account_id"] == account}))[:2]
    filters = [
        JobFilter(accounts=(account,), statuses=statuses),
        JobFilter(accounts=(account,), regions=(region,), queues=(queue,)),
        JobFilter(accounts=(account,), regions=(region,), queues=(queue,), statuses=(rows[0]["status"],), limit=2),
    ]
    for query in filters:
        calls.clear()
        expected = [
            r
            for r in rows
            if r["account_id"] in query.accounts
            and (not query.regions or r["region"] in query.regions)
            and (not query.queues or r["queue"] in query.queues)
            and (not query.statuses or r["status"] in query.statuses)
        ][: query.limit]
        assert expected and list(app.views.jobs(query)) == expected
        assert "Scan" not in calls and "Query" in calls
    calls.clear()
    assert list(app.views.jobs(JobFilter(statuses=statuses))) == [r for r in rows if r["status"] in statuses]
    assert "Scan" in calls  # no account named: no index key to ask


def test_the_drilldown_indexes_find_jobs_by_queue_and_time_by_status_and_by_instance(aws: None) -> None:
    from batchops.adapters.dynamodb.views import from_item, job_row_of_item
    from batchops.inbound import Parsed, translate

    app = _central(inline=True)
    app.record_with_retry([f for f in map(translate, _workload()) if isinstance(f, Parsed)])
    rows = list(app.views.jobs())
    g = app.views.current_generation()
    dynamodb = _client("dynamodb")
    job_ids = {i["pk"]["S"]: job_row_of_item(from_item(i))["job_id"] for i in _job_items("bt", g)}

    def found(index: str, condition: str, values: dict[str, str]) -> set[str]:
        response = dynamodb.query(
            TableName="bt-jobs",
            IndexName=index,
            KeyConditionExpression=condition,
            ExpressionAttributeValues={k: {"S": v} for k, v in values.items()},
        )
        return {job_ids[i["pk"]["S"]] for i in response["Items"]}

    def expected(**match: Any) -> set[str]:
        return {r["job_id"] for r in rows if all(r[k] == v for k, v in match.items())}

    first = min((r for r in rows if r["created_at"]), key=lambda r: r["created_at"])
    queued = [r for r in rows if r["queue"] == first["queue"] and r["account_id"] == first["account_id"]]
    times = sorted(r["created_at"] for r in queued if r["created_at"])
    assert len(times) > 2
    key = {":q": f"{g}#{first['account_id']}#{first['region']}#{first['queue']}"}
    assert found("by-queue", "by_queue = :q", key) == expected(
        account_id=first["account_id"], region=first["region"], queue=first["queue"]
    )
    window = {":q": key[":q"], ":a": times[1], ":b": times[-2]}
    assert found("by-queue", "by_queue = :q AND created_at BETWEEN :a AND :b", window) == {
        r["job_id"] for r in queued if r["created_at"] and times[1] <= r["created_at"] <= times[-2]
    }
    for status in {r["status"] for r in rows}:
        account = first["account_id"]
        assert found("by-status-since", "by_status = :s", {":s": f"{g}#{account}#{status}"}) == expected(
            account_id=account, status=status
        )
    placed = [r for r in rows if r["instance_id"]]
    assert placed
    for row in placed[:5]:
        key = {":i": f"{g}#{row['account_id']}#{row['region']}#{row['instance_id']}"}
        assert found("by-instance", "by_instance = :i", key) == expected(
            account_id=row["account_id"], region=row["region"], instance_id=row["instance_id"]
        )
