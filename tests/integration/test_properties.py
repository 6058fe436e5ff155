"""Order and duplication do not matter: property-based tests over simulated job histories."""

from __future__ import annotations

import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from batchops.bootstrap import Settings, build_application
from batchops.ingest import Ingestor
from batchops.metrics import MetricPoint
from batchops.simulation import SimulationSettings, simulate_with_truth
from batchops.translation import RawEvent
from batchops.tuning import DEFAULT_TUNING, Tuning
from conftest import ingest, rows_by_job


def _workload(seed: int, jobs: int = 8) -> list[dict[str, Any]]:
    events, _ = simulate_with_truth(SimulationSettings(accounts=1, regions=1, jobs=jobs, seed=seed))
    return events


def _project(
    events: list[dict[str, Any]],
    batch_size: int = 50,
    project_every: int = 20_000,
    queued_rows: int | None = None,
    time_order_from: float | None = None,
    folds_held: int | None = None,
) -> tuple[dict, list, Counter]:
    """Ingest into a fresh store (the views updated every `project_every` events, their sessions writing every
    `queued_rows` job rows, and as soon as they hold `folds_held` aggregates; the rest of the input put back in time
    order once a batch reads back this share of its aggregates from the store); return job rows, instance rows and the
    metric totals."""
    points: list[MetricPoint] = []
    tuning = Tuning(
        job_rows_queued=queued_rows or DEFAULT_TUNING.job_rows_queued,
        time_order_reread_share=DEFAULT_TUNING.time_order_reread_share if time_order_from is None else time_order_from,
        folds_held_max=folds_held or DEFAULT_TUNING.folds_held_max,
    )
    with tempfile.TemporaryDirectory() as folder:
        app = build_application(Settings.from_environment(store=f"sqlite:///{Path(folder) / 'p.db'}"), tuning=tuning)
        try:
            ingestor = Ingestor(app, batch_size=batch_size, project_every=project_every, on_points=points.extend)
            ingestor.ingest(RawEvent(e, i) for i, e in enumerate(events))
            jobs = rows_by_job(app)
            instances = list(app.views.instances())
        finally:
            app.close()
    totals: Counter = Counter()
    for p in points:
        if p.name not in ("EventsIngested", "DuplicatesDropped"):
            # A host termination is labelled spot_reclaim once the instance is known to be spot: a warning that
            # arrives after the failure cannot relabel a point already emitted. The count is what must not change.
            dims = tuple(
                ("FailureKind", "host_lost")
                if d[0] == "FailureKind" and d[1] in ("spot_reclaim", "host_terminated")
                else d
                for d in p.dimensions
            )
            totals[(p.name, dims)] += p.value
    return jobs, instances, Counter({k: round(v, 3) for k, v in totals.items()})


_BASELINES: dict[int, tuple[list[dict[str, Any]], tuple[dict, list, Counter]]] = {}


def _baseline(seed: int) -> tuple[list[dict[str, Any]], tuple[dict, list, Counter]]:
    if seed not in _BASELINES:
        events = _workload(seed)
        _BASELINES[seed] = (events, _project(events))
    return _BASELINES[seed]


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(seed=st.integers(0, 3), data=st.data())
def test_any_permutation_and_duplication_gives_the_in_order_projection(seed: int, data: st.DataObject) -> None:
    events, (jobs, instances, totals) = _baseline(seed)
    order = data.draw(st.permutations(range(len(events))), label="order")
    repeats = data.draw(st.lists(st.integers(0, len(events) - 1), max_size=len(events) // 2), label="duplicates")
    batch = data.draw(st.sampled_from([1, 7, 50, 1000]), label="batch size")
    project_every = data.draw(st.sampled_from([1, 20, 20_000]), label="views updated every")
    queued_rows = data.draw(st.sampled_from([1, 3, None]), label="job rows written every")
    time_order_from = data.draw(st.sampled_from([0.0, 2.0, None]), label="rest put in time order (0: always, 2: never)")
    folds_held = data.draw(st.sampled_from([2, None]), label="views updated once they hold this many aggregates")
    delivered = [events[i] for i in order] + [events[i] for i in repeats]
    got_jobs, got_instances, got_totals = _project(
        delivered,
        batch_size=batch,
        project_every=project_every,
        queued_rows=queued_rows,
        time_order_from=time_order_from,
        folds_held=folds_held,
    )
    assert got_jobs == jobs
    assert got_instances == instances
    assert got_totals == totals  # each distinct state change counted once, late or not, duplicated or not


def test_the_drawn_histories_hold_submissions_dependency_waits_and_service_jobs() -> None:
    # What the permutation property covers: SubmitJob records (some naming dependencies) and service jobs.
    for seed in range(4):
        _, (jobs, _, _) = _baseline(seed)
        rows = list(jobs.values())
        assert all(
            r["submitted_at"] and r["submitted_by"]
            for r in rows
            if r["array_parent_id"] is None and r["platform"] != "SAGEMAKER"
        )
        assert any(r["depends_on"] and r["pending_seconds"] for r in rows)
        assert any(r["platform"] == "SAGEMAKER" and r["capacity_usage"] for r in rows)


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 1000),
    page=st.sampled_from([1, 13, 5000]),
    two_cores=st.booleans(),
    queued_rows=st.sampled_from([2, None]),
)
def test_replay_equals_live(seed: int, page: int, two_cores: bool, queued_rows: int | None) -> None:
    events = _workload(seed, jobs=6)
    tuning = Tuning(
        replay_page=page,
        # the job phase in a worker process too, whatever the store's size
        parallel_replay_min_events=0 if two_cores else DEFAULT_TUNING.parallel_replay_min_events,
        job_rows_queued=queued_rows or DEFAULT_TUNING.job_rows_queued,  # sessions write every `queued_rows` jobs
    )
    with tempfile.TemporaryDirectory() as folder:
        settings = Settings.from_environment(store=f"sqlite:///{Path(folder) / 'r.db'}")
        app = build_application(settings, tuning=tuning)
        try:
            ingest(app, events, batch_size=17)
            live = (list(app.views.jobs()), list(app.views.instances()), list(app.views.timeline()))
            app.replay()
            assert (list(app.views.jobs()), list(app.views.instances()), list(app.views.timeline())) == live
        finally:
            app.close()


def test_projection_matches_the_simulated_truth(make_app) -> None:
    events, truth = simulate_with_truth(SimulationSettings(accounts=2, regions=2, jobs=300, seed=11, chaos=True))
    app = make_app()
    summary = ingest(app, events).summary
    assert summary.duplicates > 0 and summary.rejected == 0
    rows = rows_by_job(app)
    assert len(rows) == len(truth)
    mismatches = []
    for expected in truth:
        row = rows[(expected.account_id, expected.region, expected.job_id)]
        for field in (
            "status",
            "attempts",
            "exit_code",
            "queue",
            "platform",
            "array_parent_id",
            "array_index",
            "array_size",
            "failure_kind",
        ):
            if row[field] != getattr(expected, field):
                mismatches.append((expected.job_id, field, row[field], getattr(expected, field)))
        if expected.instance_id is not None and row["instance_id"] != expected.instance_id:
            mismatches.append((expected.job_id, "instance_id", row["instance_id"], expected.instance_id))
        if expected.compute_environment is not None and row["compute_environment"] != expected.compute_environment:
            mismatches.append(
                (expected.job_id, "compute_environment", row["compute_environment"], expected.compute_environment)
            )
        # Pricing is never wrong; it stays unknown for a job that never ran (no CE is known) and may stay unknown
        # for an on-demand CE that no CloudTrail record describes.
        unknown_allowed = expected.attempts == 0 or expected.pricing == "on-demand"
        if row["pricing"] != expected.pricing and not (row["pricing"] == "unknown" and unknown_allowed):
            mismatches.append((expected.job_id, "pricing", row["pricing"], expected.pricing))
    assert mismatches == [], "\n".join(map(str, mismatches))
