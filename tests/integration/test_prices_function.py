"""The daily prices Lambda with the permissions IAM would give its role: the jobs' placements read, prices asked and
stored, nothing else allowed.

The role's policy is read from the central template, its references resolved to this test's tables; every AWS call
the code makes is authorised against it (tests/iam_calls.py). moto serves DynamoDB and the spot price history;
`pricing:GetProducts` is a botocore Stubber (moto has no Price List API), authorised like every other call.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from cfnlint.decode.cfn_yaml import loads

from batchops.adapters.aws_prices import AwsPriceSource
from batchops.adapters.dynamodb.prices import DynamoDBPriceStore
from batchops.bootstrap import Settings, build_application
from batchops.entrypoints.prices_lambda import refresh_central_prices
from batchops.prices import PriceBook, wanted_prices
from batchops.simulation import SimulationSettings, simulate
from conftest import AWS_REGION, ingest
from iam_calls import ACCOUNT, Principal, acting_as, enforcing
from iam_policies import ALLOWED, Request, decide

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "central-account" / "template.yaml"
PREFIX = "pxf"
TABLE = f"arn:aws:dynamodb:{AWS_REGION}:{ACCOUNT}:table/{PREFIX}"
DAY = "2026-12-04"


def _resolve(node: Any) -> Any:
    """The template's references as CloudFormation resolves them for this stack (tracing off)."""
    if isinstance(node, dict):
        if "Fn::GetAtt" in node:
            resource = node["Fn::GetAtt"][0]
            return {
                "MetaTable": f"{TABLE}-meta",
                "JobsTable": f"{TABLE}-jobs",
                "PricesLogGroup": f"arn:aws:logs:{AWS_REGION}:{ACCOUNT}:log-group:/aws/lambda/{PREFIX}-prices:*",
            }[resource]
        if "Fn::If" in node:
            return None  # the only condition here is TracingActive: off
        return {k: _resolve(v) for k, v in node.items()}
    if isinstance(node, list):
        return [r for r in (_resolve(v) for v in node) if r is not None]
    return node


def prices_role() -> Principal:
    """The prices role's policies, as the central template declares them."""
    resources = loads(TEMPLATE.read_text())["Resources"]
    documents = [_resolve(p["PolicyDocument"]) for p in resources["PricesRole"]["Properties"]["Policies"]]
    return Principal("PricesRole", json.loads(json.dumps(documents)))


def _product(instance_type: str) -> str:
    attributes = {"instanceType": instance_type, "vcpu": "8", "memory": "32 GiB", "gpu": "0"}
    term = {"priceDimensions": {"D": {"unit": "Hrs", "pricePerUnit": {"USD": "0.40"}}}}
    return json.dumps({"product": {"attributes": attributes}, "terms": {"OnDemand": {"T": term}}})


@pytest.fixture
def central_jobs(aws: None, monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """A simulated Organization's events projected into the central DynamoDB views; the job rows."""
    monkeypatch.setenv("BATCHOPS_STORE", f"dynamodb://{PREFIX}")
    app = build_application(Settings.from_environment(), project_inline=True)
    ingest(app, list(simulate(SimulationSettings(accounts=1, regions=2, jobs=40, seed=5))))
    jobs = list(app.views.jobs())
    monkeypatch.delenv("BATCHOPS_CREATE_TABLES")  # the stack's tables: the function creates none
    return jobs


def test_the_prices_function_reads_placements_asks_for_prices_and_stores_them_within_its_role(
    central_jobs: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    wanted = wanted_prices(central_jobs)
    on_demand = sorted(k for k in wanted if k.startswith("on-demand#"))
    assert on_demand and any(k.startswith("spot#") for k in wanted)
    pricing = boto3.client("pricing", region_name="us-east-1")
    source = AwsPriceSource(pricing, lambda region: boto3.client("ec2", region_name=region))
    role = prices_role()
    with Stubber(pricing) as stub, enforcing(monkeypatch), acting_as(role):
        for key in sorted(wanted):  # the order the refresh asks in: Fargate and on-demand, then spot per region
            if key.startswith("fargate#"):
                stub.add_response("get_products", {"PriceList": []})
            elif key.startswith("on-demand#"):
                stub.add_response("get_products", {"PriceList": [_product(key.split("#")[2])]})
        report = refresh_central_prices(Settings.from_environment(), source, day=DAY)
        again = refresh_central_prices(Settings.from_environment(), source, day=DAY)
        stub.assert_no_pending_responses()
    assert role.denied == []
    assert {"pricing:GetProducts", "ec2:DescribeSpotPriceHistory", "dynamodb:Scan", "dynamodb:BatchWriteItem"} <= (
        role.actions()
    )
    assert report["asked"] == len(wanted) and report["written"] >= 2 * len(on_demand)
    assert (again["asked"], again["written"]) == (0, 0)
    stored = PriceBook(
        DynamoDBPriceStore(boto3.client("dynamodb", region_name=AWS_REGION), f"{PREFIX}-meta").price_entries()
    )
    region, instance_type = on_demand[0].split("#")[1:]
    price = stored.on_demand(region, instance_type, DAY)
    assert price is not None and price.usd_per_hour == 0.40


@pytest.mark.parametrize(
    "request_",
    [
        Request("dynamodb:PutItem", f"{TABLE}-jobs"),
        Request("dynamodb:Scan", f"{TABLE}-meta"),
        Request("dynamodb:DeleteItem", f"{TABLE}-meta"),
        Request("dynamodb:Query", f"{TABLE}-events"),
        Request("ec2:DescribeInstances", "*"),
        Request("pricing:DescribeServices", "*"),
    ],
    ids=str,
)
def test_the_prices_role_allows_nothing_else(request_: Request) -> None:
    assert decide(request_, prices_role().policies) != ALLOWED
