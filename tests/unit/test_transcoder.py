"""Stored events written with orjson are the library's JSON format, byte for byte, both ways."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from uuid import uuid4

from eventsourcing.persistence import DatetimeAsISO, DecimalAsStr, JSONTranscoder, Mapper, UUIDAsHex

from batchops.simulate import SimulationSettings, simulate
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
    for stored in notifications:
        event = app.mapper.to_domain_event(stored)
        direct += type(event) in app.mapper.fast_classes
        assert app.mapper.to_stored_event(event) == library.to_stored_event(event)
        assert app.mapper.to_stored_event(event).state == stored.state
    assert direct == len(notifications)
