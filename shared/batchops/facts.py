"""Normalised facts: what batchops keeps of an inbound event, free of secrets, small and JSON-ready.

A fact is a plain dict (stored inside a domain event). Keys with no value are left out. Every fact has
`at` (the event's time, epoch ms) and `fp`: a fingerprint of everything else, so that a redelivery of a
state already recorded is recognised whatever its envelope id or time.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Literal, TypedDict

import orjson

FactKind = Literal["job_state", "job_task", "instance", "compute_environment"]
SERVICE_PLATFORM = "SAGEMAKER"
"""The platform of a service job (AWS Batch schedules SageMaker training jobs: SAGEMAKER_TRAINING)."""


@dataclass(frozen=True, slots=True)
class Parsed:
    """A fact routed to the aggregate it belongs to."""

    kind: FactKind
    account: str
    region: str
    key: str
    fact: dict[str, Any]


class AttemptFact(TypedDict, total=False):
    """One attempt of a job as a Batch event describes it."""

    n: int
    started: int
    stopped: int
    exit: int
    reason: str
    container_reason: str
    ci: str
    task: str
    stream: str


class JobObservation(TypedDict, total=False):
    """A job state as one Batch Job State Change (or Job Queue Blocked) event shows it, or a submission as a
    CloudTrail SubmitJob record shows it (`call`: status SUBMITTED, the submitting principal, nothing of the
    request's overrides, parameters or environment)."""

    fp: str
    at: int
    status: str
    reason: str
    blocked: bool
    arn: str
    name: str
    queue: str
    definition: str
    platform: str
    created: int
    started: int
    stopped: int
    exit: int
    vcpus: float
    memory: float
    gpus: int
    parent: str
    index: int
    size: int
    log_group: str
    done: int
    attempts: list[AttemptFact]
    current: AttemptFact
    depends_on: list[str]
    share: str
    priority: int
    capacity_unit: str
    capacity: float
    submitted_by: str
    call: str


class TaskFact(TypedDict, total=False):
    """An ECS task that AWS Batch launched for one attempt of a job."""

    fp: str
    at: int
    n: int
    task: str
    ci: str
    az: str
    ce: str
    status: str
    launch: str
    started: int
    stopped: int
    stop_code: str
    stopped_reason: str


class InstanceFact(TypedDict, total=False):
    """Something an ECS, EC2 or Auto Scaling event says about one EC2 instance."""

    fp: str
    at: int
    kind: str
    ci: str
    ce: str
    type: str
    az: str
    arch: str
    vcpus: float
    memory: float
    state: str


class ComputeEnvironmentFact(TypedDict, total=False):
    """A compute environment's configuration from a CloudTrail Create/UpdateComputeEnvironment record."""

    fp: str
    at: int
    type: str
    strategy: str
    arn: str
    call: str


def fingerprint(fact: dict[str, Any]) -> str:
    """A short stable digest of a fact's content, ignoring its time and previous fingerprint."""
    return fingerprint_of(content_json(fact))


def content_json(fact: dict[str, Any]) -> bytes:
    """The JSON a fact's fingerprint is taken of: its content, without its time and previous fingerprint."""
    return orjson.dumps({k: v for k, v in fact.items() if k not in ("at", "fp")}, option=orjson.OPT_SORT_KEYS)


def fingerprint_of(content: bytes) -> str:
    """The fingerprint of a fact's `content_json`."""
    return hashlib.blake2b(content, digest_size=10).hexdigest()


def compact(values: dict[str, Any]) -> dict[str, Any]:
    """Drop keys whose value is None (facts only carry what is known)."""
    return {k: v for k, v in values.items() if v is not None}


def remember(seen: dict[str, int], fact: dict[str, Any]) -> bool:
    """Record a fact's fingerprint; False when the same content was already seen at the same or an earlier time.

    A copy seen *earlier* than before is news: it moves the first-seen time back, so the outcome does not
    depend on the order in which copies arrive.
    """
    if not is_news(seen, fact):
        return False
    seen[fact["fp"]] = fact["at"]
    return True


def is_news(seen: dict[str, int], fact: dict[str, Any]) -> bool:
    """True unless the same content was already seen at the same or an earlier time."""
    known = seen.get(fact["fp"])
    return known is None or known > fact["at"]
