"""Lambda entry point of the Athena export: DynamoDB stream batches of the jobs and instances tables → the
Parquet objects on S3 and their Glue partitions (batchops.adapters.athena_export).

Environment: BATCHOPS_STORE (`dynamodb://PREFIX`, the projection tables), BATCHOPS_EXPORT_BUCKET,
BATCHOPS_EXPORT_PREFIX (default `projections`), BATCHOPS_GLUE_DATABASE (default `batchops`).

A batch is applied as a whole: rewriting a partition is idempotent (rows are replaced by key, generations
only move forward), so when anything fails the handler reports the batch's first record and Lambda retries
from there; with BisectBatchOnFunctionError a poison record ends up alone and goes to the on-failure
destination.
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

from batchops.adapters.athena_export import AthenaExporter, ExportSettings
from batchops.bootstrap import Settings

logger = Logger(service="batchops")


def settings_from_environment(environ: dict[str, str] | None = None) -> ExportSettings:
    """The exporter's settings from the function's environment variables (batchops.bootstrap.ENVIRONMENT)."""
    settings = Settings.from_environment(environ=environ)
    if not settings.store.startswith("dynamodb://"):
        raise ValueError(f"BATCHOPS_STORE must be dynamodb://PREFIX, not {settings.store!r}")
    if not settings.export_bucket:
        raise ValueError("BATCHOPS_EXPORT_BUCKET is not set")
    return ExportSettings(
        bucket=settings.export_bucket,
        store_prefix=settings.store.removeprefix("dynamodb://"),
        key_prefix=settings.export_prefix,
        database=settings.glue_database,
    )


@cache
def athena_exporter() -> AthenaExporter:
    """The process-wide exporter (clients and the known Glue partitions live as long as the container)."""
    config = Config(retries={"mode": "standard"})
    return AthenaExporter(
        boto3.client("s3", config=config),
        boto3.client("glue", config=config),
        boto3.client("dynamodb", config=config),
        settings_from_environment(),
    )


def handle_export_batch(exporter: AthenaExporter, event: dict[str, Any]) -> PartialItemFailureResponse:
    """Export a stream batch; on failure report its first record so that Lambda retries from there."""
    records = event.get("Records", [])
    if not records:
        return {"batchItemFailures": []}
    try:
        outcome = exporter.export(records)
    except Exception:
        logger.exception("export failed", extra={"records": len(records)})
        return {"batchItemFailures": [{"itemIdentifier": records[0]["dynamodb"]["SequenceNumber"]}]}
    figures = asdict(outcome)
    figures.pop("written")
    logger.info("batch exported", extra=figures)
    return {"batchItemFailures": []}


@logger.inject_lambda_context
def exporter(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    """Jobs and instances table streams → Parquet on S3 → Glue partitions."""
    return handle_export_batch(athena_exporter(), event)
