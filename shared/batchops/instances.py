"""The Instance aggregate: one EC2 instance as ECS, EC2 and Auto Scaling events describe it.

Its id is the EC2 instance id (per account and region); the ECS container instance ARN is one of its
facts, so a job's attempt joins to its instance through the container instance it ran on.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate

from batchops.facts import InstanceFact, is_news, remember

LIFECYCLE = {
    "pending": 0,
    "running": 1,
    "stopping": 2,
    "stopped": 3,
    "shutting-down": 4,
    "terminated": 5,
}
_KIND_STATE = {"launched": "pending", "registered": "running", "terminated": "terminated"}
_FIXED_KEYS = ("ci", "ce", "type", "az", "arch", "vcpus", "memory")


@lru_cache(maxsize=8192)
def instance_key(account: str, region: str, instance_id: str) -> UUID:
    """The aggregate id of an EC2 instance: a uuid5 of its natural key."""
    return uuid5(NAMESPACE_URL, f"batchops:instance/{account}/{region}/{instance_id}")


def new_instance_fold(account: str, region: str, instance_id: str) -> dict[str, Any]:
    """An empty fold for one instance."""
    return {
        "account": account,
        "region": region,
        "instance_id": instance_id,
        "seen": {},
        "fixed": {},
        "state": None,
        "first": {},
        "last": None,
    }


def observe_instance(fold: dict[str, Any], fact: InstanceFact) -> bool:
    """Fold an instance fact in; False when it adds nothing (a redelivery or an unchanged ECS heartbeat)."""
    if not remember(fold["seen"], fact):  # type: ignore[arg-type]
        return False
    at = fact["at"]
    kind = fact.get("kind", "state")
    fixed = fold["fixed"]
    for key in _FIXED_KEYS:
        value = fact.get(key)
        if value is not None and fixed.get(key) is None:
            fixed[key] = value
    state = fact.get("state") if kind == "state" else _KIND_STATE.get(kind)
    if state is not None:
        state = state.lower()
        if state in LIFECYCLE and (fold["state"] is None or LIFECYCLE[state] > LIFECYCLE[fold["state"]]):
            fold["state"] = state
    moment = f"{kind}:{state}" if kind == "state" else kind
    first = fold["first"]
    if moment not in first or at < first[moment]:
        first[moment] = at
    if fold["last"] is None or at > fold["last"]:
        fold["last"] = at
    return True


class Instance(Aggregate):
    """One EC2 instance that served (or may serve) a Batch compute environment."""

    class Tracked(Aggregate.Created):
        """The instance was seen for the first time."""

        account_id: str
        region: str
        instance_id: str

    class Observed(Aggregate.Event):
        """An ECS, EC2 or Auto Scaling event said something new about the instance."""

        fact: dict[str, Any]

        def apply(self, aggregate: Any) -> None:
            """Fold the fact into the aggregate's state."""
            observe_instance(aggregate.fold, self.fact)  # type: ignore[arg-type]

    def __init__(self, account_id: str, region: str, instance_id: str) -> None:
        self.fold = new_instance_fold(account_id, region, instance_id)

    @staticmethod
    def create_id(account_id: str, region: str, instance_id: str) -> UUID:
        """Natural id: the same instance always lands on the same aggregate."""
        return instance_key(account_id, region, instance_id)

    @classmethod
    def track(cls, account_id: str, region: str, instance_id: str) -> Instance:
        """Start tracking an instance seen for the first time."""
        return cls._create(cls.Tracked, account_id=account_id, region=region, instance_id=instance_id)

    def record(self, fact: dict[str, Any]) -> bool:
        """Record a fact unless it is a redelivery; True when recorded."""
        if not is_news(self.fold["seen"], fact):
            return False
        self.trigger_event(self.Observed, fact=fact)
        return True
