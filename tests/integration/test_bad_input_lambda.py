"""Bad input through the aggregator Lambda's handler (SQS → DynamoDB on moto): the same rules as the CLI, the same
kept-aside records. A poison message's text is scrubbed before it is cut; a body over EventBridge's limit is kept aside
with its size and without its body, and is not a poison message."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from batchops.adapters.dynamodb.stream_projection import stream_fed
from batchops.application import BatchOpsApplication
from batchops.bootstrap import Settings, build_application
from batchops.entrypoints.lambdas import handle_sqs_batch
from batchops.translation import EXCERPT_CHARS, MAX_EVENT_BYTES
from conftest import AWS_REGION, sample


def _record(body: str, n: int) -> dict[str, Any]:
    return {
        "messageId": f"m-{n}",
        "receiptHandle": f"r-{n}",
        "body": body,
        "attributes": {
            "ApproximateReceiveCount": "1",
            "SentTimestamp": "1700000000000",
            "SenderId": "AIDAEXAMPLE",
            "ApproximateFirstReceiveTimestamp": "1700000000000",
        },
        "messageAttributes": {},
        "md5OfBody": hashlib.md5(body.encode()).hexdigest(),
        "eventSource": "aws:sqs",
        "eventSourceARN": f"arn:aws:sqs:{AWS_REGION}:123456789012:events",
        "awsRegion": AWS_REGION,
    }


def _app() -> BatchOpsApplication:
    app = build_application(Settings.from_environment(store="dynamodb://bad"), project_inline=True)
    stream_fed(app)  # wired to DynamoDB
    return app


def test_a_poison_message_is_scrubbed_before_it_is_cut_and_a_big_one_is_kept_with_its_size(aws: None, capsys) -> None:
    secret = "S3CR3T-poison-environment-value-0001"
    event = sample("aws-batch--batch-job-state-change--failed")
    event["detail"]["container"]["environment"] = [{"name": "PASSWORD", "value": secret}]

    def padded(length: int) -> str:
        return json.dumps(
            {
                "version": "0",
                "account": "123456789012",
                "detail-type": "Batch Job State Change",
                "detail": {"padding": "p" * length, "container": {"environment": [{"name": "P", "value": secret}]}},
            }
        )

    # The secret straddles where the excerpt is cut: cut first and scrubbed after, its first 14 characters would stay.
    length = 100 + (EXCERPT_CHARS - 14) - padded(100).index(secret)
    cut = padded(length)[: padded(length).index(secret) + 20]  # not JSON: a poison message
    assert cut.index(secret[:20]) == EXCERPT_CHARS - 14
    big = dict(event, detail={**event["detail"], "statusReason": "x" * MAX_EVENT_BYTES})
    good = sample("aws-batch--batch-job-state-change--succeeded")
    app = _app()
    response = handle_sqs_batch(
        app, {"Records": [_record(cut, 1), _record(json.dumps(big), 2), _record(json.dumps(good), 3)]}
    )
    assert response["batchItemFailures"] == [{"itemIdentifier": "m-1"}]  # only the poison one goes back to SQS
    kept = {json.loads(r.body)["position"]: (r, json.loads(r.body)) for r in app.views.rejected()}
    assert set(kept) == {"SQS message m-1", "SQS message m-2"}
    poison, poison_body = kept["SQS message m-1"]
    assert "JSONDecodeError" in poison.reason and poison_body["envelope"]["account"] == "123456789012"
    oversized, oversized_body = kept["SQS message m-2"]
    assert oversized_body["size"] == len(json.dumps(big).encode()) and oversized_body["excerpt"] == ""
    assert "over EventBridge's limit" in oversized.reason
    assert [r["job_id"] for r in app.views.jobs()] == [good["detail"]["jobId"]]
    everything = json.dumps([vars(r) for r in app.views.rejected()]) + capsys.readouterr().out
    assert secret[:12] not in everything
