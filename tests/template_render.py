"""A CloudFormation template as CloudFormation renders it for given parameters: conditions evaluated, resources whose
condition is false dropped, `Fn::If` resolved, `AWS::NoValue` removed and parameter `Ref`s replaced by their values.

Only what the tests need: `Fn::Sub`, `Fn::GetAtt` and `Ref`s to resources stay as written."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cfnlint.decode.cfn_yaml import loads

NO_VALUE = {"Ref": "AWS::NoValue"}
CAPACITY_PARAMETERS = (
    "CapacityMode",
    "ProvisionedMinReadUnits",
    "ProvisionedMaxReadUnits",
    "ProvisionedMinWriteUnits",
    "ProvisionedMaxWriteUnits",
    "ProvisionedTargetUtilizationPercent",
)
"""The central template's capacity parameters, in the order of its "DynamoDB capacity" parameter group."""
_DROP = object()


def decoded(path: Path) -> dict[str, Any]:
    """The template with short-form intrinsics as `Fn::*` (plain dicts and lists)."""
    template: dict[str, Any] = json.loads(json.dumps(loads(path.read_text())))
    return template


def parameter_values(template: Mapping[str, Any], given: Mapping[str, str]) -> dict[str, str]:
    """Every parameter's value: the given one, else its default (as the string CloudFormation passes)."""
    unknown = set(given) - set(template["Parameters"])
    assert not unknown, f"the template declares no parameter {sorted(unknown)}"
    values = {name: str(p["Default"]) for name, p in template["Parameters"].items() if "Default" in p}
    return {**values, **given}


def conditions(template: Mapping[str, Any], values: Mapping[str, str]) -> dict[str, bool]:
    """Each condition's truth for the parameter values."""
    found: dict[str, bool] = {}

    def truth(node: Any) -> bool:
        ((function, arguments),) = node.items()
        if function == "Condition":
            return evaluate(arguments)
        if function == "Fn::Equals":
            left, right = (str(_resolve(a, values, found)) for a in arguments)
            return left == right
        if function == "Fn::Not":
            return not truth(arguments[0])
        if function == "Fn::And":
            return all(truth(a) for a in arguments)
        if function == "Fn::Or":
            return any(truth(a) for a in arguments)
        raise ValueError(f"condition function {function} not understood")

    def evaluate(name: str) -> bool:
        if name not in found:
            found[name] = truth(template["Conditions"][name])
        return found[name]

    for name in template.get("Conditions", {}):
        evaluate(name)
    return found


def render(template: Mapping[str, Any], given: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The template for these parameters (defaults for the others)."""
    values = parameter_values(template, given or {})
    truths = conditions(template, values)
    resources = {
        name: resource
        for name, resource in template["Resources"].items()
        if "Condition" not in resource or truths[resource["Condition"]]
    }
    rendered: dict[str, Any] = _resolve({**template, "Resources": resources}, values, truths)
    return rendered


def _resolve(node: Any, values: Mapping[str, str], truths: Mapping[str, bool]) -> Any:
    if isinstance(node, dict):
        if set(node) == {"Fn::If"}:
            condition, yes, no = node["Fn::If"]
            return _resolve(yes if truths[condition] else no, values, truths)
        if node == NO_VALUE:
            return _DROP
        if set(node) == {"Ref"} and node["Ref"] in values:
            return values[node["Ref"]]
        resolved = {k: _resolve(v, values, truths) for k, v in node.items()}
        return {k: v for k, v in resolved.items() if v is not _DROP}
    if isinstance(node, list):
        return [v for v in (_resolve(item, values, truths) for item in node) if v is not _DROP]
    return node
