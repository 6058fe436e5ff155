"""Every Lambda of the central template, and the operator's CLI, run with the permissions IAM would give them.

The central stack is created on moto from the template; each role's policies are read back from moto's IAM, as
CloudFormation resolved them (table, stream, queue and bucket ARNs). Every AWS call our code makes is authorised
against them (tests/iam_calls.py, tests/iam_policies.py): a call outside them fails as AccessDenied, as on AWS."""

from __future__ import annotations

import ast
import json
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from test_dashboards import athena_queries, panels_of

from batchops.adapters.dynamodb.prices import DynamoDBPriceStore
from batchops.adapters.dynamodb.stream_projection import stream_fed
from batchops.adapters.firehose_export import TTL_PRINCIPAL, FirehoseExporter
from batchops.application import BatchOpsApplication
from batchops.bootstrap import Settings, build_application
from batchops.cli import main
from batchops.dashboards import DashboardSettings, render_dashboards
from batchops.entrypoints import waiting_lambda
from batchops.entrypoints.export_lambda import handle_export_batch, settings_from_environment
from batchops.entrypoints.lambdas import central_application, handle_sqs_batch, handle_stream_batch
from batchops.prices import table_entries
from batchops.rollout.grafana_workspace import GrafanaSpec
from batchops.simulation import SimulationSettings, simulate
from conftest import AWS_REGION, create_central_stack_on_moto, ingest, rows_by_job, sqs_lambda_event
from firehose_sink import FirehoseSink
from iam_calls import ACCOUNT, Principal, acting_as, enforcing
from iam_policies import ALLOWED, Request, decide

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "central-account" / "template.yaml"
DEPLOY_DOC = ROOT / "docs" / "deploy.md"
PREFIX = "iam"
GLUE_DATABASE = PREFIX  # the template: the prefix with its hyphens as underscores
EXPORT_STREAM = f"{PREFIX}-export"
TABLES = ("jobs", "instances", "job_events", "job_attempts")
LAMBDA_ROLES = {
    "aggregator": "AggregatorRole",
    "projector": "ProjectorRole",
    "exporter": "ExporterRole",
    "waiting-metrics": "WaitingMetricsRole",
}


def _client(service: str) -> Any:
    return boto3.client(service, region_name=AWS_REGION, config=Config(account_id_endpoint_mode="disabled"))


@pytest.fixture
def stack(aws: None, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The central stack on moto, its tables, queues and bucket as the template declares them (moto's CloudFormation
    skips the Glue database, the Iceberg tables and the Firehose stream)."""
    monkeypatch.delenv("BATCHOPS_CREATE_TABLES")  # the template's tables, not ones the code would create
    outputs = create_central_stack_on_moto(PREFIX)
    awslambda = _client("lambda")
    for mapping in awslambda.list_event_source_mappings()["EventSourceMappings"]:
        awslambda.update_event_source_mapping(UUID=mapping["UUID"], Enabled=False)  # moto cannot run the code
    return outputs


def role_principal(logical_id: str) -> Principal:
    """The role's policies as moto's IAM holds them after CloudFormation resolved the template."""
    iam = _client("iam")
    [name] = [r["RoleName"] for r in iam.list_roles()["Roles"] if r["RoleName"].startswith(f"central-{logical_id}-")]
    assert iam.list_attached_role_policies(RoleName=name)["AttachedPolicies"] == []  # inline policies are all
    documents = [
        _resolved(iam.get_role_policy(RoleName=name, PolicyName=p)["PolicyDocument"])
        for p in iam.list_role_policies(RoleName=name)["PolicyNames"]
    ]
    return Principal(logical_id, documents)


def _resolved(document: Any) -> dict[str, Any]:
    """moto's quirks in what it stores: a policy given as a mapping comes back as its Python repr, a statement
    `!If [cond, ..., AWS::NoValue]` as None, and a reference to a resource it does not create (the Glue database, the
    Firehose stream) unresolved."""
    if isinstance(document, str):
        document = ast.literal_eval(document) if document.startswith("{'") else json.loads(document)
    text = json.dumps(document).replace("${GlueDatabase}", GLUE_DATABASE).replace("${AthenaWorkGroup}", PREFIX)
    text = text.replace("${ExportStream}", EXPORT_STREAM)
    resolved = json.loads(text)
    resolved["Statement"] = [s for s in resolved["Statement"] if s is not None]
    return dict(resolved)


def operator_principal() -> Principal:
    """The operator's policy as docs/deploy.md gives it, its placeholders filled in for this stack."""
    text = DEPLOY_DOC.read_text()
    found = re.search(r"<!-- operator-policy -->\s*```json\n(.*?)```", text, re.DOTALL)
    assert found, "docs/deploy.md has no operator policy block (<!-- operator-policy --> then a json block)"
    filled = found[1].replace("REGION", AWS_REGION).replace("ACCOUNT", ACCOUNT).replace("PREFIX", PREFIX)
    return Principal("operator (docs/deploy.md)", [json.loads(filled)])


def function_environment(name: str) -> dict[str, str]:
    config = _client("lambda").get_function_configuration(FunctionName=f"{PREFIX}-{name}")
    variables = {k: str(v) for k, v in config["Environment"]["Variables"].items()}
    if name == "exporter":  # !Ref ExportStream: moto does not create the stream, so drops the variable
        variables.setdefault("BATCHOPS_EXPORT_STREAM", EXPORT_STREAM)
    return variables


def stream_records(table: str, positions: dict[str, str]) -> list[dict[str, Any]]:
    """New stream records of a table, as Lambda's event source mapping reads them (with the function's role, by
    the Lambda service: these reads are not our code's calls)."""
    arn = _client("dynamodb").describe_table(TableName=table)["Table"]["LatestStreamArn"]
    streams = _client("dynamodbstreams")
    records = []
    for shard in streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]:
        key = f"{table}/{shard['ShardId']}"
        start = (
            {"ShardIteratorType": "AFTER_SEQUENCE_NUMBER", "SequenceNumber": positions[key]}
            if key in positions
            else {"ShardIteratorType": "TRIM_HORIZON"}
        )
        iterator = streams.get_shard_iterator(StreamArn=arn, ShardId=shard["ShardId"], **start)["ShardIterator"]
        got = streams.get_records(ShardIterator=iterator, Limit=1000)["Records"]
        if got:
            positions[key] = got[-1]["dynamodb"]["SequenceNumber"]
        records += [dict(r, eventSourceARN=arn) for r in got]
    return records


class Lambdas:
    """The three functions as Lambda runs them: their template environment, their role, fresh containers."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.monkeypatch = monkeypatch
        self.roles = {name: role_principal(logical) for name, logical in LAMBDA_ROLES.items()}
        self.positions: dict[str, str] = {}
        self.queue_arn = f"arn:aws:sqs:{AWS_REGION}:{ACCOUNT}:{PREFIX}-ingest"
        self.last_projected: list[dict[str, Any]] = []
        self.last_exported: list[dict[str, Any]] = []
        self.sent: list[dict[str, Any]] = []

    @staticmethod
    def _app() -> BatchOpsApplication:
        central_application.cache_clear()  # a fresh container: its start-up calls are authorised too
        return central_application()

    def aggregate(self, events: list[dict[str, Any]]) -> None:
        with self.environment("aggregator"), acting_as(self.roles["aggregator"]):
            app = self._app()
            for start in range(0, len(events), 10):
                response = handle_sqs_batch(
                    app, sqs_lambda_event([json.dumps(e) for e in events[start : start + 10]], self.queue_arn)
                )
                assert response == {"batchItemFailures": []}, self.roles["aggregator"].denied

    def project(self, *, again: bool = False) -> None:
        records = self.last_projected if again else stream_records(f"{PREFIX}-events", self.positions)
        self.last_projected = records
        with self.environment("projector"), acting_as(self.roles["projector"]):
            app = self._app()
            for start in range(0, len(records), 100):
                response = handle_stream_batch(app, {"Records": records[start : start + 100]})
                assert response == {"batchItemFailures": []}, self.roles["projector"].denied

    def export(self, *, again: bool = False, expired: bool = False) -> None:
        records = (
            self.last_exported
            if again
            else [
                *stream_records(f"{PREFIX}-jobs", self.positions),
                *stream_records(f"{PREFIX}-instances", self.positions),
            ]
        )
        if expired:  # a job item as DynamoDB's TTL deletes it: REMOVE, its last image, the TTL principal
            last = next(r for r in reversed(records) if r["eventName"] != "REMOVE" and "-jobs/" in r["eventSourceARN"])
            image = {"Keys": last["dynamodb"]["Keys"], "OldImage": last["dynamodb"]["NewImage"]}
            records = [dict(last, eventName="REMOVE", dynamodb=image, userIdentity=TTL_PRINCIPAL)]
        self.last_exported = records
        with self.environment("exporter"), acting_as(self.roles["exporter"]):
            exporter = FirehoseExporter(boto3.client("firehose"), boto3.client("dynamodb"), settings_from_environment())
            sink = FirehoseSink(exporter.firehose)  # moto's Firehose has no Iceberg destination
            response = handle_export_batch(exporter, {"Records": records})
            assert response == {"batchItemFailures": []}, self.roles["exporter"].denied
            self.sent += sink.records()

    def measure_waiting(self) -> dict[str, int]:
        """The scheduled waiting metrics, as one minute's run in a fresh container."""
        with self.environment("waiting-metrics"), acting_as(self.roles["waiting-metrics"]):
            waiting_lambda.waiting_views.cache_clear()
            views = waiting_lambda.waiting_views()
            return waiting_lambda.publish_waiting_metrics(views, "BatchOps", int(time.time() * 1000))

    @contextmanager
    def environment(self, name: str) -> Iterator[None]:
        """The function's environment variables (as its template sets them) for the duration of a block."""
        with self.monkeypatch.context() as patch:
            for key, value in function_environment(name).items():
                patch.setenv(key, value)
            yield


# Granted for what AWS's services do with the role, not for our code's calls: the event source mappings read the
# queue or the stream and send what they give up on; the runtime writes the logs; X-Ray takes the traces.
SERVICE_SIDE = {
    "logs:CreateLogStream": "the Lambda runtime writes the function's logs",
    "logs:PutLogEvents": "the Lambda runtime writes the function's logs",
    "xray:PutTraceSegments": "the Lambda runtime sends traces (Tracing=Active only)",
    "xray:PutTelemetryRecords": "the Lambda runtime sends traces (Tracing=Active only)",
    "sqs:ReceiveMessage": "the aggregator's event source mapping polls the ingest queue",
    "sqs:DeleteMessage": "the aggregator's event source mapping deletes what the function processed",
    "sqs:ChangeMessageVisibility": "the aggregator's event source mapping returns failed messages",
    "sqs:GetQueueAttributes": "the aggregator's event source mapping reads the queue",
    "sqs:SendMessage": "a stream mapping's on-failure destination receives the batches given up on",
    "dynamodb:DescribeStream": "a stream event source mapping reads the stream",
    "dynamodb:GetRecords": "a stream event source mapping reads the stream",
    "dynamodb:GetShardIterator": "a stream event source mapping reads the stream",
    "dynamodb:ListStreams": "a stream event source mapping reads the stream",
}


def unused_grants(principal: Principal, service_side: dict[str, str]) -> list[str]:
    """What a statement grants that no authorised call needed: an action used on none of the statement's
    resources, or a resource none of its actions was used on (the service's own actions aside)."""
    unused = []
    for policy in principal.policies:
        for statement in policy["Statement"]:
            actions = [a for a in _listed(statement["Action"]) if a not in service_side]
            if not actions:
                continue
            sid = statement.get("Sid", "?")
            for action in actions:
                if not _used(principal, {**statement, "Action": action}):
                    unused.append(f"{sid}: {action}")
            for resource in _listed(statement["Resource"]):
                if not _used(principal, {**statement, "Action": actions, "Resource": resource}):
                    unused.append(f"{sid}: {resource}")
    return unused


def _listed(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def _used(principal: Principal, statement: dict[str, Any]) -> bool:
    return any(decide(r, [{"Statement": [statement]}]) == ALLOWED for r in principal.requests)


def _replay_interrupted_midway() -> None:
    """The operator's replay, stopped (Ctrl-C) after its first pages: a new generation is being built."""
    seen = [0]

    def crash_midway(count: int) -> None:
        seen[0] += count
        if seen[0] > 40:
            raise KeyboardInterrupt

    app = build_application(Settings.from_environment(store=f"dynamodb://{PREFIX}"), verify_store=True)
    stream_fed(app)  # wired to DynamoDB
    with pytest.raises(KeyboardInterrupt):
        stream_fed(app).replay(page=20, segments=1, progress=crash_midway)


def _unusable_events(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A redelivered event, one that fails validation, and one of a detail-type nobody consumes."""
    invalid = json.loads(json.dumps(events[0]))
    invalid["detail"]["jobId"] = 5
    return [events[0], invalid, dict(events[0], **{"detail-type": "Something Else"})]


def _workload() -> list[dict[str, Any]]:
    return list(simulate(SimulationSettings(accounts=1, regions=1, jobs=8, seed=5)))


def test_every_function_and_the_operator_work_within_their_policies_and_use_all_they_are_granted(
    stack: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: Any, make_app: Any
) -> None:
    lambdas = Lambdas(monkeypatch)
    operator = operator_principal()
    events = _workload()
    half = len(events) // 2
    store = f"dynamodb://{PREFIX}"
    # stored prices, as the prices function stores them: the projector reads them and claims JobCost points
    DynamoDBPriceStore(_client("dynamodb"), f"{PREFIX}-meta").save_price_entries(table_entries())
    with enforcing(monkeypatch):
        lambdas.aggregate(events[:half] + _unusable_events(events))
        lambdas.project()
        assert lambdas.measure_waiting()["jobs_waiting"] > 0  # halfway: jobs wait (and are read back)
        lambdas.project(again=True)  # Lambda delivers a batch again: a fresh container, revisions unknown
        with acting_as(operator):
            _replay_interrupted_midway()
        lambdas.aggregate(events[half:])
        lambdas.project()  # while the replay is away: the stream batch reads histories for the new generation
        with acting_as(operator):
            assert main(["--store", store, "replay", "--quiet"]) == 0
            account = events[0]["account"]
            for command in (
                ["jobs", "--account", account, "--status", "FAILED"],
                ["instances"],
                ["summary"],
                ["rejected"],
            ):
                assert main(["--store", store, *command]) == 0, command
        lambdas.export()  # the replay's new generation, and its REMOVEs of the old one (current items read)
        lambdas.export(again=True)  # Lambda delivers a batch again: a fresh container
        lambdas.export(again=True, expired=True)
        sqs = _client("sqs")
        for i in range(3):
            sqs.send_message(QueueUrl=stack["IngestDeadLetterQueueUrl"], MessageBody=json.dumps(events[i]))
        with acting_as(operator):
            redrive = [
                "redrive",
                "--dlq-url",
                stack["IngestDeadLetterQueueUrl"],
                "--queue-url",
                stack["IngestQueueUrl"],
            ]
            assert main(redrive) == 0
    printed = capsys.readouterr().out
    assert "moved 3 messages" in printed
    assert '"JobCost"' in printed  # the projector emitted JobCost points under its role
    assert {r["_op"] for r in lambdas.sent} == {"update", "delete"}  # the expired job's rows are deleted
    for principal in [*lambdas.roles.values(), operator]:
        assert principal.denied == [], f"{principal.name} was denied: {principal.denied}"
    local = make_app()
    ingest(local, events)
    app = build_application(Settings.from_environment(store=store))
    assert rows_by_job(app) == rows_by_job(local)  # every phase did its work, none was skipped by an error
    for principal in lambdas.roles.values():
        assert unused_grants(principal, SERVICE_SIDE) == [], f"{principal.name} is granted more than it uses"
    assert unused_grants(operator, {}) == [], "docs/deploy.md grants the operator more than it uses"


def test_a_call_outside_the_role_fails_as_on_aws(stack: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    """The check can fail: an aggregator that would also write the views (inline projection) is denied there."""
    aggregator = role_principal("AggregatorRole")
    with enforcing(monkeypatch), Lambdas(monkeypatch).environment("aggregator"), acting_as(aggregator):
        app = build_application(Settings.from_environment(), project_inline=True)
        stream_fed(app)  # wired to DynamoDB
        bodies = [json.dumps(e) for e in _workload()[:5]]
        response = handle_sqs_batch(
            app, sqs_lambda_event(bodies, f"arn:aws:sqs:{AWS_REGION}:{ACCOUNT}:{PREFIX}-ingest")
        )
    assert response == {"batchItemFailures": []}  # recorded: the projector projects them, with its own role
    views = tuple(f"arn:aws:dynamodb:{AWS_REGION}:{ACCOUNT}:table/{PREFIX}-{t}" for t in ("jobs", "instances", "meta"))
    assert aggregator.denied and {r.resource for r in aggregator.denied} <= set(views)
    assert (
        list(build_application(Settings.from_environment(store=f"dynamodb://{PREFIX}")).views.jobs()) == []
    )  # nothing projected


# -- Grafana's data sources ------------------------------------------------------------------------------------------

# What Athena reads of an Iceberg table below its location: the metadata file, the manifest list and manifests, the
# data and delete files (Firehose writes merge-on-read deletes).
ICEBERG_FILES = (
    "metadata/00001-0f3c.metadata.json",
    "metadata/snap-1-1-0f3c.avro",
    "metadata/0f3c-m0.avro",
    "data/account_id={}/dt=2026-12-01/00000-0-0f3c.parquet",
    "data/account_id={}/dt=9999-12-31/00000-1-0f3c-deletes.parquet",
)


def dashboard_requests(outputs: dict[str, str], member: str, region: str) -> list[Request]:
    """What Managed Grafana's Athena and CloudWatch data sources ask IAM for, to run every query of the dashboards
    (AWS's documentation of Athena's and the CloudWatch plugin's permissions): per Athena query, the workgroup's
    query calls, the Glue catalog, database and each table named in its SQL, the listing of those Iceberg tables'
    S3 locations and their metadata, manifest and data files, and the results written and read back; per CloudWatch
    query, the metric reads, Logs Insights on each log group it names (in a member account, through the OAM sink)."""
    bucket = outputs["ProjectionsBucketName"]
    glue = f"arn:aws:glue:{AWS_REGION}:{ACCOUNT}"
    workgroup = f"arn:aws:athena:{AWS_REGION}:{ACCOUNT}:workgroup/{outputs['AthenaWorkGroupName']}"
    dashboards = render_dashboards(DashboardSettings(athena_database=GLUE_DATABASE))
    database = (f"{glue}:catalog", f"{glue}:database/{GLUE_DATABASE}")
    sink = f"arn:aws:oam:{AWS_REGION}:{ACCOUNT}:sink/s-1"
    requests = [Request("oam:ListSinks", "*"), Request("oam:ListAttachedLinks", sink)]
    athena = ("GetWorkGroup", "StartQueryExecution", "GetQueryExecution", "GetQueryResults", "StopQueryExecution")
    results = ("s3:PutObject", "s3:GetObject", "s3:ListMultipartUploadParts", "s3:AbortMultipartUpload")
    for dashboard in dashboards.values():
        for _, _, sql in athena_queries(dashboard):
            tables = set(re.findall(rf'"{GLUE_DATABASE}"\."(\w+)"', sql))
            assert tables, sql
            # GetWorkGroup: the plugin reads the workgroup's engine version (query result reuse)
            requests += [Request(f"athena:{a}", workgroup) for a in athena]
            requests += [Request("glue:GetDatabase", r) for r in database]
            for table in sorted(tables):
                requests += [Request("glue:GetTable", r) for r in (*database, f"{glue}:table/{GLUE_DATABASE}/{table}")]
                prefix = f"iceberg/{table}/"
                requests.append(Request("s3:ListBucket", f"arn:aws:s3:::{bucket}", {"s3:prefix": prefix}))
                for part in ICEBERG_FILES:
                    requests.append(Request("s3:GetObject", f"arn:aws:s3:::{bucket}/{prefix}{part.format(member)}"))
            requests.append(Request("s3:GetBucketLocation", f"arn:aws:s3:::{bucket}"))
            requests += [Request(a, f"arn:aws:s3:::{bucket}/athena-results/0000-query.csv") for a in results]
        for panel in panels_of(dashboard):
            for target in panel.get("targets", []):
                if target["datasource"]["type"] != "cloudwatch":
                    continue
                if target["queryMode"] == "Metrics":
                    requests += [Request("cloudwatch:GetMetricData", "*"), Request("cloudwatch:ListMetrics", "*")]
                    continue
                for group in target["logGroups"]:
                    arn = group["arn"].replace("$region", region).replace("$account", member)
                    arn = re.sub(r"\$\{\w+\}", "example", arn)  # a variable's value: a cluster, a log group name
                    requests.append(Request("logs:StartQuery", arn))
                requests += [Request(f"logs:{a}", "*") for a in ("GetQueryResults", "StopQuery", "DescribeLogGroups")]
    return requests


def test_the_grafana_workspace_role_runs_every_dashboard_query_and_nothing_else(stack: dict[str, str]) -> None:
    grafana = role_principal("GrafanaWorkspaceRole")
    requests = dashboard_requests(stack, member="210987654321", region="eu-west-1")
    assert len({r.action for r in requests}) >= 15
    denied = sorted({str(r) for r in requests if decide(r, grafana.policies) != ALLOWED})
    assert denied == [], f"the dashboards would get AccessDenied on Managed Grafana for: {denied}"
    grafana.requests = requests
    assert unused_grants(grafana, {}) == [], "the workspace role is granted more than the dashboards need"
    bucket = stack["ProjectionsBucketName"]
    for outside in (
        Request("athena:StartQueryExecution", f"arn:aws:athena:{AWS_REGION}:{ACCOUNT}:workgroup/primary"),
        Request("s3:PutObject", f"arn:aws:s3:::{bucket}/iceberg/jobs/data/account_id=1/dt=2026-12-01/x.parquet"),
        Request("s3:GetObject", "arn:aws:s3:::another-bucket/iceberg/jobs/data/x.parquet"),
        Request("glue:UpdateTable", f"arn:aws:glue:{AWS_REGION}:{ACCOUNT}:table/{GLUE_DATABASE}/jobs"),
        Request("glue:GetTable", f"arn:aws:glue:{AWS_REGION}:{ACCOUNT}:table/another_database/jobs"),
        Request("dynamodb:Scan", f"arn:aws:dynamodb:{AWS_REGION}:{ACCOUNT}:table/{PREFIX}-jobs"),
    ):
        assert decide(outside, grafana.policies) != ALLOWED, outside


def test_the_workspace_is_customer_managed_with_that_role_and_the_workgroup_is_tagged_for_grafana() -> None:
    from cfnlint.decode.cfn_yaml import loads

    template = loads(TEMPLATE.read_text())
    trust = template["Resources"]["GrafanaWorkspaceRole"]["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert trust == [
        {
            "Effect": "Allow",
            "Principal": {"Service": "grafana.amazonaws.com"},
            "Action": "sts:AssumeRole",
            "Condition": {"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}},
        }
    ]
    tags = template["Resources"]["AthenaWorkGroup"]["Properties"]["Tags"]
    assert {"Key": "GrafanaDataSource", "Value": "true"} in tags
    spec = GrafanaSpec(name="bo", home_region=AWS_REGION, workspace_role_arn="arn:aws:iam::123456789012:role/g")
    request = spec.create_request()
    assert request["permissionType"] == "CUSTOMER_MANAGED"
    assert request["workspaceRoleArn"] == "arn:aws:iam::123456789012:role/g"
    assert request["accountAccessType"] == "CURRENT_ACCOUNT" and "workspaceOrganizationalUnits" not in request


# -- Firehose and Glue's optimizers on the Iceberg tables ------------------------------------------------------------


def iceberg_requests(outputs: dict[str, str]) -> list[Request]:
    """What Firehose's Iceberg destination and Glue's compaction and snapshot-retention optimizers ask IAM for (AWS's
    documentation of their roles), for every table the template routes to or optimizes: the catalog, database and
    table read and their metadata pointer updated; the table's files read, written and deleted (compaction rewrites,
    retention expires) and multipart uploads aborted; the bucket listed; records Firehose could not deliver written
    under the error prefix; the optimizers' run logs."""
    from cfnlint.decode.cfn_yaml import loads

    template = loads(TEMPLATE.read_text())["Resources"]
    destination = template["ExportStream"]["Properties"]["IcebergDestinationConfiguration"]
    routed = {t["DestinationTableName"] for t in destination["DestinationTableConfigurationList"]}
    names = {logical: r["Properties"]["Name"] for logical, r in template.items() if r["Type"] == "AWS::Glue::Table"}
    optimized = {
        (names[r["Properties"]["TableName"]["Ref"]], r["Properties"]["Type"])
        for r in template.values()
        if r["Type"] == "AWS::Glue::TableOptimizer"
    }
    assert routed == set(TABLES) == {table for table, _ in optimized}
    bucket, glue = outputs["ProjectionsBucketName"], f"arn:aws:glue:{AWS_REGION}:{ACCOUNT}"
    catalog = (f"{glue}:catalog", f"{glue}:database/{GLUE_DATABASE}")
    requests = [Request("glue:GetDatabase", r) for r in catalog]
    for table in sorted(routed):
        for action in ("glue:GetTable", "glue:UpdateTable"):
            requests += [Request(action, r) for r in (*catalog, f"{glue}:table/{GLUE_DATABASE}/{table}")]
        for action in ("s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"):
            requests += [
                Request(action, f"arn:aws:s3:::{bucket}/iceberg/{table}/{f.format('1')}") for f in ICEBERG_FILES
            ]
        requests.append(Request("s3:PutObject", f"arn:aws:s3:::{bucket}/iceberg-errors/{table}/2026/12/01/x"))
        prefix = {"s3:prefix": f"iceberg/{table}/"}
        requests += [
            Request(a, f"arn:aws:s3:::{bucket}", prefix) for a in ("s3:ListBucket", "s3:ListBucketMultipartUploads")
        ]
    requests.append(Request("s3:GetBucketLocation", f"arn:aws:s3:::{bucket}"))
    logs = f"arn:aws:logs:{AWS_REGION}:{ACCOUNT}:log-group"
    for _, kind in sorted(optimized):
        group = f"/aws-glue/iceberg-{kind}/logs"
        requests.append(Request("logs:CreateLogGroup", f"{logs}:{group}"))
        requests += [
            Request(a, f"{logs}:{group}:log-stream:run-1") for a in ("logs:CreateLogStream", "logs:PutLogEvents")
        ]
    return requests


def test_the_iceberg_tables_role_does_what_firehose_and_the_optimizers_do_and_nothing_else(
    stack: dict[str, str],
) -> None:
    role = role_principal("IcebergTablesRole")
    requests = iceberg_requests(stack)
    denied = sorted({str(r) for r in requests if decide(r, role.policies) != ALLOWED})
    assert denied == [], f"Firehose or the optimizers would get AccessDenied for: {denied}"
    role.requests = requests
    assert unused_grants(role, {}) == [], "the Iceberg tables' role is granted more than Firehose and Glue use"
    bucket = stack["ProjectionsBucketName"]
    for outside in (
        Request("s3:DeleteObject", f"arn:aws:s3:::{bucket}/athena-results/0000-query.csv"),
        Request("s3:DeleteObject", f"arn:aws:s3:::{bucket}/iceberg-errors/jobs/x"),
        Request("s3:PutObject", "arn:aws:s3:::another-bucket/iceberg/jobs/data/x.parquet"),
        Request("glue:UpdateTable", f"arn:aws:glue:{AWS_REGION}:{ACCOUNT}:table/another_database/jobs"),
        Request("glue:DeleteTable", f"arn:aws:glue:{AWS_REGION}:{ACCOUNT}:table/{GLUE_DATABASE}/jobs"),
        Request("dynamodb:GetItem", f"arn:aws:dynamodb:{AWS_REGION}:{ACCOUNT}:table/{PREFIX}-jobs"),
    ):
        assert decide(outside, role.policies) != ALLOWED, outside


# -- the scheduled waiting metrics -------------------------------------------------------------------------------


def test_the_waiting_metrics_read_waiting_jobs_through_the_index_and_the_scheduler_may_only_invoke_them(
    stack: dict[str, str],
) -> None:
    waiting = role_principal("WaitingMetricsRole")
    jobs = f"arn:aws:dynamodb:{AWS_REGION}:{ACCOUNT}:table/{PREFIX}-jobs"
    assert decide(Request("dynamodb:Query", f"{jobs}/index/by-status-since"), waiting.policies) == ALLOWED
    for outside in (
        Request("dynamodb:Scan", jobs),  # every job, every minute: what the index is there to avoid
        Request("dynamodb:Query", f"{jobs}/index/by-queue"),
        Request("dynamodb:PutItem", jobs),
        Request("dynamodb:UpdateItem", f"arn:aws:dynamodb:{AWS_REGION}:{ACCOUNT}:table/{PREFIX}-meta"),
        Request("dynamodb:Query", f"arn:aws:dynamodb:{AWS_REGION}:{ACCOUNT}:table/{PREFIX}-events"),
        Request("cloudwatch:PutMetricData", "*"),  # EMF in the logs: no metric API call
    ):
        assert decide(outside, waiting.policies) != ALLOWED, outside

    scheduler = role_principal("WaitingMetricsSchedulerRole")
    function = _client("lambda").get_function_configuration(FunctionName=f"{PREFIX}-waiting-metrics")["FunctionArn"]
    scheduler.requests = [Request("lambda:InvokeFunction", function)]
    assert decide(scheduler.requests[0], scheduler.policies) == ALLOWED
    assert unused_grants(scheduler, {}) == []
    for outside in (
        Request("lambda:InvokeFunction", function.replace("waiting-metrics", "aggregator")),
        Request("lambda:UpdateFunctionCode", function),
    ):
        assert decide(outside, scheduler.policies) != ALLOWED, outside
    role = _client("iam").get_role(RoleName=function_role_name("WaitingMetricsSchedulerRole"))["Role"]
    [trust] = role["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "scheduler.amazonaws.com"}
    assert trust["Condition"] == {"StringEquals": {"aws:SourceAccount": ACCOUNT}}


def function_role_name(logical_id: str) -> str:
    [name] = [
        r["RoleName"]
        for r in _client("iam").list_roles()["Roles"]
        if r["RoleName"].startswith(f"central-{logical_id}-")
    ]
    return str(name)
