"""Stored events written with orjson are the library's JSON format, byte for byte, both ways."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from uuid import uuid4

from eventsourcing.persistence import DatetimeAsISO, DecimalAsStr, JSONTranscoder, Mapper, UUIDAsHex

from batchops.jobs import Job
from batchops.simulation import SimulationSettings, simulate
from batchops.transcoder import OrjsonMapper, OrjsonTranscoder
from conftest import ingest


def _pair() -> tuple[JSONTranscoder, OrjsonTranscoder]:
    library, ours = JSONTranscoder(), OrjsonTranscoder()
    for transcoder in (library, ours):
        for transcoding in (UUIDAsHex(), DecimalAsStr(), DatetimeAsISO()):
            transcoder.register(transcoding)
    return library, ours


def test_every_stored_event_of_a_simulated_run_is_the_librarys_format(make_app) -> None:
    app = make_app()
    ingest(app, list(simulate(SimulationSettings(accounts=2, regions=1, jobs=60, seed=3, chaos=True))))
    library, ours = _pair()
    notifications = app.recorder.select_notifications(start=None, limit=100_000)
    assert len({n.topic for n in notifications}) >= 6  # every aggregate's Tracked and observed events
    for stored in notifications:
        assert ours.decode(stored.state) == library.decode(stored.state)
        state = library.decode(stored.state)
        assert ours.encode(state) == library.encode(state) == stored.state


def test_tagged_values_at_any_depth_round_trip() -> None:
    library, ours = _pair()
    when = datetime(2025, 11, 13, 2, 13, 20, 123000, tzinfo=UTC)
    state = {
        "timestamp": when,
        "originator_topic": "batchops.jobs:Job",
        "id": uuid4(),
        "price": Decimal("0.0416"),
        "nested": {"at": [when, {"deeper": when}], "text": "naïve ✓", "n": -(2**53), "x": 1.5, "none": None},
    }
    encoded = ours.encode(state)
    assert library.decode(encoded) == state
    assert ours.decode(library.encode(state)) == state
    assert ours.decode(encoded) == state


def test_the_mappers_direct_path_stores_what_the_librarys_mapper_stores(make_app) -> None:
    app = make_app()
    ingest(app, list(simulate(SimulationSettings(accounts=1, regions=2, jobs=40, seed=9, chaos=True))))
    assert isinstance(app.mapper, OrjsonMapper)
    library = Mapper(transcoder=_pair()[0])
    notifications = app.recorder.select_notifications(start=None, limit=100_000)
    direct = 0
    events = []
    for stored in notifications:
        event = app.mapper.to_domain_event(stored)
        events.append(event)
        direct += type(event) in app.mapper.fast_classes
        assert app.mapper.to_stored_event(event) == library.to_stored_event(event)
        assert app.mapper.to_stored_event(event).state == stored.state
    assert direct == len(notifications)
    # The rows a save inserts are the library's stored events, field for field.
    rows = app.mapper.stored_rows(events)
    assert rows is not None
    expected = [library.to_stored_event(e) for e in events]
    assert rows == [(s.originator_id, s.originator_version, s.topic, s.state) for s in expected]


def test_rows_are_given_only_when_every_event_takes_the_direct_path(make_app) -> None:
    app = make_app()
    job = Job.track("123456789012", "us-east-1", "job-1")
    assert app.mapper.stored_rows(job.collect_events()) is not None

    class Renamed(Job.Tracked):
        """An event class of no aggregate of this application."""

    foreign = Renamed(
        originator_id=uuid4(),
        originator_version=1,
        timestamp=datetime.now(tz=UTC),
        originator_topic="batchops.jobs:Job",
        account_id="123456789012",
        region="us-east-1",
        job_id="job-2",
    )
    assert app.mapper.stored_rows([foreign]) is None
