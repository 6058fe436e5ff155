"""The simulated EventBridge stream: deterministic, realistic, consistent with its own ground truth."""

from __future__ import annotations

import gc
import json
import re
from collections import Counter, defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime
from itertools import islice
from typing import Any

import pytest

from batchops.simulation import (
    DETAIL_TYPES,
    REGIONS,
    SECRET_VALUE,
    ExpectedJob,
    SimulationSettings,
    simulate,
    simulate_with_truth,
)

Event = dict[str, Any]

UUID4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
ENVELOPE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
ENVELOPE_KEYS = ["version", "id", "detail-type", "source", "account", "time", "region", "resources", "detail"]
BATCH = "Batch Job State Change"
ECS_TASK = "ECS Task State Change"
CONTAINER_INSTANCE = "ECS Container Instance State Change"
SOURCES = {
    "Batch Job State Change": "aws.batch",
    "Batch Job Queue Blocked": "aws.batch",
    "Batch Service Job State Change": "aws.batch",
    "Batch Service Job Queue Blocked": "aws.batch",
    "AWS API Call via CloudTrail": "aws.batch",
    "ECS Task State Change": "aws.ecs",
    "ECS Container Instance State Change": "aws.ecs",
    "EC2 Instance State-change Notification": "aws.ec2",
    "EC2 Spot Instance Interruption Warning": "aws.ec2",
    "EC2 Instance Rebalance Recommendation": "aws.ec2",
    "EC2 Instance Launch Successful": "aws.autoscaling",
    "EC2 Instance Terminate Successful": "aws.autoscaling",
}


@pytest.fixture(scope="module")
def run() -> Iterator[tuple[list[Event], list[ExpectedJob]]]:
    """A default-sized run (2,000 submitted jobs, 3 accounts x 2 regions), in time order."""
    result = simulate_with_truth(SimulationSettings(jobs=2000, seed=7))
    # Millions of nested dicts: keep the cyclic GC from walking them again in every later test.
    gc.freeze()
    yield result
    gc.unfreeze()


@pytest.fixture(scope="module")
def events(run: tuple[list[Event], list[ExpectedJob]]) -> list[Event]:
    return run[0]


@pytest.fixture(scope="module")
def truth(run: tuple[list[Event], list[ExpectedJob]]) -> list[ExpectedJob]:
    return run[1]


@pytest.fixture(scope="module")
def chaotic() -> Iterator[list[Event]]:
    """The same run delivered the way EventBridge does: duplicated and out of order."""
    delivered = simulate_with_truth(SimulationSettings(jobs=2000, seed=7, chaos=True))[0]
    gc.freeze()
    yield delivered
    gc.unfreeze()


def of_type(events: list[Event], detail_type: str) -> Iterator[dict[str, Any]]:
    return (event["detail"] for event in events if event["detail-type"] == detail_type)


def calls(events: list[Event], name: str) -> Iterator[dict[str, Any]]:
    """The CloudTrail records of one API call."""
    return (detail for detail in of_type(events, "AWS API Call via CloudTrail") if detail["eventName"] == name)


def epoch_ms(iso: str) -> int:
    return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000)


def variables(entries: list[dict[str, str]]) -> dict[str, str]:
    return {entry["name"]: entry["value"] for entry in entries}


def job_exit_code(detail: dict[str, Any]) -> int | None:
    """The job's exit code: the container's, or for multi-container jobs the essential container's."""
    if "container" in detail:
        code: int | None = detail["container"].get("exitCode")
        return code
    containers = detail["ecsProperties"]["taskProperties"][0]["containers"]
    essential = [c for c in containers if c["essential"]]
    assert len(essential) == 1
    code = essential[0].get("exitCode")
    return code


def task_container_instance(detail: dict[str, Any]) -> str | None:
    if "container" in detail:
        arn: str | None = detail["container"].get("containerInstanceArn")
        return arn
    arn = detail["ecsProperties"]["taskProperties"][0].get("containerInstanceArn")
    return arn


# --- determinism and streaming --------------------------------------------------------------------


@pytest.mark.parametrize("chaos", [False, True])
def test_same_settings_give_byte_identical_events(chaos: bool) -> None:
    settings = SimulationSettings(accounts=2, regions=2, jobs=200, seed=11, chaos=chaos)
    first = [json.dumps(event) for event in simulate(settings)]
    second = [json.dumps(event) for event in simulate(settings)]
    assert first == second


def test_different_seeds_give_different_streams() -> None:
    one = [event["id"] for event in simulate(SimulationSettings(jobs=50, seed=1))]
    two = [event["id"] for event in simulate(SimulationSettings(jobs=50, seed=2))]
    assert set(one).isdisjoint(two)


def test_simulate_streams_without_planning_everything_first() -> None:
    # A billion jobs would never fit in memory: the first events must come out right away.
    first = list(islice(simulate(SimulationSettings(jobs=1_000_000_000)), 200))
    assert len(first) == 200
    assert any(event["detail-type"] == BATCH for event in first)


def test_settings_are_validated_eagerly() -> None:
    with pytest.raises(ValueError, match="accounts"):
        simulate(SimulationSettings(accounts=0))
    with pytest.raises(ValueError, match="regions"):
        simulate(SimulationSettings(regions=len(REGIONS) + 1))
    with pytest.raises(ValueError, match="jobs"):
        simulate_with_truth(SimulationSettings(jobs=-1))
    with pytest.raises(ValueError, match="timezone"):
        simulate(SimulationSettings(start=datetime(2025, 1, 1)))


# --- envelopes --------------------------------------------------------------------------------------


def test_every_event_has_a_real_envelope(events: list[Event]) -> None:
    accounts = set()
    for event in events:
        assert list(event) == ENVELOPE_KEYS
        assert event["version"] == "0"
        assert UUID4.match(event["id"])
        assert event["detail-type"] in DETAIL_TYPES
        assert event["source"] == SOURCES[event["detail-type"]]
        assert re.fullmatch(r"\d{12}", event["account"])
        assert ENVELOPE_TIME.match(event["time"])
        assert event["region"] in REGIONS[:2]
        assert isinstance(event["resources"], list)
        accounts.add(event["account"])
    assert len(accounts) == 3
    assert any(account.startswith("0") for account in accounts)


def test_without_chaos_events_are_unique_and_in_time_order(events: list[Event]) -> None:
    ids = [event["id"] for event in events]
    assert len(ids) == len(set(ids))
    times = [event["time"] for event in events]
    assert times == sorted(times)
    assert events[0]["time"] >= "2025-11-13T00:00:00Z"


def test_envelope_time_agrees_with_detail_timestamps(events: list[Event]) -> None:
    for event in events:
        second = epoch_ms(event["time"]) // 1000
        detail = event["detail"]
        if event["detail-type"] == BATCH:
            assert detail["createdAt"] // 1000 <= second
            for key in ("startedAt", "stoppedAt"):
                if key in detail:
                    assert detail[key] // 1000 <= second
        elif event["detail-type"] in (ECS_TASK, CONTAINER_INSTANCE):
            assert epoch_ms(detail["updatedAt"]) // 1000 == second


# --- what a default run contains ----------------------------------------------------------------------


def test_every_kind_of_event_appears(events: list[Event]) -> None:
    counts = Counter(event["detail-type"] for event in events)
    assert set(counts) == DETAIL_TYPES
    # Task placements make container-instance changes one of the high-volume types.
    assert counts[CONTAINER_INSTANCE] > counts["EC2 Instance State-change Notification"]


def test_all_outcomes_and_blocking_reasons_appear(events: list[Event]) -> None:
    reasons = Counter(detail.get("statusReason", "") for detail in of_type(events, BATCH))
    wanted = [
        "Essential container in task exited",
        "OutOfMemoryError: Container killed due to memory usage",
        "Job attempt duration exceeded timeout",
        "Cancelled by user",
        "Host EC2 (instance i-",
        "CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY - ",
        "MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT - ",
    ]
    for prefix in wanted:
        assert sum(n for reason, n in reasons.items() if reason.startswith(prefix)) > 0, prefix
    oom = [d for d in of_type(events, BATCH) if d["status"] == "FAILED" and "OutOfMemory" in d["statusReason"]]
    assert all(job_exit_code(d) == 137 for d in oom)
    nonzero = [d for d in of_type(events, BATCH) if d["status"] == "FAILED" and (job_exit_code(d) or 0) > 0]
    assert {job_exit_code(d) for d in nonzero} - {137}
    cancelled = [d for d in of_type(events, BATCH) if d.get("statusReason") == "Cancelled by user"]
    assert all(d["attempts"] == [] and d["status"] == "FAILED" for d in cancelled)


def test_states_follow_the_batch_lifecycle(events: list[Event]) -> None:
    statuses: dict[str, list[str]] = defaultdict(list)
    for detail in of_type(events, BATCH):
        statuses[detail["jobId"]].append(detail["status"])
    allowed_first = {"PENDING", "RUNNABLE"}
    assert all(seq[0] in allowed_first for seq in statuses.values())
    assert "SUBMITTED" not in {status for seq in statuses.values() for status in seq}
    skipped_running = [
        seq for seq in statuses.values() if "STARTING" in seq and "RUNNING" not in seq and seq[-1] == "SUCCEEDED"
    ]
    assert skipped_running, "some fast jobs go straight from STARTING to SUCCEEDED"
    pending = [d for d in of_type(events, BATCH) if d["status"] == "PENDING" and d["dependsOn"]]
    assert pending, "jobs with dependencies start in PENDING"
    for detail in of_type(events, BATCH):
        status = detail["status"]
        task = detail.get("container") or detail["ecsProperties"]["taskProperties"][0]
        if status in ("STARTING", "RUNNING"):
            assert "taskArn" in task
        if status == "RUNNING":
            assert "startedAt" in detail
        if status in ("PENDING", "RUNNABLE"):
            assert "taskArn" not in task and "startedAt" not in detail


def test_retries_put_the_finished_attempt_into_attempts(events: list[Event]) -> None:
    retried = [d for d in of_type(events, BATCH) if d["status"] == "RUNNABLE" and d["attempts"]]
    assert retried
    reclaimed_then_retried = [
        d for d in retried if d["attempts"][-1]["statusReason"].startswith("Host EC2 (instance i-")
    ]
    assert reclaimed_then_retried


def test_blocked_jobs_come_with_a_queue_blocked_event(events: list[Event]) -> None:
    blocked = [e for e in events if e["detail-type"] == "Batch Job Queue Blocked"]
    assert blocked
    for event in blocked:
        detail = event["detail"]
        assert event["resources"] == [detail["jobArn"], detail["jobQueue"]]
        assert detail["status"] == "RUNNABLE"
        assert detail["statusReason"].split(":")[0] in ("CAPACITY", "MISCONFIGURATION")
    reasons_by_job = {e["detail"]["jobId"]: e["detail"]["statusReason"] for e in blocked}
    runnable_with_reason = {
        d["jobId"]: d["statusReason"]
        for d in of_type(events, BATCH)
        if d["status"] == "RUNNABLE" and "statusReason" in d
    }
    assert reasons_by_job == runnable_with_reason


def test_array_jobs_have_a_parent_and_indexed_children(events: list[Event]) -> None:
    parents = {d["jobId"]: d for d in of_type(events, BATCH) if "size" in d.get("arrayProperties", {})}
    assert parents
    children: dict[str, set[int]] = defaultdict(set)
    for detail in of_type(events, BATCH):
        if ":" in detail["jobId"]:
            parent_id, index = detail["jobId"].rsplit(":", 1)
            assert detail["arrayProperties"]["index"] == int(index)
            children[parent_id].add(int(index))
    for parent_id, parent in parents.items():
        assert children[parent_id] == set(range(parent["arrayProperties"]["size"]))
    parent_statuses = {d["status"] for d in of_type(events, BATCH) if d["jobId"] in parents}
    assert parent_statuses <= {"PENDING", "SUCCEEDED", "FAILED"}
    ecs_indexes = [variables(d["overrides"]["containerOverrides"][0]["environment"]) for d in of_type(events, ECS_TASK)]
    assert any("AWS_BATCH_JOB_ARRAY_INDEX" in env for env in ecs_indexes)


def test_multi_container_jobs_use_ecs_properties(events: list[Event]) -> None:
    multi = [d for d in of_type(events, BATCH) if "ecsProperties" in d]
    assert multi
    for detail in multi:
        assert "container" not in detail
        containers = detail["ecsProperties"]["taskProperties"][0]["containers"]
        assert len(containers) == 2 and sum(c["essential"] for c in containers) == 1
        for attempt in detail["attempts"]:
            assert "taskProperties" in attempt and "container" not in attempt
    finished = [d for d in multi if d["status"] == "SUCCEEDED"]
    assert finished and all(job_exit_code(d) == 0 for d in finished)


def test_fargate_jobs_have_no_container_instance(events: list[Event]) -> None:
    fargate = [d for d in of_type(events, BATCH) if d["platformCapabilities"] == ["FARGATE"]]
    assert fargate
    for detail in fargate:
        assert "containerInstanceArn" not in detail["container"]
        parent = "size" in detail.get("arrayProperties", {})
        if detail["status"] in ("STARTING", "RUNNING", "SUCCEEDED") and not parent:
            assert detail["container"]["networkInterfaces"]
    tasks = [d for d in of_type(events, ECS_TASK) if d["launchType"] == "FARGATE"]
    assert tasks and all("containerInstanceArn" not in d for d in tasks)
    assert {d["lastStatus"] for d in tasks} == {"PROVISIONING", "PENDING", "RUNNING", "DEPROVISIONING", "STOPPED"}
    ec2 = [d for d in of_type(events, BATCH) if d["platformCapabilities"] != ["FARGATE"]]
    assert any(d["platformCapabilities"] == [] for d in ec2), "an empty list means EC2"


def test_user_secrets_travel_in_clear_text_like_the_real_thing(events: list[Event]) -> None:
    batch = [d for d in of_type(events, BATCH) if "container" in d]
    assert any(SECRET_VALUE in variables(d["container"]["environment"]).values() for d in batch)
    tasks = list(of_type(events, ECS_TASK))
    assert any(
        SECRET_VALUE in variables(o["environment"]).values()
        for d in tasks
        for o in d["overrides"]["containerOverrides"]
    )
    for detail in tasks:
        env = variables(detail["overrides"]["containerOverrides"][0]["environment"])
        assert {"AWS_BATCH_JOB_ID", "AWS_BATCH_JQ_NAME", "AWS_BATCH_CE_NAME", "AWS_BATCH_JOB_ATTEMPT"} <= set(env)
        assert int(env["AWS_BATCH_JOB_ATTEMPT"]) >= 1


def test_resource_values_are_strings(events: list[Event]) -> None:
    for detail in of_type(events, BATCH):
        if "container" in detail and "resourceRequirements" in detail["container"]:
            types = set()
            for requirement in detail["container"]["resourceRequirements"]:
                assert isinstance(requirement["value"], str)
                types.add(requirement["type"])
            assert {"VCPU", "MEMORY"} <= types


def test_cloudtrail_tells_the_type_of_most_but_not_all_compute_environments(events: list[Event]) -> None:
    trails = list(calls(events, "CreateComputeEnvironment"))
    types = {t["requestParameters"]["computeResources"]["type"] for t in trails}
    assert {"EC2", "SPOT"} <= types and types & {"FARGATE", "FARGATE_SPOT"}
    announced = {
        (t["recipientAccountId"], t["awsRegion"], t["requestParameters"]["computeEnvironmentName"]) for t in trails
    }
    used = set()
    for event in events:
        if event["detail-type"] == ECS_TASK:
            env = variables(event["detail"]["overrides"]["containerOverrides"][0]["environment"])
            used.add((event["account"], event["region"], env["AWS_BATCH_CE_NAME"]))
    assert len(used & announced) > len(used - announced) > 0
    first_job_event = next(i for i, e in enumerate(events) if e["detail-type"] == BATCH)
    assert all(e["detail-type"] == "AWS API Call via CloudTrail" for e in events[:first_job_event])


def test_ecs_clusters_and_container_instances_have_real_names(events: list[Event]) -> None:
    cluster = re.compile(r"^arn:aws:ecs:[a-z0-9-]+:\d{12}:cluster/AWSBatch-[a-z0-9-]+-[0-9a-f-]{36}$")
    instance = re.compile(r"^arn:aws:ecs:[a-z0-9-]+:\d{12}:container-instance/AWSBatch-[a-z0-9-]+/[0-9a-f]{32}$")
    for detail in of_type(events, CONTAINER_INSTANCE):
        assert cluster.match(detail["clusterArn"])
        assert instance.match(detail["containerInstanceArn"])
        assert detail["containerInstanceArn"].split("/")[1] == detail["clusterArn"].split("/")[1]
        attributes = {a["name"]: a.get("value") for a in detail["attributes"]}
        assert {"ecs.instance-type", "ecs.availability-zone", "ecs.cpu-architecture"} <= set(attributes)
        assert {r["name"] for r in detail["registeredResources"]} >= {"CPU", "MEMORY"}
    statuses = Counter(d["status"] for d in of_type(events, CONTAINER_INSTANCE))
    assert statuses["ACTIVE"] and statuses["INACTIVE"] and statuses["DRAINING"]


def test_versions_increase_with_time(events: list[Event]) -> None:
    instance_versions: dict[str, list[int]] = defaultdict(list)
    for detail in of_type(events, CONTAINER_INSTANCE):
        instance_versions[detail["containerInstanceArn"]].append(detail["version"])
    assert any(len(v) > 3 for v in instance_versions.values()), "task placements bump the version"
    assert all(v == sorted(v) and len(set(v)) == len(v) for v in instance_versions.values())
    task_versions: dict[str, list[int]] = defaultdict(list)
    for detail in of_type(events, ECS_TASK):
        task_versions[detail["taskArn"]].append(detail["version"])
    assert all(v == sorted(v) and len(set(v)) == len(v) for v in task_versions.values())


def test_spot_interruptions_end_the_instance_and_the_attempt_on_it(events: list[Event]) -> None:
    warnings = [e for e in events if e["detail-type"] == "EC2 Spot Instance Interruption Warning"]
    assert warnings
    shutting_down = {
        e["detail"]["instance-id"]: epoch_ms(e["time"])
        for e in events
        if e["detail-type"] == "EC2 Instance State-change Notification" and e["detail"]["state"] == "shutting-down"
    }
    reclaimed_attempts = {
        attempt["statusReason"]: attempt["stoppedAt"]
        for d in of_type(events, BATCH)
        for attempt in d["attempts"]
        if attempt["statusReason"].startswith("Host EC2")
    }
    for warning in warnings:
        instance_id = warning["detail"]["instance-id"]
        zone = warning["resources"][0].split(":")[3]
        assert warning["resources"] == [f"arn:aws:ec2:{zone}:instance/{instance_id}"]
        assert zone.startswith(warning["region"]) and zone != warning["region"]
        gap = shutting_down[instance_id] - epoch_ms(warning["time"])
        assert 110_000 <= gap <= 130_000
        stopped = reclaimed_attempts[f"Host EC2 (instance {instance_id}) terminated."]
        assert stopped >= shutting_down[instance_id]


def test_attempts_run_while_their_instance_lives(events: list[Event]) -> None:
    registered: dict[str, int] = {}
    gone: dict[str, int] = {}
    for event in events:
        if event["detail-type"] == CONTAINER_INSTANCE:
            arn = event["detail"]["containerInstanceArn"]
            registered.setdefault(arn, epoch_ms(event["time"]))
            if event["detail"]["status"] == "INACTIVE":
                gone[arn] = epoch_ms(event["time"])
    checked = 0
    for event in events:
        detail = event["detail"]
        if event["detail-type"] != BATCH or detail["status"] != "STARTING":
            continue
        arn = task_container_instance(detail)
        if arn is None:
            continue
        started = epoch_ms(event["time"])
        assert registered[arn] <= started < gone[arn]
        checked += 1
    assert checked > 100


# --- truth ------------------------------------------------------------------------------------------


def test_truth_agrees_with_the_events(events: list[Event], truth: list[ExpectedJob]) -> None:
    last_event: dict[str, dict[str, Any]] = {}
    for detail in of_type(events, BATCH):
        last_event[detail["jobId"]] = detail
    instance_ids = {d["containerInstanceArn"]: d["ec2InstanceId"] for d in of_type(events, CONTAINER_INSTANCE)}
    ce_of_task = {
        d["taskArn"]: variables(d["overrides"]["containerOverrides"][0]["environment"])["AWS_BATCH_CE_NAME"]
        for d in of_type(events, ECS_TASK)
    }
    trail_types = {
        (t["recipientAccountId"], t["awsRegion"], t["requestParameters"]["computeEnvironmentName"]): t[
            "requestParameters"
        ]["computeResources"]["type"]
        for t in calls(events, "CreateComputeEnvironment")
    }
    pricing_of_type = {"SPOT": "spot", "EC2": "on-demand", "FARGATE": "fargate", "FARGATE_SPOT": "fargate"}
    service = [job for job in truth if job.platform == "SAGEMAKER"]
    truth = [job for job in truth if job.platform != "SAGEMAKER"]  # service jobs: their own test
    assert service and len({job.job_id for job in truth}) == len(truth) == len(last_event)
    for job in truth:
        detail = last_event[job.job_id]
        assert detail["status"] == job.status
        assert len(detail["attempts"]) == job.attempts
        assert detail["jobQueue"].endswith(f":job-queue/{job.queue}")
        assert detail["jobArn"] == f"arn:aws:batch:{job.region}:{job.account_id}:job/{job.job_id}"
        if job.status in ("SUCCEEDED", "FAILED") and job.array_size is None:
            assert job_exit_code(detail) == job.exit_code
        if job.attempts:
            task = detail.get("container") or detail["ecsProperties"]["taskProperties"][0]
            assert ce_of_task[task["taskArn"]] == job.compute_environment
            arn = task_container_instance(detail)
            assert (instance_ids[arn] if arn else None) == job.instance_id
            trail = trail_types.get((job.account_id, job.region, job.compute_environment))
            if trail is not None:
                assert pricing_of_type[trail] == job.pricing
        else:
            assert job.instance_id is None and job.compute_environment is None
        assert (job.platform == "FARGATE") == (detail["platformCapabilities"] == ["FARGATE"])
        assert (job.platform == "FARGATE") == (job.pricing == "fargate")
        if job.array_size is None:
            assert (job.failure_kind is None) == (job.status in ("SUCCEEDED", "RUNNABLE"))
        else:
            assert job.failure_kind is None and job.attempts == 0
    kinds = Counter(job.failure_kind for job in truth)
    assert {"spot_reclaim", "oom", "exit_nonzero", "timeout", "cancelled"} <= set(kinds)
    assert any(job.status == "RUNNABLE" for job in truth), "a few jobs stay blocked forever"
    assert {job.pricing for job in truth} == {"spot", "on-demand", "fargate"}
    children = [job for job in truth if job.array_parent_id is not None]
    assert children and all(job.array_index is not None for job in children)


def test_truth_failure_kinds_match_status_reasons(events: list[Event], truth: list[ExpectedJob]) -> None:
    final = {d["jobId"]: d for d in of_type(events, BATCH) if d["status"] == "FAILED"}
    reason_of_kind = {
        "oom": "OutOfMemoryError: Container killed due to memory usage",
        "exit_nonzero": "Essential container in task exited",
        "timeout": "Job attempt duration exceeded timeout",
        "cancelled": "Cancelled by user",
    }
    for job in truth:
        if job.failure_kind is None or job.platform == "SAGEMAKER":
            continue
        reason = final[job.job_id]["statusReason"]
        if job.failure_kind == "spot_reclaim":
            assert reason == f"Host EC2 (instance {job.instance_id}) terminated."
        else:
            assert reason == reason_of_kind[job.failure_kind]


# --- submissions and service jobs ---------------------------------------------------------------------


def test_every_job_a_caller_submitted_has_its_submitjob_record_where_the_account_has_a_trail(
    events: list[Event], truth: list[ExpectedJob]
) -> None:
    records = {d["responseElements"]["jobId"]: d for d in calls(events, "SubmitJob")}
    first_event = {}
    for detail in of_type(events, BATCH):
        first_event.setdefault(detail["jobId"], detail)
    homes = {(job.account_id, job.region) for job in truth}
    with_trail = {(d["recipientAccountId"], d["awsRegion"]) for d in records.values()}
    assert len(homes - with_trail) == 1, "one account-region has no trail"
    for job in truth:
        if job.platform == "SAGEMAKER" or job.array_parent_id is not None:
            assert job.job_id not in records  # service jobs and array children are not SubmitJob calls
            continue
        if (job.account_id, job.region) not in with_trail:
            continue
        record = records[job.job_id]
        request, detail = record["requestParameters"], first_event[job.job_id]
        assert epoch_ms(record["eventTime"]) // 1000 == detail["createdAt"] // 1000  # createdAt is the submission
        assert [d["jobId"] for d in request.get("dependsOn", [])] == [d["jobId"] for d in detail["dependsOn"]]
        assert detail["jobQueue"].endswith(f"/{request['jobQueue'].rsplit('/', 1)[-1]}")
        assert record["userIdentity"]["arn"].startswith(f"arn:aws:sts::{job.account_id}:assumed-role/")
        assert ("arrayProperties" in request) == (job.array_size is not None)
    waits = [d for d in records.values() if d["requestParameters"].get("dependsOn")]
    assert waits and any(SECRET_VALUE in json.dumps(d["requestParameters"]) for d in records.values())


def test_service_jobs_go_through_their_own_states_and_some_block_their_queue(
    events: list[Event], truth: list[ExpectedJob]
) -> None:
    statuses: dict[str, list[str]] = defaultdict(list)
    for detail in of_type(events, "Batch Service Job State Change"):
        assert detail["serviceJobType"] == "SAGEMAKER_TRAINING" and detail["capacityUsage"][0]["quantity"] >= 1
        statuses[detail["jobId"]].append(detail["status"])
    service = {job.job_id: job for job in truth if job.platform == "SAGEMAKER"}
    assert set(statuses) == set(service) and len(service) >= 50
    for job_id, seen in statuses.items():
        assert seen[-1] == service[job_id].status
        if service[job_id].status != "RUNNABLE":
            assert seen[-4:-1] == ["SCHEDULED", "STARTING", "RUNNING"], seen
    submitted = {d["responseElements"]["jobId"]: d for d in calls(events, "SubmitServiceJob")}
    assert set(submitted) < set(service), "every service job of an account-region with a trail, no other"
    assert {(d["recipientAccountId"], d["awsRegion"]) for d in submitted.values()} == {
        (job.account_id, job.region) for job in truth if job.job_id in submitted
    }
    assert any(SECRET_VALUE in d["requestParameters"]["serviceRequestPayload"] for d in submitted.values())
    blocked = list(of_type(events, "Batch Service Job Queue Blocked"))
    assert blocked and all(d["status"] == "RUNNABLE" and d["jobId"] in service for d in blocked)
    assert {job.status for job in service.values()} == {"SUCCEEDED", "FAILED", "RUNNABLE"}


# --- chaos --------------------------------------------------------------------------------------


def test_chaos_only_changes_delivery(events: list[Event], chaotic: list[Event]) -> None:
    calm = {event["id"]: event for event in events}
    seen: set[str] = set()
    for event in chaotic:
        assert event == calm[event["id"]], "a duplicate is an identical copy of the one event"
        seen.add(event["id"])
    assert seen == set(calm)
    duplicates = len(chaotic) - len(calm)
    assert 0.03 * len(calm) < duplicates < 0.07 * len(calm)
    assert [e["id"] for e in chaotic] != [e["id"] for e in events]


def test_chaos_reorders_within_minutes_and_sometimes_much_later(chaotic: list[Event]) -> None:
    latest = 0
    lateness = []
    for event in chaotic:
        moment = epoch_ms(event["time"])
        latest = max(latest, moment)
        lateness.append(latest - moment)
    out_of_order = sum(1 for late in lateness if late > 0)
    assert out_of_order > 0.05 * len(chaotic)
    assert max(lateness) <= 35 * 60_000
    assert sum(1 for late in lateness if late > 5 * 60_000) > 0


def test_chaos_duplicates_are_separate_objects() -> None:
    delivered, _ = simulate_with_truth(SimulationSettings(jobs=200, seed=3, chaos=True))
    by_id: dict[str, list[Event]] = defaultdict(list)
    for event in delivered:
        by_id[event["id"]].append(event)
    pairs = [copies for copies in by_id.values() if len(copies) > 1]
    assert pairs
    first, second = pairs[0][:2]
    first["detail"]["mutated"] = True
    assert "mutated" not in second["detail"]


def test_start_time_is_honoured() -> None:
    start = datetime(2024, 2, 29, 23, 59, tzinfo=UTC)
    delivered = [event["time"] for event in simulate(SimulationSettings(jobs=5, start=start))]
    assert delivered[0].startswith("2024-02-29T23:59:0")
    assert "2024-03-01T00:05:00Z" < delivered[-1] < "2024-03-02T00:00:00Z"


def test_a_service_jobs_times_follow_its_states(events: list[Event]) -> None:
    for event in events:
        if event["detail-type"] != "Batch Service Job State Change":
            continue
        detail, second = event["detail"], epoch_ms(event["time"]) // 1000
        assert detail["createdAt"] // 1000 <= second
        if detail["status"] != "RUNNABLE":
            assert detail["createdAt"] < detail["scheduledAt"] and detail["scheduledAt"] // 1000 <= second
        for key in ("startedAt", "stoppedAt"):
            if key in detail:
                assert detail["scheduledAt"] < detail[key] and detail[key] // 1000 <= second
