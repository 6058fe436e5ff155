"""The ComputeEnvironment aggregate: a Batch compute environment's configuration from CloudTrail."""

from __future__ import annotations

from functools import lru_cache
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate

from batchops.facts import ComputeEnvironmentFact, is_news, remember

PRICING_OF_TYPE = {"EC2": "on-demand", "SPOT": "spot", "FARGATE": "fargate", "FARGATE_SPOT": "spot"}


@lru_cache(maxsize=8192)
def compute_environment_key(account: str, region: str, name: str) -> UUID:
    """The aggregate id of a compute environment: a uuid5 of its natural key."""
    return uuid5(NAMESPACE_URL, f"batchops:compute-environment/{account}/{region}/{name}")


def new_compute_environment_fold(account: str, region: str, name: str) -> dict[str, Any]:
    """An empty fold for one compute environment."""
    return {
        "account": account,
        "region": region,
        "name": name,
        "seen": {},
        "type": None,
        "strategy": None,
        "arn": None,
        "last": None,
    }


def observe_compute_environment(fold: dict[str, Any], fact: ComputeEnvironmentFact) -> bool:
    """Fold a configuration record in; the latest record that names a type decides the type."""
    if not remember(fold["seen"], fact):  # type: ignore[arg-type]
        return False
    at = fact["at"]
    kind = fact.get("type")
    if kind is not None and (fold["type"] is None or [at, kind] > fold["type"]):
        fold["type"] = [at, kind]
        if fact.get("strategy") is not None:
            fold["strategy"] = fact.get("strategy")
    if fact.get("arn") is not None and fold["arn"] is None:
        fold["arn"] = fact.get("arn")
    if fold["last"] is None or at > fold["last"]:
        fold["last"] = at
    return True


def configured_pricing(fold: dict[str, Any] | None) -> str | None:
    """on-demand / spot / fargate as the CE's configured type says, or None when no record was seen."""
    if not fold or not fold.get("type"):
        return None
    return PRICING_OF_TYPE.get(fold["type"][1])


class ComputeEnvironment(Aggregate):
    """One Batch compute environment of an account and region."""

    class Tracked(Aggregate.Created):
        """The compute environment was seen for the first time."""

        account_id: str
        region: str
        name: str

    class Configured(Aggregate.Event):
        """A CloudTrail record showed the compute environment created or updated."""

        fact: dict[str, Any]

        def apply(self, aggregate: Any) -> None:
            """Fold the record into the aggregate's state."""
            observe_compute_environment(aggregate.fold, self.fact)  # type: ignore[arg-type]

    def __init__(self, account_id: str, region: str, name: str) -> None:
        self.fold = new_compute_environment_fold(account_id, region, name)

    @staticmethod
    def create_id(account_id: str, region: str, name: str) -> UUID:
        """Natural id: the same compute environment always lands on the same aggregate."""
        return compute_environment_key(account_id, region, name)

    @classmethod
    def track(cls, account_id: str, region: str, name: str) -> ComputeEnvironment:
        """Start tracking a compute environment seen for the first time."""
        return cls._create(cls.Tracked, account_id=account_id, region=region, name=name)

    def record(self, fact: dict[str, Any]) -> bool:
        """Record a configuration record unless it is a redelivery; True when recorded."""
        if not is_news(self.fold["seen"], fact):
            return False
        self.trigger_event(self.Configured, fact=fact)
        return True
