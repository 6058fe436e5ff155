"""Submission (CloudTrail SubmitJob records) and service jobs, as an operator sees them in the job rows: when a job
was submitted, by whom, what it waited for and how long; in any arrival order, with no secret of the request kept."""

from __future__ import annotations

import copy
import itertools
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from batchops.bootstrap import Settings, build_application
from batchops.entrypoints.lambdas import handle_sqs_batch
from batchops.projection import JOB_SUBMISSION_FIELDS
from conftest import ingest, rows_by_job, sample, sqs_lambda_event

SUBMIT = "aws-batch--cloudtrail-submitjob--composed"
FAILED_JOB = "4c7599ae-0a82-49aa-ba5a-4727fcce14a8"
HISTORY = [
    "aws-batch--batch-job-state-change--runnable",
    "aws-batch--batch-job-queue-blocked",
    "aws-batch--batch-job-state-change--running",
    "aws-batch--batch-job-state-change--failed",
]
"""The failed sample job's events: RUNNABLE, blocked, RUNNING, then FAILED after a retry."""
SUBMISSION_ONLY = {"submitted_at", "submitted_by", "share_identifier", "scheduling_priority"}
"""What only the SubmitJob record tells of the sample job (its events, older than fair share, carry no share or
priority; its name, queue and times come from its own events)."""


def _submission_of(job_id: str, at: str, depends_on: list[str] | None = None, **request: Any) -> dict[str, Any]:
    """The sample SubmitJob record made the submission of `job_id` at `at`."""
    event = copy.deepcopy(sample(SUBMIT))
    event["time"] = event["detail"]["eventTime"] = at
    event["id"] = f"submit-{job_id}"
    detail = event["detail"]
    detail["responseElements"].update(jobId=job_id, jobArn=f"arn:aws:batch:us-east-1:123456789012:job/{job_id}")
    detail["requestParameters"]["dependsOn"] = [{"jobId": d} for d in depends_on or []]
    detail["requestParameters"].update(request)
    return event


def _rows(make_app: Any, events: list[dict[str, Any]], name: str) -> dict[tuple[str, str, str], dict[str, Any]]:
    app = make_app(name)
    ingest(app, events, batch_size=2)
    return rows_by_job(app)


def test_a_job_seen_only_through_its_submission_is_a_submitted_row_with_what_the_record_says(make_app) -> None:
    [row] = _rows(make_app, [sample(SUBMIT)], "only").values()
    assert row["status"] == "SUBMITTED" and row["job_id"] == "9d1f4b2e-6c3a-4e8d-b5f7-2a1c0e9d8b7a"
    assert (row["job_name"], row["queue"]) == ("nightly-report", "PexjEHappyPathCanary2JobQueue")
    assert row["submitted_at"] == "2022-01-11T23:37:05.000Z"
    assert row["submitted_by"] == "arn:aws:sts::123456789012:assumed-role/batch-submitter/pipeline"
    assert row["depends_on"] == [FAILED_JOB]
    assert (row["share_identifier"], row["scheduling_priority"]) == ("reports", 40)
    assert row["pending_seconds"] is None and row["runnable_at"] is None  # still waiting


def test_a_submission_arriving_after_the_end_changes_only_what_only_it_knows(make_app) -> None:
    history = [sample(name) for name in HISTORY]
    submission = _submission_of(FAILED_JOB, "2022-01-11T23:36:40Z")
    without = _rows(make_app, history, "without")
    late = _rows(make_app, [*history, submission], "late")
    early = _rows(make_app, [submission, *history], "early")
    assert late == early
    key = ("123456789012", "us-east-1", FAILED_JOB)
    changed = {f for f in without[key] if without[key][f] != late[key][f]}
    assert changed == SUBMISSION_ONLY
    assert late[key]["status"] == "FAILED" and late[key]["submitted_at"] == "2022-01-11T23:36:40.000Z"


def test_a_dependency_wait_is_the_pending_time_and_the_dependency_is_named(make_app) -> None:
    # The sample job is submitted depending on another one; Batch makes it RUNNABLE two minutes later.
    waiting = "7e5d3c1b-0a9f-4e8d-b7c6-a5b4c3d2e1f0"
    runnable = copy.deepcopy(sample(HISTORY[0]))
    runnable["detail"].update(
        jobId=waiting, jobArn=f"arn:aws:batch:us-east-1:123456789012:job/{waiting}", createdAt=1641944200058
    )
    runnable["detail"]["dependsOn"] = [{"jobId": FAILED_JOB, "type": "SEQUENTIAL"}]
    runnable["time"] = "2022-01-11T23:38:40Z"
    submission = _submission_of(waiting, "2022-01-11T23:36:40Z", [FAILED_JOB])
    rows = _rows(make_app, [runnable, submission], "deps")
    row = rows["123456789012", "us-east-1", waiting]
    assert row["pending_seconds"] == 119.942  # from createdAt (milliseconds) to the RUNNABLE event
    assert row["depends_on"] == [FAILED_JOB] and row["status"] == "RUNNABLE"


def test_scheduling_fields_are_read_from_job_state_changes_too(make_app) -> None:
    event = copy.deepcopy(sample(HISTORY[0]))
    event["detail"].update(shareIdentifier="green", schedulingPriority=9)
    [row] = _rows(make_app, [event], "state").values()
    assert (row["share_identifier"], row["scheduling_priority"], row["submitted_at"]) == ("green", 9, None)


def test_service_jobs_are_projected_with_their_platform_states_and_capacity(make_app) -> None:
    names = [
        "aws-batch--batch-service-job-state-change--scheduled--composed",
        "aws-batch--batch-service-job-state-change--succeeded--composed",
        "aws-batch--batch-service-job-queue-blocked--composed",
        "aws-batch--cloudtrail-submitservicejob--composed",
    ]
    app = make_app("service")
    ingest(app, [sample(n) for n in names])
    rows = {r["job_id"]: r for r in app.views.jobs()}
    trained = rows["0bb17543-ece6-4480-b1a7-a556d344746b"]
    assert (trained["platform"], trained["status"], trained["attempts"]) == ("SAGEMAKER", "SUCCEEDED", 1)
    assert (trained["capacity_unit"], trained["capacity_usage"], trained["share_identifier"]) == (
        "NUM_INSTANCES",
        2,
        "ml-team",
    )
    assert (trained["run_seconds"], trained["scheduling_priority"]) == (100.0, 10)
    assert (trained["submitted_at"], trained["submitted_by"]) == (
        "2022-01-11T23:36:40.000Z",
        "arn:aws:sts::123456789012:assumed-role/ml-submitter/ml-pipeline",
    )
    [detail] = app.views.job("0bb17543-ece6-4480-b1a7-a556d344746b")
    assert [t["status"] for t in detail["timeline"]] == ["SUBMITTED", "SCHEDULED", "SUCCEEDED"]
    blocked = rows["6271dfdf-d8a7-41b1-a4d2-55a2224f5375"]
    assert (blocked["status"], blocked["capacity_usage"]) == ("RUNNABLE", 8)
    assert blocked["blocked_reason"].startswith("MISCONFIGURATION:SERVICE_ENVIRONMENT_MAX_RESOURCE - ")


def test_a_scheduled_service_job_arriving_after_its_runnable_event_is_scheduled(make_app) -> None:
    scheduled = sample("aws-batch--batch-service-job-state-change--scheduled--composed")
    runnable = copy.deepcopy(scheduled)
    runnable["detail"]["status"], runnable["time"] = "RUNNABLE", "2022-01-11T23:36:45Z"
    for order in ([runnable, scheduled], [scheduled, runnable]):
        [row] = _rows(make_app, order, f"scheduled-{order[0]['detail']['status']}").values()
        assert (row["status"], row["pending_seconds"]) == ("SCHEDULED", 4.942)


_EXAMPLES = itertools.count()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(order=st.permutations(range(6)), repeats=st.lists(st.integers(0, 5), max_size=4))
def test_any_order_and_duplication_of_a_history_with_its_submission_gives_the_same_rows(
    make_app, order: list[int], repeats: list[int]
) -> None:
    events = [
        *(sample(name) for name in HISTORY),
        _submission_of(FAILED_JOB, "2022-01-11T23:36:40Z"),
        sample(SUBMIT),  # a job depending on the failed one, seen only submitted
    ]
    example = next(_EXAMPLES)  # each example on stores of its own (the fixture's folder is the test's)
    expected = _rows(make_app, events, f"in-order-{example}")
    delivered = [events[i] for i in order] + [events[i] for i in repeats]
    got = _rows(make_app, delivered, f"shuffled-{example}")
    assert got == expected
    assert {f for row in got.values() for f in JOB_SUBMISSION_FIELDS if row[f] not in (None, [])} >= {
        "submitted_at",
        "pending_seconds",
        "depends_on",
        "submitted_by",
        "share_identifier",
        "scheduling_priority",
    }


# -- no secret of a SubmitJob request reaches anything batchops keeps, emits or prints -----------------------------


def _secret_submission() -> tuple[dict[str, Any], list[str]]:
    secrets = [f"S3CR3T-submit-{place}-tail" for place in ("environment", "parameters", "command", "ecs", "eks")]
    event = _submission_of("5a4b3c2d-1e0f-4a9b-8c7d-6e5f4a3b2c1d", "2022-01-11T23:37:05Z")
    request = event["detail"]["requestParameters"]
    request["containerOverrides"] = {
        "environment": [{"name": "DB_PASSWORD", "value": secrets[0]}],
        "command": ["run", secrets[2]],
    }
    request["parameters"] = {"token": secrets[1]}
    request["ecsPropertiesOverride"] = {
        "taskProperties": [{"containers": [{"environment": [{"name": "K", "value": secrets[3]}]}]}]
    }
    request["eksPropertiesOverride"] = {
        "podProperties": {"containers": [{"env": [{"name": "K", "value": secrets[4]}]}]}
    }
    return event, secrets


def _secret_service_submission() -> tuple[dict[str, Any], list[str]]:
    secrets = [f"S3CR3T-service-{place}-tail" for place in ("environment", "hyperparameter")]
    event = copy.deepcopy(sample("aws-batch--cloudtrail-submitservicejob--composed"))
    payload = json.loads(event["detail"]["requestParameters"]["serviceRequestPayload"])
    payload["Environment"]["API_TOKEN"] = secrets[0]
    payload["HyperParameters"]["wandb-key"] = secrets[1]
    event["detail"]["requestParameters"]["serviceRequestPayload"] = json.dumps(payload)
    return event, secrets


@pytest.mark.parametrize(
    ("planted", "job_id", "submitter"),
    [
        (_secret_submission, "5a4b3c2d-1e0f-4a9b-8c7d-6e5f4a3b2c1d", "assumed-role/batch-submitter/pipeline"),
        (_secret_service_submission, "0bb17543-ece6-4480-b1a7-a556d344746b", "assumed-role/ml-submitter/ml-pipeline"),
    ],
)
def test_no_secret_of_a_submission_reaches_the_store_the_kept_aside_records_the_metrics_or_the_terminal(
    tmp_path: Path, planted: Any, job_id: str, submitter: str
) -> None:
    event, secrets = planted()
    invalid = {**copy.deepcopy(event), "account": "123", "id": "invalid"}  # kept aside, redacted
    text = json.dumps(event)
    cut = text[: text.index(secrets[0]) + 16]  # a truncated line, kept aside too
    stream = tmp_path / "events.jsonl"
    stream.write_text("\n".join([text, json.dumps(invalid), cut]) + "\n")
    written = tmp_path / "written"
    written.mkdir()
    env = {**os.environ, "BATCHOPS_STORE": f"sqlite:///{written / 'batchops.db'}"}

    def run(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "batchops", *args], env=env, capture_output=True, text=True, timeout=120
        )
        assert "Traceback" not in done.stderr, done.stderr
        return done.stdout + done.stderr

    printed = run("ingest", str(stream), "--emf-out", str(written / "emf.jsonl"))
    drilldown = run("job", job_id)
    assert "submitted_by" in drilldown and submitter in drilldown
    printed += run("jobs", "--format", "json") + run("jobs", "--format", "csv") + drilldown
    printed += run("rejected", "--limit", "10") + run("summary")
    assert "SUBMITTED" in printed and printed.count(" rejected ") >= 2
    everything = b"".join(p.read_bytes() for p in sorted(written.iterdir()) if p.is_file()) + printed.encode()
    assert b"JobStateChanges" in everything and job_id.encode() in everything
    for secret in secrets:
        assert secret[:12].encode() not in everything, secret


def test_no_secret_of_a_submission_reaches_the_aggregators_log_or_tables(aws: None, capsys) -> None:
    event, secrets = _secret_submission()
    app = build_application(Settings.from_environment(store="dynamodb://submit"), project_inline=True)
    response = handle_sqs_batch(app, sqs_lambda_event([json.dumps(event), json.dumps({**event, "account": "1"})]))
    assert response["batchItemFailures"] == []
    [row] = app.views.jobs()
    assert row["status"] == "SUBMITTED"
    import boto3

    client = boto3.client("dynamodb", region_name="us-east-1")
    tables = [t for t in client.list_tables()["TableNames"] if t.startswith("submit")]
    items = [json.dumps(client.scan(TableName=t)["Items"], default=str) for t in tables]
    everything = "".join(items) + json.dumps([vars(r) for r in app.views.rejected()]) + capsys.readouterr().out
    assert len(app.views.rejected()) == 1
    for secret in secrets:
        assert secret[:12] not in everything, secret


def test_views_written_before_the_submission_fields_existed_gain_them(make_app, tmp_path: Path) -> None:
    import sqlite3

    app = make_app("older")
    ingest(app, [sample(name) for name in HISTORY])
    app.close()
    [views] = [p for p in tmp_path.iterdir() if p.name.startswith("older.db.views-") and p.suffix[-1].isdigit()]
    with sqlite3.connect(views) as db:  # the job table as a version without these columns left it
        [table] = [
            r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE 'jobs_%'")
        ]
        for column in JOB_SUBMISSION_FIELDS:
            db.execute(f'ALTER TABLE {table} DROP COLUMN "{column}"')
    reopened = make_app("older")
    [row] = reopened.views.jobs()
    assert row["status"] == "FAILED" and row["depends_on"] == [] and row["submitted_at"] is None
    ingest(reopened, [_submission_of(FAILED_JOB, "2022-01-11T23:36:40Z")])
    [row] = reopened.views.jobs()
    assert row["submitted_at"] == "2022-01-11T23:36:40.000Z" and row["status"] == "FAILED"


def test_dynamodb_job_items_written_before_the_submission_fields_existed_read_as_empty(aws: None) -> None:
    import boto3

    app = build_application(Settings.from_environment(store="dynamodb://older"), project_inline=True)
    assert handle_sqs_batch(app, sqs_lambda_event([json.dumps(sample(HISTORY[0]))]))["batchItemFailures"] == []
    client = boto3.client("dynamodb", region_name="us-east-1")
    [table] = [t for t in client.list_tables()["TableNames"] if t.startswith("older") and t.endswith("jobs")]
    [item] = client.scan(TableName=table)["Items"]
    names = {f"#{i}": column for i, column in enumerate(JOB_SUBMISSION_FIELDS)}
    client.update_item(
        TableName=table,
        Key={"pk": item["pk"]},
        UpdateExpression="REMOVE " + ", ".join(names),
        ExpressionAttributeNames=names,
    )
    [row] = app.views.jobs()
    [detail] = app.views.job(FAILED_JOB)
    assert row["depends_on"] == detail["depends_on"] == [] and row["submitted_at"] is None
    assert row["status"] == "RUNNABLE"
