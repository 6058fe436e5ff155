"""The Job aggregate and its fold: everything known about one Batch job, whatever the arrival order.

The fold is a plain JSON-ready dict so that the same code folds events inside the aggregate (to decide
what is new) and inside the projector (to build the job row), and so the projector can keep it.
Every rule here is order-independent: the best state is the one of highest rank (terminal, attempts
done, lifecycle order, time), first-seen times are minima, and facts of one attempt are merged.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate

from batchops.facts import AttemptFact, JobObservation, TaskFact, is_news, remember

STATUS_ORDER: dict[str, float] = {
    "SUBMITTED": 0,
    "PENDING": 1,
    "RUNNABLE": 2,
    "SCHEDULED": 2.5,  # a service job handed to SageMaker, before it starts (a fraction: stored ranks keep their order)
    "STARTING": 3,
    "RUNNING": 4,
    "SUCCEEDED": 5,
    "FAILED": 5,
}
TERMINAL = frozenset({"SUCCEEDED", "FAILED"})
TASK_ORDER = {
    "PROVISIONING": 0,
    "PENDING": 1,
    "ACTIVATING": 2,
    "RUNNING": 3,
    "DEACTIVATING": 4,
    "STOPPING": 5,
    "DEPROVISIONING": 6,
    "STOPPED": 7,
}
STATIC_KEYS = (
    "arn",
    "name",
    "queue",
    "definition",
    "platform",
    "created",
    "vcpus",
    "memory",
    "gpus",
    "parent",
    "index",
    "size",
    "log_group",
    "depends_on",
    "share",
    "priority",
    "capacity_unit",
    "capacity",
    "submitted_by",
)
_STATIC = frozenset(STATIC_KEYS)
_TASK_BOOKKEEPING = frozenset({"fp", "at", "status"})
MAX_ATTEMPTS_KEPT = 100
"""Attempts one recorded observation keeps: the first and the last 99 (the row reads the first attempt's start and
the last attempt's details). AWS Batch allows 10 attempts a job, so only a forged event loses any; without the cap,
an event of bare attempts under EventBridge's 256 KB stores 4 times its size (`{}` becomes `{"n":12345}`), past
DynamoDB's 400 KB item. How many were left out is kept in the stored event as `attempts_omitted`."""
_BLOCKING_REASON = re.compile(r"^[A-Z_]+:[A-Z_]+ - ")


@lru_cache(maxsize=8192)
def job_key(account: str, region: str, job_id: str) -> UUID:
    """The aggregate id of a job: a uuid5 of its natural key."""
    return uuid5(NAMESPACE_URL, f"batchops:job/{account}/{region}/{job_id}")


def is_blocking_reason(reason: str | None) -> bool:
    """True for RUNNABLE reasons such as `CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY - …`."""
    return bool(reason) and _BLOCKING_REASON.match(reason or "") is not None


def new_job_fold(account: str, region: str, job_id: str) -> dict[str, Any]:
    """An empty fold for one job."""
    return {
        "account": account,
        "region": region,
        "job_id": job_id,
        "seen": {},
        "rank": None,
        "status": None,
        "reason": None,
        "exit": None,
        "static": {},
        "first": {},
        "transitions": {},
        "attempts": {},
        "tasks": {},
        "blocked": None,
        "last": None,
    }


def _fill(target: dict[str, Any], values: dict[str, Any]) -> None:
    for key, value in values.items():
        if value is not None and target.get(key) is None:
            target[key] = value


def observe_state(fold: dict[str, Any], observation: JobObservation) -> bool:
    """Fold a job state observation in; False when it adds nothing (a redelivery)."""
    if not remember(fold["seen"], observation):  # type: ignore[arg-type]
        return False
    at = observation["at"]
    status = observation["status"]
    reason = observation.get("reason")
    done = observation.get("done", 0)
    rank = [1 if status in TERMINAL else 0, done, STATUS_ORDER.get(status, 0), at, observation["fp"]]
    static = fold["static"]
    # The observation's own keys: fewer than STATIC_KEYS.
    if fold["rank"] is None or rank > fold["rank"]:
        fold["rank"] = rank
        fold["status"] = status
        fold["reason"] = reason
        fold["exit"] = observation.get("exit")
        for key, value in observation.items():
            if value is not None and key in _STATIC:
                static[key] = value
    else:
        for key, value in observation.items():
            if value is not None and key in _STATIC and static.get(key) is None:
                static[key] = value
    first = fold["first"]
    if status not in first or at < first[status]:
        first[status] = at
    transition = f"{status}#{done}"
    transitions = fold["transitions"]
    moment = [at, reason or ""]
    if transition not in transitions or moment < transitions[transition]:
        transitions[transition] = moment
    attempts = fold["attempts"]
    for attempt in observation.get("attempts", ()):
        _merge_attempt(attempts, attempt, "b")
    current = observation.get("current")
    if current:
        _merge_attempt(attempts, current, "l")
    if status == "RUNNABLE" and (observation.get("blocked") or is_blocking_reason(reason)) and reason:
        blocked = [at, reason]
        if fold["blocked"] is None or blocked > fold["blocked"]:
            fold["blocked"] = blocked
    if fold["last"] is None or at > fold["last"]:
        fold["last"] = at
    return True


def within_limits(observation: dict[str, Any]) -> dict[str, Any]:
    """The observation as it is recorded: at most `MAX_ATTEMPTS_KEPT` attempts (the same rule on every store)."""
    attempts = observation.get("attempts")
    if not attempts or len(attempts) <= MAX_ATTEMPTS_KEPT:
        return observation
    kept = [attempts[0], *attempts[len(attempts) - MAX_ATTEMPTS_KEPT + 1 :]]
    return {**observation, "attempts": kept, "attempts_omitted": len(attempts) - len(kept)}


def _merge_attempt(attempts: dict[str, Any], attempt: AttemptFact, source: str) -> None:
    target = attempts.setdefault(str(attempt["n"]), {}).setdefault(source, {})
    for key, value in attempt.items():  # `_fill` without the attempt number (inline: this runs per event)
        if value is not None and key != "n" and target.get(key) is None:
            target[key] = value


def observe_task(fold: dict[str, Any], task: TaskFact) -> bool:
    """Fold an ECS task fact (one attempt's task) in; False when it adds nothing."""
    if not remember(fold["seen"], task):  # type: ignore[arg-type]
        return False
    at = task["at"]
    key = task.get("task") or f"attempt-{task.get('n', 0)}"
    slot = fold["tasks"].setdefault(key, {})
    status = task.get("status")
    if status and TASK_ORDER.get(status, -1) >= TASK_ORDER.get(slot.get("status", ""), -1):
        slot["status"] = status
    for name, value in task.items():  # `_fill` without the fingerprint, time and status
        if value is not None and name not in _TASK_BOOKKEEPING and slot.get(name) is None:
            slot[name] = value
    if fold["last"] is None or at > fold["last"]:
        fold["last"] = at
    return True


class Job(Aggregate):
    """One AWS Batch job (an array parent, an array child or a multi-node node are each a job)."""

    class Tracked(Aggregate.Created):
        """The job was seen for the first time."""

        account_id: str
        region: str
        job_id: str

    class StateObserved(Aggregate.Event):
        """A Batch event showed the job in some state."""

        observation: dict[str, Any]

        def apply(self, aggregate: Any) -> None:
            """Fold the observation into the aggregate's state."""
            observe_state(aggregate.fold, self.observation)  # type: ignore[arg-type]

    class TaskObserved(Aggregate.Event):
        """An ECS task of one of the job's attempts changed state."""

        task: dict[str, Any]

        def apply(self, aggregate: Any) -> None:
            """Fold the task fact into the aggregate's state."""
            observe_task(aggregate.fold, self.task)  # type: ignore[arg-type]

    def __init__(self, account_id: str, region: str, job_id: str) -> None:
        self.fold = new_job_fold(account_id, region, job_id)

    @staticmethod
    def create_id(account_id: str, region: str, job_id: str) -> UUID:
        """Natural id: the same job always lands on the same aggregate."""
        return job_key(account_id, region, job_id)

    @classmethod
    def track(cls, account_id: str, region: str, job_id: str) -> Job:
        """Start tracking a job seen for the first time."""
        return cls._create(cls.Tracked, account_id=account_id, region=region, job_id=job_id)

    def record_state(self, observation: dict[str, Any]) -> bool:
        """Record a state observation unless it is a redelivery; True when recorded."""
        if not is_news(self.fold["seen"], observation):
            return False
        self.trigger_event(self.StateObserved, observation=within_limits(observation))
        return True

    def record_task(self, task: dict[str, Any]) -> bool:
        """Record an ECS task fact unless it is a redelivery; True when recorded."""
        if not is_news(self.fold["seen"], task):
            return False
        self.trigger_event(self.TaskObserved, task=task)
        return True
