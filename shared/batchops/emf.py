"""CloudWatch Embedded Metric Format documents from metric points, through aws-lambda-powertools."""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Iterator
from typing import Any

from aws_lambda_powertools.metrics.provider.cloudwatch_emf.cloudwatch import AmazonCloudWatchEMFProvider

from batchops.metrics import MetricPoint

DEFAULT_NAMESPACE = "BatchOps"


def emf_documents(points: Iterable[MetricPoint], namespace: str = DEFAULT_NAMESPACE) -> Iterator[dict[str, Any]]:
    """One EMF document per dimension set and timestamp; each document's timestamp is its events' time."""
    groups: dict[tuple[tuple[tuple[str, str], ...], int], list[MetricPoint]] = {}
    for point in points:
        groups.setdefault((point.dimensions, point.timestamp_ms), []).append(point)
    provider = AmazonCloudWatchEMFProvider(namespace=namespace, service="")
    for (dimensions, timestamp), group in groups.items():
        for name, value in dimensions:
            provider.add_dimension(name=name, value=value)
        for point in group:
            provider.add_metric(name=point.name, unit=point.unit, value=point.value)
        with warnings.catch_warnings():
            # Replayed history is older than CloudWatch's 14 days; the document stays faithful to the event.
            warnings.simplefilter("ignore")
            provider.set_timestamp(timestamp)
        yield dict(provider.serialize_metric_set())
        provider.clear_metrics()
