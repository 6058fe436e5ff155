"""CloudWatch Embedded Metric Format documents from metric points, through aws-lambda-powertools.

CloudWatch's limits on one EMF document, kept here whatever the points: at most 100 metrics and 100 values per
metric, at most 30 dimensions per dimension set (powertools allows 29 besides its `service`, which we leave out),
dimension values of 1 to 1,024 characters, and at most 1 MB per log event.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Iterator
from typing import Any

from aws_lambda_powertools.metrics.provider.cloudwatch_emf.cloudwatch import AmazonCloudWatchEMFProvider
from aws_lambda_powertools.metrics.provider.cloudwatch_emf.constants import MAX_DIMENSIONS, MAX_METRICS

from batchops.metrics import MetricPoint

DEFAULT_NAMESPACE = "BatchOps"
VALUES_PER_DOCUMENT = MAX_METRICS - 1
"""Values of one metric (and distinct metrics) per document: powertools publishes a set by itself, on stdout, when
it reaches 100 of either, so a document is closed one before (else the CLI's `--emf-out` file would miss it)."""
MAX_DIMENSION_VALUE = 1024
"""CloudWatch's longest dimension value; a longer one is cut (no AWS name is that long: only a forged event's)."""
MAX_DOCUMENT_BYTES = 1_048_576
"""CloudWatch Logs' largest log event, which an EMF document is."""


def _dimension_value(value: str) -> str:
    # powertools drops an empty or blank dimension silently, which would publish under another dimension set.
    return value[:MAX_DIMENSION_VALUE] if value.strip() else "unknown"


def emf_documents(points: Iterable[MetricPoint], namespace: str = DEFAULT_NAMESPACE) -> Iterator[dict[str, Any]]:
    """EMF documents, one or more per dimension set and timestamp (each at its events' time), each within
    CloudWatch's limits (see the module's docstring)."""
    groups: dict[tuple[tuple[tuple[str, str], ...], int], list[MetricPoint]] = {}
    for point in points:
        groups.setdefault((point.dimensions, point.timestamp_ms), []).append(point)
    provider = AmazonCloudWatchEMFProvider(namespace=namespace, service="")
    for (dimensions, timestamp), group in groups.items():
        if len(dimensions) > MAX_DIMENSIONS:
            msg = f"{len(dimensions)} dimensions in one set: CloudWatch takes at most {MAX_DIMENSIONS} besides service"
            raise ValueError(msg)
        for document_points in _within_limits(group):
            provider.clear_metrics()  # also the dimensions: set again for every document
            for name, value in dimensions:
                provider.add_dimension(name=name, value=_dimension_value(value))
            for point in document_points:
                provider.add_metric(name=point.name, unit=point.unit, value=point.value)
            with warnings.catch_warnings():
                # Replayed history is older than CloudWatch's 14 days; the document stays faithful to the event.
                warnings.simplefilter("ignore")
                provider.set_timestamp(timestamp)
            yield dict(provider.serialize_metric_set())
    provider.clear_metrics()


def _within_limits(group: list[MetricPoint]) -> Iterator[list[MetricPoint]]:
    """The points of one dimension set and timestamp, in order, cut into documents of at most
    `VALUES_PER_DOCUMENT` metrics and values per metric (99 numbers of at most ~25 bytes each, 99 times: far
    below 1 MB)."""
    current: list[MetricPoint] = []
    counts: dict[str, int] = {}
    for point in group:
        seen = counts.get(point.name, 0)
        if seen >= VALUES_PER_DOCUMENT or (not seen and len(counts) >= VALUES_PER_DOCUMENT):
            yield current
            current, counts, seen = [], {}, 0
        current.append(point)
        counts[point.name] = seen + 1
    if current:
        yield current
