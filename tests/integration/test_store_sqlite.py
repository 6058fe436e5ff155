"""The embedded event store: the library's own recorder test cases, plus the polling subscription."""

from __future__ import annotations

import sqlite3
import tempfile
import threading
from pathlib import Path
from uuid import UUID, uuid4

import eventsourcing.tests.persistence as cases
import pytest
from eventsourcing.persistence import ApplicationRecorder, OperationalError
from eventsourcing.projection import ApplicationSubscription
from eventsourcing.sqlite import SQLiteDatastore

from batchops import store_sqlite
from batchops.application import BatchOpsApplication
from batchops.bootstrap import Settings, build_application
from batchops.inbound import Parsed, translate
from batchops.jobs import Job
from batchops.store_sqlite import PollingSQLiteApplicationRecorder
from batchops.views_sqlite import SQLiteViewStore
from conftest import all_samples, sample


class TestPollingSQLiteApplicationRecorder(cases.ApplicationRecorderTestCase[ApplicationRecorder]):
    """The library's application-recorder cases, subscribe() included, on our polling recorder."""

    def setUp(self) -> None:
        self.folder = tempfile.TemporaryDirectory()
        super().setUp()

    def tearDown(self) -> None:
        super().tearDown()
        self.folder.cleanup()

    def create_recorder(self) -> ApplicationRecorder:
        datastore = SQLiteDatastore(db_name=str(Path(self.folder.name) / "events.db"))
        recorder = PollingSQLiteApplicationRecorder(datastore)
        recorder.create_table()
        return recorder

    def test_insert_subscribe(self) -> None:
        self.optional_test_insert_subscribe()

    def test_concurrent_throughput(self) -> None:
        """Skipped: a throughput print, not an assertion (bench/ingest.py measures ours)."""

    def test_performance(self) -> None:
        """Skipped: a throughput print, not an assertion (bench/ingest.py measures ours)."""


def test_an_application_subscription_sees_events_saved_by_another_process_soon(tmp_path: Path) -> None:
    writer = build_application(Settings(store=f"sqlite:///{tmp_path / 's.db'}"))
    reader = build_application(Settings(store=f"sqlite:///{tmp_path / 's.db'}"))
    seen: list[object] = []
    with ApplicationSubscription(reader, gt=0) as subscription:

        def consume() -> None:
            for (event, _tracking), _ in zip(subscription, range(2), strict=False):
                seen.append(event)

        consumer = threading.Thread(target=consume)
        consumer.start()
        fact = translate(sample("aws-batch--batch-job-state-change--runnable"))
        assert isinstance(fact, Parsed)
        writer.record([fact])
        consumer.join(timeout=10)
    assert [type(e) for e in seen] == [Job.Tracked, Job.StateObserved]
    writer.close()
    reader.close()


def _recorder(path: Path) -> PollingSQLiteApplicationRecorder:
    recorder = PollingSQLiteApplicationRecorder(SQLiteDatastore(db_name=str(path)))
    recorder.create_table()
    return recorder


def _rows(aggregate: UUID, count: int) -> list[tuple[UUID, int, str, bytes]]:
    return [(aggregate, version, "topic", b'{"version":%d}' % version) for version in range(1, count + 1)]


def test_every_read_that_concerns_an_insert_running_behind_sees_it(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(store_sqlite, "ROWS_PER_INSERT", 700)  # several statements per insert
    recorder = _recorder(tmp_path / "events.db")
    other, new = uuid4(), uuid4()
    assert recorder.insert_rows(_rows(other, 1)) == [1]

    running = uuid4()
    behind = recorder.insert_rows_behind(_rows(running, 20_000))
    assert recorder.absent_aggregates([running, other, new]) == {new}  # without waiting: it is in the insert
    assert [e.originator_version for e in recorder.select_events(other)] == [1]
    events = recorder.select_events(running)  # waits for the insert
    assert [e.originator_version for e in events] == list(range(1, 20_001))
    assert events[-1].state == b'{"version":20000}'
    assert behind.result() == list(range(2, 20_002))

    log = recorder.insert_rows_behind(_rows(uuid4(), 5_000))
    assert [n.id for n in recorder.select_notifications(start=20_001, limit=10_000)] == [20_001, *log.result()]
    recorder.insert_rows_behind(_rows(uuid4(), 5_000))
    assert recorder.max_notification_id() == 30_001


def test_an_insert_that_fails_behind_is_raised_once_and_the_application_keeps_nothing_unsaved(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    env = {
        "PERSISTENCE_MODULE": "batchops.store_sqlite:Factory",
        "SQLITE_DBNAME": str(path),
        "SQLITE_LOCK_TIMEOUT": "1",
    }
    app = BatchOpsApplication(SQLiteViewStore(path), env)
    facts = [f for f in map(translate, all_samples()) if isinstance(f, Parsed)]
    app.record(facts[:1])  # creates the store; the views show it

    other_writer = sqlite3.connect(path, isolation_level=None)
    other_writer.execute("BEGIN IMMEDIATE")  # holds the store's write lock past the insert's timeout
    app.record(facts, project=False)  # returns; its insert waits behind for the lock, then fails
    with pytest.raises(OperationalError, match="locked"):
        app.project_saved()
    other_writer.execute("ROLLBACK")
    app.project_saved()  # raised once: nothing is left waiting

    stored = app.stored_events()
    app.record(facts)  # the same facts again: what the failed insert held is recorded now, from the store's state
    assert app.stored_events() > stored
    fresh = build_application(Settings(store=f"sqlite:///{tmp_path / 'fresh.db'}"))
    fresh.record(facts)
    assert list(app.views.jobs()) == list(fresh.views.jobs())
    assert app.stored_events() == fresh.stored_events()
    app.close()
    fresh.close()
