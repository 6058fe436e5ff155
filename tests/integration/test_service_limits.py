"""AWS's limits at our edges: DynamoDB's 400 KB item (measured by AWS's rules, not moto's), an event whose fact would
pass it, a view item that would, and the Lambda path's partial-batch response for a batch that mixes good, oversized,
invalid and failing messages."""

from __future__ import annotations

import base64
import copy
import json
import os
import zlib
from pathlib import Path
from typing import Any
from uuid import NAMESPACE_URL, uuid5

import boto3
import orjson
import pytest
from botocore.config import Config
from botocore.stub import Stubber
from eventsourcing.persistence import StoredEvent

from batchops.adapters.dynamodb.event_state import EventStateCompressor
from batchops.adapters.dynamodb.event_store import DynamoDBAggregateRecorder, ItemTooLarge
from batchops.adapters.dynamodb.stream_projection import stream_fed
from batchops.adapters.dynamodb.tables import MAX_ITEM_BYTES, item_size
from batchops.application import BatchOpsApplication
from batchops.bootstrap import Settings, build_application
from batchops.cli import main
from batchops.entrypoints.lambdas import handle_sqs_batch
from batchops.job_cost import COST_FIELDS
from batchops.jobs import MAX_ATTEMPTS_KEPT, Job, new_job_fold, observe_state
from batchops.projector import FoldsByKind
from batchops.simulation import SimulationSettings, simulate
from conftest import AWS_REGION, sample, sqs_lambda_event

EVENTBRIDGE_MAX_BYTES = 256 * 1024


def _client(service: str) -> Any:
    return boto3.client(service, region_name=AWS_REGION, config=Config(account_id_endpoint_mode="disabled"))


def _central(prefix: str) -> BatchOpsApplication:
    app = build_application(Settings.from_environment(store=f"dynamodb://{prefix}"), project_inline=True)
    stream_fed(app)  # wired to DynamoDB
    return app


def _bare_attempts(count: int, job_id: str = "4c7599ae-0a82-49aa-ba5a-4727fcce14a8") -> dict[str, Any]:
    """A failed job whose `attempts` holds `count` empty entries: under EventBridge's 256 KB, while its fact (every
    attempt numbered) would be 4 times that, past DynamoDB's 400 KB item."""
    event = copy.deepcopy(sample("aws-batch--batch-job-state-change--failed"))
    event["detail"]["jobId"] = job_id
    event["detail"]["jobArn"] = f"arn:aws:batch:us-east-1:123456789012:job/{job_id}"
    event["detail"]["attempts"] = [{} for _ in range(count - 1)] + event["detail"]["attempts"][-1:]
    return event


def _workload() -> list[dict[str, Any]]:
    return list(simulate(SimulationSettings(accounts=1, regions=1, jobs=6, seed=11)))


# -- the item size ---------------------------------------------------------------------------------------------------


def test_item_size_follows_dynamodbs_documented_rules() -> None:
    # names count; strings in UTF-8; numbers 1 byte per 2 significant digits + 1; binary raw; null/bool 1;
    # list/map 3 + 1 per element; a map element's name counts too.
    assert item_size({"pk": {"S": "abc"}}) == 2 + 3
    assert item_size({"é": {"S": "日本"}}) == 2 + 6
    assert item_size({"n": {"N": "1641945300000"}}) == 1 + (8 + 1) // 2 + 1  # trailing zeros trimmed: 8 digits
    assert item_size({"n": {"N": "-0.00125"}}) == 1 + 2 + 1  # leading zeros and sign: 125
    assert item_size({"b": {"B": b"\x00" * 300}}) == 1 + 300
    assert item_size({"b": {"B": "AAAA"}}) == 1 + 3  # base64 text (a JSON request, a stream record): raw bytes
    assert item_size({"t": {"BOOL": True}, "z": {"NULL": True}}) == 2 + 2
    assert item_size({"l": {"L": [{"S": "ab"}, {"N": "7"}]}}) == 1 + 3 + (1 + 2) + (1 + 2)
    assert item_size({"m": {"M": {"key": {"S": "v"}}}}) == 1 + 3 + 1 + 3 + 1
    assert item_size({"s": {"SS": ["a", "bb"]}}) == 1 + 3
    assert MAX_ITEM_BYTES == 409_600  # 400 KB, DynamoDB's units being binary


def _stored(state_bytes: int, version: int = 1) -> StoredEvent:
    return StoredEvent(
        originator_id=uuid5(NAMESPACE_URL, "limits"), originator_version=version, topic="t:T", state=b"x" * state_bytes
    )


def test_an_event_item_within_400_kb_is_sent_and_one_past_it_never_is() -> None:
    # moto measures binary as its base64 text (4/3 of the bytes) and refuses at 405,000: it cannot show where AWS
    # draws the line, so the requests are asserted on a stubbed client instead.
    client = boto3.client("dynamodb", region_name=AWS_REGION, aws_access_key_id="x", aws_secret_access_key="x")
    recorder = DynamoDBAggregateRecorder(client, "t-events")
    overhead = item_size(recorder._put(_stored(0))["Item"])
    largest = _stored(MAX_ITEM_BYTES - overhead)
    with Stubber(client) as stub:
        stub.add_response("put_item", {}, recorder._put(largest))
        recorder.insert_events([largest])
        stub.assert_no_pending_responses()
        with pytest.raises(ItemTooLarge, match="409,601 bytes"):
            recorder.insert_events([_stored(MAX_ITEM_BYTES - overhead + 1)])
        with pytest.raises(ItemTooLarge):  # nothing of the save is sent, not even the aggregate that fits
            recorder.insert_events([_stored(10), _stored_other(), _stored(MAX_ITEM_BYTES, 2)])
    # ...and no request was made: the Stubber raises on any call it was not told to expect.


def _stored_other() -> StoredEvent:
    return StoredEvent(originator_id=uuid5(NAMESPACE_URL, "other"), originator_version=1, topic="t:T", state=b"{}")


# -- an event whose fact would pass 400 KB ---------------------------------------------------------------------------


def _without(row: dict[str, Any], fields: tuple[str, ...]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k not in fields}


def _jobs(store: str, capsys: Any) -> list[dict[str, Any]]:
    capsys.readouterr()
    assert main(["--store", store, "jobs", "--format", "json"]) == 0
    return json.loads(capsys.readouterr().out)  # type: ignore[no-any-return]


def test_an_event_of_60000_attempts_is_recorded_trimmed_with_its_batch_on_dynamodb_as_on_sqlite(
    aws: None, tmp_path: Path, capsys: Any
) -> None:
    good = _workload()
    big = _bare_attempts(60_000)
    assert len(json.dumps(big)) < EVENTBRIDGE_MAX_BYTES  # EventBridge would deliver it
    stream = tmp_path / "events.jsonl"
    stream.write_text("".join(json.dumps(e) + "\n" for e in [*good[:20], big, *good[20:]]))
    rows = {}
    for store in ("dynamodb://limits", f"sqlite:///{tmp_path / 'b.db'}"):
        assert main(["--store", store, "ingest", str(stream)]) == 0
        assert "0 rejected" in capsys.readouterr().out
        rows[store] = _jobs(store, capsys)
        assert main(["--store", store, "job", big["detail"]["jobId"], "--format", "json"]) == 0
        job = json.loads(capsys.readouterr().out)
        assert job["attempts"] == 60_000 and job["status"] == "FAILED" and job["exit_code"] == 1
        details = job["attempt_details"]
        assert len(details) == MAX_ATTEMPTS_KEPT  # the first and the last 99
        assert [d["attempt"] for d in details] == [1, *range(60_000 - MAX_ATTEMPTS_KEPT + 2, 60_001)]
    # One rule for both stores. Costs aside: the embedded store prices from the packaged table, an AWS store only at
    # the prices `batchops prices refresh` stored, none here (docs/cost.md).
    assert [_without(r, COST_FIELDS) for r in rows["dynamodb://limits"]] == [
        _without(r, COST_FIELDS) for r in rows[f"sqlite:///{tmp_path / 'b.db'}"]
    ]
    assert {r["cost_usd"] for r in rows["dynamodb://limits"]} == {None}
    expected = {e["detail"]["jobId"] for e in good if "jobId" in e["detail"]} | {big["detail"]["jobId"]}
    assert {r["job_id"] for r in rows["dynamodb://limits"]} == expected  # the events before and after it too
    items = _client("dynamodb").scan(TableName="limits-events")["Items"]
    assert max(item_size(i) for i in items) < MAX_ITEM_BYTES
    states = [EventStateCompressor().decompress(bytes(i["state"]["B"])) for i in items]
    [trimmed] = [json.loads(state) for state in states if b"attempts_omitted" in state]
    assert trimmed["observation"]["attempts_omitted"] == 60_000 - MAX_ATTEMPTS_KEPT


def test_the_10000_attempt_event_is_kept_aside_by_size_and_its_batch_recorded_on_dynamodb(
    aws: None, tmp_path: Path, capsys: Any
) -> None:
    """The issue's case: 10,000 full attempts (3.8 MB) failed the whole batch with DynamoDB's item-size error. It is
    past EventBridge's 256 KB, so AWS would never deliver it: kept aside by size, and the events around it recorded."""
    failed = sample("aws-batch--batch-job-state-change--failed")
    big = copy.deepcopy(failed)
    big["detail"]["jobId"] = "10000000-0000-4000-8000-000000000000"
    last = big["detail"]["attempts"][-1]
    big["detail"]["attempts"] = [dict(last, startedAt=1641945300000 + i) for i in range(10_000)]
    assert len(json.dumps(big)) > EVENTBRIDGE_MAX_BYTES
    good = _workload()
    stream = tmp_path / "events.jsonl"
    stream.write_text("".join(json.dumps(e) + "\n" for e in [*good[:20], big, *good[20:]]))
    assert main(["--store", "dynamodb://ten", "ingest", str(stream)]) == 3  # events were kept aside
    assert "1 rejected" in capsys.readouterr().out
    recorded = {r["job_id"] for r in _jobs("dynamodb://ten", capsys)}
    assert recorded == {e["detail"]["jobId"] for e in good if "jobId" in e["detail"]}
    assert main(["--store", "dynamodb://ten", "rejected"]) == 0
    kept = capsys.readouterr().out
    assert "over EventBridge's limit of 262,144 bytes" in " ".join(kept.split())


# -- a view item that would pass 400 KB ------------------------------------------------------------------------------


def _observed(fold: dict[str, Any], times: int) -> None:
    for i in range(times):
        observe_state(fold, {"fp": os.urandom(10).hex(), "at": 1764496000000 + i, "status": "RUNNABLE"})


def test_a_job_item_over_400_kb_is_written_without_its_fingerprints_and_folds_on(aws: None, make_app) -> None:
    app = _central("fps")
    key = Job.create_id("123456789012", "us-east-1", "busy")
    fold = new_job_fold("123456789012", "us-east-1", "busy")
    _observed(fold, 30_000)  # a job observed 30,000 distinct times: its fingerprints alone pass 400 KB
    assert len(zlib.compress(orjson.dumps(fold), 1)) > MAX_ITEM_BYTES
    with app.views.session() as session:
        app.projector.apply_folds(session, FoldsByKind({key: fold}, {}, {}))
    [item] = _client("dynamodb").scan(TableName="fps-jobs")["Items"]
    assert item_size(item) <= MAX_ITEM_BYTES
    [row] = list(app.views.jobs())
    sqlite = make_app()
    with sqlite.views.session() as session:
        sqlite.projector.apply_folds(session, FoldsByKind({key: fold}, {}, {}))
    assert [row] == list(sqlite.views.jobs())  # the same row: the views never read the fingerprints
    assert app.views.rejected() == []
    with app.views.session() as session:  # the stored fold folds on
        stored = session.job_fold(key)
        assert stored is not None and stored["seen"] == {}
        observe_state(stored, {"fp": "f" * 20, "at": 1764499999999, "status": "FAILED", "reason": "late"})
        app.projector.apply_folds(session, FoldsByKind({key: stored}, {}, {}))
    assert [r["status"] for r in app.views.jobs()] == ["FAILED"]


def test_a_job_item_over_400_kb_even_trimmed_is_kept_aside_and_its_batch_written(aws: None) -> None:
    app = _central("huge")
    huge = new_job_fold("123456789012", "us-east-1", "huge")
    # Reasons in the fold (two) and the row: random base64 packs to 3/4 of its length, ~450 KB
    incompressible = base64.b64encode(os.urandom(150_000)).decode()
    observe_state(huge, {"fp": "a" * 20, "at": 1764496000000, "status": "RUNNABLE", "reason": incompressible})
    observe_state(huge, {"fp": "b" * 20, "at": 1764496000001, "status": "FAILED", "reason": incompressible[::-1]})
    small = new_job_fold("123456789012", "us-east-1", "small")
    _observed(small, 3)
    folds = {Job.create_id("123456789012", "us-east-1", n): f for n, f in (("huge", huge), ("small", small))}
    with app.views.session() as session:
        app.projector.apply_folds(session, FoldsByKind(folds, {}, {}))
    assert [r["job_id"] for r in app.views.jobs()] == ["small"]
    [kept] = app.views.rejected()
    assert kept.reason.startswith("view item too large: the huge-jobs item ")
    assert "over DynamoDB's 409,600" in kept.reason
    assert json.loads(kept.body)["job_id"] == "huge" and kept.account_id == "123456789012"


def test_a_kept_aside_event_larger_than_an_item_is_kept_with_the_start_of_its_body(aws: None) -> None:
    from batchops.views import RejectedEvent

    app = _central("body")
    body = json.dumps({"detail-type": "Unknown", "detail": {"text": "x" * 600_000}})
    app.views.keep_rejected([RejectedEvent("unknown detail-type", True, "Unknown", "123456789012", "us-east-1", body)])
    [kept] = app.views.rejected()
    assert kept.body.startswith(body[:1000]) and kept.body.endswith("more bytes not kept: over DynamoDB's item limit]")
    [item] = _client("dynamodb").scan(TableName="body-meta")["Items"]
    assert 399_000 <= item_size(item) <= 400_000


# -- the Lambda path's partial-batch response ------------------------------------------------------------------------


def test_the_partial_batch_response_lists_exactly_the_failed_messages(aws: None) -> None:
    app = _central("mixed")
    good = [e for e in _workload() if e["detail-type"] == "Batch Job State Change"][:6]
    warm = good[0]
    handle_sqs_batch(app, sqs_lambda_event([json.dumps(warm)]))  # the job is in this container's cache
    later = copy.deepcopy(warm)
    later["id"], later["time"] = "later", "2030-01-01T00:00:00Z"
    later["detail"]["status"] = "FAILED"
    later["detail"]["statusReason"] = "Essential container in task exited"
    # A job whose stored history this version cannot read (an event class of a later batchops, after a rollback).
    unreadable = _bare_attempts(2, "ffffffff-0000-4000-8000-000000000001")
    job = Job.create_id(unreadable["account"], unreadable["region"], unreadable["detail"]["jobId"])
    for version, topic in ((1, "batchops.jobs:Job.Tracked"), (2, "batchops.jobs:Job.ObservedInAFutureVersion")):
        _client("dynamodb").put_item(
            TableName="mixed-events",
            Item={
                "originator_id": {"S": str(job)},
                "originator_version": {"N": str(version)},
                "topic": {"S": topic},
                "state": {"B": json.dumps({"timestamp": {"_type_": "datetime_iso", "_data_": "2026-11-30T00:00:00"}})},
            },
        )
    oversized = _bare_attempts(60_000, "eeeeeeee-0000-4000-8000-000000000001")
    bodies = [
        json.dumps(later),
        *map(json.dumps, good[1:3]),
        json.dumps(oversized),
        json.dumps(dict(good[3], detail={"jobId": 5})),
        json.dumps(dict(good[3], **{"detail-type": "Something Else"})),
        json.dumps(unreadable),
        *map(json.dumps, good[3:]),
    ]
    response = handle_sqs_batch(app, sqs_lambda_event(bodies))
    assert response == {"batchItemFailures": [{"itemIdentifier": f"m-{bodies.index(json.dumps(unreadable))}"}]}
    rows = {r["job_id"]: r for r in app.views.jobs()}
    assert rows[warm["detail"]["jobId"]]["status"] == "FAILED"  # the warm job's new fact was not lost
    assert {e["detail"]["jobId"] for e in good} <= set(rows)
    assert rows[oversized["detail"]["jobId"]]["attempts"] == 60_000
    assert unreadable["detail"]["jobId"] not in rows
    reasons = [r.reason for r in app.views.rejected()]
    assert any("unknown detail-type 'Something Else'" in r for r in reasons)
    assert len(reasons) == 2 + 1  # the invalid, the unknown, and the failing message's reason
