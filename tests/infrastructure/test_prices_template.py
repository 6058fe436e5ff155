"""The daily prices function in the central template: a daily schedule by a role that may only invoke it, and a
role that reads prices and job placements and writes only the meta table."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cfnlint.decode.cfn_yaml import loads

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = loads((ROOT / "central-account" / "template.yaml").read_text())


def _statements(template: dict[str, Any], role: str) -> list[dict[str, Any]]:
    [policy] = template["Resources"][role]["Properties"]["Policies"]
    return [s for s in policy["PolicyDocument"]["Statement"] if "Fn::If" not in s]


def test_the_prices_run_daily_by_a_role_that_may_only_invoke_them() -> None:
    schedule = TEMPLATE["Resources"]["PricesSchedule"]["Properties"]
    assert schedule["ScheduleExpression"] == "rate(1 day)" and schedule["State"] == "ENABLED"
    assert schedule["Target"]["Arn"] == {"Fn::GetAtt": ["PricesFunction", "Arn"]}
    assert [(s["Action"], s["Resource"]) for s in _statements(TEMPLATE, "PricesSchedulerRole")] == [
        ("lambda:InvokeFunction", {"Fn::GetAtt": ["PricesFunction", "Arn"]})
    ]
    function = TEMPLATE["Resources"]["PricesFunction"]["Properties"]
    assert function["Handler"] == "batchops.entrypoints.prices_lambda.refresh_prices"
    assert function["Environment"]["Variables"]["BATCHOPS_STORE"] == {"Fn::Sub": "dynamodb://${Prefix}"}


def test_the_prices_role_reads_prices_and_placements_and_writes_only_the_meta_table() -> None:
    by_sid = {s["Sid"]: s for s in _statements(TEMPLATE, "PricesRole")}
    assert set(by_sid) == {"Logs", "ReadPrices", "ReadAndWritePrices", "ReadJobPlacements"}
    assert sorted(by_sid["ReadPrices"]["Action"]) == ["ec2:DescribeSpotPriceHistory", "pricing:GetProducts"]
    assert by_sid["ReadAndWritePrices"]["Resource"] == {"Fn::GetAtt": ["MetaTable", "Arn"]}
    assert by_sid["ReadJobPlacements"] == {
        "Sid": "ReadJobPlacements", "Effect": "Allow", "Action": "dynamodb:Scan",
        "Resource": {"Fn::GetAtt": ["JobsTable", "Arn"]},
    }  # fmt: skip
