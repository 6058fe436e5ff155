"""The central template's capacity modes, rendered as CloudFormation renders them: on demand exactly as before;
provisioned with a throughput on every hot table and index and one auto-scaling target and target-tracking policy per
read and write dimension. cfn-lint checks neither a GSI's throughput in provisioned mode nor the targets' ResourceIds
against the template's tables, so these tests do."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from template_render import CAPACITY_PARAMETERS, decoded, parameter_values, render

TEMPLATE = Path(__file__).resolve().parents[2] / "central-account" / "template.yaml"
HOT_TABLES = {"EventsTable", "JobsTable", "InstancesTable", "MetaTable"}
LOW_TRAFFIC_TABLES = {"SnapshotsTable", "TrackingTable"}
# Not the defaults, so a value found in the rendered template can only have come from its parameter.
BOUNDS = {
    "ProvisionedMinReadUnits": "3",
    "ProvisionedMaxReadUnits": "300",
    "ProvisionedMinWriteUnits": "4",
    "ProvisionedMaxWriteUnits": "400",
    "ProvisionedTargetUtilizationPercent": "55",
}
TARGET = "AWS::ApplicationAutoScaling::ScalableTarget"
POLICY = "AWS::ApplicationAutoScaling::ScalingPolicy"


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return decoded(TEMPLATE)


@pytest.fixture(scope="module")
def on_demand(template: dict[str, Any]) -> dict[str, Any]:
    return render(template)


@pytest.fixture(scope="module")
def provisioned(template: dict[str, Any]) -> dict[str, Any]:
    return render(template, {"CapacityMode": "provisioned", **BOUNDS})


def of_type(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {name: r for name, r in template["Resources"].items() if r["Type"] == kind}


def dimensions(template: dict[str, Any]) -> set[tuple[str, str | None, str]]:
    """Every (table, index or None, Read|Write) the hot tables and their indexes have, from the tables themselves."""
    found: set[tuple[str, str | None, str]] = set()
    for name in HOT_TABLES:
        props = template["Resources"][name]["Properties"]
        scopes = [None] + [i["IndexName"] for i in props.get("GlobalSecondaryIndexes", [])]
        found |= {(name, scope, kind) for scope in scopes for kind in ("Read", "Write")}
    return found


def target_scope(template: dict[str, Any], target: dict[str, Any]) -> tuple[str, str | None, str]:
    """The table (logical id), index and Read|Write a scalable target scales, checked against the template's tables."""
    props = target["Properties"]
    matched = re.fullmatch(r"table/\$\{(\w+)\}(?:/index/([\w.-]+))?", props["ResourceId"]["Fn::Sub"])
    assert matched, props["ResourceId"]
    table, index = matched[1], matched[2]
    assert template["Resources"][table]["Type"] == "AWS::DynamoDB::Table", table
    indexes = [i["IndexName"] for i in template["Resources"][table]["Properties"].get("GlobalSecondaryIndexes", [])]
    assert index is None or index in indexes, (table, index)
    dimension = re.fullmatch(r"dynamodb:(table|index):(Read|Write)CapacityUnits", props["ScalableDimension"])
    assert dimension, props["ScalableDimension"]
    assert dimension[1] == ("index" if index else "table"), props
    return table, index, dimension[2]


def test_the_capacity_parameters_are_grouped_and_on_demand_is_the_default(template: dict[str, Any]) -> None:
    groups = template["Metadata"]["AWS::CloudFormation::Interface"]["ParameterGroups"]
    [group] = [g for g in groups if "CapacityMode" in g["Parameters"]]
    assert group["Parameters"] == list(CAPACITY_PARAMETERS)
    grouped = [p for g in groups for p in g["Parameters"]]
    assert sorted(grouped) == sorted(template["Parameters"]), "every parameter in exactly one group"
    parameters = template["Parameters"]
    assert parameters["CapacityMode"]["Default"] == "on-demand"
    assert parameters["CapacityMode"]["AllowedValues"] == ["on-demand", "provisioned"]
    assert parameters["ProvisionedTargetUtilizationPercent"]["Default"] == 70
    # Application Auto Scaling takes a DynamoDB target value of 20 to 90 percent.
    target = parameters["ProvisionedTargetUtilizationPercent"]
    assert (target["MinValue"], target["MaxValue"]) == (20, 90)
    for kind in ("Read", "Write"):
        low, high = parameters[f"ProvisionedMin{kind}Units"], parameters[f"ProvisionedMax{kind}Units"]
        assert 1 <= low["MinValue"] <= low["Default"] <= high["Default"] <= high["MaxValue"]


def test_on_demand_has_no_provisioned_throughput_and_no_scaling(on_demand: dict[str, Any]) -> None:
    tables = of_type(on_demand, "AWS::DynamoDB::Table")
    assert set(tables) == HOT_TABLES | LOW_TRAFFIC_TABLES
    for name, table in tables.items():
        assert table["Properties"]["BillingMode"] == "PAY_PER_REQUEST", name
    assert "ProvisionedThroughput" not in json.dumps(on_demand["Resources"])
    assert not [r for r in on_demand["Resources"].values() if r["Type"].startswith("AWS::ApplicationAutoScaling::")]


def test_provisioned_mode_puts_a_throughput_on_every_hot_table_and_every_jobs_index(
    provisioned: dict[str, Any],
) -> None:
    wanted = {"ReadCapacityUnits": "3", "WriteCapacityUnits": "4"}  # the minimums given
    tables = of_type(provisioned, "AWS::DynamoDB::Table")
    for name in HOT_TABLES:
        props = tables[name]["Properties"]
        assert props["BillingMode"] == "PROVISIONED", name
        assert props["ProvisionedThroughput"] == wanted, name
    indexes = tables["JobsTable"]["Properties"]["GlobalSecondaryIndexes"]
    assert len(indexes) == 4
    for index in indexes:
        assert index["ProvisionedThroughput"] == wanted, index["IndexName"]
    for name in LOW_TRAFFIC_TABLES:
        assert tables[name]["Properties"]["BillingMode"] == "PAY_PER_REQUEST", name
        assert "ProvisionedThroughput" not in tables[name]["Properties"], name


def test_one_target_and_one_target_tracking_policy_per_read_and_write_dimension(provisioned: dict[str, Any]) -> None:
    targets, policies = of_type(provisioned, TARGET), of_type(provisioned, POLICY)
    scopes = {name: target_scope(provisioned, target) for name, target in targets.items()}
    assert sorted(scopes.values(), key=str) == sorted(dimensions(provisioned), key=str)
    assert len(scopes) == len(set(scopes.values())) == 16
    tracked = sorted(p["Properties"]["ScalingTargetId"]["Ref"] for p in policies.values())
    assert tracked == sorted(targets), "exactly one policy per target"
    for target in targets.values():
        props = target["Properties"]
        assert props["ServiceNamespace"] == "dynamodb"
        assert "RoleARN" not in props, "Application Auto Scaling's service-linked role, not a role of ours"
    for policy in policies.values():
        props = policy["Properties"]
        kind = scopes[props["ScalingTargetId"]["Ref"]][2]
        assert props["PolicyType"] == "TargetTrackingScaling"
        assert "${Prefix}" in props["PolicyName"]["Fn::Sub"]
        configuration = props["TargetTrackingScalingPolicyConfiguration"]
        assert configuration["PredefinedMetricSpecification"] == {
            "PredefinedMetricType": f"DynamoDB{kind}CapacityUtilization"
        }
        assert configuration["TargetValue"] == BOUNDS["ProvisionedTargetUtilizationPercent"]
    names = [p["Properties"]["PolicyName"]["Fn::Sub"] for p in policies.values()]
    assert len(set(names)) == len(names)


@pytest.mark.parametrize("bounds", [{}, BOUNDS], ids=["defaults", "given"])
def test_every_target_scales_between_its_bounds_and_the_minimum_is_not_above_the_maximum(
    template: dict[str, Any], bounds: dict[str, str]
) -> None:
    rendered = render(template, {"CapacityMode": "provisioned", **bounds})
    values = parameter_values(template, bounds)
    targets = of_type(rendered, TARGET)
    assert targets
    for name, target in targets.items():
        props, kind = target["Properties"], target_scope(rendered, target)[2]
        assert (props["MinCapacity"], props["MaxCapacity"]) == (
            values[f"ProvisionedMin{kind}Units"],
            values[f"ProvisionedMax{kind}Units"],
        ), name
        assert int(props["MinCapacity"]) <= int(props["MaxCapacity"]), name


def test_the_rendering_resolves_the_capacity_condition_both_ways(template: dict[str, Any]) -> None:
    """The renderer itself: an unknown parameter is refused, and the two modes differ only where the condition is."""
    with pytest.raises(AssertionError, match="declares no parameter"):
        render(template, {"CapacityModes": "provisioned"})
    on_demand, provisioned = render(template), render(template, {"CapacityMode": "provisioned"})
    added = set(provisioned["Resources"]) - set(on_demand["Resources"])
    assert {provisioned["Resources"][n]["Type"] for n in added} == {TARGET, POLICY}
    changed = {n for n in on_demand["Resources"] if on_demand["Resources"][n] != provisioned["Resources"][n]}
    assert changed == HOT_TABLES
