"""The composition root: a store URL becomes an application wired to its event store and view store."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from batchops.adapters.sqlite.bulk_rebuild import SQLiteBulkRebuild
from batchops.adapters.sqlite.event_store import PollingSQLiteApplicationRecorder, SQLiteEventStore
from batchops.adapters.sqlite.views import SQLiteViewStore
from batchops.application import BatchOpsApplication, Wiring
from batchops.job_cost_metric import JobCostMeter
from batchops.log_projection import LogFedProjection
from batchops.ports import EventStore, ProjectionFeed
from batchops.tuning import DEFAULT_TUNING, Tuning

DEFAULT_STORE = "sqlite:///./batchops.db"
STORE_VARIABLE = "BATCHOPS_STORE"


class StoreURLError(ValueError):
    """A --store URL batchops cannot open."""


class StoreUnavailable(RuntimeError):
    """A store that is named correctly but cannot be used: tables missing, no credentials, wrong region."""


ENVIRONMENT = {
    "BATCHOPS_STORE": "the store: sqlite:///PATH or dynamodb://PREFIX (default sqlite:///./batchops.db)",
    "BATCHOPS_NAMESPACE": "the CloudWatch namespace of the EMF metrics (default BatchOps)",
    "BATCHOPS_CREATE_TABLES": "1 creates missing DynamoDB tables (an emulator; on AWS the central stack makes them)",
    "BATCHOPS_RETENTION_DAYS": "days a finished job stays in the DynamoDB views (TTL; default 90)",
    "BATCHOPS_EXPORT_STREAM": "the Firehose stream the exporter Lambda sends the Athena (Iceberg) tables' rows to",
    "BATCHOPS_GRAFANA_URL": "the Grafana `batchops dashboards push` pushes to",
    "BATCHOPS_GRAFANA_TOKEN": "that Grafana's service account token (never printed)",
}
"""Every environment variable batchops reads, with what it means: parsed in one place, `Settings.from_environment`."""


class SettingsError(ValueError):
    """An environment variable batchops cannot use; the message names it and what it takes."""


@dataclass(frozen=True)
class Settings:
    """Typed settings, parsed once from arguments and the environment (`ENVIRONMENT`)."""

    store: str = DEFAULT_STORE
    namespace: str = "BatchOps"
    create_tables: bool = False
    retention_days: int = 90
    export_stream: str = ""
    grafana_url: str = ""
    grafana_token: str = field(default="", repr=False)

    @classmethod
    def from_environment(
        cls, store: str | None = None, namespace: str | None = None, environ: Mapping[str, str] | None = None
    ) -> Settings:
        """Arguments win over the BATCHOPS_* variables, which win over the defaults."""
        env = os.environ if environ is None else environ
        days = env.get("BATCHOPS_RETENTION_DAYS", "90")
        if not days.isdigit() or int(days) < 1:
            raise SettingsError(f"BATCHOPS_RETENTION_DAYS={days!r}: give a whole number of days, 1 or more")
        return cls(
            store=store or env.get(STORE_VARIABLE) or DEFAULT_STORE,
            namespace=namespace or env.get("BATCHOPS_NAMESPACE") or "BatchOps",
            create_tables=env.get("BATCHOPS_CREATE_TABLES", "").lower() in ("1", "y", "yes", "true"),
            retention_days=int(days),
            export_stream=env.get("BATCHOPS_EXPORT_STREAM", ""),
            grafana_url=env.get("BATCHOPS_GRAFANA_URL", ""),
            grafana_token=env.get("BATCHOPS_GRAFANA_TOKEN", ""),
        )


def sqlite_path(url: str) -> Path:
    """The database file of a `sqlite:///relative/path` or `sqlite:////absolute/path` URL."""
    prefix = "sqlite:///"
    if not url.startswith(prefix) or len(url) == len(prefix):
        raise StoreURLError(
            f"cannot open store {url!r}: use sqlite:///PATH (e.g. sqlite:///./batchops.db) or dynamodb://PREFIX"
        )
    return Path(url[len(prefix) :])


def build_application(
    settings: Settings,
    *,
    metrics: bool = True,
    project_inline: bool = True,
    verify_store: bool = False,
    tuning: Tuning = DEFAULT_TUNING,
) -> BatchOpsApplication:
    """Build the application for the configured store; `verify_store` checks first that a remote one is usable."""
    if settings.store.startswith("sqlite:"):
        path = sqlite_path(settings.store)
        if path.parent and not path.parent.exists():
            raise StoreURLError(f"cannot open store {settings.store!r}: directory {path.parent} does not exist")
        if path.is_dir():
            raise StoreURLError(f"cannot open store {settings.store!r}: {path} is a directory; name a file in it")
        try:
            views = SQLiteViewStore(path, queued_rows=tuning.job_rows_queued)
        except sqlite3.DatabaseError as error:
            if error.sqlite_errorcode == sqlite3.SQLITE_NOTADB:  # untouched: SQLite writes nothing to such a file
                raise StoreURLError(
                    f"cannot open store {settings.store!r}: {path} is not a SQLite database (an events file? ingest it"
                    f" with: batchops ingest {path}); give a new file name or an existing store"
                ) from error
            raise
        env = {"PERSISTENCE_MODULE": "batchops.adapters.sqlite.event_store:Factory", "SQLITE_DBNAME": str(path)}
        meter = _sqlite_cost_meter(path) if metrics else None
        wiring = _sqlite_wiring(views, path)
        return BatchOpsApplication(views, env, metrics=metrics, wiring=wiring, tuning=tuning, cost_meter=meter)
    if settings.store.startswith("dynamodb://"):
        return _dynamodb_application(
            settings, metrics=metrics, project_inline=project_inline, verify=verify_store, tuning=tuning
        )
    raise StoreURLError(
        f"cannot open store {settings.store!r}: use sqlite:///PATH (e.g. sqlite:///./batchops.db) or dynamodb://PREFIX"
    )


def _dynamodb_application(
    settings: Settings, *, metrics: bool, project_inline: bool, verify: bool, tuning: Tuning
) -> BatchOpsApplication:
    """The central application on DynamoDB tables named <prefix>-events, -jobs, ... (standard AWS environment)."""
    from batchops.adapters.dynamodb import event_state
    from batchops.adapters.dynamodb.store_check import central_client, check_central_tables
    from batchops.adapters.dynamodb.views import DynamoDBViewStore, ensure_view_tables

    prefix = settings.store[len("dynamodb://") :].strip("/")
    if not prefix:
        raise StoreURLError("dynamodb:// needs a table prefix, e.g. dynamodb://batchops (tables batchops-events, ...)")
    create = settings.create_tables
    client = central_client(dict(os.environ), prefix)
    if create:
        ensure_view_tables(client, prefix)
    elif verify:  # the CLI: one line instead of a traceback deep in a query (a Lambda's stack made its tables)
        check_central_tables(client, prefix)
    views = DynamoDBViewStore(
        client,
        prefix,
        retention_days=settings.retention_days,
        queued_rows=tuning.job_rows_queued,
        job_writers=tuning.job_writers,
    )
    env = {
        "PERSISTENCE_MODULE": "batchops.adapters.dynamodb.event_store:DynamoDBFactory",
        "DYNAMODB_TABLE_PREFIX": prefix,
        "CREATE_TABLE": "y" if create else "n",
        "COMPRESSOR_TOPIC": event_state.TOPIC,
    }
    wiring = _dynamodb_wiring(views, inline=project_inline)
    meter = _dynamodb_cost_meter(client, prefix) if metrics else None
    return BatchOpsApplication(views, env, metrics=metrics, wiring=wiring, tuning=tuning, cost_meter=meter)


def _sqlite_cost_meter(path: Path) -> JobCostMeter:
    """`JobCost` of the embedded store: the packaged table under the stored prices, read once (a CLI run is short)."""
    from batchops.adapters.sqlite.job_cost_ledger import SQLiteJobCostLedger
    from batchops.adapters.sqlite.prices import SQLitePriceStore
    from batchops.prices import PriceBook, price_book

    SQLitePriceStore(path).close()  # its schema made now: it cannot be written while a projection holds the file

    @cache
    def book() -> PriceBook:
        store = SQLitePriceStore(path)
        try:
            return price_book(store, with_table=True)
        finally:
            store.close()

    return JobCostMeter(book, SQLiteJobCostLedger(path))


def _dynamodb_cost_meter(client: Any, prefix: str) -> JobCostMeter:
    """`JobCost` of the central store: its stored prices only, read again hourly (as the exporter does)."""
    from batchops.adapters.dynamodb.items import META
    from batchops.adapters.dynamodb.job_cost_ledger import DynamoDBJobCostLedger
    from batchops.adapters.dynamodb.prices import HourlyPriceBook
    from batchops.adapters.dynamodb.tables import table_name

    meta = table_name(prefix, META)
    return JobCostMeter(HourlyPriceBook(client, meta), DynamoDBJobCostLedger(client, meta))


def _sqlite_wiring(views: SQLiteViewStore, path: Path) -> Wiring:
    """The embedded store: fast appends and batch reads, log-fed views, the two-core bulk rebuild."""

    def wire(app: BatchOpsApplication) -> tuple[EventStore, ProjectionFeed]:
        recorder = app.recorder
        assert isinstance(recorder, PollingSQLiteApplicationRecorder)
        rebuild = SQLiteBulkRebuild(recorder, app.mapper, views, app.projector, str(path), app.tuning)
        feed = LogFedProjection(recorder, app.mapper, views, app.projector, bulk_rebuild=rebuild, tuning=app.tuning)
        return SQLiteEventStore(recorder, app.mapper), feed

    return wire


def _dynamodb_wiring(views: Any, *, inline: bool) -> Wiring:
    """The AWS store: conditional writes, concurrent history reads, stream-fed views (inline for the CLI)."""
    from batchops.adapters.dynamodb.event_store import DynamoDBAggregateRecorder, DynamoDBEventStore
    from batchops.adapters.dynamodb.stream_projection import StreamFedProjection

    def wire(app: BatchOpsApplication) -> tuple[EventStore, ProjectionFeed]:
        recorder = app.recorder
        assert isinstance(recorder, DynamoDBAggregateRecorder)
        feed = StreamFedProjection(recorder, app.mapper, views, app.projector, inline=inline, tuning=app.tuning)
        return DynamoDBEventStore(
            recorder, app.mapper, readers=app.tuning.history_readers, writers=app.tuning.event_writers
        ), feed

    return wire
