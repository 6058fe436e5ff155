"""The embedded event store: the library's own recorder test cases, plus the polling subscription."""

from __future__ import annotations

import tempfile
import threading
from pathlib import Path

import eventsourcing.tests.persistence as cases
from eventsourcing.persistence import ApplicationRecorder
from eventsourcing.projection import ApplicationSubscription
from eventsourcing.sqlite import SQLiteDatastore
from hypothesis import given, settings
from hypothesis import strategies as st

from batchops.adapters.sqlite.event_store import PollingSQLiteApplicationRecorder
from batchops.adapters.sqlite.host_topics import HOST_TOPICS
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


_HOST = "host-topic"
_OTHER = ("job-topic", "task-topic")


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 7), st.sampled_from((_HOST, *_OTHER)), st.integers(0, 3)), max_size=60),
    st.integers(1, 5),
    st.integers(0, 60),
    st.sampled_from(("", "3")),
    st.sampled_from((None, "b")),
    st.booleans(),
)
def test_a_rebuild_reads_the_events_of_some_topics_aggregate_by_aggregate_whichever_way_it_reads(
    appends: list[tuple[int, str, int]], limit: int, up_to: int, after: str, before: str | None, indexed: bool
) -> None:
    """Every way `select_aggregate_states` reads (the key index for most topics; for a few, their partial index when
    they are the indexed `HOST_TOPICS`, else one sorted scan) gives every matching event once, in (aggregate, version)
    order, and never splits an aggregate between two lists."""
    hosts = HOST_TOPICS if indexed else (_HOST,)
    with tempfile.TemporaryDirectory() as folder:
        recorder = PollingSQLiteApplicationRecorder(SQLiteDatastore(db_name=str(Path(folder) / "events.db")))
        recorder.create_table()
        versions: dict[str, int] = {}
        rows = []
        for aggregate, kind, which in appends:  # events appended in arrival order, aggregates interleaved
            topic = hosts[which % len(hosts)] if kind == _HOST else kind
            originator = f"{aggregate:x}" * 32
            versions[originator] = versions.get(originator, 0) + 1
            rows.append((originator, versions[originator], topic, f"{originator}/{versions[originator]}".encode()))
        recorder.insert_rows(rows)
        for exclude in (False, True):
            expected = sorted(
                (r[0], r[1], r[2], r[3])
                for position, r in enumerate(rows, start=1)
                if position <= up_to
                and (r[2] in hosts) != exclude
                and r[0] > after
                and (before is None or r[0] < before)
            )
            pages = list(
                recorder.select_aggregate_states(
                    list(hosts), up_to=up_to, exclude=exclude, limit=limit, after=after, before=before
                )
            )
            assert all(pages)
            assert [row for page in pages for row in page] == [(o, t, s) for o, _, t, s in expected]
            owners = [{o for o, _, _ in page} for page in pages]
            assert sum(len(ids) for ids in owners) == len(set().union(*owners))


def test_the_events_of_the_hosts_are_read_by_their_partial_index_also_on_a_store_made_without_it() -> None:
    """A store written before the index existed gets it when opened, and a rebuild's read of the hosts' events uses
    it (SQLite uses a partial index only when the query repeats its terms)."""
    with tempfile.TemporaryDirectory() as folder:
        path = str(Path(folder) / "events.db")
        recorder = PollingSQLiteApplicationRecorder(SQLiteDatastore(db_name=path, pool_size=1, max_overflow=0))
        recorder.create_table()
        with recorder.datastore.transaction(commit=True) as c:
            c.execute("DROP INDEX stored_events_hosts")
        recorder.insert_rows([("a" * 32, 1, HOST_TOPICS[2], b"{}"), ("b" * 32, 1, "job-topic", b"{}")])
        reopened = PollingSQLiteApplicationRecorder(SQLiteDatastore(db_name=path, pool_size=1, max_overflow=0))
        reopened.create_table()
        statements: list[str] = []
        with reopened.datastore.transaction(commit=False) as c:  # the pool's one connection, traced
            connection = c.sqlite_cursor.connection
        connection.set_trace_callback(statements.append)
        pages = list(reopened.select_aggregate_states(list(HOST_TOPICS), up_to=2))
        connection.set_trace_callback(None)
        assert pages == [[("a" * 32, HOST_TOPICS[2], b"{}")]]
        (query,) = [s for s in statements if s.lstrip().upper().startswith("SELECT")]
        plan = " ".join(str(row[-1]) for row in connection.execute(f"EXPLAIN QUERY PLAN {query}"))
        assert "USING INDEX stored_events_hosts" in plan, plan
