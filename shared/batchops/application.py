"""The service layer: record facts on aggregates, save many aggregates per transaction, feed the views.

Commands take parsed facts; queries go to the view store and return plain dicts. The same application runs locally
on SQLite and in AWS on DynamoDB: what differs is wired in (`bootstrap`) through two ports (`batchops.ports`): the
event store's extras and the projection feed (from the notification log, or from a change stream).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import ApplicationRecorder, IntegrityError, Mapper, StoredEvent, Transcoder

from batchops.batch_recording import BatchInput, BatchOutcome, PipelineTime, PoisonReport, combined, latest_event_time
from batchops.compute_environments import ComputeEnvironment
from batchops.facts import Parsed
from batchops.instances import Instance
from batchops.job_cost_metric import JobCostMeter
from batchops.jobs import Job
from batchops.log_projection import LogFedProjection
from batchops.metrics import MetricPoint, instance_points, job_metric_state, job_points, pipeline_points
from batchops.names import host_instance_in
from batchops.ports import EventStore, PartlyAppended, Progress, ProjectionFeed
from batchops.projection import instance_spot_signal
from batchops.projector import EVENT_CLASSES, Projector
from batchops.recorder_store import RecorderEventStore
from batchops.transcoder import OrjsonMapper, OrjsonTranscoder
from batchops.tuning import DEFAULT_TUNING, Tuning
from batchops.views import PipelineCounters, RejectedEvent, ViewStore


@dataclass
class RecordOutcome:
    """What one save of facts did: facts counted by (account, region, new or not), and their metric points."""

    counts: Counter[tuple[str, str, bool]] = field(default_factory=Counter)
    points: list[MetricPoint] = field(default_factory=list)
    reread: int = 0
    """Aggregates read back from the store (not in the cache)."""

    @property
    def new(self) -> int:
        """Facts recorded for the first time."""
        return sum(n for (_, _, recorded), n in self.counts.items() if recorded)

    @property
    def duplicates(self) -> int:
        """Facts the store already held."""
        return sum(n for (_, _, recorded), n in self.counts.items() if not recorded)


class PartlyRecorded(IntegrityError):
    """A batch whose facts were recorded for some aggregates only (the store said the others were stale)."""

    def __init__(self, recorded: RecordOutcome, left: list[Parsed], message: str) -> None:
        super().__init__(message)
        self.recorded = recorded
        self.left = left


def _merged(outcomes: Iterable[RecordOutcome]) -> RecordOutcome:
    """Several outcomes as one: counts and reads added, points in order."""
    merged = RecordOutcome()
    for outcome in outcomes:
        merged.counts.update(outcome.counts)
        merged.points.extend(outcome.points)
        merged.reread += outcome.reread
    return merged


def _stored_part(
    outcome: RecordOutcome,
    facts: list[Parsed],
    keys: list[UUID],
    applied: list[tuple[bool, int]],
    failed: frozenset[UUID],
) -> RecordOutcome:
    """What the facts of the aggregates that were stored did: their counts and points (the reads all happened)."""
    stored = RecordOutcome(reread=outcome.reread)
    start = 0
    for parsed, key, (new, end) in zip(facts, keys, applied, strict=True):
        if key not in failed:
            stored.counts[parsed.account, parsed.region, new] += 1
            stored.points.extend(outcome.points[start:end])
        start = end
    return stored


_AGGREGATE_OF_KIND: dict[str, type[Job] | type[Instance] | type[ComputeEnvironment]] = {
    "job_state": Job,
    "job_task": Job,
    "instance": Instance,
    "compute_environment": ComputeEnvironment,
}


class BatchOpsApplication(Application[UUID]):
    """Event-sourced aggregator of AWS Batch, ECS, EC2 and Auto Scaling events."""

    name = "batchops"
    # A cached aggregate is current where one process writes at a time, and brought up to date where writers share
    # the store (`EventStore.newer_events`); a conflict is retried on fresh state. Size: `Tuning.aggregate_cache_size`.
    env = {
        "AGGREGATE_CACHE_FASTFORWARD": "n",
        "DEEPCOPY_FROM_AGGREGATE_CACHE": "n",
    }

    def __init__(
        self,
        views: ViewStore,
        env: dict[str, str] | None = None,
        *,
        metrics: bool = True,
        wiring: Wiring | None = None,
        tuning: Tuning = DEFAULT_TUNING,
        cost_meter: JobCostMeter | None = None,
    ) -> None:
        super().__init__({"AGGREGATE_CACHE_MAXSIZE": str(tuning.aggregate_cache_size), **(env or {})})
        self.tuning = tuning
        self.views = views
        self.projector = Projector(cost_meter if metrics else None)
        self.metrics = metrics
        self.store, self.projection = (wiring or recorder_wiring)(self)

    def construct_mapper(self) -> Mapper[UUID]:
        """The library's mapper, or (unless the environment names another) one with a direct path for this
        application's own events (see `batchops.transcoder.OrjsonMapper`)."""
        if self.env.get("MAPPER_TOPIC"):
            return super().construct_mapper()
        mapper = self.factory.mapper(transcoder=self.construct_transcoder(), mapper_class=OrjsonMapper)
        assert isinstance(mapper, OrjsonMapper)
        mapper.fast_classes = frozenset(EVENT_CLASSES)
        return mapper

    def construct_transcoder(self) -> Transcoder:
        """The library's JSON format, encoded and decoded with orjson (see `batchops.transcoder`)."""
        transcoder = OrjsonTranscoder()
        self.register_transcodings(transcoder)
        return transcoder

    def close(self) -> None:
        """Close the event store and the view store."""
        super().close()
        self.views.close()
        if self.projector.meter is not None:
            self.projector.meter.close()

    def record(self, facts: Iterable[Parsed], *, project: bool = True) -> RecordOutcome:
        """Record a batch of facts: one save for all aggregates touched, then the views, atomically tracked.

        With `project=False` the views are left for `project_saved` (a bulk ingest projects several saves at once:
        a job touched by each of them has its row built and written once, not once per save). Raises PartlyRecorded
        when the store kept the events of some aggregates only (`PartlyAppended`): what those facts did, and the
        facts left to record."""
        facts = list(facts)
        keys = [_AGGREGATE_OF_KIND[p.kind].create_id(p.account, p.region, p.key) for p in facts]
        outcome = RecordOutcome()
        touched, outcome.reread = self._load(facts, keys)
        applied: list[tuple[bool, int]] = []  # each fact new or not, and where its points end: to part a partial save
        for parsed, key in zip(facts, keys, strict=True):
            applied.append((self._apply(parsed, touched[key], outcome), len(outcome.points)))
        pending = [a for a in touched.values() if a.pending_events]  # type: ignore[attr-defined]
        if pending:
            try:
                self._save_and_project(pending)
            except PartlyAppended as error:
                stored = _stored_part(outcome, facts, keys, applied, error.failed)
                left = [f for f, k in zip(facts, keys, strict=True) if k in error.failed]
                raise PartlyRecorded(stored, left, str(error)) from error
        if project:
            self.project_saved()
        return outcome

    def _apply(self, parsed: Parsed, aggregate: Aggregate, outcome: RecordOutcome) -> bool:
        """One fact recorded by its aggregate, counted in `outcome` and its metric points added there; whether it
        was new."""
        fact = parsed.fact
        recorded: bool
        if isinstance(aggregate, Job):
            before = job_metric_state(aggregate.fold) if self.metrics else None
            recorded = aggregate.record_task(fact) if parsed.kind == "job_task" else aggregate.record_state(fact)
            if recorded and before is not None:
                outcome.points.extend(self._job_points(before, aggregate, fact["at"]))
        elif isinstance(aggregate, Instance):
            was_interrupted = "spot_warning" in aggregate.fold["first"]
            recorded = aggregate.record(fact)
            if recorded and self.metrics:
                outcome.points.extend(instance_points(was_interrupted, aggregate.fold, fact["at"]))
        else:
            assert isinstance(aggregate, ComputeEnvironment)
            recorded = aggregate.record(fact)
        outcome.counts[parsed.account, parsed.region, recorded] += 1
        return recorded

    def record_batch(
        self,
        inputs: Sequence[BatchInput],
        *,
        project: bool = True,
        pipeline_time: PipelineTime = latest_event_time,
        poison: PoisonReport | None = None,
    ) -> BatchOutcome:
        """Record a batch of translated inputs: the facts in one save (`record_with_retry`), the unusable events kept
        aside, the pipeline counters added; returns what it did, with the metric points to emit.

        When the batch fails and `poison` says how to report an input, its inputs are recorded one at a time instead,
        and those that fail alone are kept aside and reported by id. Without it (the CLI: a file's events have no id
        that a caller could retry), the failure is raised."""
        try:
            facts, unusable, recorded = self._record_inputs(inputs, project)
        except Exception as error:
            if poison is None:
                raise
            poison.batch_failed(error)
            return combined(
                self._record_alone(i, item, project, pipeline_time, poison) for i, item in enumerate(inputs)
            )
        return self._keep_and_count(facts, unusable, recorded, pipeline_time)

    def _record_inputs(
        self, inputs: Sequence[BatchInput], project: bool
    ) -> tuple[list[Parsed], list[RejectedEvent], RecordOutcome]:
        facts: list[Parsed] = []
        unusable: list[RejectedEvent] = []
        for item in inputs:
            if isinstance(item, Parsed):
                facts.append(item)
            elif isinstance(item, RejectedEvent):
                unusable.append(item)
            else:
                raise item.error
        return facts, unusable, self.record_with_retry(facts, project=project) if facts else RecordOutcome()

    def _record_alone(
        self, index: int, item: BatchInput, project: bool, pipeline_time: PipelineTime, poison: PoisonReport
    ) -> BatchOutcome:
        try:
            return self._keep_and_count(*self._record_inputs([item], project), pipeline_time)
        except Exception as error:
            failed, kept = poison.input_failed(index, error)
            with suppress(Exception):  # reported as failed all the same: its record lost stops no other input
                self.views.keep_rejected([kept])
            return BatchOutcome(failed=(failed,))

    def _keep_and_count(
        self, facts: list[Parsed], unusable: list[RejectedEvent], recorded: RecordOutcome, pipeline_time: PipelineTime
    ) -> BatchOutcome:
        """Keep the unusable events aside and add the batch's counters to the pipeline's."""
        if unusable:
            self.views.keep_rejected(unusable)
        kept = Counter((e.account_id or "unknown", e.region or "unknown", e.rejected) for e in unusable)
        places = dict.fromkeys([(a, r) for a, r, _ in recorded.counts] + [(a, r) for a, r, _ in kept])
        counters = [
            PipelineCounters(
                a, r, recorded.counts[a, r, True], recorded.counts[a, r, False], kept[a, r, True], kept[a, r, False]
            )
            for a, r in places
        ]
        self.views.add_counters(counters)
        at = pipeline_time(facts, recorded.points)
        pipeline = [
            point
            for c in counters
            for point in pipeline_points(c.account_id, c.region, c.ingested, c.duplicates, c.rejected, at)
        ]
        return BatchOutcome(tuple(counters), (*recorded.points, *pipeline), reread=recorded.reread)

    def record_with_retry(self, facts: Sequence[Parsed], *, project: bool = True) -> RecordOutcome:
        """`record`, again on fresh state when another writer saved one of the batch's aggregates first (two ingests
        into one store, or two aggregator Lambdas): the batch's aggregates are read again from the store, where what
        the other writer recorded makes the same facts duplicates. When the store kept the other aggregates' events,
        only the stale aggregates' facts are recorded again (the others stay counted as new). Up to
        `Tuning.record_attempts` times."""
        attempts = self.tuning.record_attempts
        done: list[RecordOutcome] = []
        left = list(facts)
        for attempt in range(attempts):
            try:
                return _merged([*done, self.record(left, project=project)])
            except PartlyRecorded as error:
                self._forget(error.left)  # the stored aggregates stay cached: they are as the store holds them
                done.append(error.recorded)
                left = error.left
                if attempt == attempts - 1:
                    raise
            except IntegrityError:
                self._forget(left)
                if attempt == attempts - 1:
                    raise
        raise AssertionError("unreachable")

    def _forget(self, facts: Iterable[Parsed]) -> None:
        """After a failed save: drop the batch's aggregates from the cache (recording changed them in place; the next
        read goes to the store), and the folds awaiting projection (they may include what the save did not store; the
        next projection catches the views up from the store instead)."""
        cache = self.repository.cache
        if cache is not None:
            for parsed in facts:
                key = _AGGREGATE_OF_KIND[parsed.kind].create_id(parsed.account, parsed.region, parsed.key)
                try:
                    cache.get(key, evict=True)
                except KeyError:
                    pass
        self.projection.forget()

    def project_saved(self) -> None:
        """Bring the views up to date with what `record` saved (the projection feed knows how)."""
        self.projection.project_saved()

    def _save_and_project(self, pending: list[Aggregate]) -> None:
        """`save(*aggregates)` for this application's own aggregates: their events appended in one go and the
        aggregates cached, as `save` does, without its per-object runtime Protocol checks (slow on Python 3.11) and
        its Recording objects, which nothing here reads (no snapshots are taken and the notify hooks do nothing; with
        snapshotting switched on, `save` itself runs). The projection feed is told what was saved."""
        events = [event for aggregate in pending for event in aggregate.pending_events]  # type: ignore[attr-defined]
        if self.snapshots is not None:
            ids = [r.notification.id for r in self.save(*pending) if r.notification is not None]
        else:
            for aggregate in pending:
                aggregate.collect_events()
            try:
                ids = self.store.append(events)
            except PartlyAppended as error:
                stored = [a for a in pending if a.id not in error.failed]
                self._cache(stored)
                self.projection.saved([], stored, [e for e in events if e.originator_id not in error.failed])
                raise
            self._cache(pending)
        self.projection.saved(ids, pending, events)

    def _cache(self, aggregates: list[Aggregate]) -> None:
        """Keep saved aggregates for the next batch, as `save` does."""
        cache = self.repository.cache
        if cache is not None and not self.repository.fastforward:
            for aggregate in aggregates:
                cache.put(aggregate.id, aggregate)

    def _job_points(self, before: Any, job: Job, at: int) -> list[MetricPoint]:
        points = job_points(before, job.fold, at)
        for i, point in enumerate(points):
            if point.name == "JobsFailed" and ("FailureKind", "host_terminated") in point.dimensions:
                host = host_instance_in(job.fold["reason"])
                if host and self._instance_is_spot(job.fold["account"], job.fold["region"], host):
                    dims = tuple(
                        d if d[0] != "FailureKind" else ("FailureKind", "spot_reclaim") for d in point.dimensions
                    )
                    points[i] = MetricPoint(point.name, point.unit, point.value, dims, point.timestamp_ms)
        return points

    def _instance_is_spot(self, account: str, region: str, instance_id: str) -> bool:
        try:
            instance: Instance = self.repository.get(Instance.create_id(account, region, instance_id))
        except AggregateNotFoundError:
            return False
        return instance_spot_signal(instance.fold)

    def _load(self, facts: list[Parsed], keys: list[UUID]) -> tuple[dict[UUID, Aggregate], int]:
        """The aggregates of a batch's facts: from the aggregate cache (brought up to date where the store is shared by
        writers: `EventStore.newer_events`), else rebuilt from histories the store reads for the whole batch at once
        (`EventStore.histories`), else new; and how many were read back from the store."""
        touched: dict[UUID, Aggregate] = {}
        cache = self.repository.cache
        missed: dict[UUID, Parsed] = {}
        for parsed, key in zip(facts, keys, strict=True):
            if key in touched or key in missed:
                continue
            try:
                if cache is None:
                    raise KeyError(key)
                touched[key] = cache.get(key)  # type: ignore[assignment]  # not copied: no DEEPCOPY_FROM_AGGREGATE_CACHE
            except KeyError:
                missed[key] = parsed
        moved_on = self.store.newer_events({key: aggregate.version for key, aggregate in touched.items()})
        for key, newer in moved_on.items():
            touched[key] = _mutate(touched[key], map(self.mapper.to_domain_event, newer))
        if not missed:
            return touched, len(moved_on)
        histories = self.store.histories(list(missed))
        for key, parsed in missed.items():
            history = histories.get(key)
            if history is None:
                touched[key] = _AGGREGATE_OF_KIND[parsed.kind].track(parsed.account, parsed.region, parsed.key)
                continue
            touched[key] = self._rebuilt(history)
            if cache is not None:
                cache.put(key, touched[key])
        return touched, len(histories) + len(moved_on)

    def _rebuilt(self, history: list[StoredEvent]) -> Aggregate:
        aggregate = _mutate(None, map(self.mapper.to_domain_event, history))
        assert isinstance(aggregate, Aggregate)
        return aggregate

    def job_cost_points(self) -> list[MetricPoint]:
        """The `JobCost` points of the jobs the committed projections wrote ended and priced, once per job ever
        (`batchops.job_cost_metric`): call after the views are committed, then emit them."""
        meter = self.projector.meter
        return meter.settle() if meter is not None else []

    def discard_job_costs(self) -> None:
        """Forget the `JobCost` points a failed projection proposed (its redelivery proposes them again)."""
        if self.projector.meter is not None:
            self.projector.meter.discard()

    def catch_up(self) -> int:
        """Apply to the current views whatever the store holds beyond their position (a log-fed projection)."""
        return self.projection.catch_up()

    def replay(self, progress: Progress = None) -> int:
        """Rebuild every projection from the event store into a fresh generation, then switch readers to it."""
        return self.projection.replay(progress)

    def stored_events(self) -> int:
        """How many events the store holds."""
        return self.store.stored_events()


Wiring = Callable[[BatchOpsApplication], tuple[EventStore, ProjectionFeed]]
"""Given the application (its recorder, mapper, views and projector built), its event store port and projection
feed: `bootstrap` picks one per store."""


def recorder_wiring(app: BatchOpsApplication) -> tuple[EventStore, ProjectionFeed]:
    """Any library recorder with a notification log: its plain `EventStore` and log-fed views."""
    recorder = app.recorder
    assert isinstance(recorder, ApplicationRecorder), "a log-fed projection reads the notification log"
    feed = LogFedProjection(recorder, app.mapper, app.views, app.projector, tuning=app.tuning)
    return RecorderEventStore(recorder, app.mapper), feed


def _mutate(aggregate: Any, events: Iterable[Any]) -> Any:
    """The library's `project_aggregate` without its runtime protocol check on every event (a third of the time
    of reading an aggregate back from the store on Python 3.11): the events are this application's own."""
    for event in events:
        aggregate = event.mutate(aggregate)
    return aggregate
