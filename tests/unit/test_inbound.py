from __future__ import annotations

import copy
import json

import pytest

from batchops.facts import Parsed
from batchops.inbound import Unusable, translate
from batchops.names import cluster_of, compute_environment_of_cluster, host_instance_in
from batchops.redaction import redact
from conftest import all_samples, sample


def parsed(event: dict) -> Parsed:
    result = translate(event)
    assert isinstance(result, Parsed), result
    return result


def test_every_sample_is_understood_or_ignored_with_a_reason() -> None:
    for event in all_samples():
        result = translate(event)
        if isinstance(result, Unusable):
            assert not result.rejected, result
            assert "AWS_BATCH_JOB_ID" in result.reason


def test_legacy_job_shape_reads_vcpus_memory_and_attempts() -> None:
    fact = parsed(sample("aws-batch--batch-job-state-change--succeeded")).fact
    assert fact["vcpus"] == 1 and fact["memory"] == 512
    assert fact["queue"] == "mybatchjob"
    assert fact["attempts"][0]["exit"] == 0
    assert fact["attempts"][0]["started"] == 1509078455720
    assert fact["done"] == 1


def test_multi_container_job_without_container_takes_the_essential_container() -> None:
    fact = parsed(sample("batch-succeeded-ecsproperties-ec2--aws-batch-runtime-monitoring")).fact
    assert fact["vcpus"] == 2 and fact["memory"] == 2048
    assert fact["exit"] == 0
    attempt = fact["attempts"][0]
    assert attempt["ci"].startswith("arn:aws:ecs:us-east-1:123456789012:container-instance/AWSBatch-batch-compute-env")
    assert attempt["stream"].startswith("cpu-stress-test-dev/cpu-stress-container/")


def test_running_multi_node_attempt_is_open_and_has_no_exit_code() -> None:
    fact = parsed(sample("batch-running-multinode-main-node--aws-batch-runtime-monitoring")).fact
    assert fact["status"] == "RUNNING"
    assert fact["done"] == 0
    assert "exit" not in fact["attempts"][0]
    assert fact["current"]["n"] == 1


def test_fargate_job_reads_platform_and_log_group() -> None:
    fact = parsed(sample("batch-failed-fargate--jit-batch-job-event-mock")).fact
    assert fact["platform"] == "FARGATE"
    assert fact["log_group"] == "/ecs/web-app-scanner-container"
    assert fact["vcpus"] == 0.5


def test_array_child_knows_its_parent_and_index() -> None:
    result = parsed(sample("batch-succeeded-array-child-ec2-arm64--recast-opman-db"))
    assert result.fact["parent"] == "740ee3ee-f235-4670-b19f-84da1bda6e76"
    assert result.fact["index"] == 12


def test_sparse_eks_job_does_not_break_anything() -> None:
    event = {
        "version": "0",
        "id": "e1",
        "detail-type": "Batch Job State Change",
        "source": "aws.batch",
        "account": "123456789012",
        "time": "2025-01-01T00:00:00Z",
        "region": "us-east-1",
        "resources": [],
        "detail": {
            "jobId": "eks-1",
            "status": "RUNNABLE",
            "eksProperties": {"podProperties": {}},
            "eksAttempts": [{"podName": "p"}],
        },
    }
    fact = parsed(event).fact
    assert fact["platform"] == "EKS"
    assert fact["status"] == "RUNNABLE"


def test_queue_blocked_event_is_a_blocked_runnable_observation() -> None:
    fact = parsed(sample("aws-batch--batch-job-queue-blocked")).fact
    assert fact["status"] == "RUNNABLE" and fact["blocked"] is True
    assert fact["reason"].startswith("CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY")


def test_batch_task_joins_its_job_and_attempt_and_drops_user_variables() -> None:
    result = parsed(sample("aws-ecs--ecs-task-state-change--batch-on-ec2"))
    assert result.kind == "job_task"
    assert result.key == "4c7599ae-0a82-49aa-ba5a-4727fcce14a8"
    assert result.fact["n"] == 2 and result.fact["ce"] == "my-ce" and result.fact["az"] == "us-east-1b"
    assert "this-is-a-user-secret" not in json.dumps(result.fact)


def test_spot_warning_reads_the_az_from_the_arn_region_slot() -> None:
    result = parsed(sample("ec2-spot-interruption-warning--hasta-la-vista"))
    assert result.kind == "instance" and result.key == "i-04674c0a5f28fa9e5"
    assert result.fact == {**result.fact, "kind": "spot_warning", "az": "us-east-1a"}


def test_container_instance_reads_type_az_and_compute_environment() -> None:
    event = copy.deepcopy(sample("aws-ecs--ecs-container-instance-state-change--active"))
    event["detail"]["clusterArn"] = (
        "arn:aws:ecs:us-east-1:111122223333:cluster/AWSBatch-gpu-ce-0a95f22d-7108-3c4e-99f7-2fd92e1a8941"
    )
    event["detail"]["attributes"] += [
        {"name": "ecs.instance-type", "value": "c5.xlarge"},
        {"name": "ecs.availability-zone", "value": "us-east-1c"},
    ]
    fact = parsed(event).fact
    assert (fact["ce"], fact["type"], fact["az"], fact["vcpus"], fact["memory"]) == (
        "gpu-ce",
        "c5.xlarge",
        "us-east-1c",
        2,
        3767,
    )


def test_cloudtrail_record_tells_the_compute_environment_type() -> None:
    result = parsed(sample("aws-batch--cloudtrail-createcomputeenvironment"))
    assert (result.kind, result.key, result.fact["type"]) == ("compute_environment", "my-ce", "SPOT")


@pytest.mark.parametrize(
    ("cluster", "expected"),
    [
        ("AWSBatch-my-ce-1a2b3c4d-5e6f-7a8b-9c0d-112233445566", "my-ce"),
        ("AWSBatch-my-ce-1a2b3c4d", "my-ce"),
        ("AWSBatch-fargate-batch-compute-13af15fe-56c9-3", "fargate-batch-compute"),
        ("legacy-ce_Batch_0a1b2c3d-1111-2222-3333-444455556666", "legacy-ce"),
        ("default", None),
    ],
)
def test_compute_environment_from_cluster_names(cluster: str, expected: str | None) -> None:
    assert compute_environment_of_cluster(cluster) == expected


def test_cluster_of_task_and_container_instance_arns() -> None:
    assert cluster_of("arn:aws:ecs:us-east-1:1:task/AWSBatch-x-1a2b3c4d/abc") == "AWSBatch-x-1a2b3c4d"
    assert cluster_of("arn:aws:ecs:us-west-2:1:container-instance/yyyyyyyy-yyyy") is None
    assert host_instance_in("Host EC2 (instance i-0123456789abcdef0) terminated.") == "i-0123456789abcdef0"


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        ([], "not a JSON object"),
        ({"hello": 1}, "no 'detail-type'"),
        (
            {
                "detail-type": "Something New",
                "account": "123456789012",
                "region": "us-east-1",
                "time": "2025-01-01T00:00:00Z",
                "detail": {},
            },
            "unknown detail-type 'Something New'",
        ),
        (
            {
                "detail-type": "Batch Job State Change",
                "account": "123456789012",
                "region": "us-east-1",
                "time": "2025-01-01T00:00:00Z",
                "detail": {"status": "RUNNING"},
            },
            "invalid Batch Job State Change: detail.jobId: Field required",
        ),
        (
            {
                "detail-type": "Batch Job State Change",
                "account": "123456789012",
                "region": "us-east-1",
                "time": "yesterday",
                "detail": {"jobId": "j", "status": "RUNNING"},
            },
            "Invalid isoformat",
        ),
    ],
)
def test_bad_events_are_rejected_with_a_reason(event: object, reason: str) -> None:
    result = translate(event)
    assert isinstance(result, Unusable) and result.rejected
    assert reason in result.reason


def test_redaction_replaces_every_value_under_a_user_data_key_and_keeps_the_rest() -> None:
    event = sample("ecs-task-stopped-batch-fargate-failed-to-start--jit-batch-job-event-mock")
    event["detail"]["overrides"]["containerOverrides"][0]["command"] = ["run", "--password=hunter2"]
    clean = json.dumps(redact(event))
    assert "hunter2" not in clean and "runtime-misconfig" not in clean and "eu-central-1" not in clean
    assert "0268d907-34a3-43e3-9905-f3d3a20f3842" not in clean  # AWS_BATCH_JOB_ID's value too: it is an env value
    assert event["detail"]["taskArn"] in clean and event["id"] in clean
    job = redact(sample("batch-runnable-ecsproperties-ec2--aws-batch-runtime-monitoring"))
    assert (
        job["detail"]["jobId"]
        == sample("batch-runnable-ecsproperties-ec2--aws-batch-runtime-monitoring")["detail"]["jobId"]
    )
    container = job["detail"]["ecsProperties"]["taskProperties"][0]["containers"][0]
    assert {v for e in container["environment"] for v in e.values()} == {"<redacted>"}


VALID_JOB = sample("aws-batch--batch-job-state-change--running")


def _with(path: tuple[str, ...], value: object) -> dict:
    event = copy.deepcopy(VALID_JOB)
    target = event
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return event


@pytest.mark.parametrize(
    ("path", "value", "named"),
    [
        (("detail", "status"), "", "detail.status"),
        (("detail", "status"), "123", "detail.status"),
        (("detail", "status"), "NAN", "detail.status"),
        (("detail", "jobId"), "", "detail.jobId"),
        (("account",), "123", "account"),
        (("region",), "NaN", "region"),
        (("detail", "createdAt"), True, "detail.createdAt"),
        (("detail", "createdAt"), 1509078455, "detail.createdAt"),  # seconds taken for milliseconds
        (("detail", "createdAt"), 10**30, "detail.createdAt"),
        (("detail", "jobName"), "a\x00b", "detail.jobName"),
        (("time",), "1900-01-01T00:00:00Z", "time"),
        (("resources",), "arn:aws:batch:x", "resources"),
        (
            ("detail", "container", "resourceRequirements"),
            [{"type": "VCPU", "value": "inf"}],
            "detail.container.resourceRequirements.0.value",
        ),
        (("detail", "container", "exitCode"), 2**70, "detail.container.exitCode"),
    ],
)
def test_an_impossible_value_is_kept_aside_with_a_reason_naming_its_field(
    path: tuple[str, ...], value: object, named: str
) -> None:
    result = translate(_with(path, value))
    assert isinstance(result, Unusable) and result.rejected, result
    assert f": {named}" in result.reason, result.reason


def test_the_service_job_state_scheduled_is_a_state() -> None:
    assert parsed(_with(("detail", "status"), "SCHEDULED")).fact["status"] == "SCHEDULED"


SUBMIT = "aws-batch--cloudtrail-submitjob--composed"


def test_a_submitjob_record_is_the_jobs_submitted_observation_without_anything_of_its_overrides() -> None:
    result = parsed(sample(SUBMIT))
    assert (result.kind, result.key) == ("job_state", "9d1f4b2e-6c3a-4e8d-b5f7-2a1c0e9d8b7a")
    fact = dict(result.fact)
    assert fact.pop("fp")
    assert fact == {
        "at": 1641944225000,
        "status": "SUBMITTED",
        "call": "SubmitJob",
        "arn": "arn:aws:batch:us-east-1:123456789012:job/9d1f4b2e-6c3a-4e8d-b5f7-2a1c0e9d8b7a",
        "name": "nightly-report",
        "queue": "PexjEHappyPathCanary2JobQueue",
        "definition": "first-run-job-definition:1",
        "depends_on": ["4c7599ae-0a82-49aa-ba5a-4727fcce14a8"],
        "share": "reports",
        "priority": 40,
        "submitted_by": "arn:aws:sts::123456789012:assumed-role/batch-submitter/pipeline",
    }
    assert "REPORT_DATE" not in json.dumps(result.fact) and "example-reports" not in json.dumps(result.fact)


def test_a_failed_submission_is_ignored_and_one_naming_no_job_is_rejected() -> None:
    failed = copy.deepcopy(sample(SUBMIT))
    failed["detail"]["errorCode"] = "ClientException"
    failed["detail"]["responseElements"] = None
    result = translate(failed)
    assert isinstance(result, Unusable) and not result.rejected and "ClientException" in result.reason
    nameless = copy.deepcopy(sample(SUBMIT))
    del nameless["detail"]["responseElements"]["jobId"]
    result = translate(nameless)
    assert isinstance(result, Unusable) and result.rejected and "responseElements.jobId" in result.reason


def test_a_submission_with_an_impossible_priority_is_kept_aside_naming_the_field() -> None:
    event = copy.deepcopy(sample(SUBMIT))
    event["detail"]["requestParameters"]["schedulingPriorityOverride"] = "high"
    result = translate(event)
    assert isinstance(result, Unusable) and result.rejected
    assert "detail.requestParameters.schedulingPriorityOverride" in result.reason, result.reason


def test_other_cloudtrail_calls_are_ignored() -> None:
    event = copy.deepcopy(sample(SUBMIT))
    event["detail"]["eventName"] = "TerminateJob"
    result = translate(event)
    assert isinstance(result, Unusable) and not result.rejected and "TerminateJob" in result.reason


def test_job_state_changes_give_share_priority_and_dependencies() -> None:
    event = _with(("detail", "shareIdentifier"), "blue")
    event["detail"].update(schedulingPriority=3, dependsOn=[{"jobId": "a", "type": "N_TO_N"}, {"type": "x"}])
    fact = parsed(event).fact
    assert (fact["share"], fact["priority"], fact["depends_on"]) == ("blue", 3, ["a"])
    plain = parsed(sample("aws-batch--batch-job-state-change--runnable")).fact
    assert not {"share", "priority", "depends_on", "capacity", "call"} & set(plain)  # its fingerprint is as before


def test_a_service_job_event_is_a_sagemaker_job_with_its_capacity() -> None:
    fact = parsed(sample("aws-batch--batch-service-job-state-change--succeeded--composed")).fact
    assert (fact["platform"], fact["status"], fact["done"]) == ("SAGEMAKER", "SUCCEEDED", 1)
    assert (fact["capacity_unit"], fact["capacity"], fact["share"], fact["priority"]) == (
        "NUM_INSTANCES",
        2.0,
        "ml-team",
        10,
    )
    assert fact["attempts"] == [
        {
            "n": 1,
            "started": 1641944300058,
            "stopped": 1641944400058,
            "reason": "Received status from SageMaker: Training job completed",
        }
    ]
    blocked = parsed(sample("aws-batch--batch-service-job-queue-blocked--composed")).fact
    assert blocked["blocked"] is True and blocked["status"] == "RUNNABLE" and blocked["platform"] == "SAGEMAKER"


def test_a_submitservicejob_record_is_the_service_jobs_submission_without_its_payload() -> None:
    event = sample("aws-batch--cloudtrail-submitservicejob--composed")
    result = parsed(event)
    assert result.key == "0bb17543-ece6-4480-b1a7-a556d344746b"
    fact = result.fact
    assert (fact["status"], fact["call"], fact["platform"], fact["queue"]) == (
        "SUBMITTED",
        "SubmitServiceJob",
        "SAGEMAKER",
        "HappyPathJobQueue",
    )
    assert (fact["share"], fact["priority"]) == ("ml-team", 10)
    assert fact["submitted_by"] == "arn:aws:sts::123456789012:assumed-role/ml-submitter/ml-pipeline"
    assert "WANDB_MODE" not in json.dumps(fact) and "epochs" not in json.dumps(fact)
