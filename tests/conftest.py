from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings

from batchops.application import BatchOpsApplication
from batchops.bootstrap import Settings, build_application
from batchops.ingest import Ingestor
from batchops.translation import RawEvent
from batchops.tuning import DEFAULT_TUNING, Tuning

EVENTS = Path(__file__).parent / "events"
AWS_REGION = "us-east-1"

# CI (`.ci/run` sets CI=1): the same examples on every run, and a failure's reproduction blob printed. Locally
# ("dev"): new random examples each run, so the properties keep exploring. HYPOTHESIS_PROFILE picks one explicitly.
settings.register_profile("ci", derandomize=True, print_blob=True, deadline=None)
settings.register_profile("dev", print_blob=True, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The central account on moto in this process (mock_aws), with the emulator's patches for moto's gaps."""
    from moto import mock_aws

    from batchops.local.emulator import patch_moto

    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": AWS_REGION,
        "BATCHOPS_CREATE_TABLES": "1",
        "POWERTOOLS_TRACE_DISABLED": "1",
        "POWERTOOLS_DEV": "0",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    patch_moto(monkeypatch.setattr)  # moto's DynamoDB serves one request at a time, as each is atomic on AWS
    with mock_aws():
        yield


def sample(name: str) -> dict[str, Any]:
    """One sample event by file name (without .json), from tests/events or tests/events/real."""
    for folder in (EVENTS, EVENTS / "real"):
        path = folder / f"{name}.json"
        if path.exists():
            return json.loads(path.read_text())
    raise FileNotFoundError(name)


def all_samples() -> list[dict[str, Any]]:
    """Every sample event, documentation samples first, then the captured ones."""
    files = sorted(EVENTS.glob("*.json")) + sorted((EVENTS / "real").glob("*.json"))
    return [json.loads(f.read_text()) for f in files]


@pytest.fixture
def make_app(tmp_path: Path) -> Iterator[Callable[..., BatchOpsApplication]]:
    """Build applications on fresh SQLite stores in the test's directory."""
    made: list[BatchOpsApplication] = []

    def make(name: str = "store", *, metrics: bool = True, tuning: Tuning = DEFAULT_TUNING) -> BatchOpsApplication:
        settings = Settings.from_environment(store=f"sqlite:///{tmp_path / name}.db")
        app = build_application(settings, metrics=metrics, tuning=tuning)
        made.append(app)
        return app

    yield make
    for app in made:
        app.close()


def ingest(app: BatchOpsApplication, events: list[dict[str, Any]], batch_size: int = 500) -> Ingestor:
    """Ingest decoded events through the same path as the CLI."""
    ingestor = Ingestor(app, batch_size=batch_size)
    ingestor.ingest(RawEvent(e, i + 1) for i, e in enumerate(events))
    return ingestor


def rows_by_job(app: BatchOpsApplication) -> dict[tuple[str, str, str], dict[str, Any]]:
    """The job projection keyed by (account, region, job id)."""
    return {(r["account_id"], r["region"], r["job_id"]): r for r in app.views.jobs()}


CENTRAL_TEMPLATE = Path(__file__).resolve().parents[1] / "central-account" / "template.yaml"


def create_central_stack_on_moto(prefix: str, region: str = AWS_REGION) -> dict[str, str]:
    """The central template as a stack on moto (inside mock_aws), with a placeholder Lambda artifact; its outputs."""
    import io
    import zipfile

    import boto3

    s3 = boto3.client("s3", region_name=region)
    s3.create_bucket(Bucket="artifacts")
    code = io.BytesIO()
    with zipfile.ZipFile(code, "w") as archive:
        archive.writestr("batchops/__init__.py", "")
    s3.put_object(Bucket="artifacts", Key="lambda.zip", Body=code.getvalue())
    cfn = boto3.client("cloudformation", region_name=region)
    parameters = {
        "Prefix": prefix,
        "OrganizationId": "o-abcdefghij",
        "ArtifactBucket": "artifacts",
        "ArtifactKey": "lambda.zip",
        "DeletionProtection": "false",
    }
    with pytest.warns(UserWarning):  # moto skips the bus policy, queue policies, Glue, Athena and alarms
        cfn.create_stack(
            StackName="central",
            TemplateBody=CENTRAL_TEMPLATE.read_text(),
            Capabilities=["CAPABILITY_IAM"],
            Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()],
        )
    [stack] = cfn.describe_stacks(StackName="central")["Stacks"]
    assert stack["StackStatus"] == "CREATE_COMPLETE"
    return {o["OutputKey"]: o["OutputValue"] for o in stack["Outputs"]}


def sqs_lambda_event(
    bodies: list[str], queue_arn: str = f"arn:aws:sqs:{AWS_REGION}:123456789012:bt-events"
) -> dict[str, Any]:
    """The event Lambda's SQS source hands the aggregator for these message bodies (ids m-0, m-1, ...)."""
    return {
        "Records": [
            {
                "messageId": f"m-{i}",
                "receiptHandle": f"r-{i}",
                "body": body,
                "attributes": {
                    "ApproximateReceiveCount": "1",
                    "SentTimestamp": "1764496000000",
                    "SenderId": "AIDAEXAMPLE",
                    "ApproximateFirstReceiveTimestamp": "1764496000000",
                },
                "messageAttributes": {},
                "md5OfBody": "0" * 32,
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": AWS_REGION,
            }
            for i, body in enumerate(bodies)
        ]
    }
