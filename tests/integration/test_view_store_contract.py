"""One contract for every view store: the same tests run on SQLite and on DynamoDB (moto)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import uuid4

import boto3
import pytest
from botocore.config import Config
from moto import mock_aws

from batchops.aws.views_dynamodb import DynamoDBViewStore, ensure_view_tables
from batchops.compute_environments import compute_environment_key
from batchops.instances import instance_key, new_instance_fold, observe_instance
from batchops.jobs import job_key, new_job_fold, observe_state
from batchops.projection import instance_row, job_row, timeline_rows
from batchops.views import JobFilter, PipelineCounters, RejectedEvent
from batchops.views_sqlite import SQLiteViewStore

ACCOUNT, REGION = "123456789012", "us-east-1"
CI = "arn:aws:ecs:us-east-1:123456789012:container-instance/AWSBatch-ce-1a2b3c4d/abc"


@pytest.fixture(params=["sqlite", "dynamodb"])
def store(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    if request.param == "sqlite":
        views = SQLiteViewStore(tmp_path / "views.db")
        yield views
        views.close()
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
        session.put_job(job_key(ACCOUNT, REGION, fold["job_id"]), fold, job_row(fold, session), timeline_rows(fold))


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
