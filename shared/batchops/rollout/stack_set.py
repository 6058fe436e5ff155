"""The member StackSet as it should be (its spec), and as StackSets describes it and its stack instances."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from batchops.rollout.errors import RolloutError, error_code
from batchops.rollout.settings import OperationPreferences


@dataclass(frozen=True)
class StackSetSpec:
    """The member StackSet as it should be."""

    name: str
    template_body: str
    parameters: Mapping[str, str]
    call_as: str
    description: str = "batchops member accounts: Batch events to the central bus, OAM link (deploy.py)"
    capabilities: tuple[str, ...] = ("CAPABILITY_NAMED_IAM",)
    tags: Mapping[str, str] = field(default_factory=dict)

    @property
    def auto_deployment(self) -> dict[str, bool]:
        """New accounts of the OUs get the stack; accounts leaving lose it."""
        return {"Enabled": True, "RetainStacksOnAccountRemoval": False}

    @property
    def managed_execution(self) -> dict[str, bool]:
        """StackSets queues non-conflicting operations instead of refusing them."""
        return {"Active": True}

    def _parameters(self) -> list[dict[str, str]]:
        return [{"ParameterKey": k, "ParameterValue": v} for k, v in sorted(self.parameters.items())]

    def create_request(self) -> dict[str, Any]:
        """The CreateStackSet request."""
        return {
            "StackSetName": self.name,
            "Description": self.description,
            "TemplateBody": self.template_body,
            "Parameters": self._parameters(),
            "Capabilities": list(self.capabilities),
            "Tags": [{"Key": k, "Value": v} for k, v in sorted(self.tags.items())],
            "PermissionModel": "SERVICE_MANAGED",
            "AutoDeployment": self.auto_deployment,
            "ManagedExecution": self.managed_execution,
            "CallAs": self.call_as,
        }

    def update_request(self, preferences: OperationPreferences, operation_id: str) -> dict[str, Any]:
        """The UpdateStackSet request (every instance is updated)."""
        request = self.create_request()
        del request["PermissionModel"]
        request["OperationPreferences"] = preferences.request()
        request["OperationId"] = operation_id
        return request

    def differences(self, current: Mapping[str, Any]) -> list[str]:
        """How a described StackSet differs from the spec (fields the service does not report are not compared)."""
        found = []
        if current.get("TemplateBody") != self.template_body:
            found.append("template")
        parameters = {p["ParameterKey"]: p.get("ParameterValue", "") for p in current.get("Parameters") or []}
        for key, value in sorted(self.parameters.items()):
            if parameters.get(key) != value:
                found.append(f"parameter {key}")
        if "Capabilities" in current and set(current["Capabilities"]) != set(self.capabilities):
            found.append("capabilities")
        if "AutoDeployment" in current and current["AutoDeployment"] != self.auto_deployment:
            found.append(f"auto-deployment {current['AutoDeployment']}")
        if "ManagedExecution" in current and current["ManagedExecution"] != self.managed_execution:
            found.append(f"managed execution {current['ManagedExecution']}")
        if current.get("PermissionModel", "SERVICE_MANAGED") != "SERVICE_MANAGED":
            raise RolloutError(
                f"StackSet {self.name} exists with {current['PermissionModel']} permissions; this rollout needs "
                "SERVICE_MANAGED: delete it (deploy.py destroy) or choose another --prefix"
            )
        return found


def describe_stack_set(cfn: Any, name: str, call_as: str) -> dict[str, Any] | None:
    """The StackSet, or None when it does not exist (or was deleted)."""
    try:
        found: dict[str, Any] = cfn.describe_stack_set(StackSetName=name, CallAs=call_as)["StackSet"]
    except ClientError as error:
        if error_code(error) == "StackSetNotFoundException":
            return None
        raise
    return None if found.get("Status") == "DELETED" else found


@dataclass(frozen=True)
class Instance:
    """One stack instance as StackSets reports it."""

    account: str
    region: str
    status: str
    detailed_status: str
    reason: str
    drift: str
    org_unit: str


def list_instances(cfn: Any, name: str, call_as: str) -> list[Instance]:
    """Every stack instance of the StackSet."""
    found = []
    for page in cfn.get_paginator("list_stack_instances").paginate(StackSetName=name, CallAs=call_as):
        for s in page["Summaries"]:
            found.append(
                Instance(
                    account=s["Account"],
                    region=s["Region"],
                    status=s.get("Status", ""),
                    detailed_status=(s.get("StackInstanceStatus") or {}).get("DetailedStatus", ""),
                    reason=s.get("StatusReason", ""),
                    drift=s.get("DriftStatus", "NOT_CHECKED"),
                    org_unit=s.get("OrganizationalUnitId", ""),
                )
            )
    return found
