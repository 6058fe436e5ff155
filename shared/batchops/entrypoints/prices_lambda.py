"""Lambda entry point of the daily price refresh: EventBridge Scheduler invokes it once a day; it reads which instance
types, zones and regions the stored jobs ran in and stores their on-demand, spot and Fargate prices when they changed
(batchops.prices.refresh_prices; AWS calls in batchops.adapters.aws_prices). Costs read the stored, dated prices.

Environment: BATCHOPS_STORE (`dynamodb://PREFIX`).
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from batchops.adapters.aws_prices import aws_price_source
from batchops.bootstrap import Settings
from batchops.price_service import refresh_from_jobs

logger = Logger(service="batchops")


def refresh_central_prices(settings: Settings, source: Any, day: str | None = None) -> dict[str, int]:
    """Refresh the central store's prices from the source; returns (and logs) what was asked and stored."""
    if not settings.store.startswith("dynamodb://"):
        raise ValueError(f"BATCHOPS_STORE must be dynamodb://PREFIX, not {settings.store!r}")
    report = asdict(refresh_from_jobs(settings, source, day=day))
    logger.info("prices refreshed", extra=report)
    return report


@logger.inject_lambda_context
def refresh_prices(event: dict[str, Any], context: LambdaContext) -> dict[str, int]:
    """EventBridge Scheduler, daily -> the prices the jobs call for (the event carries nothing we need)."""
    return refresh_central_prices(Settings.from_environment(), aws_price_source())
