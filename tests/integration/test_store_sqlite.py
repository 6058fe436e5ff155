"""The embedded event store: the library's own recorder test cases, plus the polling subscription."""

from __future__ import annotations

import tempfile
import threading
from pathlib import Path

import eventsourcing.tests.persistence as cases
from eventsourcing.persistence import ApplicationRecorder
from eventsourcing.projection import ApplicationSubscription
from eventsourcing.sqlite import SQLiteDatastore

from batchops.adapters.sqlite.event_store import PollingSQLiteApplicationRecorder
from batchops.bootstrap import Settings, build_application
from batchops.inbound import Parsed, translate
from batchops.jobs import Job
from conftest import sample


class TestPollingSQLiteApplicationRecorder(cases.ApplicationRecorderTestCase[ApplicationRecorder]):
    """The library's application-recorder cases, subscribe() included, on our polling recorder (its throughput cases
    run too: they fail should a concurrent insert raise)."""

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


def test_an_application_subscription_sees_events_saved_by_another_process_soon(tmp_path: Path) -> None:
    writer = build_application(Settings.from_environment(store=f"sqlite:///{tmp_path / 's.db'}"))
    reader = build_application(Settings.from_environment(store=f"sqlite:///{tmp_path / 's.db'}"))
    seen: list[object] = []
    with ApplicationSubscription(reader, gt=0) as subscription:

        def consume() -> None:
            # range first: zip stops after two events instead of waiting on the subscription for a third
            for _, (event, _tracking) in zip(range(2), subscription, strict=False):
                seen.append(event)

        consumer = threading.Thread(target=consume)
        consumer.start()
        fact = translate(sample("aws-batch--batch-job-state-change--runnable"))
        assert isinstance(fact, Parsed)
        writer.record([fact])
        consumer.join(timeout=10)
        assert not consumer.is_alive(), f"the subscription gave {len(seen)} of the two events in 10 s"
    assert [type(e) for e in seen] == [Job.Tracked, Job.StateObserved]
    writer.close()
    reader.close()
