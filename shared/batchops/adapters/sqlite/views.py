"""SQLite view store: the projections beside the event store in the same database file."""

from __future__ import annotations

import operator
import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from uuid import UUID

import orjson

from batchops.compute_environments import compute_environment_key
from batchops.projection import (
    INSTANCE_FIELDS,
    JOB_EXTRA_FIELDS,
    JOB_FIELDS,
    LIST_FIELDS,
    InstanceFacts,
    attempt_rows,
    timeline_rows,
)
from batchops.tuning import DEFAULT_TUNING
from batchops.views import ALL_JOBS, JobFilter, PipelineCounters, RejectedEvent

_JOB_COLUMNS = (*JOB_FIELDS, *JOB_EXTRA_FIELDS)
_INSTANCE_COLUMNS = tuple(f for f in INSTANCE_FIELDS if f != "jobs_run")
_BOOLEANS = frozenset({"spot_interrupted"})
_row_values = operator.itemgetter(*_JOB_COLUMNS)
_LIST_POSITIONS = tuple(i for i, c in enumerate(_JOB_COLUMNS) if c in LIST_FIELDS)


def _job_values(row: dict[str, Any]) -> list[Any]:
    """A job row's values in column order, its lists as JSON text (SQLite keeps scalars only)."""
    values = list(_row_values(row))
    for position in _LIST_POSITIONS:
        values[position] = orjson.dumps(values[position]).decode()
    return values


def _tables(g: int) -> list[str]:
    """A generation's tables, in its own database file attached as schema `g<N>` (names stay unique, so queries
    name them unqualified), with the instance indexes the job rows' joins need; `_job_indexes` come after."""
    job_cols = ", ".join(f'"{c}"' for c in _JOB_COLUMNS)
    instance_cols = ", ".join(f'"{c}"' for c in _INSTANCE_COLUMNS)
    return [
        f"CREATE TABLE IF NOT EXISTS g{g}.jobs_{g} (key TEXT PRIMARY KEY, {job_cols}, fold BLOB)",
        f"CREATE TABLE IF NOT EXISTS g{g}.instances_{g} (key TEXT PRIMARY KEY, {instance_cols}, spot_signal INTEGER,"
        " fold BLOB)",
        f"CREATE INDEX IF NOT EXISTS g{g}.instances_{g}_ci ON instances_{g}"
        " (account_id, region, container_instance_arn)",
        f"CREATE INDEX IF NOT EXISTS g{g}.instances_{g}_id ON instances_{g} (account_id, region, instance_id)",
        f"CREATE INDEX IF NOT EXISTS g{g}.instances_{g}_ce ON instances_{g} (account_id, region, compute_environment)",
        f"CREATE TABLE IF NOT EXISTS g{g}.compute_environments_{g} (key TEXT PRIMARY KEY, account_id TEXT, region TEXT,"
        " name TEXT, fold BLOB, spot_signal INTEGER, pricing TEXT)",
        f"CREATE TABLE IF NOT EXISTS g{g}.placements_{g} (job_key TEXT, attempt INTEGER, account_id TEXT, region TEXT,"
        " container_instance_arn TEXT, instance_id TEXT, PRIMARY KEY (job_key, attempt))",
        f"CREATE TABLE IF NOT EXISTS g{g}.tracking_{g} (application_name TEXT PRIMARY KEY, notification_id INTEGER)",
    ]


def _job_indexes(g: int) -> list[str]:
    """The indexes on a generation's job rows and placements (for the joins from an instance or compute environment
    to its jobs, and the job-id and status lookups). A rebuild creates them once its jobs are written: one sorted
    build is cheaper than keeping seven indexes up to date row by row."""
    return [
        f"CREATE INDEX IF NOT EXISTS g{g}.jobs_{g}_ci ON jobs_{g} (account_id, region, container_instance_arn)",
        f"CREATE INDEX IF NOT EXISTS g{g}.jobs_{g}_instance ON jobs_{g} (account_id, region, instance_id)",
        f"CREATE INDEX IF NOT EXISTS g{g}.jobs_{g}_ce ON jobs_{g} (account_id, region, compute_environment)",
        f"CREATE INDEX IF NOT EXISTS g{g}.jobs_{g}_job_id ON jobs_{g} (job_id)",
        f"CREATE INDEX IF NOT EXISTS g{g}.jobs_{g}_status ON jobs_{g} (status)",
        f"CREATE INDEX IF NOT EXISTS g{g}.placements_{g}_ci ON placements_{g}"
        " (account_id, region, container_instance_arn)",
        f"CREATE INDEX IF NOT EXISTS g{g}.placements_{g}_id ON placements_{g} (account_id, region, instance_id)",
    ]


_SHARED_TABLES = [
    "CREATE TABLE IF NOT EXISTS view_generations (generation INTEGER PRIMARY KEY, state TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS pipeline_counters (account_id TEXT, region TEXT, ingested INTEGER,"
    " duplicates INTEGER, rejected INTEGER, ignored INTEGER, PRIMARY KEY (account_id, region))",
    "CREATE TABLE IF NOT EXISTS rejected_events (fingerprint TEXT PRIMARY KEY, received_at TEXT, reason TEXT,"
    " rejected INTEGER, detail_type TEXT, account_id TEXT, region TEXT, body TEXT)",
]


class SQLiteViewStore:
    """Views in one SQLite file per generation beside the event store's file (`<store>.views-<N>`, attached to the
    store's connection); `view_generations` in the store's file says which one readers see.

    A file per generation makes a replay cheap to build and to retire: the generation being rebuilt is written
    without waiting for the disk (it is rebuilt whole if interrupted) and made durable once before it becomes
    current; the retired one is a file deleted, not tables freed page by page inside the event store's file."""

    application_name = "batchops"

    def __init__(
        self, path: str | Path, *, create: bool = True, queued_rows: int = DEFAULT_TUNING.job_rows_queued
    ) -> None:
        """`queued_rows`: job rows a writing session queues before it writes them (`Tuning.job_rows_queued`)."""
        self.path = str(path)
        self.queued_rows = queued_rows
        self._attached: set[int] = set()
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA busy_timeout=30000")
        # Sorts (the job indexes a replay builds) spill to temporary files, not memory: a large replay's peak stays
        # flat (measured: docs/ingest-performance.md, "Tuning values").
        self._db.row_factory = sqlite3.Row
        if not create:  # a reader of tables another connection made (a replay worker)
            return
        with self._transaction():
            for statement in _SHARED_TABLES:
                self._db.execute(statement)
            if self._db.execute("SELECT COUNT(*) FROM view_generations").fetchone()[0] == 0:
                self._db.execute("INSERT INTO view_generations VALUES (1, 'current')")
                self._delete_files(1)  # a store made anew where one was deleted: its views file may still lie there
            self._drop_views_of_older_versions()
        generation = self.current_generation()
        with self._transaction():
            for statement in (*_tables(generation), *_job_indexes(generation)):
                self._db.execute(statement)
            self._add_missing_job_columns(generation)

    def _add_missing_job_columns(self, generation: int) -> None:
        """Give a generation written by an older version the job columns added since (null until a replay or the
        job's next event fills them: the events they come from were not read then)."""
        present = {row[1] for row in self._db.execute(f"PRAGMA g{generation}.table_info(jobs_{generation})")}
        for column in _JOB_COLUMNS:
            if column not in present:
                self._db.execute(f'ALTER TABLE g{generation}.jobs_{generation} ADD COLUMN "{column}"')

    def _drop_views_of_older_versions(self) -> None:
        """Before views had files of their own they were tables in the store's file: drop those (views are derived;
        the current generation's empty file starts at position 0, and the next ingest or replay refills it)."""
        legacy = self._db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND (name GLOB 'jobs_[0-9]*'"
            " OR name GLOB 'instances_[0-9]*' OR name GLOB 'compute_environments_[0-9]*'"
            " OR name GLOB 'placements_[0-9]*' OR name GLOB 'tracking_[0-9]*')"
        ).fetchall()
        for (name,) in legacy:
            self._db.execute(f'DROP TABLE "{name}"')

    def close(self) -> None:
        """Close the connection."""
        self._db.close()

    def generation_file(self, generation: int) -> Path:
        """The database file of a generation's views."""
        store = Path(self.path)
        return store.with_name(f"{store.name}.views-{generation}")

    def _attach(self, generation: int) -> None:
        """Attach a generation's file (created if missing) to the connection, outside any transaction."""
        if generation in self._attached:
            return
        if self.path == ":memory:":
            self._db.execute(f"ATTACH DATABASE ':memory:' AS g{generation}")
        else:
            self._db.execute(f"ATTACH DATABASE ? AS g{generation}", (str(self.generation_file(generation)),))
            # 8 KiB pages (takes effect on a new file only): a job row with its fold is 3-5 KB, which on 4 KiB pages
            # spills into overflow pages.
            self._db.execute(f"PRAGMA g{generation}.page_size=8192")
            self._db.execute(f"PRAGMA g{generation}.journal_mode=WAL")
            self._db.execute(f"PRAGMA g{generation}.synchronous=NORMAL")
            # The page cache stays SQLite's default 2 MB (a cache size is per attached file): larger ones bought little
            # time for their memory (measured: docs/ingest-performance.md, "Tuning values").
        self._attached.add(generation)

    def _detach(self, generation: int) -> None:
        if generation in self._attached:
            self._db.execute(f"DETACH DATABASE g{generation}")
            self._attached.discard(generation)

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    # generations -------------------------------------------------------------------------------------
    def current_generation(self) -> int:
        """The generation readers see (its file attached, when called outside a transaction)."""
        row = self._db.execute("SELECT generation FROM view_generations WHERE state = 'current'").fetchone()
        generation = int(row[0])
        if not self._db.in_transaction:
            if self._attached - {generation}:  # another process replayed: its retired file is gone
                for stale in self._attached - {generation, *self._building()}:
                    self._detach(stale)
            self._attach(generation)
        return generation

    def _building(self) -> list[int]:
        return [int(r[0]) for r in self._db.execute("SELECT generation FROM view_generations WHERE state = 'building'")]

    def start_generation(self) -> int:
        """An empty generation to rebuild into. An unfinished one (an interrupted replay) is emptied and reused: it
        was written without waiting for the disk, so it is rebuilt whole."""
        for unfinished in self._building():
            self._detach(unfinished)
            self._delete_files(unfinished)
        with self._transaction() as db:
            building = self._building()
            if building:
                generation = building[0]
            else:
                generation = int(db.execute("SELECT MAX(generation) FROM view_generations").fetchone()[0]) + 1
                db.execute("INSERT INTO view_generations VALUES (?, 'building')", (generation,))
                self._delete_files(generation)  # a file of that number can only be left from a deleted store
        self.write_unsynced(generation)
        with self._transaction() as db:
            for statement in _tables(generation):
                db.execute(statement)
        return generation

    def write_unsynced(self, generation: int) -> None:
        """Write a generation being rebuilt on this connection without waiting for the disk."""
        self._attach(generation)
        # Built in one go and rebuilt whole if interrupted: no fsync per commit nor per checkpoint; made durable once at
        # the switch. (Checkpoints stay automatic: a WAL grown to the size of the generation slows every page read
        # and leaves the whole copy for the switch.)
        self._db.execute(f"PRAGMA g{generation}.synchronous=OFF")

    def index_generation(self, generation: int) -> None:
        """Create a rebuilt generation's job indexes (`start_generation` leaves them out while jobs are bulk
        written; until then, a live ingest's joins into that generation scan its job rows)."""
        self._attach(generation)
        # The rows written so far reach the disk while their indexes are built: the switch's fsync is left the rest.
        flushing = None if self.path == ":memory:" else threading.Thread(target=self._fsync, args=(generation,))
        if flushing is not None:
            flushing.start()
        try:
            with self._transaction() as db:
                for statement in _job_indexes(generation):
                    db.execute(statement)
        finally:
            if flushing is not None:
                flushing.join()

    def _fsync(self, generation: int) -> None:
        descriptor = os.open(self.generation_file(generation), os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)

    def switch_generation(self, generation: int) -> None:
        """Make a rebuilt generation durable and current, then delete the previous one's file."""
        self._db.execute(f"PRAGMA g{generation}.wal_checkpoint(TRUNCATE)")
        if self.path != ":memory:":
            self._fsync(generation)
        self._db.execute(f"PRAGMA g{generation}.synchronous=NORMAL")
        old = self.current_generation()
        with self._transaction() as db:  # waits for any write in progress on the old generation (it is attached)
            db.execute("UPDATE view_generations SET state = 'current' WHERE generation = ?", (generation,))
            db.execute("DELETE FROM view_generations WHERE generation = ?", (old,))
        self._detach(old)
        self._delete_files(old)

    def _delete_files(self, generation: int) -> None:
        if self.path == ":memory:":
            return
        database = self.generation_file(generation)
        for suffix in ("", "-wal", "-shm"):
            database.with_name(database.name + suffix).unlink(missing_ok=True)

    def position(self, generation: int | None = None) -> int:
        """The last notification id applied to a generation."""
        g = generation or self.current_generation()
        self._attach(g)
        row = self._db.execute(
            f"SELECT notification_id FROM tracking_{g} WHERE application_name = ?", (self.application_name,)
        ).fetchone()
        return int(row[0]) if row else 0

    @contextmanager
    def session(self, generation: int | None = None) -> Iterator[SQLiteSession]:
        """A unit of work on a generation, committed on exit."""
        g = generation or self.current_generation()
        self._attach(g)
        with self._transaction() as db:
            session = SQLiteSession(db, g, self.application_name, queued_rows=self.queued_rows)
            yield session
            session.flush()

    def reading_session(self, generation: int) -> SQLiteSession:
        """A session that reads a generation's joins outside any write transaction and only collects the job rows
        it is given (`take_job_rows`): a replay worker's, whose rows another connection writes."""
        self._attach(generation)
        return SQLiteSession(self._db, generation, self.application_name)

    def write_job_rows(self, generation: int, rows: tuple[list[Any], list[tuple[Any, ...]]]) -> None:
        """Write job rows a reading session collected, in one transaction."""
        self._attach(generation)
        with self._transaction() as db:
            session = SQLiteSession(db, generation, self.application_name)
            session.write_job_rows(rows)

    # queries -----------------------------------------------------------------------------------------
    def jobs(self, query: JobFilter = ALL_JOBS) -> Iterator[dict[str, Any]]:
        """Job rows, filtered, in (account, region, created, job id) order."""
        g = self.current_generation()
        clauses: list[str] = []
        params: list[Any] = []
        for column, values in (
            ("account_id", query.accounts),
            ("region", query.regions),
            ("status", query.statuses),
            ("queue", query.queues),
            ("compute_environment", query.compute_environments),
        ):
            if values:
                clauses.append(f"{column} IN ({', '.join('?' * len(values))})")
                params.extend(values)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        limit = f"LIMIT {int(query.limit)}" if query.limit else ""
        columns = ", ".join(f'"{c}"' for c in _JOB_COLUMNS)
        cursor = self._db.execute(
            f"SELECT {columns} FROM jobs_{g} {where} ORDER BY account_id, region, created_at, job_id {limit}",
            params,
        )
        for row in cursor:
            yield _job_dict(row)

    def job(self, job_id: str, account: str | None = None) -> list[dict[str, Any]]:
        """Every job with that id, with its attempts and timeline."""
        g = self.current_generation()
        columns = ", ".join(f'"{c}"' for c in _JOB_COLUMNS)
        sql = f"SELECT {columns}, fold FROM jobs_{g} WHERE job_id = ?"
        params: list[Any] = [job_id]
        if account:
            sql += " AND account_id = ?"
            params.append(account)
        joins = self.reading_session(g)
        found = []
        for row in self._db.execute(sql + " ORDER BY account_id, region", params):
            job = _job_dict(row)
            fold = orjson.loads(row["fold"])
            job["timeline"] = timeline_rows(fold)
            job["attempt_details"] = attempt_rows(fold, joins)
            found.append(job)
        return found

    def instances(self) -> Iterator[dict[str, Any]]:
        """Compute-instance rows with the number of distinct jobs that ran on each."""
        g = self.current_generation()
        columns = ", ".join(f'i."{c}"' for c in _INSTANCE_COLUMNS)
        cursor = self._db.execute(
            f"SELECT {columns}, (SELECT COUNT(DISTINCT p.job_key) FROM placements_{g} p"
            " WHERE p.account_id = i.account_id AND p.region = i.region"
            " AND (p.instance_id = i.instance_id OR p.container_instance_arn = i.container_instance_arn))"
            f" AS jobs_run FROM instances_{g} i ORDER BY i.account_id, i.region, i.registered_at, i.instance_id"
        )
        for row in cursor:
            values = dict(row)
            values["spot_interrupted"] = bool(values["spot_interrupted"])
            yield {f: values.get(f) for f in INSTANCE_FIELDS}

    def timeline(self) -> Iterator[dict[str, Any]]:
        """Job state-change rows for every job."""
        g = self.current_generation()
        for row in self._db.execute(f"SELECT fold FROM jobs_{g} ORDER BY account_id, region, job_id"):
            yield from timeline_rows(orjson.loads(row[0]))

    def attempts(self) -> Iterator[dict[str, Any]]:
        """Every job's attempt rows, each with the instance it ran on (joined in the same generation)."""
        g = self.current_generation()
        joins = self.reading_session(g)
        for row in self._db.execute(f"SELECT fold FROM jobs_{g} ORDER BY account_id, region, job_id"):
            yield from attempt_rows(orjson.loads(row[0]), joins)

    # ingestion bookkeeping -----------------------------------------------------------------------------
    def add_counters(self, counters: list[PipelineCounters]) -> None:
        """Add to the per-account ingestion counters."""
        with self._transaction() as db:
            db.executemany(
                "INSERT INTO pipeline_counters VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (account_id, region) DO UPDATE"
                " SET ingested = ingested + excluded.ingested, duplicates = duplicates + excluded.duplicates,"
                " rejected = rejected + excluded.rejected, ignored = ignored + excluded.ignored",
                [(c.account_id, c.region, c.ingested, c.duplicates, c.rejected, c.ignored) for c in counters],
            )

    def counters(self) -> list[PipelineCounters]:
        """Ingestion counters per account and region."""
        rows = self._db.execute("SELECT * FROM pipeline_counters ORDER BY account_id, region").fetchall()
        return [PipelineCounters(**dict(r)) for r in rows]

    def keep_rejected(self, events: list[RejectedEvent]) -> int:
        """Keep unusable events; an identical body is kept once."""
        import hashlib

        with self._transaction() as db:
            before = db.total_changes
            db.executemany(
                "INSERT OR IGNORE INTO rejected_events VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        hashlib.blake2b(e.body.encode(), digest_size=12).hexdigest(),
                        e.received_at,
                        e.reason,
                        int(e.rejected),
                        e.detail_type,
                        e.account_id,
                        e.region,
                        e.body,
                    )
                    for e in events
                ],
            )
            return db.total_changes - before

    def rejected(self, limit: int = 100) -> list[RejectedEvent]:
        """The most recently kept unusable events."""
        rows = self._db.execute(
            "SELECT reason, rejected, detail_type, account_id, region, body, received_at FROM rejected_events"
            " ORDER BY received_at DESC LIMIT ?",
            (limit,),
        ).fetchall()
        return [RejectedEvent(r[0], bool(r[1]), r[2], r[3], r[4], r[5], r[6]) for r in rows]


def _job_dict(row: sqlite3.Row) -> dict[str, Any]:
    job = {c: row[c] for c in _JOB_COLUMNS}
    if job["spot_interrupted"] is not None:
        job["spot_interrupted"] = bool(job["spot_interrupted"])
    for column in LIST_FIELDS:
        job[column] = orjson.loads(job[column]) if job[column] is not None else []
    return job


class SQLiteSession:
    """One projection unit of work inside an open SQLite transaction."""

    def __init__(
        self, db: sqlite3.Connection, generation: int, application_name: str, *, queued_rows: int | None = None
    ) -> None:
        """`queued_rows`: write the queued job rows whenever that many are queued (None: only at `flush`, or never
        for a reading session, whose rows are taken by `take_job_rows`)."""
        self._db = db
        self._queued_rows = queued_rows
        self._g = generation
        self._application_name = application_name
        job_cols = ", ".join(f'"{c}"' for c in _JOB_COLUMNS)
        marks = ", ".join("?" * (len(_JOB_COLUMNS) + 2))
        updates = ", ".join(f'"{c}" = excluded."{c}"' for c in (*_JOB_COLUMNS, "fold"))
        self._put_job_sql = (
            f"INSERT INTO jobs_{generation} (key, {job_cols}, fold) VALUES ({marks})"
            f" ON CONFLICT (key) DO UPDATE SET {updates}"
        )
        self._pending_jobs: dict[str, list[Any]] = {}
        self._pending_placements: list[tuple[Any, ...]] = []
        self._instance_facts: dict[tuple[str, str, str, str], InstanceFacts | None] = {}
        """Instance lookups of this session (many jobs ran on each instance); forgotten when an instance is written."""
        self._environments: dict[UUID, tuple[dict[str, Any] | None, bool, str | None]] = {}

        instance_cols = ", ".join(f'"{c}"' for c in _INSTANCE_COLUMNS)
        marks = ", ".join("?" * (len(_INSTANCE_COLUMNS) + 3))
        self._put_instance_sql = (
            f"INSERT OR REPLACE INTO instances_{generation} (key, {instance_cols}, spot_signal, fold) VALUES ({marks})"
        )

    def job_fold(self, key: UUID) -> dict[str, Any] | None:
        """The stored fold of a job."""
        pending = self._pending_jobs.get(str(key))
        if pending is not None:
            return orjson.loads(pending[-1])  # type: ignore[no-any-return]
        row = self._db.execute(f"SELECT fold FROM jobs_{self._g} WHERE key = ?", (str(key),)).fetchone()
        return orjson.loads(row[0]) if row else None

    def instance_fold(self, key: UUID) -> dict[str, Any] | None:
        """The stored fold of an instance."""
        row = self._db.execute(f"SELECT fold FROM instances_{self._g} WHERE key = ?", (str(key),)).fetchone()
        return orjson.loads(row[0]) if row else None

    def compute_environment(self, key: UUID) -> tuple[dict[str, Any] | None, bool, str | None]:
        """A compute environment's fold, spot signal and pricing."""
        cached = self._environments.get(key)
        if cached is not None:
            return cached
        row = self._db.execute(
            f"SELECT fold, spot_signal, pricing FROM compute_environments_{self._g} WHERE key = ?", (str(key),)
        ).fetchone()
        found = (
            (None, False, None) if row is None else ((orjson.loads(row[0]) if row[0] else None), bool(row[1]), row[2])
        )
        self._environments[key] = found
        return found

    def put_job(self, key: UUID, fold: dict[str, Any], row: dict[str, Any], attempts: list[dict[str, Any]]) -> None:
        """Queue a job's fold, row and attempt placements; written together by `flush`, or as soon as the queue is
        full. (The timeline is not kept: readers compute it from the fold.)"""
        text_key = str(key)
        self._pending_jobs[text_key] = [text_key, *_job_values(row), orjson.dumps(fold)]
        for attempt in attempts:
            last = attempt["attempt"] == row["attempts"]
            if attempt.get("container_instance_arn") or (last and row["instance_id"]):
                self._pending_placements.append(
                    (
                        text_key,
                        attempt["attempt"],
                        row["account_id"],
                        row["region"],
                        attempt.get("container_instance_arn"),
                        row["instance_id"] if last else None,
                    )
                )
        if self._queued_rows is not None and len(self._pending_jobs) >= self._queued_rows:
            self.flush()

    def flush(self) -> None:
        """Write the queued job rows, in the session's transaction."""
        self.write_job_rows(self.take_job_rows())

    def take_job_rows(self) -> tuple[list[Any], list[tuple[Any, ...]]]:
        """The queued job rows and placements, as `flush` would write them, handed over instead (and forgotten)."""
        rows = (list(self._pending_jobs.values()), self._pending_placements)
        self._pending_jobs = {}
        self._pending_placements = []
        return rows

    def write_job_rows(self, rows: tuple[list[Any], list[tuple[Any, ...]]]) -> None:
        """Write job rows and placements that `take_job_rows` handed over (from this or another session)."""
        jobs, placements = rows
        if jobs:
            self._db.executemany(self._put_job_sql, jobs)
        if placements:
            self._db.executemany(f"INSERT OR REPLACE INTO placements_{self._g} VALUES (?, ?, ?, ?, ?, ?)", placements)

    def put_instance(self, key: UUID, fold: dict[str, Any], row: dict[str, Any]) -> None:
        """Write an instance's fold and row."""
        from batchops.projection import instance_spot_signal

        self._instance_facts.clear()
        values = [
            str(key),
            *(row[c] for c in _INSTANCE_COLUMNS),
            int(instance_spot_signal(fold)),
            orjson.dumps(fold),
        ]
        self._db.execute(self._put_instance_sql, values)

    def put_compute_environment(
        self,
        key: UUID,
        account: str,
        region: str,
        name: str,
        fold: dict[str, Any] | None,
        spot_signal: bool,
        pricing: str | None,
    ) -> None:
        """Write a compute environment's fold, spot signal and pricing."""
        self._environments[key] = (fold, spot_signal, pricing)
        self._db.execute(
            f"INSERT OR REPLACE INTO compute_environments_{self._g} VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                str(key),
                account,
                region,
                name,
                orjson.dumps(fold) if fold else None,
                int(spot_signal),
                pricing,
            ),
        )

    def jobs_on_instance(
        self, account: str, region: str, instance_id: str, container_instance_arn: str | None
    ) -> list[UUID]:
        """Jobs whose last attempt ran on the instance."""
        rows = self._db.execute(
            f"SELECT key FROM jobs_{self._g} WHERE account_id = ? AND region = ? AND instance_id = ?"
            f" UNION SELECT key FROM jobs_{self._g} WHERE account_id = ? AND region = ? AND container_instance_arn = ?",
            (account, region, instance_id, account, region, container_instance_arn),
        ).fetchall()
        return [UUID(r[0]) for r in rows]

    def jobs_in_compute_environment(self, account: str, region: str, name: str) -> list[UUID]:
        """Jobs whose last attempt ran in the compute environment."""
        rows = self._db.execute(
            f"SELECT key FROM jobs_{self._g} WHERE account_id = ? AND region = ? AND compute_environment = ?",
            (account, region, name),
        ).fetchall()
        return [UUID(r[0]) for r in rows]

    def instances_in_compute_environment(self, account: str, region: str, name: str) -> list[UUID]:
        """Instances registered in the compute environment."""
        rows = self._db.execute(
            f"SELECT key FROM instances_{self._g} WHERE account_id = ? AND region = ? AND compute_environment = ?",
            (account, region, name),
        ).fetchall()
        return [UUID(r[0]) for r in rows]

    def instance_by_container_instance(self, account: str, region: str, arn: str) -> InstanceFacts | None:
        """The instance behind a container instance, from the instance rows."""
        return self._instance("container_instance_arn", account, region, arn)

    def instance_by_id(self, account: str, region: str, instance_id: str) -> InstanceFacts | None:
        """An instance by its EC2 id, from the instance rows."""
        return self._instance("instance_id", account, region, instance_id)

    def _instance(self, column: str, account: str, region: str, value: str) -> InstanceFacts | None:
        lookup = (column, account, region, value)
        if lookup in self._instance_facts:
            return self._instance_facts[lookup]
        row = self._db.execute(
            f"SELECT instance_id, instance_type, availability_zone, compute_environment, spot_signal,"
            f" spot_interrupted FROM instances_{self._g} WHERE account_id = ? AND region = ? AND {column} = ?",
            (account, region, value),
        ).fetchone()
        found = self._instance_facts[lookup] = _facts(row)
        return found

    def compute_environment_pricing(self, account: str, region: str, name: str) -> str | None:
        """A compute environment's pricing as last written."""
        return self.compute_environment(compute_environment_key(account, region, name))[2]

    def track(self, notification_id: int) -> None:
        """Record the notification id the views now include."""
        self._db.execute(
            f"INSERT INTO tracking_{self._g} VALUES (?, ?) ON CONFLICT (application_name) DO UPDATE"
            " SET notification_id = MAX(notification_id, excluded.notification_id)",
            (self._application_name, notification_id),
        )


def _facts(row: sqlite3.Row | None) -> InstanceFacts | None:
    if row is None:
        return None
    return InstanceFacts(
        instance_id=row[0],
        instance_type=row[1],
        availability_zone=row[2],
        compute_environment=row[3],
        spot_signal=bool(row[4]),
        spot_interrupted=bool(row[5]),
    )
