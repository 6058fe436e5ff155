"""Prices from AWS into the central store, once a day, only for what jobs used.

moto serves DescribeSpotPriceHistory (one price per availability zone and type, a fixed value and timestamp) and
DynamoDB; it has no Price List Query API, so `pricing:GetProducts` is a botocore Stubber (which also pins the request
shape: service code, the six filters, the format version). The spot request's shape (the Linux product, a point in
time) is pinned with a Stubber too, as are several history records of one zone (moto returns one).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from batchops.adapters.aws_prices import AwsPriceSource, fargate_entries, on_demand_entries, spot_entries
from batchops.adapters.dynamodb.prices import DynamoDBPriceStore
from batchops.adapters.sqlite.prices import SQLitePriceStore
from batchops.cli import main
from batchops.job_cost import job_cost
from batchops.prices import PriceBook, PriceStore, entry, refresh_prices, table_entries, wanted_prices
from batchops.simulation import SimulationSettings, simulate
from conftest import ingest

DAY = "2026-12-04"


def _product(attributes: dict[str, str], usd: str, unit: str = "Hrs") -> str:
    dimension = {"unit": unit, "pricePerUnit": {"USD": usd}, "description": "x"}
    term = {"priceDimensions": {"D1": dimension}, "sku": "S"}
    return json.dumps({"product": {"attributes": attributes}, "terms": {"OnDemand": {"T1": term}}})


def _ec2_request(region: str, instance_type: str) -> dict[str, Any]:
    fields = {
        "instanceType": instance_type,
        "regionCode": region,
        "operatingSystem": "Linux",
        "tenancy": "Shared",
        "preInstalledSw": "NA",
        "capacitystatus": "Used",
    }
    return {
        "ServiceCode": "AmazonEC2",
        "Filters": [{"Type": "TERM_MATCH", "Field": k, "Value": v} for k, v in fields.items()],
        "FormatVersion": "aws_v1",
    }


def _pricing() -> Any:
    return boto3.client("pricing", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")


def _stub_ec2(stub: Stubber, region: str, instance_type: str, usd: str, memory: str = "16 GiB") -> None:
    attributes = {
        "instanceType": instance_type,
        "vcpu": "4",
        "memory": memory,
        "gpu": "1" if "g4dn" in instance_type else "0",
    }
    free = _product({**attributes}, "0.0000000000")  # a reserved-capacity-like zero row is passed over
    stub.add_response(
        "get_products",
        {"PriceList": [free, _product(attributes, usd)], "FormatVersion": "aws_v1"},
        _ec2_request(region, instance_type),
    )


def test_on_demand_prices_and_sizes_come_from_the_price_list_api_with_the_linux_shared_filters() -> None:
    pricing = _pricing()
    with Stubber(pricing) as stub:
        _stub_ec2(stub, "eu-west-1", "g4dn.xlarge", "0.5870000000")
        stub.add_response("get_products", {"PriceList": []}, _ec2_request("eu-west-1", "x9.huge"))
        shape, price = on_demand_entries(pricing, "eu-west-1", "g4dn.xlarge", DAY)
        assert on_demand_entries(pricing, "eu-west-1", "x9.huge", DAY) == []
        stub.assert_no_pending_responses()
    assert (shape.kind, shape.value("vcpus"), shape.value("memory_mib"), shape.value("gpus")) == ("shape", 4, 16384, 1)
    assert (price.kind, price.location, price.value("usd_per_hour"), price.source) == (
        "on-demand",
        "eu-west-1",
        0.587,
        "price-list-api",
    )


def test_fargate_rates_come_from_the_x86_linux_usage_types_and_a_half_missing_pair_is_left_out() -> None:
    pricing = _pricing()
    usage = {
        "EU-Fargate-vCPU-Hours:perCPU": "0.04048",
        "EU-Fargate-GB-Hours": "0.004445",
        "EU-Fargate-ARM-vCPU-Hours:perCPU": "0.03238",
        "EU-Fargate-EphemeralStorage-GB-Hours": "0.000111",
        "EU-SpotUsage-Fargate-vCPU-Hours:perCPU": "0.0121",
    }
    products = [_product({"usagetype": u}, usd) for u, usd in usage.items()]
    request = {
        "ServiceCode": "AmazonECS",
        "Filters": [{"Type": "TERM_MATCH", "Field": "regionCode", "Value": "eu-west-1"}],
        "FormatVersion": "aws_v1",
    }
    with Stubber(pricing) as stub:
        stub.add_response("get_products", {"PriceList": products}, request)
        [rates] = fargate_entries(pricing, "eu-west-1", DAY)
    assert rates.kind == "fargate"  # Fargate Spot had only its vCPU rate: no half price is kept
    assert dict(rates.values) == {"usd_per_vcpu_hour": 0.04048, "usd_per_gb_hour": 0.004445}


def test_spot_prices_are_one_per_zone_and_type_from_moto(aws: None) -> None:
    ec2 = boto3.client("ec2", region_name="eu-west-1")
    found = spot_entries(ec2, ["m5.xlarge", "c5.xlarge", "m5.xlarge"], DAY)
    zones = {e.location for e in found}
    assert zones == {"eu-west-1a", "eu-west-1b", "eu-west-1c"}
    assert sorted((e.location, e.item) for e in found) == sorted({(e.location, e.item) for e in found})
    assert {e.item for e in found} == {"c5.xlarge", "m5.xlarge"} and all(e.kind == "spot" for e in found)


def test_the_spot_request_asks_for_linux_now_and_keeps_each_zones_newest_price() -> None:
    ec2 = boto3.client("ec2", region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="x")
    now = datetime(2026, 12, 4, 12, tzinfo=UTC)
    records = [
        {
            "AvailabilityZone": "eu-west-1a",
            "InstanceType": "m5.xlarge",
            "SpotPrice": "0.07",
            "Timestamp": datetime(2026, 12, 4, 9, tzinfo=UTC),
        },
        {
            "AvailabilityZone": "eu-west-1a",
            "InstanceType": "m5.xlarge",
            "SpotPrice": "0.09",
            "Timestamp": datetime(2026, 12, 4, 11, tzinfo=UTC),
        },
    ]
    request = {"InstanceTypes": ["m5.xlarge"], "ProductDescriptions": ["Linux/UNIX"], "StartTime": now, "EndTime": now}
    with Stubber(ec2) as stub:
        stub.add_response("describe_spot_price_history", {"SpotPriceHistory": records}, request)
        [price] = spot_entries(ec2, ["m5.xlarge"], DAY, now=now)
    assert (price.location, price.value("usd_per_hour")) == ("eu-west-1a", 0.09)


class _CountingSource:
    """A price source over the stubbed pricing client and moto's EC2, counting what it was asked."""

    def __init__(self, pricing: Any) -> None:
        self.inner = AwsPriceSource(pricing, lambda region: boto3.client("ec2", region_name=region))
        self.asked: list[str] = []

    def on_demand(self, region: str, instance_type: str, day: str) -> list[Any]:
        self.asked.append(f"on-demand#{region}#{instance_type}")
        return self.inner.on_demand(region, instance_type, day)

    def spot(self, region: str, instance_types: Any, day: str) -> list[Any]:
        self.asked.append(f"spot#{region}")
        return self.inner.spot(region, instance_types, day)

    def fargate(self, region: str, day: str) -> list[Any]:
        self.asked.append(f"fargate#{region}")
        return []


def _meta_table() -> DynamoDBPriceStore:
    client = boto3.client("dynamodb", region_name="us-east-1")
    client.create_table(
        TableName="px-meta",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    return DynamoDBPriceStore(client, "px-meta")


@pytest.mark.parametrize("backend", ["sqlite", "dynamodb"])
def test_a_refresh_asks_once_a_day_for_what_jobs_used_and_stores_only_changed_prices(
    aws: None, tmp_path: Path, backend: str
) -> None:
    store: PriceStore = SQLitePriceStore(tmp_path / "p.db") if backend == "sqlite" else _meta_table()
    jobs: list[dict[str, Any]] = [
        {"region": "eu-west-1", "platform": "EC2", "instance_type": "m5.xlarge", "pricing": "spot"},
        {"region": "eu-west-1", "platform": "EC2", "instance_type": "m5.xlarge", "pricing": "spot"},
        {"region": "eu-west-1", "platform": "FARGATE", "instance_type": None, "pricing": "fargate"},
        {"region": "eu-west-1", "platform": "EC2", "instance_type": None, "pricing": "unknown"},  # never placed
    ]
    wanted = wanted_prices(jobs)
    assert wanted == {"on-demand#eu-west-1#m5.xlarge", "spot#eu-west-1#m5.xlarge", "fargate#eu-west-1"}
    pricing = _pricing()
    with Stubber(pricing) as stub:
        _stub_ec2(stub, "eu-west-1", "m5.xlarge", "0.214")
        source = _CountingSource(pricing)
        first = refresh_prices(store, source, wanted, DAY)
        again = refresh_prices(store, source, wanted, DAY)  # the stub has no response left: nothing may be asked
        stub.assert_no_pending_responses()
    assert sorted(source.asked) == ["fargate#eu-west-1", "on-demand#eu-west-1#m5.xlarge", "spot#eu-west-1"]
    assert (first.asked, first.written) == (3, 2 + 3)  # shape and on-demand, a spot price per zone
    assert (again.asked, again.cached, again.written) == (0, 3, 0)
    with Stubber(pricing) as stub:
        _stub_ec2(stub, "eu-west-1", "m5.xlarge", "0.214")
        tomorrow = refresh_prices(store, source, wanted, "2026-12-05")
    assert (tomorrow.asked, tomorrow.written) == (3, 0)  # asked again the next day; nothing changed, nothing written
    book = PriceBook(store.price_entries())
    assert len(book) == 5
    spot_price = book.spot("eu-west-1b", "m5.xlarge", DAY)
    assert spot_price is not None and spot_price.source == "spot-price-history"


def test_a_later_price_never_changes_an_earlier_days_cost(tmp_path: Path) -> None:
    store = SQLitePriceStore(tmp_path / "p.db")
    store.save_price_entries([entry("shape", "*", "m5.xlarge", "2026-12-01", "s", vcpus=4, memory_mib=16384, gpus=0)])
    store.save_price_entries([entry("on-demand", "eu-west-1", "m5.xlarge", "2026-12-01", "s", usd_per_hour=0.2)])
    job = {
        "region": "eu-west-1",
        "platform": "EC2",
        "pricing": "on-demand",
        "status": "SUCCEEDED",
        "vcpus": 4,
        "memory_mib": 8192,
    }
    attempt = {
        "attempt": 1,
        "started_at": "2026-12-02T10:00:00.000Z",
        "run_seconds": 3600,
        "instance_type": "m5.xlarge",
    }
    before = job_cost(job, [attempt], PriceBook(store.price_entries()))
    store.save_price_entries([entry("on-demand", "eu-west-1", "m5.xlarge", "2026-12-03", "s", usd_per_hour=0.25)])
    after = job_cost(job, [attempt], PriceBook(store.price_entries()))
    assert before == after and after.cost_usd == pytest.approx(0.2)


def test_prices_show_lists_the_packaged_table_for_a_local_store_and_the_refresh_reads_its_jobs(
    make_app: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    app = make_app()
    ingest(app, list(simulate(SimulationSettings(accounts=1, regions=1, jobs=30, seed=4))))
    jobs = list(app.views.jobs())
    store = f"sqlite:///{tmp_path / 'store'}.db"
    assert main(["--store", store, "prices", "show", "--kind", "fargate", "--json"]) == 0
    shown = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert {row["location"] for row in shown} >= {"us-east-1", "eu-west-1"}
    assert all(row["source"] == "price-table" for row in shown)
    regions = {j["region"] for j in jobs}
    wanted = wanted_prices(jobs)
    assert wanted and all(key.split("#")[1] in regions for key in wanted)
    table = PriceBook(table_entries())
    costed = [job_cost(j, [a for a in app.views.attempts() if a["job_id"] == j["job_id"]], table) for j in jobs]
    assert sum(1 for c in costed if c.cost_usd) >= len(jobs) // 2  # the table prices the simulator's jobs


def test_costs_sums_the_jobs_per_grouping_and_lists_the_costliest_first(
    make_app: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    app = make_app()
    ingest(app, list(simulate(SimulationSettings(accounts=2, regions=1, jobs=60, seed=7))))
    store = f"sqlite:///{tmp_path / 'store'}.db"
    assert main(["--store", store, "costs", "--top", "5", "--format", "json"]) == 0
    figures = json.loads(capsys.readouterr().out)
    total = figures["total"]
    assert total["cost_usd"] > 0 and total["jobs"] > total["unpriced_jobs"] > 0
    for grouping in ("by_account", "by_queue", "by_compute_environment", "by_job_definition"):
        groups = figures[grouping].values()
        assert sum(g["cost_usd"] for g in groups) == pytest.approx(total["cost_usd"], abs=1e-5)
        assert sum(g["jobs"] for g in groups) == total["jobs"]
    costs = [j["cost_usd"] for j in figures["top_jobs"]]
    assert len(costs) == 5 and costs == sorted(costs, reverse=True)
    assert sum(figures["wasted_by_failure_kind"].values()) == pytest.approx(total["wasted_cost_usd"], abs=1e-5)
    assert main(["--store", store, "costs", "--since", "2030-01-01"]) == 0
    assert "cost of 0 jobs" in capsys.readouterr().out


def test_replay_and_any_delivery_order_give_the_same_costs(
    make_app: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import random

    events = list(simulate(SimulationSettings(accounts=1, regions=1, jobs=40, seed=11)))
    delivered = events + events[::7]  # duplicates too
    random.Random(5).shuffle(delivered)
    ingest(make_app("ordered"), events)
    ingest(make_app("shuffled"), delivered)
    figures = {}
    for name in ("ordered", "shuffled"):
        store = f"sqlite:///{tmp_path / name}.db"
        assert main(["--store", store, "costs", "--format", "json"]) == 0
        figures[name] = json.loads(capsys.readouterr().out)
    assert main(["--store", f"sqlite:///{tmp_path / 'ordered'}.db", "replay", "--quiet"]) == 0
    capsys.readouterr()
    assert main(["--store", f"sqlite:///{tmp_path / 'ordered'}.db", "costs", "--format", "json"]) == 0
    replayed = json.loads(capsys.readouterr().out)
    assert figures["ordered"]["total"]["cost_usd"] > 0
    assert figures["ordered"] == figures["shuffled"] == replayed


def test_summary_shows_the_cost_figures_of_its_range(
    make_app: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ingest(make_app(), list(simulate(SimulationSettings(accounts=1, regions=1, jobs=30, seed=4))))
    store = f"sqlite:///{tmp_path / 'store'}.db"
    assert main(["--store", store, "summary", "--format", "json"]) == 0
    figures = json.loads(capsys.readouterr().out)
    assert figures["jobs"] > 0 and figures["cost"]["total"]["cost_usd"] > 0
    assert set(figures["cost"]) >= {"by_account", "by_queue", "by_compute_environment", "by_job_definition"}
    assert main(["--store", store, "summary", "--until", "2000-01-01"]) == 0
    text = capsys.readouterr().out
    assert "cost of 0 jobs started any time .. 2000-01-01: $0.0000" in text and "wasted by failure kind: none" in text
    assert main(["--store", store, "attempts", "--format", "json"]) == 0
    attempts = json.loads(capsys.readouterr().out)
    assert attempts and all({"cost_usd", "wasted_cost_usd", "cost_basis"} <= set(a) for a in attempts)
