"""Lambda entry points: thin wrappers that hand SQS batches and stream batches to the application.

- `aggregator`: SQS (EventBridge events from the central bus) → one save for the whole batch; if the batch
  fails, each message is recorded alone through powertools' BatchProcessor so that only the poison ones
  are reported (`batchItemFailures`), retried by SQS and, after maxReceiveCount, moved to the DLQ.
- `projector`: DynamoDB stream of the events table → the views; a failure reports the first unprocessed
  record so Lambda retries from there (bisecting in the template isolates a poison record).
"""

from __future__ import annotations

import os
from functools import cache
from typing import Any

import orjson
from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.parser import parse
from aws_lambda_powertools.utilities.parser.models import SqsModel
from aws_lambda_powertools.utilities.typing import LambdaContext

from batchops.application import RecordOutcome, pipeline_metric_points
from batchops.aws.central import CentralApplication
from batchops.aws.dynamodb_store import stored_event_from_stream_record
from batchops.bootstrap import Settings, build_application
from batchops.emf import emf_documents
from batchops.facts import Parsed
from batchops.metrics import MetricPoint
from batchops.translation import poison_record, translate_body

logger = Logger(service="batchops")
tracer = Tracer(service="batchops")


@cache
def central_application(*, project_inline: bool = False) -> CentralApplication:
    """The process-wide application, built once per Lambda container from BATCHOPS_STORE."""
    app = build_application(Settings.from_environment(), metrics=True, project_inline=project_inline)
    assert isinstance(app, CentralApplication), "BATCHOPS_STORE must be dynamodb://PREFIX in AWS"
    return app


def _emit(points: list[MetricPoint], namespace: str) -> None:
    """EMF documents on stdout: CloudWatch turns them into metrics."""
    for document in emf_documents(points, namespace):
        print(orjson.dumps(document).decode())


def handle_sqs_batch(app: CentralApplication, event: dict[str, Any], context: Any = None) -> PartialItemFailureResponse:
    """Record every message of an SQS batch; report only the messages that cannot be processed."""
    parse(event=event, model=SqsModel)  # the shape AWS sends; a malformed invocation fails loudly
    namespace = os.environ.get("BATCHOPS_NAMESPACE", "BatchOps")
    records = event["Records"]
    facts: list[Parsed] = []
    unusable = []
    counters: dict[tuple[str, str], list[int]] = {}
    try:
        for record in records:
            result = translate_body(record["body"], _position(record["messageId"]))
            if isinstance(result, Parsed):
                facts.append(result)
            else:
                kept = result
                unusable.append(kept)
                slot = counters.setdefault((kept.account_id or "unknown", kept.region or "unknown"), [0, 0, 0, 0])
                slot[2 if kept.rejected else 3] += 1
        outcome = app.record_with_retry(facts)
    except Exception:
        logger.exception(
            "batch failed; recording its messages one by one to isolate the poison ones",
            extra={"messages": len(records)},
        )
        return _one_by_one(app, event, context, namespace)
    if unusable:
        app.views.keep_rejected(unusable)
    app.save_counters(outcome, counters)
    merged = {k: list(v) for k, v in outcome.counters.items()}
    for key, values in counters.items():
        merged[key] = [a + b for a, b in zip(merged.get(key, [0, 0, 0, 0]), values, strict=True)]
    at = max((f.fact["at"] for f in facts), default=0)
    _emit([*outcome.points, *pipeline_metric_points(merged, at)], namespace)
    logger.info(
        "batch recorded",
        extra={
            "messages": len(records),
            "new": outcome.new,
            "duplicates": outcome.duplicates,
            "unusable": len(unusable),
        },
    )
    return {"batchItemFailures": []}


def _one_by_one(
    app: CentralApplication, event: dict[str, Any], context: Any, namespace: str
) -> PartialItemFailureResponse:
    # A batch of one poison message must still answer with its failure, not raise.
    processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)

    def record_one(record: SQSRecord) -> None:
        try:
            result = translate_body(record.body, _position(record.message_id))
            if isinstance(result, Parsed):
                outcome = app.record_with_retry([result])
                app.save_counters(outcome, {})
                _emit([*outcome.points, *pipeline_metric_points(outcome.counters, result.fact["at"])], namespace)
            else:
                # Counted as in a whole batch: the pipeline's figures do not depend on a poison neighbour.
                kept = result
                app.views.keep_rejected([kept])
                slots = [0, 0, 1, 0] if kept.rejected else [0, 0, 0, 1]
                counters = {(kept.account_id or "unknown", kept.region or "unknown"): slots}
                app.save_counters(RecordOutcome(), counters)
                _emit(list(pipeline_metric_points(counters, 0)), namespace)
        except Exception as error:
            # SQS retries it; after maxReceiveCount it lands in the DLQ. The reason stays with us, redacted.
            reason = (
                f"message {record.message_id} failed (receive {record.attributes.approximate_receive_count}):"
                f" {type(error).__name__}: {error}"
            )
            logger.exception("poison message", extra={"message_id": record.message_id, "reason": reason})
            app.views.keep_rejected([poison_record(reason, record.body, _position(record.message_id))])
            raise

    return process_partial_response(event=event, record_handler=record_one, processor=processor, context=context)


def _position(message_id: str) -> str:
    """Where a kept-aside event was in the input: its SQS message."""
    return f"SQS message {message_id}"


def handle_stream_batch(app: CentralApplication, event: dict[str, Any]) -> PartialItemFailureResponse:
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
        app.project_stream_batch(first, stored)
    except Exception:
        logger.exception("projection failed", extra={"records": len(records)})
        return {"batchItemFailures": [{"itemIdentifier": first}]}
    return {"batchItemFailures": []}


@logger.inject_lambda_context
@tracer.capture_lambda_handler
def aggregator(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    """SQS → event store."""
    return handle_sqs_batch(central_application(), event, context)


@logger.inject_lambda_context
@tracer.capture_lambda_handler
def projector(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    """Events-table stream → views."""
    return handle_stream_batch(central_application(), event)
