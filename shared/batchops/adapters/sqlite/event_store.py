"""eventsourcing's SQLite persistence with a polling subscription (the library's SQLite recorder has none).

Named as PERSISTENCE_MODULE, this module gives the library everything `eventsourcing.sqlite` gives, with an
application recorder whose `subscribe()` polls the notification log, so the library's ProjectionRunner
works on the embedded store too. `SQLiteEventStore` is the service layer's `EventStore` port on it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from typing import Any
from uuid import UUID

from eventsourcing.persistence import ApplicationRecorder, Mapper, Notification, StoredEvent, Subscription
from eventsourcing.sqlite import SQLiteApplicationRecorder, SQLiteFactory, SQLiteProcessRecorder

from batchops.adapters.sqlite.host_topics import HOST_TOPICS, topics_sql
from batchops.recorder_store import RecorderEventStore
from batchops.transcoder import OrjsonMapper

POLL_SECONDS = 0.2
HISTORY_IDS_PER_QUERY = 500
"""Ids bound in one `IN (...)` (SQLite allows 32,766 variables; a few hundred keep each statement small)."""


class PollingSubscription(Subscription[ApplicationRecorder]):
    """Yields notifications after `gt`, polling the recorder when it has caught up."""

    def __init__(
        self,
        recorder: ApplicationRecorder,
        gt: int | None = None,
        topics: Sequence[str] = (),
        poll_seconds: float = POLL_SECONDS,
    ) -> None:
        super().__init__(recorder=recorder, gt=gt, topics=topics)
        self._buffer: list[Notification] = []
        self._stopped = threading.Event()
        self._poll_seconds = poll_seconds

    def stop(self) -> None:
        """Stop the subscription (a waiting `next` returns StopIteration)."""
        super().stop()
        self._stopped.set()

    def __next__(self) -> Notification:
        if self._has_been_stopped:
            raise StopIteration
        while not self._buffer:
            if self._has_been_stopped:
                raise StopIteration
            found = self._recorder.select_notifications(
                start=self._last_notification_id or 0,
                limit=500,
                topics=self._topics,
                inclusive_of_start=False,
            )
            if found:
                self._buffer = list(found)
                self._last_notification_id = found[-1].id
            elif self._stopped.wait(self._poll_seconds):
                raise StopIteration
        return self._buffer.pop(0)


class PollingSQLiteApplicationRecorder(SQLiteApplicationRecorder):
    """The library's SQLite application recorder, plus a polling subscribe() and reading by aggregate."""

    def construct_create_table_statements(self) -> list[str]:
        """The library's table, and a partial index of the events of `HOST_TOPICS` (a few percent of them): made on a
        store that lacks it by one scan of the table, once."""
        table = self.events_table_name
        return [
            *super().construct_create_table_statements(),
            f"CREATE INDEX IF NOT EXISTS {table}_hosts ON {table} (originator_id, originator_version)"
            f" WHERE {topics_sql(HOST_TOPICS)}",
        ]

    def subscribe(self, gt: int | None = None, topics: Sequence[str] = ()) -> Subscription[ApplicationRecorder]:
        """A subscription that polls the notification log."""
        return PollingSubscription(self, gt=gt, topics=topics)

    def _insert_events(self, c: Any, stored_events: Sequence[StoredEvent], **_: Any) -> Sequence[int] | None:
        """The library's insert as one `executemany` instead of a statement per event. The notification ids are the
        rows' rowids: inside the write transaction SQLite gives each new row the largest rowid plus one, so the batch's
        ids run up to the last one inserted."""
        return self._insert_rows(c, [(s.originator_id, s.originator_version, s.topic, s.state) for s in stored_events])

    def insert_rows(self, rows: Sequence[tuple[UUID | str, int, str, bytes]]) -> list[int]:
        """`insert_events` for events given as (originator id, originator version, topic, state) tuples (see
        `OrjsonMapper.stored_rows`): one transaction; the notification ids."""
        if not rows:
            return []
        with self.datastore.transaction(commit=True) as c:
            return self._insert_rows(c, rows)

    def _insert_rows(self, c: Any, rows: Sequence[tuple[UUID | str, int, str, bytes]]) -> list[int]:
        params = [(r[0].hex if isinstance(r[0], UUID) else r[0], r[1], r[2], r[3]) for r in rows]
        if not params:
            return []
        c.executemany(self.insert_events_statement, params)
        c.execute("SELECT last_insert_rowid()")
        last = int(c.fetchone()[0])
        return list(range(last - len(params) + 1, last + 1))

    def select_histories(self, ids: Sequence[UUID]) -> dict[UUID, list[StoredEvent]]:
        """The stored events of each aggregate among `ids` that has any, in version order: one indexed query per few
        hundred ids, where reading aggregates back one by one costs a query and a read transaction each."""
        table = self.events_table_name
        found: dict[UUID, list[StoredEvent]] = {}
        with self.datastore.transaction(commit=False) as c:
            for start in range(0, len(ids), HISTORY_IDS_PER_QUERY):
                chunk = [i.hex for i in ids[start : start + HISTORY_IDS_PER_QUERY]]
                marks = ", ".join("?" * len(chunk))
                c.execute(
                    f"SELECT originator_id, originator_version, topic, state FROM {table}"
                    f" WHERE originator_id IN ({marks}) ORDER BY originator_id, originator_version",
                    chunk,
                )
                for originator_id, version, topic, state in c.fetchall():
                    key = UUID(originator_id)
                    found.setdefault(key, []).append(StoredEvent(key, version, topic, state))
        return found

    def select_aggregate_states(
        self,
        topics: Sequence[str],
        *,
        up_to: int,
        exclude: bool = False,
        limit: int = 20000,
        after: str = "",
        before: str | None = None,
    ) -> Iterator[list[tuple[str, str, bytes]]]:
        """Stream the events of notification id <= `up_to` whose topic is (or, with `exclude`, is not) one of
        `topics`, aggregate by aggregate in version order, as (originator id, topic, state) rows: no library
        objects, for a rebuild that decodes the state itself. Only aggregates whose id sorts after `after` and
        (if given) before `before` are read. Each list holds whole aggregates (about `limit` events; more when
        one aggregate alone has more) and is read in its own short transaction, or, for the few events of some
        topics, all lists from one read in order (`_read_in_order`)."""
        table = self.events_table_name
        indexed = not exclude and tuple(topics) == HOST_TOPICS  # their partial index: its own terms, as literals
        topic_test = (
            topics_sql(HOST_TOPICS)
            if indexed
            else f"topic {'NOT IN' if exclude else 'IN'} ({', '.join('?' * len(topics))})"
        )
        where = f"rowid <= ? AND {topic_test}"
        bound: list[Any] = [] if indexed else list(topics)
        if before is not None:
            where += " AND originator_id < ?"
            bound.append(before)
        if not exclude:
            yield from self._read_in_order(
                f"originator_id > ? AND {where}", [after, up_to, *bound], limit, indexed=indexed
            )
            return
        page_sql = (
            f"SELECT originator_id, originator_version, topic, state FROM {table}"
            f" WHERE originator_id > ? AND {where} ORDER BY originator_id, originator_version LIMIT ?"
        )
        rest_sql = (
            f"SELECT originator_id, originator_version, topic, state FROM {table}"
            f" WHERE originator_id = ? AND originator_version > ? AND {where} ORDER BY originator_version"
        )
        page = max(1, limit)
        while True:
            with self.datastore.transaction(commit=False) as c:
                cursor = c.sqlite_cursor
                # Plain tuples: the library's sqlite3.Row costs more per row, and is not needed.
                cursor.row_factory = None
                cursor.execute(page_sql, [after, up_to, *bound, page])
                rows = cursor.fetchall()
                if len(rows) == page:
                    last = rows[-1][0]
                    whole = [r for r in rows if r[0] != last]
                    if whole:
                        rows = whole  # the last aggregate may go on: it starts the next list
                    else:  # one aggregate longer than a page: read the rest of it
                        cursor.execute(rest_sql, [last, rows[-1][1], up_to, *bound])
                        rows = [*rows, *cursor.fetchall()]
            if not rows:
                return
            after = rows[-1][0]
            yield [(r[0], r[2], r[3]) for r in rows]

    def _read_in_order(
        self, where: str, params: list[Any], limit: int, *, indexed: bool = False
    ) -> Iterator[list[tuple[str, str, bytes]]]:
        """`select_aggregate_states` for the events of a few topics, in one read transaction: `indexed`, by the
        partial index of their events; else the table read once in storage order and sorted by SQLite (its sorter
        spills to disk: memory stays bounded), where walking the key index reads every row to test its topic, a page
        at a time."""
        sql = (
            f"SELECT originator_id, originator_version, topic, state FROM {self.events_table_name}"
            f"{'' if indexed else ' NOT INDEXED'} WHERE {where} ORDER BY originator_id, originator_version"
        )
        page = max(1, limit)
        with self.datastore.transaction(commit=False) as c:
            cursor = c.sqlite_cursor
            cursor.row_factory = None
            cursor.execute(sql, params)
            rows: list[Any] = []
            while batch := cursor.fetchmany(page):
                rows.extend(batch)
                last = rows[-1][0]
                cut = len(rows)
                while cut and rows[cut - 1][0] == last:
                    cut -= 1
                if cut:  # the last aggregate may go on in the next rows
                    yield [(r[0], r[2], r[3]) for r in rows[:cut]]
                    rows = rows[cut:]
            if rows:
                yield [(r[0], r[2], r[3]) for r in rows]


class PollingSQLiteProcessRecorder(SQLiteProcessRecorder):
    """The library's SQLite process recorder, plus a polling subscribe()."""

    def subscribe(self, gt: int | None = None, topics: Sequence[str] = ()) -> Subscription[ApplicationRecorder]:
        """A subscription that polls the notification log."""
        return PollingSubscription(self, gt=gt, topics=topics)


class Factory(SQLiteFactory):
    """SQLiteFactory whose application and process recorders can be subscribed to."""

    application_recorder_class = PollingSQLiteApplicationRecorder
    process_recorder_class = PollingSQLiteProcessRecorder


class SQLiteEventStore(RecorderEventStore):
    """The embedded store's `EventStore`: rows inserted in one `executemany`, histories read a batch at a time."""

    def __init__(self, recorder: PollingSQLiteApplicationRecorder, mapper: Mapper[UUID]) -> None:
        super().__init__(recorder, mapper)
        self.sqlite = recorder

    def append(self, events: Sequence[Any]) -> list[int]:
        """The application's own events as plain rows where the mapper gives them (`OrjsonMapper.stored_rows`)."""
        rows = self.mapper.stored_rows(list(events)) if isinstance(self.mapper, OrjsonMapper) else None
        if rows is None:
            return super().append(events)
        return self.sqlite.insert_rows(rows)

    def histories(self, ids: Sequence[UUID]) -> dict[UUID, list[StoredEvent]]:
        """A few hundred aggregates per query."""
        return self.sqlite.select_histories(ids)


__all__: list[Any] = ["Factory", "PollingSubscription", "SQLiteEventStore"]
