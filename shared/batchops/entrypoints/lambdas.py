"""Lambda entry points: thin wrappers that hand SQS batches and stream batches to the application.

- `aggregator`: SQS (EventBridge events from the central bus) → one save for the whole batch; if the batch
  fails, each message is recorded alone (`record_batch`) so that only the poison ones are reported
  (`batchItemFailures`), retried by SQS and, after maxReceiveCount, moved to the DLQ.
- `projector`: DynamoDB stream of the events table → the views; a failure reports the first unprocessed
  record so Lambda retries from there (bisecting in the template isolates a poison record).
"""

from __future__ import annotations

from functools import cache
from typing import Any

import orjson
from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.parser import parse
from aws_lambda_powertools.utilities.parser.models import SqsModel
from aws_lambda_powertools.utilities.typing import LambdaContext

from batchops.adapters.dynamodb.event_store import stored_event_from_stream_record
from batchops.adapters.dynamodb.stream_projection import stream_fed
from batchops.application import BatchOpsApplication
from batchops.batch_recording import BatchInput, Untranslatable
from batchops.bootstrap import Settings, build_application
from batchops.emf import emf_documents
from batchops.metrics import MetricPoint
from batchops.translation import poison_record, translate_body
from batchops.views import RejectedEvent

logger = Logger(service="batchops")
tracer = Tracer(service="batchops")


@cache
def central_application(*, project_inline: bool = False) -> BatchOpsApplication:
    """The process-wide application, built once per Lambda container from BATCHOPS_STORE."""
    app = build_application(Settings.from_environment(), metrics=True, project_inline=project_inline)
    stream_fed(app)  # BATCHOPS_STORE must be dynamodb://PREFIX in AWS: says so at once, not at the first stream batch
    return app


def _emit(points: list[MetricPoint], namespace: str) -> None:
    """EMF documents on stdout: CloudWatch turns them into metrics."""
    for document in emf_documents(points, namespace):
        print(orjson.dumps(document).decode())


def handle_sqs_batch(app: BatchOpsApplication, event: dict[str, Any]) -> PartialItemFailureResponse:
    """Record every message of an SQS batch; report only the messages that cannot be processed."""
    parse(event=event, model=SqsModel)  # the shape AWS sends; a malformed invocation fails loudly
    records = event["Records"]
    outcome = app.record_batch([_translated(r) for r in records], poison=_PoisonMessages(records))
    _emit(list(outcome.points), Settings.from_environment().namespace)
    counts = {"new": outcome.new, "duplicates": outcome.duplicates, "unusable": outcome.rejected + outcome.ignored}
    logger.info("batch recorded", extra={"messages": len(records), **counts, "failed": len(outcome.failed)})
    return {"batchItemFailures": [{"itemIdentifier": message_id} for message_id in outcome.failed]}


def _translated(record: dict[str, Any]) -> BatchInput:
    try:
        return translate_body(record["body"], _position(record["messageId"]))
    except Exception as error:  # a body that is not JSON: a poison message, isolated when the batch is recorded
        return Untranslatable(error)


class _PoisonMessages:
    """The messages of an SQS batch as `record_batch` reports them when they fail alone: by message id, kept aside
    with the receive count and the reason."""

    def __init__(self, records: list[dict[str, Any]]) -> None:
        self.records = records

    def batch_failed(self, error: Exception) -> None:
        logger.exception(
            "batch failed; recording its messages one by one to isolate the poison ones",
            extra={"messages": len(self.records)},
        )

    def input_failed(self, index: int, error: Exception) -> tuple[str, RejectedEvent]:
        # SQS retries it; after maxReceiveCount it lands in the DLQ. The reason stays with us, redacted.
        record = self.records[index]
        message_id = record["messageId"]
        receives = record["attributes"]["ApproximateReceiveCount"]
        reason = f"message {message_id} failed (receive {receives}): {type(error).__name__}: {error}"
        logger.exception("poison message", extra={"message_id": message_id, "reason": reason})
        return message_id, poison_record(reason, record["body"], _position(message_id))


def _position(message_id: str) -> str:
    """Where a kept-aside event was in the input: its SQS message."""
    return f"SQS message {message_id}"


def handle_stream_batch(app: BatchOpsApplication, event: dict[str, Any]) -> PartialItemFailureResponse:
    """Project the events of a DynamoDB stream batch; on failure report where to resume."""
    records = event.get("Records", [])
    stored = []
    for record in records:
        found = stored_event_from_stream_record(record, "uuid")
        if found is not None:
            stored.append(found)
    if not records:
        return {"batchItemFailures": []}
    first = records[0]["dynamodb"]["SequenceNumber"]
    try:
        stream_fed(app).project_stream_batch(first, stored)
        # Claimed only now that the views are committed: a redelivered batch finds its jobs claimed (at most once).
        _emit(app.job_cost_points(), Settings.from_environment().namespace)
    except Exception:
        app.discard_job_costs()
        logger.exception("projection failed", extra={"records": len(records)})
        return {"batchItemFailures": [{"itemIdentifier": first}]}
    return {"batchItemFailures": []}


@logger.inject_lambda_context
@tracer.capture_lambda_handler
def aggregator(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    """SQS → event store."""
    return handle_sqs_batch(central_application(), event)


@logger.inject_lambda_context
@tracer.capture_lambda_handler
def projector(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    """Events-table stream → views."""
    return handle_stream_batch(central_application(), event)
