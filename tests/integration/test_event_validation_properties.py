"""Every field of every sample event given a value of another JSON type: the event is kept aside with a reason that
names the field, or it is projected exactly as the valid event; never a traceback, never a row with an invalid value.

A `null` is read as the field being absent (the tolerant reader's rule), so a `null` variant is compared with the event
without that field. Resource amounts drift between strings and numbers in what AWS sends: a number put in their place
is only the same event when it is the same amount, so those paths take no random numbers."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from batchops.facts import Parsed
from batchops.inbound import KNOWN_STATES, Unusable, translate
from batchops.ingest import Ingestor
from batchops.translation import RawEvent, translate_raw
from batchops.views import RejectedEvent
from conftest import EVENTS, all_samples, rows_by_job

Path_ = tuple[str | int, ...]
SAMPLES = all_samples()
NAMES = [f.stem for f in sorted(EVENTS.glob("*.json")) + sorted((EVENTS / "real").glob("*.json"))]


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    return {str: "string", list: "array", dict: "object"}[type(value)]


def _paths(value: Any, prefix: Path_ = ()) -> list[Path_]:
    found: list[Path_] = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _paths(item, (*prefix, index))
    return found


def _at(event: Any, path: Path_) -> Any:
    for step in path:
        event = event[step]
    return event


def _replaced(event: dict[str, Any], path: Path_, value: Any) -> dict[str, Any]:
    copied = copy.deepcopy(event)
    _at(copied, path[:-1])[path[-1]] = value
    return copied


def _removed(event: dict[str, Any], path: Path_) -> dict[str, Any]:
    copied = copy.deepcopy(event)
    del _at(copied, path[:-1])[path[-1]]
    return copied


def _is_amount(path: Path_) -> bool:
    return len(path) >= 3 and path[-1] == "value" and path[-3] == "resourceRequirements"


def _others(original: Any, path: Path_) -> list[Any]:
    """One value of every other JSON type, the same quantity where a type can hold it."""
    number: Any = 7
    if isinstance(original, str):
        try:
            amount = float(original)
            number = int(amount) if amount.is_integer() else amount
        except ValueError:
            number = 7
    text = str(original) if isinstance(original, int | float) and not isinstance(original, bool) else "x"
    candidates = [None, True, number, text, [], {}]
    return [c for c in candidates if _json_type(c) != _json_type(original)]


def _field_of(path: Path_) -> str:
    """The name a reason must show: the nearest key of the path (its last key that is not an index)."""
    return next(str(step) for step in reversed(path) if isinstance(step, str))


def _check(event: dict[str, Any], path: Path_, value: Any) -> Parsed | RejectedEvent:
    """The property, for one variant; returns what the variant became."""
    valid = translate(event)
    reference = translate(_removed(event, path)) if value is None and isinstance(path[-1], str) else valid
    variant = _replaced(event, path, value)
    got = translate_raw(RawEvent(variant, 1))  # never raises: an exception fails the test with its traceback
    if isinstance(got, Parsed):
        assert got == reference, (path, value)
    elif got.rejected:
        assert _field_of(path) in got.reason, (path, value, got.reason)
        assert (got.account_id is None or re.fullmatch(r"\d{12}", got.account_id)) and len(got.body) < 10_000
    else:  # ignored: only when the event it stands for is ignored too
        assert isinstance(reference, Unusable) and not reference.rejected, (path, value, got.reason)
    return got


def test_every_field_of_every_sample_given_every_other_type() -> None:
    kept = accepted = 0
    for event in SAMPLES:
        for path in _paths(event):
            for value in _others(_at(event, path), path):
                result = _check(event, path, value)
                kept += not isinstance(result, Parsed)
                accepted += isinstance(result, Parsed)
    assert kept > 1000 and accepted > 100  # both outcomes are exercised


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=6,
)


@settings(max_examples=800, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_any_value_of_another_type_anywhere_is_kept_aside_or_changes_nothing(data: st.DataObject) -> None:
    event = SAMPLES[data.draw(st.integers(0, len(SAMPLES) - 1), label="sample")]
    path = data.draw(st.sampled_from(_paths(event)), label="path")
    original = _at(event, path)
    kinds = JSON_VALUES.filter(lambda v: _json_type(v) != _json_type(original))
    if _is_amount(path):
        kinds = kinds.filter(lambda v: _json_type(v) != "number")
    _check(event, path, data.draw(kinds, label="value"))


def test_the_variants_of_a_job_event_ingested_together_leave_only_the_valid_rows(make_app, tmp_path: Path) -> None:
    """All wrong-type variants of one Batch Job State Change go through ingest with the valid event: the rows are the
    valid event's alone, every status, account and region in them is a real one, and each variant kept aside is
    counted."""
    name = "aws-batch--batch-job-state-change--failed"
    event = SAMPLES[NAMES.index(name)]
    variants = [
        _replaced(event, path, value)
        for path in _paths(event)
        for value in _others(_at(event, path), path)
        if value is not None
    ]
    alone, together = make_app("alone"), make_app("together")
    Ingestor(alone).ingest([RawEvent(event, 1)])
    summary = Ingestor(together, batch_size=50).ingest(
        RawEvent(v, i) for i, v in enumerate([event, *variants], start=1)
    )
    assert summary.read == len(variants) + 1 and summary.rejected + summary.new + summary.duplicates == summary.read
    assert rows_by_job(together) == rows_by_job(alone)
    for row in together.views.jobs():
        assert row["status"] in KNOWN_STATES and re.fullmatch(r"\d{12}", row["account_id"])
        assert re.fullmatch(r"[a-z]{2}(-[a-z]+)+-\d+", row["region"])
    (tmp_path / "variants.json").write_text(json.dumps({"variants": len(variants), "rejected": summary.rejected}))
    assert summary.rejected > len(variants) // 2
