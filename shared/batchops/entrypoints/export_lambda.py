"""Lambda entry point of the Athena data path: DynamoDB stream batches of the jobs and instances tables -> row
operations -> the Firehose stream that applies them to the Iceberg tables (batchops.adapters.firehose_export).

Environment: BATCHOPS_STORE (`dynamodb://PREFIX`, the projection tables), BATCHOPS_EXPORT_STREAM (the Firehose
stream).

A batch is sent as a whole: its operations are updates by unique key and deletes, safe to apply twice, so when
anything fails the handler reports the batch's first record and Lambda retries from there; with
BisectBatchOnFunctionError a poison record ends up alone and goes to the on-failure destination.
"""

from __future__ import annotations

from dataclasses import asdict
from functools import cache
from typing import Any

import boto3
from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.config import Config

from batchops.adapters.firehose_export import ExportSettings, FirehoseExporter
from batchops.bootstrap import Settings

logger = Logger(service="batchops")


def settings_from_environment(environ: dict[str, str] | None = None) -> ExportSettings:
    """The exporter's settings from the function's environment variables (batchops.bootstrap.ENVIRONMENT)."""
    settings = Settings.from_environment(environ=environ)
    if not settings.store.startswith("dynamodb://"):
        raise ValueError(f"BATCHOPS_STORE must be dynamodb://PREFIX, not {settings.store!r}")
    if not settings.export_stream:
        raise ValueError("BATCHOPS_EXPORT_STREAM is not set")
    return ExportSettings(stream=settings.export_stream, store_prefix=settings.store.removeprefix("dynamodb://"))


@cache
def firehose_exporter() -> FirehoseExporter:
    """The process-wide exporter (its clients live as long as the container)."""
    config = Config(retries={"mode": "standard"})
    return FirehoseExporter(
        boto3.client("firehose", config=config), boto3.client("dynamodb", config=config), settings_from_environment()
    )


def handle_export_batch(exporter: FirehoseExporter, event: dict[str, Any]) -> PartialItemFailureResponse:
    """Export a stream batch; on failure report its first record so that Lambda retries from there."""
    records = event.get("Records", [])
    if not records:
        return {"batchItemFailures": []}
    try:
        outcome = exporter.export(records)
    except Exception:
        logger.exception("export failed", extra={"records": len(records)})
        return {"batchItemFailures": [{"itemIdentifier": records[0]["dynamodb"]["SequenceNumber"]}]}
    logger.info("batch exported", extra=asdict(outcome))
    return {"batchItemFailures": []}


@logger.inject_lambda_context
def exporter(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    """Jobs and instances table streams -> Firehose -> the Iceberg tables."""
    return handle_export_batch(firehose_exporter(), event)
