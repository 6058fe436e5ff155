"""The central account's CloudWatch OAM sinks, one per member region, and the slots the member template takes."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from botocore.exceptions import ClientError

from batchops.rollout.clients import Clients
from batchops.rollout.errors import RolloutError, error_code
from batchops.rollout.settings import RolloutSettings

# The RegionSlot mapping of member-account/template.yaml, in slot order (a test keeps them equal): the
# StackSet passes one list of sink ARNs and each stack takes the slot of its region.
REGION_SLOTS: tuple[str, ...] = (
    "us-east-1", "us-east-2", "us-west-1", "us-west-2", "ca-central-1", "ca-west-1", "sa-east-1", "mx-central-1",
    "eu-west-1", "eu-west-2", "eu-west-3", "eu-central-1", "eu-central-2", "eu-north-1", "eu-south-1", "eu-south-2",
    "ap-northeast-1", "ap-northeast-2", "ap-northeast-3", "ap-southeast-1", "ap-southeast-2", "ap-southeast-3",
    "ap-southeast-4", "ap-southeast-5", "ap-southeast-7", "ap-south-1", "ap-south-2", "ap-east-1", "me-south-1",
    "me-central-1", "il-central-1", "af-south-1",
)  # fmt: skip
OAM_RESOURCE_TYPES = ("AWS::CloudWatch::Metric", "AWS::Logs::LogGroup")


def sink_policy(organization_id: str) -> dict[str, Any]:
    """The sink policy: accounts of the Organization may link metrics and log groups, nothing else."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "OrganizationLinks",
                "Effect": "Allow",
                "Principal": "*",
                "Action": ["oam:CreateLink", "oam:UpdateLink"],
                "Resource": "*",
                "Condition": {
                    "ForAllValues:StringEquals": {"oam:ResourceTypes": list(OAM_RESOURCE_TYPES)},
                    "ForAnyValue:StringEquals": {"aws:PrincipalOrgID": organization_id},
                },
            }
        ],
    }


def find_sink(oam: Any, name: str) -> dict[str, Any] | None:
    """The sink of that name in the client's region, or None."""
    for page in oam.get_paginator("list_sinks").paginate():
        for item in page["Items"]:
            if item["Name"] == name:
                return dict(item)
    return None


def ensure_sink(
    oam: Any, name: str, organization_id: str, tags: Mapping[str, str], *, dry_run: bool
) -> tuple[str, bool]:
    """Create the sink and its Organization policy where missing; returns its ARN ('' in a dry run) and changed."""
    sink = find_sink(oam, name)
    changed = False
    if sink is None:
        changed = True
        if dry_run:
            return "", True
        sink = oam.create_sink(Name=name, Tags=dict(tags))
    desired = sink_policy(organization_id)
    current: dict[str, Any] | None
    try:
        text = oam.get_sink_policy(SinkIdentifier=sink["Arn"]).get("Policy")
        current = json.loads(text) if text else None
    except ClientError as error:
        if error_code(error) != "ResourceNotFoundException":
            raise
        current = None
    if current != desired:
        changed = True
        if not dry_run:
            oam.put_sink_policy(SinkIdentifier=sink["Arn"], Policy=json.dumps(desired))
    return str(sink["Arn"]), changed


def delete_sink(oam: Any, name: str, *, dry_run: bool = False) -> bool:
    """Delete the sink of that name; False when there is none."""
    sink = find_sink(oam, name)
    if sink is None:
        return False
    if not dry_run:
        oam.delete_sink(Identifier=sink["Arn"])
    return True


def sink_slots(sinks: Mapping[str, str]) -> str:
    """The member template's OamSinkArns value: sink ARNs in RegionSlot order, empty slots between, trimmed."""
    unknown = set(sinks) - set(REGION_SLOTS)
    if unknown:
        raise RolloutError(f"no RegionSlot in member-account/template.yaml for {sorted(unknown)}")
    slots = [sinks.get(region, "") for region in REGION_SLOTS]
    while slots and not slots[-1]:
        slots.pop()
    return ",".join(slots)


def ensure_sinks(
    settings: RolloutSettings, clients: Clients, *, central: str, organization_id: str, partition: str
) -> tuple[dict[str, str], list[str]]:
    """Step 3 of the deploy: a sink per member region; their ARNs by region (placeholders in a dry run), changes."""
    sinks: dict[str, str] = {}
    changes: list[str] = []
    if not settings.oam:
        return sinks, changes
    for region in settings.regions:
        oam = clients.client("oam", region, central)
        arn, changed = ensure_sink(oam, settings.sink_name, organization_id, settings.tags, dry_run=settings.dry_run)
        sinks[region] = arn or f"arn:{partition}:oam:{region}:{central}:sink/(new)"
        if changed:
            changes.append(f"create or update OAM sink {settings.sink_name} in {region}")
    return sinks, changes
