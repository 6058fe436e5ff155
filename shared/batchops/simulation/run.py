"""The public entry points: `simulate` streams the events, `simulate_with_truth` also returns each job's truth.

The simulator plans jobs in submission order. Every job's events (and the EC2/ECS events of the
instances it lands on) happen at or after its submission time, so a heap can release, in time order,
every planned event older than the next submission: memory stays flat however long the run is.
Events are built from their plan only when released, and envelope ids are drawn at that moment
from their own random stream, so the optional chaos layer (duplicates, reordering) never changes
which events exist.
"""

from __future__ import annotations

import gc
import random
from collections.abc import Iterator
from operator import itemgetter
from typing import Any

from batchops.simulation.accounts import announce_compute_environments, build_account_regions
from batchops.simulation.attempts import AttemptPlanner
from batchops.simulation.chaos import deliver_with_chaos
from batchops.simulation.fleet import Fleet
from batchops.simulation.service_jobs import ServiceJobs
from batchops.simulation.settings import SimulationSettings, validate
from batchops.simulation.timeline import Timeline
from batchops.simulation.truth import ExpectedJob
from batchops.simulation.workload import Workload

_SUBMISSIONS_PER_SECOND_PER_REGION = 0.25


def simulate(settings: SimulationSettings) -> Iterator[dict[str, Any]]:
    """Stream EventBridge events (dicts) in delivery order; same settings, same events, byte for byte."""
    validate(settings)
    simulation = _Simulation(settings, truth=None)
    if settings.chaos:
        return deliver_with_chaos(simulation.timed_events(), settings.seed)
    return map(itemgetter(1), simulation.timed_events())


def simulate_with_truth(settings: SimulationSettings) -> tuple[list[dict[str, Any]], list[ExpectedJob]]:
    """Run a (small) simulation to completion: its events in delivery order and the truth of every job."""
    validate(settings)
    truth: list[ExpectedJob] = []
    simulation = _Simulation(settings, truth=truth)
    timed = simulation.timed_events()
    delivered = deliver_with_chaos(timed, settings.seed) if settings.chaos else map(itemgetter(1), timed)
    # Every event stays alive in the list, so each cyclic collection would walk all of them again
    # (more than halving the speed); nothing here needs collecting before the run ends.
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        return list(delivered), truth
    finally:
        if was_enabled:
            gc.enable()


class _Simulation:
    """Submits jobs in time order and releases the planned events older than each submission."""

    def __init__(self, settings: SimulationSettings, truth: list[ExpectedJob] | None) -> None:
        self.settings = settings
        # One random stream for the whole plan: the order of its draws is what makes a run repeatable.
        self.rng = random.Random(settings.seed)
        self.timeline = Timeline(settings.seed)
        self.start_ms = int(settings.start.timestamp()) * 1000
        self.homes = build_account_regions(self.rng, settings)
        if len(self.homes) >= 3:
            self.homes[-1].has_trail = False  # one account-region without a trail: its jobs have no SubmitJob record
        self.fleet = Fleet(self.rng, self.timeline)
        attempts = AttemptPlanner(self.rng, self.timeline, self.fleet)
        self.workload = Workload(self.rng, self.timeline, attempts, self.homes, truth, seed=settings.seed)
        self.service_jobs = ServiceJobs(settings.seed, self.timeline, self.homes, truth)

    def timed_events(self) -> Iterator[tuple[int, dict[str, Any]]]:
        """Events with their event time in ms, in time order."""
        rng = self.rng
        timeline = self.timeline
        first_submission = announce_compute_environments(rng, timeline, self.homes, self.start_ms) + 60_000
        mean_gap_ms = 1000 / (_SUBMISSIONS_PER_SECOND_PER_REGION * len(self.homes))
        submitted_ms = first_submission
        for _ in range(self.settings.jobs):
            # Submissions come in small bursts (pipelines submit several jobs at once).
            gap = rng.random() * 400 if rng.random() < 0.15 else rng.expovariate(1 / mean_gap_ms)
            submitted_ms += 1 + int(gap)
            self.fleet.scale_in_idle_instances(before=submitted_ms)
            yield from timeline.release(before=submitted_ms)
            self.workload.submit(submitted_ms)
            self.service_jobs.after_submission(submitted_ms)
        self.fleet.scale_in_idle_instances(before=None)
        yield from timeline.release(before=None)
