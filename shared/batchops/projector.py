"""The projector: applies stored domain events to the views through a `ProjectionSession`.

One call handles a batch of events (live ingest hands over what it just saved; replay hands over pages
of the notification log). Joins are re-resolved at the end of the batch: when an instance or compute
environment learns something that changes a job row, the rows of the jobs that ran there are rebuilt.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol
from uuid import UUID

from eventsourcing.utils import get_topic

from batchops.compute_environments import (
    ComputeEnvironment,
    compute_environment_key,
    new_compute_environment_fold,
    observe_compute_environment,
)
from batchops.instances import Instance, new_instance_fold, observe_instance
from batchops.job_cost_metric import JobCostMeter
from batchops.jobs import Job, new_job_fold, observe_state, observe_task
from batchops.projection import (
    InstanceFacts,
    Joins,
    attempts_of,
    compute_environment_pricing,
    instance_facts,
    instance_row,
    instance_spot_signal,
    job_row,
)


class ProjectionSession(Joins, Protocol):
    """A unit of work on the views: folds in, rows out, committed atomically with the tracking position."""

    def job_fold(self, key: UUID) -> dict[str, Any] | None:
        """The stored fold of a job."""

    def instance_fold(self, key: UUID) -> dict[str, Any] | None:
        """The stored fold of an instance."""

    def compute_environment(self, key: UUID) -> tuple[dict[str, Any] | None, bool, str | None]:
        """A compute environment's fold, spot signal and pricing as last written."""

    def put_job(self, key: UUID, fold: dict[str, Any], row: dict[str, Any], attempts: list[dict[str, Any]]) -> None:
        """Write a job's fold and contract row; `attempts` is `attempts_of(fold)` (for the attempts' placements)."""

    def put_instance(self, key: UUID, fold: dict[str, Any], row: dict[str, Any]) -> None:
        """Write an instance's fold and row."""

    def put_compute_environment(
        self,
        key: UUID,
        account: str,
        region: str,
        name: str,
        fold: dict[str, Any] | None,
        spot_signal: bool,
        pricing: str | None,
    ) -> None:
        """Write a compute environment's fold, spot signal and pricing."""

    def jobs_on_instance(
        self, account: str, region: str, instance_id: str, container_instance_arn: str | None
    ) -> list[UUID]:
        """Jobs whose last attempt ran on the instance (by EC2 id or container instance)."""

    def jobs_in_compute_environment(self, account: str, region: str, name: str) -> list[UUID]:
        """Jobs whose last attempt ran in the compute environment."""

    def instances_in_compute_environment(self, account: str, region: str, name: str) -> list[UUID]:
        """Instances registered in the compute environment."""


_Folds = Mapping[UUID, dict[str, Any]]
"""Folds by aggregate id."""
_JOB_EVENTS = (Job.Tracked, Job.StateObserved, Job.TaskObserved)
_INSTANCE_EVENTS = (Instance.Tracked, Instance.Observed)
EVENT_CLASSES = (
    Job.Tracked,
    Job.StateObserved,
    Job.TaskObserved,
    Instance.Tracked,
    Instance.Observed,
    ComputeEnvironment.Tracked,
    ComputeEnvironment.Configured,
)
"""Every domain event class the aggregates store, in the order `rebuild` numbers them."""
_STORED_KINDS = {get_topic(cls): kind for kind, cls in enumerate(EVENT_CLASSES)}
"""Stored event topics, numbered for `rebuild`'s dispatch."""


@dataclass(frozen=True, slots=True)
class FoldsByKind:
    """Current folds of job, instance and compute-environment aggregates, by aggregate id."""

    jobs: dict[UUID, dict[str, Any]]
    instances: dict[UUID, dict[str, Any]]
    environments: dict[UUID, dict[str, Any]]


class Projector:
    """Keeps job, instance and compute-environment views equal to a fold of the event store."""

    def __init__(self, meter: JobCostMeter | None = None) -> None:
        self.meter = meter
        """Told of every job row written, for the `JobCost` metric (None: no metrics)."""

    def apply_folds(self, session: ProjectionSession, folds: FoldsByKind) -> None:
        """Write the rows of aggregates whose current folds are known (live ingestion has them in memory, and the
        views are caught up to just before their latest events), with every join they change."""
        self._resolve(session, folds, set(), False)

    def apply(
        self,
        session: ProjectionSession,
        events: Iterable[Any],
        folds: Mapping[UUID, dict[str, Any]] | None = None,
        *,
        whole: bool = False,
        changed: set[UUID] | None = None,
        assume_changed: bool = False,
    ) -> int:
        """Apply domain events (in notification order) and rebuild every row they affect; returns the count.

        `folds` may hold the current folds of the events' aggregates (live ingestion has them in memory, already
        including these events, and the views are caught up to just before them): their events are not folded
        again, and their stored folds are not read.

        `whole` says the events are every event of their aggregates, each aggregate's in version order (a rebuild
        reading aggregate by aggregate): folds start empty at each `Tracked` event, and stored folds are not read.

        `changed` collects the instances and compute environments whose joined facts this call changed, and the
        rows of whose jobs it therefore rebuilds. Pass the same set when retrying the call after a conflict: the
        failed attempt may have written an instance before its jobs, and the retry then sees no change to pass on.
        `assume_changed` passes on the facts of every instance and compute environment of the batch, changed or not:
        for a batch delivered again after a crash, when nothing says how far the first delivery got.
        """
        batch = FoldsByKind({}, {}, {})
        count = self._fold_events(session, events, folds or {}, batch, whole)
        self._resolve(session, batch, set() if changed is None else changed, assume_changed)
        return count

    def _fold_events(
        self, session: ProjectionSession, events: Iterable[Any], known: _Folds, folds: FoldsByKind, whole: bool
    ) -> int:
        """`apply`'s first half: the events folded into `folds` (the known folds taken as they are); the count."""
        jobs, instances, environments = folds.jobs, folds.instances, folds.environments
        count = 0
        for event in events:
            count += 1
            key = event.originator_id
            if key in known:
                target = (
                    jobs
                    if isinstance(event, _JOB_EVENTS)
                    else instances
                    if isinstance(event, _INSTANCE_EVENTS)
                    else environments
                )
                target[key] = known[key]
                continue
            if isinstance(event, (Job.StateObserved, Job.TaskObserved)):
                fold = jobs.get(key) or session.job_fold(key)
                if fold is None:
                    raise LookupError(f"job {key} has no Tracked event before {type(event).__name__}")
                jobs[key] = fold
                if isinstance(event, Job.StateObserved):
                    observe_state(fold, event.observation)  # type: ignore[arg-type]
                else:
                    observe_task(fold, event.task)  # type: ignore[arg-type]
            elif isinstance(event, Job.Tracked):
                known_fold = None if whole else jobs.get(key) or session.job_fold(key)
                jobs[key] = known_fold or new_job_fold(event.account_id, event.region, event.job_id)
            elif isinstance(event, Instance.Observed):
                fold = instances.get(key) or session.instance_fold(key)
                if fold is None:
                    raise LookupError(f"instance {key} has no Tracked event")
                instances[key] = fold
                observe_instance(fold, event.fact)  # type: ignore[arg-type]
            elif isinstance(event, Instance.Tracked):
                known_fold = None if whole else instances.get(key) or session.instance_fold(key)
                instances[key] = known_fold or new_instance_fold(event.account_id, event.region, event.instance_id)
            elif isinstance(event, ComputeEnvironment.Configured):
                fold = environments.get(key) or session.compute_environment(key)[0]
                if fold is None:
                    raise LookupError(f"compute environment {key} has no Tracked event")
                environments[key] = fold
                observe_compute_environment(fold, event.fact)  # type: ignore[arg-type]
            elif isinstance(event, ComputeEnvironment.Tracked):
                known_fold = None if whole else environments.get(key) or session.compute_environment(key)[0]
                environments[key] = known_fold or new_compute_environment_fold(
                    event.account_id, event.region, event.name
                )
        return count

    def rebuild(
        self,
        session: ProjectionSession,
        stored: Iterable[tuple[str, str, Any]],
        decode: Callable[[Any], dict[str, Any]] | None = None,
    ) -> int:
        """Fold whole aggregates from their stored states and write every row they make; returns the count.

        `stored` holds (originator id, topic, decoded state) for every event of its aggregates, each aggregate's
        in version order (a rebuild reading the store aggregate by aggregate, as `apply(whole=True)` takes).
        The states are folded as they are, without the library's domain event objects: the same fold functions
        the events' `apply` calls, so the rows are the same. With `decode`, the states are stored bytes, each decoded
        as it is folded."""
        folds, count = self.fold_stored(stored, decode)
        self.apply_folds(session, folds)
        return count

    def fold_stored(
        self, stored: Iterable[tuple[str, str, Any]], decode: Callable[[Any], dict[str, Any]] | None = None
    ) -> tuple[FoldsByKind, int]:
        """`rebuild`'s first half: the folds of whole aggregates from their stored states, and the count (no view is
        read, so this can run before the rows they join are written). With `decode`, each state is decoded just before
        it is folded (and freed after): a page of decoded states never exists at once."""
        folds = FoldsByKind({}, {}, {})
        count = 0
        key: UUID | None = None
        fold: dict[str, Any] | None = None
        current = ""
        for originator, topic, state in stored:
            if decode is not None:
                state = decode(state)
            count += 1
            kind = _STORED_KINDS.get(topic)
            if kind is None:
                raise LookupError(f"a rebuild does not know the stored event topic {topic!r}")
            if originator != current:
                current = originator
                key = UUID(originator)
                fold = None
            if fold is None and kind not in (0, 3, 5):
                raise LookupError(f"aggregate {originator} has no Tracked event before {topic}")
            if kind == 1:
                observe_state(fold, state["observation"])  # type: ignore[arg-type]
            elif kind == 2:
                observe_task(fold, state["task"])  # type: ignore[arg-type]
            elif kind == 0:
                fold = folds.jobs[key] = new_job_fold(state["account_id"], state["region"], state["job_id"])  # type: ignore[index]
            elif kind == 4:
                observe_instance(fold, state["fact"])  # type: ignore[arg-type]
            elif kind == 3:
                fold = folds.instances[key] = new_instance_fold(  # type: ignore[index]
                    state["account_id"], state["region"], state["instance_id"]
                )
            elif kind == 6:
                observe_compute_environment(fold, state["fact"])  # type: ignore[arg-type]
            else:
                fold = folds.environments[key] = new_compute_environment_fold(  # type: ignore[index]
                    state["account_id"], state["region"], state["name"]
                )
        return folds, count

    def _resolve(
        self, session: ProjectionSession, folds: FoldsByKind, changed: set[UUID], assume_changed: bool
    ) -> None:
        """Write the rows of the batch's aggregates and of every job whose joins they change (noted in `changed`)."""
        jobs = folds.jobs
        affected_jobs: set[UUID] = set(jobs)
        affected_instances: set[UUID] = set(folds.instances)
        touched = self._touched_environments(session, folds.instances, folds.environments)
        self._resolve_environments(session, touched, changed, assume_changed, affected_jobs, affected_instances)
        self._resolve_instances(session, folds.instances, changed, assume_changed, affected_jobs, affected_instances)
        for key in affected_jobs:
            job = jobs.get(key) or session.job_fold(key)
            if job is not None:
                attempts = attempts_of(job)
                row = job_row(job, session, attempts)
                session.put_job(key, job, row, attempts)
                if self.meter is not None:
                    self.meter.consider(job, row, session)

    @staticmethod
    def _touched_environments(
        session: ProjectionSession, instances: dict[UUID, dict[str, Any]], environments: dict[UUID, dict[str, Any]]
    ) -> dict[UUID, tuple[str, str, str, dict[str, Any] | None, bool]]:
        """The compute environments to write: a configured type, or a spot signal from any of their instances."""
        touched: dict[UUID, tuple[str, str, str, dict[str, Any] | None, bool]] = {}
        for key, fold in environments.items():
            _, signal, _ = session.compute_environment(key)
            touched[key] = (fold["account"], fold["region"], fold["name"], fold, signal)
        for fold in instances.values():
            name = fold["fixed"].get("ce")
            if name and instance_spot_signal(fold):
                key = compute_environment_key(fold["account"], fold["region"], name)
                stored_fold, signal, _ = session.compute_environment(key)
                previous = touched.get(key)
                touched[key] = (
                    fold["account"],
                    fold["region"],
                    name,
                    previous[3] if previous else stored_fold,
                    True,
                )
        return touched

    @staticmethod
    def _resolve_environments(
        session: ProjectionSession,
        touched: dict[UUID, tuple[str, str, str, dict[str, Any] | None, bool]],
        changed: set[UUID],
        assume_changed: bool,
        affected_jobs: set[UUID],
        affected_instances: set[UUID],
    ) -> None:
        """Write the compute environments; one whose pricing changed affects its jobs and instances."""
        for key, (account, region, name, ce_fold, signal) in touched.items():
            _, old_signal, old_pricing = session.compute_environment(key)
            pricing = compute_environment_pricing(ce_fold, signal or old_signal)
            session.put_compute_environment(key, account, region, name, ce_fold, signal or old_signal, pricing)
            if pricing != old_pricing or key in changed or assume_changed:
                changed.add(key)
                affected_jobs.update(session.jobs_in_compute_environment(account, region, name))
                affected_instances.update(session.instances_in_compute_environment(account, region, name))

    @staticmethod
    def _resolve_instances(
        session: ProjectionSession,
        instances: dict[UUID, dict[str, Any]],
        changed: set[UUID],
        assume_changed: bool,
        affected_jobs: set[UUID],
        affected_instances: set[UUID],
    ) -> None:
        """Write the affected instances; one of the batch whose joined facts changed affects the jobs that ran on it."""
        for key in affected_instances:
            instance = instances.get(key) or session.instance_fold(key)
            if instance is None:
                continue
            fold = instance
            before = (
                None
                if key not in instances
                else session.instance_by_id(fold["account"], fold["region"], fold["instance_id"])
            )
            name = fold["fixed"].get("ce")
            pricing = session.compute_environment_pricing(fold["account"], fold["region"], name) if name else None
            session.put_instance(key, fold, instance_row(fold, pricing))
            after: InstanceFacts = instance_facts(fold)
            if key in instances and (before != after or key in changed or assume_changed):
                changed.add(key)
                affected_jobs.update(
                    session.jobs_on_instance(
                        fold["account"], fold["region"], fold["instance_id"], fold["fixed"].get("ci")
                    )
                )
