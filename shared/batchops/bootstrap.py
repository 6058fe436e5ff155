"""The composition root: a store URL becomes an application wired to its event store and view store."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from batchops.application import BatchOpsApplication
from batchops.views_sqlite import SQLiteViewStore

DEFAULT_STORE = "sqlite:///./batchops.db"
STORE_VARIABLE = "BATCHOPS_STORE"


class StoreURLError(ValueError):
    """A --store URL batchops cannot open."""


@dataclass(frozen=True)
class Settings:
    """Typed settings, parsed once from arguments and the environment."""

    store: str = DEFAULT_STORE
    namespace: str = "BatchOps"

    @classmethod
    def from_environment(cls, store: str | None = None, namespace: str | None = None) -> Settings:
        """Arguments win over BATCHOPS_STORE / BATCHOPS_NAMESPACE, which win over the defaults."""
        return cls(
            store=store or os.environ.get(STORE_VARIABLE) or DEFAULT_STORE,
            namespace=namespace or os.environ.get("BATCHOPS_NAMESPACE") or "BatchOps",
        )


def sqlite_path(url: str) -> Path:
    """The database file of a `sqlite:///relative/path` or `sqlite:////absolute/path` URL."""
    prefix = "sqlite:///"
    if not url.startswith(prefix) or len(url) == len(prefix):
        raise StoreURLError(
            f"cannot open store {url!r}: use sqlite:///PATH (e.g. sqlite:///./batchops.db) or dynamodb://PREFIX"
        )
    return Path(url[len(prefix) :])


def build_application(settings: Settings, *, metrics: bool = True) -> BatchOpsApplication:
    """Build the application for the configured store."""
    if settings.store.startswith("sqlite:"):
        path = sqlite_path(settings.store)
        if path.parent and not path.parent.exists():
            raise StoreURLError(f"cannot open store {settings.store!r}: directory {path.parent} does not exist")
        views = SQLiteViewStore(path)
        env = {"PERSISTENCE_MODULE": "batchops.store_sqlite:Factory", "SQLITE_DBNAME": str(path)}
        return BatchOpsApplication(views, env, metrics=metrics)
    if settings.store.startswith("dynamodb://"):
        raise StoreURLError("dynamodb:// stores are not available in this build yet; use sqlite:///PATH for now")
    raise StoreURLError(
        f"cannot open store {settings.store!r}: use sqlite:///PATH (e.g. sqlite:///./batchops.db) or dynamodb://PREFIX"
    )
