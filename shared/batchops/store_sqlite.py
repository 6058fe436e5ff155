"""eventsourcing's SQLite persistence with a polling subscription (the library's SQLite recorder has none).

Named as PERSISTENCE_MODULE, this module gives the library everything `eventsourcing.sqlite` gives, with an
application recorder whose `subscribe()` polls the notification log, so the library's ProjectionRunner
works on the embedded store too.
"""

from __future__ import annotations

import itertools
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future
from typing import Any
from uuid import UUID

from eventsourcing.persistence import ApplicationRecorder, Notification, StoredEvent, Subscription
from eventsourcing.sqlite import SQLiteApplicationRecorder, SQLiteFactory, SQLiteProcessRecorder

POLL_SECONDS = 0.2
ROWS_PER_INSERT = 8000
"""Events inserted by one statement (within SQLite's limit on parameters, four per event). One statement is one call
into SQLite, during which Python's other threads run: `executemany` calls in once per row, and a thread inserting that
way waits for its turn at the interpreter between every two rows. Measured with 170,000 stored events of the bench
stream inserted in a thread beside 1.06 s of Python work: 250 rows per statement took 2.02 s in all, 2,000 1.53 s,
8,000 1.36 s; alone, each took 1.0-1.1 s, as `executemany` does."""
_MAX_PARAMETERS = sqlite3.connect(":memory:").getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)


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

    _behind: Future[list[int]] | None = None
    """The insert `insert_rows_behind` started and nobody has waited for yet."""
    _behind_ids: frozenset[str] = frozenset()
    """The aggregates (stored ids) that insert adds events to."""

    def subscribe(self, gt: int | None = None, topics: Sequence[str] = ()) -> Subscription[ApplicationRecorder]:
        """A subscription that polls the notification log."""
        return PollingSubscription(self, gt=gt, topics=topics)

    def insert_rows_behind(self, rows: Sequence[tuple[UUID | str, int, str, bytes]]) -> Future[list[int]]:
        """`insert_rows` in a thread of its own, returning at once: the caller goes on (ingest decodes and folds its
        next batch) while SQLite writes this one, and Python's other threads run while SQLite works (see
        `ROWS_PER_INSERT`). The future's result is the notification ids, or the insert's error.

        At most one insert runs behind, and nothing reads the store without what it was handed: the next insert waits
        for it, and so does a read of the notification log or of an aggregate it adds events to (reads of other
        aggregates go on: the insert does not change what they see). Waiting raises the insert's error, once."""
        self.wait_for_writes()
        params = self._parameters(rows)
        behind: Future[list[int]] = Future()
        behind.set_running_or_notify_cancel()

        def insert() -> None:
            try:
                behind.set_result(self._insert_now(params))
            except BaseException as error:  # handed to whoever waits
                behind.set_exception(error)

        self._behind_ids = frozenset(p[0] for p in params)
        self._behind = behind
        # A thread per insert, not a pool: none stays behind between batches (a worker process forked later then
        # finds a single thread), and starting one costs far less than the insert it runs.
        threading.Thread(target=insert, name="batchops-store-insert").start()
        return behind

    def wait_for_writes(self) -> None:
        """Wait for the insert running behind, if any; raise its error (to the first caller that waits)."""
        behind = self._behind
        if behind is None:
            return
        try:
            behind.result()
        finally:
            self._behind = None
            self._behind_ids = frozenset()

    def _wait_for_writes_to(self, stored_ids: Iterable[str]) -> None:
        """Wait for the insert running behind if it adds events to any of these aggregates."""
        if self._behind is not None and not self._behind_ids.isdisjoint(stored_ids):
            self.wait_for_writes()

    def insert_events(self, *args: Any, **kwargs: Any) -> Sequence[int] | None:
        """The library's insert, after any insert running behind."""
        self.wait_for_writes()
        return super().insert_events(*args, **kwargs)

    def select_events(self, originator_id: UUID | str, **kwargs: Any) -> Sequence[StoredEvent]:
        """The library's read of one aggregate's events, after an insert running behind that adds to them."""
        self._wait_for_writes_to([_stored_id(originator_id)])
        return super().select_events(originator_id, **kwargs)

    def select_notifications(self, *args: Any, **kwargs: Any) -> Sequence[Notification]:
        """The library's read of the notification log, after any insert running behind."""
        self.wait_for_writes()
        return super().select_notifications(*args, **kwargs)

    def max_notification_id(self) -> int:
        """The library's last notification id, after any insert running behind."""
        self.wait_for_writes()
        return super().max_notification_id()

    def _insert_events(self, c: Any, stored_events: Sequence[StoredEvent], **_: Any) -> Sequence[int] | None:
        """The library's insert in as few statements as SQLite allows. The notification ids are the rows' rowids:
        inside the write transaction SQLite gives each new row the largest rowid plus one, so the batch's ids run up
        to the last one inserted."""
        rows = [(s.originator_id, s.originator_version, s.topic, s.state) for s in stored_events]
        return self._insert_rows(c, self._parameters(rows))

    def insert_rows(self, rows: Sequence[tuple[UUID | str, int, str, bytes]]) -> list[int]:
        """`insert_events` for events given as (originator id, originator version, topic, state) tuples (see
        `OrjsonMapper.stored_rows`): one transaction; the notification ids."""
        self.wait_for_writes()
        return self._insert_now(self._parameters(rows))

    @staticmethod
    def _parameters(rows: Sequence[tuple[UUID | str, int, str, bytes]]) -> list[tuple[str, int, str, bytes]]:
        return [(_stored_id(r[0]), r[1], r[2], r[3]) for r in rows]

    def _insert_now(self, params: list[tuple[str, int, str, bytes]]) -> list[int]:
        if not params:
            return []
        with self.datastore.transaction(commit=True) as c:
            return self._insert_rows(c, params)

    def _insert_rows(self, c: Any, params: list[tuple[str, int, str, bytes]]) -> list[int]:
        if not params:
            return []
        per_statement = max(1, min(ROWS_PER_INSERT, _MAX_PARAMETERS // 4))
        for start in range(0, len(params), per_statement):
            chunk = params[start : start + per_statement]
            c.execute(self._insert_statement(len(chunk)), list(itertools.chain.from_iterable(chunk)))
        c.execute("SELECT last_insert_rowid()")
        last = int(c.fetchone()[0])
        return list(range(last - len(params) + 1, last + 1))

    def _insert_statement(self, rows: int) -> str:
        """An insert of `rows` events in one statement (the library's insert, with that many rows of values)."""
        return f"INSERT INTO {self.events_table_name} VALUES " + ", ".join(["(?,?,?,?)"] * rows)

    def absent_aggregates(self, ids: Sequence[UUID]) -> set[UUID]:
        """The ids among `ids` that have no stored event: one indexed query per few hundred ids, where asking the
        repository for an aggregate that does not exist yet costs a read transaction each. (Those the insert running
        behind adds events to are not absent; the others are asked without waiting for it.)"""
        table = self.events_table_name
        found: set[str] = set(self._behind_ids) if self._behind is not None else set()
        asked = [i.hex for i in ids if i.hex not in found]
        with self.datastore.transaction(commit=False) as c:
            for start in range(0, len(asked), 500):
                chunk = asked[start : start + 500]
                marks = ", ".join("?" * len(chunk))
                c.execute(f"SELECT DISTINCT originator_id FROM {table} WHERE originator_id IN ({marks})", chunk)
                found.update(r[0] for r in c.fetchall())
        return {i for i in ids if i.hex not in found}

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
        one aggregate alone has more) and is read in its own short transaction."""
        self.wait_for_writes()
        table = self.events_table_name
        marks = ", ".join("?" * len(topics))
        where = f"rowid <= ? AND topic {'NOT IN' if exclude else 'IN'} ({marks})"
        bound: list[Any] = []
        if before is not None:
            where += " AND originator_id < ?"
            bound.append(before)
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
                c.execute(page_sql, [after, up_to, *topics, *bound, page])
                rows = c.fetchall()
                if len(rows) == page:
                    last = rows[-1][0]
                    whole = [r for r in rows if r[0] != last]
                    if whole:
                        rows = whole  # the last aggregate may go on: it starts the next list
                    else:  # one aggregate longer than a page: read the rest of it
                        c.execute(rest_sql, [last, rows[-1][1], up_to, *topics, *bound])
                        rows = [*rows, *c.fetchall()]
            if not rows:
                return
            after = rows[-1][0]
            yield [(r[0], r[2], r[3]) for r in rows]


def _stored_id(originator_id: UUID | str) -> str:
    """An aggregate id as the library stores it."""
    return originator_id.hex if isinstance(originator_id, UUID) else originator_id


class PollingSQLiteProcessRecorder(SQLiteProcessRecorder):
    """The library's SQLite process recorder, plus a polling subscribe()."""

    def subscribe(self, gt: int | None = None, topics: Sequence[str] = ()) -> Subscription[ApplicationRecorder]:
        """A subscription that polls the notification log."""
        return PollingSubscription(self, gt=gt, topics=topics)


class Factory(SQLiteFactory):
    """SQLiteFactory whose application and process recorders can be subscribed to."""

    application_recorder_class = PollingSQLiteApplicationRecorder
    process_recorder_class = PollingSQLiteProcessRecorder


__all__: list[Any] = ["Factory", "PollingSubscription"]
