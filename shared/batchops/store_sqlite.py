"""eventsourcing's SQLite persistence with a polling subscription (the library's SQLite recorder has none).

Named as PERSISTENCE_MODULE, this module gives the library everything `eventsourcing.sqlite` gives, with an
application recorder whose `subscribe()` polls the notification log, so the library's ProjectionRunner
works on the embedded store too.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from eventsourcing.persistence import ApplicationRecorder, Notification, Subscription
from eventsourcing.sqlite import SQLiteApplicationRecorder, SQLiteFactory, SQLiteProcessRecorder

POLL_SECONDS = 0.2


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
    """The library's SQLite application recorder, plus a polling subscribe()."""

    def subscribe(self, gt: int | None = None, topics: Sequence[str] = ()) -> Subscription[ApplicationRecorder]:
        """A subscription that polls the notification log."""
        return PollingSubscription(self, gt=gt, topics=topics)


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
