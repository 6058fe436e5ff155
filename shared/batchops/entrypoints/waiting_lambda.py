"""Lambda entry point of the waiting metrics: EventBridge Scheduler invokes it every minute; it reads the jobs not yet
running from the projection tables and prints EMF `JobsWaiting` and `OldestWaitingSeconds` per AccountId, Region and
JobQueue (batchops.waiting). The age of a wait cannot come from events: Batch sends none while a job sits RUNNABLE.

Environment: BATCHOPS_STORE (`dynamodb://PREFIX`), BATCHOPS_NAMESPACE (the metrics' namespace).
"""

from __future__ import annotations

import time
from functools import cache
from typing import Any

import orjson
from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from batchops.bootstrap import Settings, build_application
from batchops.emf import emf_documents
from batchops.views import ViewStore
from batchops.waiting import waiting_points, waits_in

logger = Logger(service="batchops")


@cache
def waiting_views() -> ViewStore:
    """The projection tables of BATCHOPS_STORE, opened once per container (reads only: no projection here)."""
    settings = Settings.from_environment()
    if not settings.store.startswith("dynamodb://"):
        raise ValueError(f"BATCHOPS_STORE must be dynamodb://PREFIX, not {settings.store!r}")
    return build_application(settings, metrics=False, project_inline=False).views


def publish_waiting_metrics(views: ViewStore, namespace: str, now_ms: int) -> dict[str, int]:
    """Print the EMF documents of the waits at `now_ms` (CloudWatch makes metrics of them); returns what was sent."""
    queues = waits_in(views, now_ms)
    for document in emf_documents(waiting_points(queues, now_ms), namespace):
        print(orjson.dumps(document).decode())
    sent = {"queues": len(queues), "jobs_waiting": sum(q.waiting for q in queues)}
    logger.info("waiting metrics published", extra=sent)
    return sent


@logger.inject_lambda_context
def waiting_metrics(event: dict[str, Any], context: LambdaContext) -> dict[str, int]:
    """EventBridge Scheduler, every minute -> the waiting metrics (the event carries nothing we need)."""
    return publish_waiting_metrics(waiting_views(), Settings.from_environment().namespace, int(time.time() * 1000))
