"""`JobCostLedger` in the SQLite store's file: a `job_cost_emitted` table beside the views, outside their generations
(a replay emits nothing again)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from pathlib import Path

from batchops.job_cost_metric import JobKey

_SCHEMA = """
CREATE TABLE IF NOT EXISTS job_cost_emitted (
    account_id TEXT NOT NULL, region TEXT NOT NULL, job_id TEXT NOT NULL,
    PRIMARY KEY (account_id, region, job_id)
)
"""


class SQLiteJobCostLedger:
    """Claims jobs by inserting them once (two ingests into one file: the insert decides which one emits)."""

    def __init__(self, path: Path | str) -> None:
        self.connection = sqlite3.connect(str(path), timeout=30)
        self.connection.execute(_SCHEMA)

    def close(self) -> None:
        """Close the connection."""
        self.connection.close()

    def claim(self, jobs: Iterable[JobKey]) -> set[JobKey]:
        """Insert the jobs not there yet, in one transaction; those inserted."""
        claimed: set[JobKey] = set()
        with self.connection:
            for job in jobs:
                inserted = self.connection.execute(
                    "INSERT INTO job_cost_emitted VALUES (?, ?, ?) ON CONFLICT DO NOTHING RETURNING job_id", job
                ).fetchone()
                if inserted is not None:
                    claimed.add(job)
        return claimed
