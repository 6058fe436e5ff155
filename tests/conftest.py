from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings

from batchops.application import BatchOpsApplication
from batchops.bootstrap import Settings, build_application
from batchops.ingest import Ingestor
from batchops.translation import RawEvent

EVENTS = Path(__file__).parent / "events"
AWS_REGION = "us-east-1"

# CI (`.ci/run` sets CI=1): the same examples on every run, and a failure's reproduction blob printed. Locally
# ("dev"): new random examples each run, so the properties keep exploring. HYPOTHESIS_PROFILE picks one explicitly.
settings.register_profile("ci", derandomize=True, print_blob=True, deadline=None)
settings.register_profile("dev", print_blob=True, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The central account on moto in this process (mock_aws), with the emulator's patches for moto's gaps."""
    from moto import mock_aws

    from batchops.aws.emulator import patch_moto

    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": AWS_REGION,
        "BATCHOPS_CREATE_TABLES": "1",
        "POWERTOOLS_TRACE_DISABLED": "1",
        "POWERTOOLS_DEV": "0",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    patch_moto(monkeypatch.setattr)  # moto's DynamoDB serves one request at a time, as each is atomic on AWS
    with mock_aws():
        yield


def sample(name: str) -> dict[str, Any]:
    """One sample event by file name (without .json), from tests/events or tests/events/real."""
    for folder in (EVENTS, EVENTS / "real"):
        path = folder / f"{name}.json"
        if path.exists():
            return json.loads(path.read_text())
    raise FileNotFoundError(name)


def all_samples() -> list[dict[str, Any]]:
    """Every sample event, documentation samples first, then the captured ones."""
    files = sorted(EVENTS.glob("*.json")) + sorted((EVENTS / "real").glob("*.json"))
    return [json.loads(f.read_text()) for f in files]


@pytest.fixture
def make_app(tmp_path: Path) -> Iterator[Callable[..., BatchOpsApplication]]:
    """Build applications on fresh SQLite stores in the test's directory."""
    made: list[BatchOpsApplication] = []

    def make(name: str = "store", *, metrics: bool = True) -> BatchOpsApplication:
        app = build_application(Settings(store=f"sqlite:///{tmp_path / name}.db"), metrics=metrics)
        made.append(app)
        return app

    yield make
    for app in made:
        app.close()


def ingest(app: BatchOpsApplication, events: list[dict[str, Any]], batch_size: int = 500) -> Ingestor:
    """Ingest decoded events through the same path as the CLI."""
    ingestor = Ingestor(app, batch_size=batch_size)
    ingestor.ingest(RawEvent(e, i + 1) for i, e in enumerate(events))
    return ingestor


def rows_by_job(app: BatchOpsApplication) -> dict[tuple[str, str, str], dict[str, Any]]:
    """The job projection keyed by (account, region, job id)."""
    return {(r["account_id"], r["region"], r["job_id"]): r for r in app.views.jobs()}
