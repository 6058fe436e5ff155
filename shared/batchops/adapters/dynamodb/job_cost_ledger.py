"""`JobCostLedger` in the meta table: one item per job whose `JobCost` point was emitted (`pk = job-cost`).

Outside every view generation, so a replay emits nothing again. Each claim is a conditional put: of two projectors
(or a stream batch and its redelivery) proposing one job, exactly one put succeeds.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from batchops.job_cost_metric import JobKey

LEDGER_PK = "job-cost"
KEPT_SECONDS = 15 * 24 * 3600
"""How long a claim is kept (TTL): a point is stamped with its job's end, and CloudWatch refuses points older than
14 days, so a job projected again after that could not count twice."""


class DynamoDBJobCostLedger:
    """Claims jobs with conditional puts in the `<prefix>-meta` table."""

    def __init__(self, client: Any, meta_table: str) -> None:
        self.client = client
        self.table = meta_table

    def close(self) -> None:
        """Nothing to release: the client is the application's."""

    def claim(self, jobs: Iterable[JobKey]) -> set[JobKey]:
        """Put a claim for each job unless one is there; the jobs whose put succeeded."""
        claimed: set[JobKey] = set()
        expires = str(int(time.time()) + KEPT_SECONDS)
        for account, region, job_id in jobs:
            item = {"pk": {"S": LEDGER_PK}, "sk": {"S": f"{account}#{region}#{job_id}"}, "expires_at": {"N": expires}}
            try:
                self.client.put_item(TableName=self.table, Item=item, ConditionExpression="attribute_not_exists(pk)")
            except self.client.exceptions.ConditionalCheckFailedException:
                continue
            claimed.add((account, region, job_id))
        return claimed
