"""What AWS names and messages tell without any describe call: the ECS cluster inside an ARN, the Batch compute
environment behind a cluster's name, the EC2 instance a termination reason names, Batch's default log group."""

from __future__ import annotations

import re
from functools import lru_cache

DEFAULT_LOG_GROUP = "/aws/batch/job"
_CLUSTER_NAME = re.compile(
    r"^(?:AWSBatch-(?P<ce>.+?)-[0-9a-f]{8}(?:-[0-9a-f]{0,12}){0,4}|(?P<old>.+?)_Batch_[0-9a-f-]+)$"
)
_HOST_TERMINATED = re.compile(r"Host EC2 \(instance (?P<id>i-[0-9a-zA-Z]+)\) terminated")


def cluster_of(arn: str | None) -> str | None:
    """The ECS cluster name inside a cluster, task or container-instance ARN."""
    if not arn:
        return None
    for marker in (":cluster/", ":task/", ":container-instance/"):
        if marker in arn:
            rest = arn.split(marker, 1)[1]
            if marker == ":cluster/":
                return rest or None
            return rest.split("/", 1)[0] if "/" in rest else None
    return None


@lru_cache(maxsize=4096)  # a handful of clusters, asked for every job row
def compute_environment_of_cluster(cluster: str | None) -> str | None:
    """The Batch compute environment behind an ECS cluster named AWSBatch-<ce>-<uuid> (or <ce>_Batch_<uuid>)."""
    if not cluster:
        return None
    match = _CLUSTER_NAME.match(cluster)
    if not match:
        return None
    return match.group("ce") or match.group("old")


def host_instance_in(reason: str | None) -> str | None:
    """The EC2 instance id named by `Host EC2 (instance i-…) terminated.`"""
    if not reason:
        return None
    match = _HOST_TERMINATED.search(reason)
    return match.group("id") if match else None
