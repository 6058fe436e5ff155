"""Prices for a store URL: which price store it has, the price book costing reads, a refresh from AWS.

The composition root of prices (as bootstrap is of the application): the CLI's `prices` commands and the scheduled
prices function call these; a local SQLite store prices from the packaged table under what it stored, a central
DynamoDB store from its stored entries only (an unknown price stays unknown there).
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from typing import Any

from batchops.bootstrap import Settings, StoreURLError, build_application, sqlite_path
from batchops.prices import PriceBook, PriceStore, RefreshReport, price_book, refresh_prices, wanted_prices


def _prefix(store: str) -> str:
    prefix = store[len("dynamodb://") :].strip("/")
    if not prefix:
        raise StoreURLError("dynamodb:// needs a table prefix, e.g. dynamodb://batchops (tables batchops-events, ...)")
    return prefix


def open_price_store(settings: Settings, client: Any = None) -> PriceStore:
    """The price store of the settings' store URL (a DynamoDB client may be given; else the environment's)."""
    if settings.store.startswith("sqlite:"):
        from batchops.adapters.sqlite.prices import SQLitePriceStore

        return SQLitePriceStore(sqlite_path(settings.store))
    if settings.store.startswith("dynamodb://"):
        from batchops.adapters.dynamodb.items import META
        from batchops.adapters.dynamodb.prices import DynamoDBPriceStore
        from batchops.adapters.dynamodb.store_check import central_client
        from batchops.adapters.dynamodb.tables import table_name

        prefix = _prefix(settings.store)
        return DynamoDBPriceStore(client or central_client(dict(os.environ), prefix), table_name(prefix, META))
    raise StoreURLError(f"cannot open store {settings.store!r}: use sqlite:///PATH or dynamodb://PREFIX")


def book_for(settings: Settings, store: PriceStore | None = None) -> PriceBook:
    """The price book costing uses for the settings' store."""
    local = settings.store.startswith("sqlite:")
    return price_book(store if store is not None else open_price_store(settings), with_table=local)


def refresh_from_jobs(settings: Settings, source: Any, *, day: str | None = None) -> RefreshReport:
    """Refresh the prices the store's jobs call for (only the types and regions they ran in), once a day."""
    app = build_application(settings, metrics=False, project_inline=False)
    try:
        wanted = wanted_prices(app.views.jobs())
    finally:
        app.close()
    today = day or datetime.now(UTC).strftime("%Y-%m-%d")
    return refresh_prices(open_price_store(settings), source, wanted, today)


def costed_rows(settings: Settings, views: Any, query: Any = None) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The job rows (of `query`, else all) and their attempt rows with COST_FIELDS, at the store's prices; costed as
    they are read, from the stored rows and dated prices, so a replay gives the same costs."""
    from batchops.cost_report import with_costs
    from batchops.views import ALL_JOBS

    jobs = list(views.jobs(query if query is not None else ALL_JOBS))
    wanted = {(j["account_id"], j["region"], j["job_id"]) for j in jobs}
    attempts = [a for a in views.attempts() if (a["account_id"], a["region"], a["job_id"]) in wanted]
    return with_costs(jobs, attempts, book_for(settings))
