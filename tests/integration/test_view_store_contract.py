"""One contract for every view store: the same tests run on SQLite and on DynamoDB (moto)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import uuid4

import boto3
import pytest
from botocore.config import Config
from moto import mock_aws

from batchops.adapters.dynamodb.views import DynamoDBViewStore, ensure_view_tables
from batchops.adapters.sqlite.views import SQLiteViewStore
from batchops.compute_environments import compute_environment_key
from batchops.instances import instance_key, new_instance_fold, observe_instance
from batchops.jobs import job_key, new_job_fold, observe_state
from batchops.projection import ATTEMPT_FIELDS, attempts_of, instance_row, job_row
from batchops.tuning import DEFAULT_TUNING
from batchops.views import JobFilter, PipelineCounters, RejectedEvent

ACCOUNT, REGION = "123456789012", "us-east-1"
CI = "arn:aws:ecs:us-east-1:123456789012:container-instance/AWSBatch-ce-1a2b3c4d/abc"


@pytest.fixture(params=["sqlite", "dynamodb"])
def store(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    if request.param == "sqlite":
        sqlite_views = SQLiteViewStore(tmp_path / "views.db")
        yield sqlite_views
        sqlite_views.close()
        return
    for name, value in {"AWS_ACCESS_KEY_ID": "t", "AWS_SECRET_ACCESS_KEY": "t", "AWS_DEFAULT_REGION": REGION}.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        client = boto3.client("dynamodb", region_name=REGION, config=Config(account_id_endpoint_mode="disabled"))
        ensure_view_tables(client, "contract")
        yield DynamoDBViewStore(client, "contract")


def _job(job_id: str, status: str = "RUNNING", queue: str = "q1", ci: str | None = CI) -> dict[str, Any]:
    fold = new_job_fold(ACCOUNT, REGION, job_id)
    observation: dict[str, Any] = {
        "at": 1_700_000_000_000,
        "status": status,
        "queue": queue,
        "done": 0,
        "created": 1_699_999_990_000,
        "fp": f"fp-{job_id}-{status}",
    }
    if ci:
        observation["current"] = {"n": 1, "ci": ci, "task": "arn:aws:ecs:task/t1", "started": 1_700_000_000_000}
    observe_state(fold, observation)  # type: ignore[arg-type]
    return fold


def _write_job(store: Any, fold: dict[str, Any], generation: int | None = None) -> None:
    with store.session(generation) as session:
        session.put_job(job_key(ACCOUNT, REGION, fold["job_id"]), fold, job_row(fold, session), attempts_of(fold))


def _instance() -> dict[str, Any]:
    fold = new_instance_fold(ACCOUNT, REGION, "i-0abc")
    observe_instance(
        fold,
        {
            "at": 1_699_999_000_000,
            "kind": "registered",
            "ci": CI,
            "ce": "ce",
            "type": "m5.large",
            "az": "us-east-1a",
            "fp": "fp-i",
        },
    )
    return fold


def test_a_written_job_can_be_listed_drilled_into_and_folded_again(store: Any) -> None:
    fold = _job("j1")
    _write_job(store, fold)
    [row] = list(store.jobs())
    assert (row["job_id"], row["status"], row["queue"], row["attempts"]) == ("j1", "RUNNING", "q1", 1)
    [detail] = store.job("j1")
    assert detail["timeline"][0]["status"] == "RUNNING"
    assert detail["attempt_details"][0]["container_instance_arn"] == CI
    with store.session() as session:
        assert session.job_fold(job_key(ACCOUNT, REGION, "j1")) == fold
        assert session.job_fold(job_key(ACCOUNT, REGION, "nope")) is None


def test_a_session_putting_more_jobs_than_it_queues_writes_them_all_and_reads_its_own_writes(
    store: Any,
) -> None:
    store.queued_rows = 3  # what `Tuning.job_rows_queued` gives the store it builds
    folds = [_job(f"job-{i}") for i in range(8)]
    with store.session() as session:
        for fold in folds:
            session.put_job(job_key(ACCOUNT, REGION, fold["job_id"]), fold, job_row(fold, session), attempts_of(fold))
        assert session.job_fold(job_key(ACCOUNT, REGION, "job-0")) == folds[0]  # written already
        assert session.job_fold(job_key(ACCOUNT, REGION, "job-7")) == folds[7]  # still queued
    assert sorted(r["job_id"] for r in store.jobs()) == [f"job-{i}" for i in range(8)]


def test_submission_fields_read_back_as_written_and_a_job_seen_only_submitted_is_listed(store: Any) -> None:
    submitted = new_job_fold(ACCOUNT, REGION, "waiting")
    observe_state(
        submitted,
        {
            "at": 1_699_999_980_000,
            "status": "SUBMITTED",
            "call": "SubmitJob",
            "queue": "q1",
            "depends_on": ["a", "b:3"],
            "submitted_by": "arn:aws:sts::123456789012:assumed-role/r/s",
            "share": "blue",
            "priority": 7,
            "fp": "fp-waiting",
        },
    )
    _write_job(store, submitted)
    service = _job("training", "SCHEDULED", ci=None)
    observe_state(
        service,
        {
            "at": 1_700_000_001_000,
            "status": "RUNNABLE",
            "platform": "SAGEMAKER",
            "capacity_unit": "NUM_INSTANCES",
            "capacity": 2.0,
            "fp": "fp-training-runnable",
        },
    )
    _write_job(store, service)
    rows = {r["job_id"]: r for r in store.jobs()}
    assert rows["waiting"]["status"] == "SUBMITTED"
    assert rows["waiting"]["submitted_at"] == "2023-11-14T22:13:00.000Z"
    assert rows["waiting"]["depends_on"] == ["a", "b:3"]
    assert (rows["waiting"]["share_identifier"], rows["waiting"]["scheduling_priority"]) == ("blue", 7)
    assert rows["waiting"]["submitted_by"] == "arn:aws:sts::123456789012:assumed-role/r/s"
    assert rows["training"]["depends_on"] == [] and rows["training"]["submitted_at"] is None
    assert (rows["training"]["platform"], rows["training"]["status"]) == ("SAGEMAKER", "SCHEDULED")
    assert (rows["training"]["capacity_unit"], rows["training"]["capacity_usage"]) == ("NUM_INSTANCES", 2)
    assert rows["training"]["pending_seconds"] == 11.0  # created 10 s before the first event, RUNNABLE 1 s after
    [detail] = store.job("waiting")
    assert detail["depends_on"] == ["a", "b:3"] and detail["timeline"][0]["status"] == "SUBMITTED"
    assert [r["job_id"] for r in store.jobs(JobFilter(statuses=("SUBMITTED",)))] == ["waiting"]


def test_filters_select_what_they_say(store: Any) -> None:
    _write_job(store, _job("a", "RUNNING", "q1"))
    _write_job(store, _job("b", "FAILED", "q2"))
    assert [r["job_id"] for r in store.jobs(JobFilter(statuses=("FAILED",)))] == ["b"]
    assert [r["job_id"] for r in store.jobs(JobFilter(queues=("q1",)))] == ["a"]
    assert list(store.jobs(JobFilter(accounts=("000000000000",)))) == []


def test_instances_join_to_jobs_through_the_container_instance(store: Any) -> None:
    fold = _job("j1")
    _write_job(store, fold)
    instance = _instance()
    key = instance_key(ACCOUNT, REGION, "i-0abc")
    with store.session() as session:
        session.put_instance(key, instance, instance_row(instance, None))
    with store.session() as session:
        facts = session.instance_by_container_instance(ACCOUNT, REGION, CI)
        assert facts is not None and (facts.instance_id, facts.instance_type) == ("i-0abc", "m5.large")
        assert session.instance_by_id(ACCOUNT, REGION, "i-0abc") == facts
        assert session.jobs_on_instance(ACCOUNT, REGION, "i-0abc", CI) == [job_key(ACCOUNT, REGION, "j1")]
        assert session.instance_fold(key) == instance
    _write_job(store, fold)
    [row] = list(store.jobs())
    assert (row["instance_id"], row["instance_type"], row["availability_zone"]) == ("i-0abc", "m5.large", "us-east-1a")
    [listed] = list(store.instances())
    assert listed["jobs_run"] == 1 and listed["compute_environment"] == "ce"


def test_attempts_list_every_attempt_with_its_own_instance_exit_code_and_reason(store: Any) -> None:
    fold = _job("j2", "FAILED")
    host_lost = "Host EC2 (instance i-0host) terminated."
    observe_state(
        fold,
        {
            "at": 1_700_000_900_000,
            "status": "FAILED",
            "done": 2,
            "reason": "Essential container in task exited",
            "exit": 1,
            "fp": "fp-j2-failed",
            "attempts": [
                {
                    "n": 1,
                    "ci": CI,
                    "task": "arn:aws:ecs:task/t1",
                    "started": 1_700_000_000_000,
                    "stopped": 1_700_000_300_000,
                    "reason": host_lost,
                    "stream": "def/default/t1",
                },
                {
                    "n": 2,
                    "ci": CI + "2",
                    "task": "arn:aws:ecs:task/t2",
                    "started": 1_700_000_400_000,
                    "stopped": 1_700_000_900_000,
                    "exit": 1,
                    "reason": "Essential container in task exited",
                    "container_reason": "OutOfMemoryError: Container killed",
                    "stream": "def/default/t2",
                },
            ],
        },  # type: ignore[typeddict-item]
    )
    _write_job(store, _job("j1"))
    _write_job(store, fold)
    # no instance known yet: only the host a reason names
    assert [r["instance_id"] for r in store.attempts()] == [None, "i-0host", None]
    instance = _instance()
    with store.session() as session:
        session.put_instance(instance_key(ACCOUNT, REGION, "i-0abc"), instance, instance_row(instance, None))
    rows = list(store.attempts())
    assert set(rows[0]) == set(ATTEMPT_FIELDS)
    assert [(r["job_id"], r["attempt"]) for r in rows] == [("j1", 1), ("j2", 1), ("j2", 2)]
    running, lost, oom = rows
    assert (running["instance_id"], running["instance_type"], running["stopped_at"]) == ("i-0abc", "m5.large", None)
    assert (lost["instance_id"], lost["instance_type"], lost["availability_zone"]) == (
        "i-0abc",
        "m5.large",
        "us-east-1a",
    )
    assert (lost["exit_code"], lost["status_reason"], lost["log_stream"]) == (None, host_lost, "def/default/t1")
    assert (lost["started_at"], lost["stopped_at"], lost["run_seconds"]) == (
        "2023-11-14T22:13:20.000Z",
        "2023-11-14T22:18:20.000Z",
        300,
    )
    assert (oom["exit_code"], oom["container_reason"], oom["log_stream"]) == (
        1,
        "OutOfMemoryError: Container killed",
        "def/default/t2",
    )
    # the second container instance is unknown, and no reason names a host: no instance
    assert (oom["container_instance_arn"], oom["instance_id"], oom["instance_type"]) == (CI + "2", None, None)
    assert {r["log_group"] for r in rows} == {"/aws/batch/job"}


def test_compute_environments_keep_pricing_and_spot_signal(store: Any) -> None:
    key = compute_environment_key(ACCOUNT, REGION, "ce")
    with store.session() as session:
        assert session.compute_environment(key) == (None, False, None)
        session.put_compute_environment(key, ACCOUNT, REGION, "ce", None, True, "spot")
    with store.session() as session:
        assert session.compute_environment(key) == (None, True, "spot")
        assert session.compute_environment_pricing(ACCOUNT, REGION, "ce") == "spot"


def test_a_rebuilt_generation_replaces_the_old_one_only_when_switched(store: Any) -> None:
    _write_job(store, _job("old"))
    current = store.current_generation()
    building = store.start_generation()
    assert building != current and store.start_generation() == building  # an unfinished rebuild is resumed
    _write_job(store, _job("new"), building)
    assert [r["job_id"] for r in store.jobs()] == ["old"]
    store.switch_generation(building)
    assert store.current_generation() == building
    assert [r["job_id"] for r in store.jobs()] == ["new"]


def test_counters_accumulate_and_rejected_events_are_kept_once(store: Any) -> None:
    store.add_counters([PipelineCounters(ACCOUNT, REGION, 5, 2, 1, 0)])
    store.add_counters([PipelineCounters(ACCOUNT, REGION, 1, 0, 0, 3)])
    assert store.counters() == [PipelineCounters(ACCOUNT, REGION, 6, 2, 1, 3)]
    event = RejectedEvent(
        "unknown detail-type 'X'", True, "X", ACCOUNT, REGION, '{"detail-type": "X"}', "2025-01-01T00:00:00.000Z"
    )
    assert store.keep_rejected([event]) == 1
    assert store.keep_rejected([event]) == 0
    [kept] = store.rejected()
    assert (kept.reason, kept.body) == (event.reason, event.body)


def test_unknown_ids_find_nothing(store: Any) -> None:
    assert store.job(str(uuid4())) == []
    with store.session() as session:
        assert session.instance_by_container_instance(ACCOUNT, REGION, "arn:nothing") is None
        assert session.jobs_in_compute_environment(ACCOUNT, REGION, "nothing") == []


def test_a_dynamodb_flush_writes_its_job_items_several_at_a_time_and_all_of_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The projector Lambda has 60 s: an instance change that reaches thousands of jobs must not write their items
    one round trip after the other (`bench/dynamodb_flush.py` measures the time). The first `job_writers` job
    PutItems each wait at a barrier of that many parties: it opens only when all of them are in flight at once
    (written one after the other, the first waits alone until the barrier times out and the flush fails)."""
    for name, value in {"AWS_ACCESS_KEY_ID": "t", "AWS_SECRET_ACCESS_KEY": "t", "AWS_DEFAULT_REGION": REGION}.items():
        monkeypatch.setenv(name, value)
    writers = DEFAULT_TUNING.job_writers  # what the shipped wiring uses
    assert writers > 1
    together = threading.Barrier(writers, timeout=30)
    lock = threading.Lock()
    in_flight, most, held = [0], [0], [0]

    def counted(params: dict[str, Any], **_: Any) -> None:
        if not params["TableName"].endswith("-jobs"):
            return
        with lock:
            in_flight[0] += 1
            most[0] = max(most[0], in_flight[0])
            wait = held[0] < writers
            held[0] += 1
        try:
            if wait:
                together.wait()  # raises BrokenBarrierError after 30 s unless `writers` writes are in flight
        finally:
            with lock:
                in_flight[0] -= 1

    with mock_aws():
        client = boto3.client("dynamodb", region_name=REGION, config=Config(account_id_endpoint_mode="disabled"))
        ensure_view_tables(client, "flush")
        client.meta.events.register("before-parameter-build.dynamodb.PutItem", counted)
        store = DynamoDBViewStore(client, "flush", job_writers=writers)
        folds = [_job(f"job-{i}") for i in range(40)]
        with store.session() as session:
            for fold in folds:
                key = job_key(ACCOUNT, REGION, fold["job_id"])
                session.put_job(key, fold, job_row(fold, session), attempts_of(fold))
        assert sorted(r["job_id"] for r in store.jobs()) == sorted(f["job_id"] for f in folds)
    assert held[0] >= len(folds)  # every job item had its own PutItem
    assert most[0] == writers  # all of them at once, and never more
