"""Prices from AWS: on-demand EC2 and Fargate from the Price List Query API, spot from DescribeSpotPriceHistory.

No describe call on anyone's resources: the Price List Query API (`pricing:GetProducts`, served from us-east-1 for
every region) answers by instance type and region code, and the spot price history by instance type per region,
one price per availability zone. Clients come in as arguments (the CLI and the scheduled function make them).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from batchops.prices import PriceEntry, entry

PRICING_REGION = "us-east-1"
"""The Price List Query API's endpoint region that serves every region's prices."""
PRICE_LIST_SOURCE = "price-list-api"
SPOT_SOURCE = "spot-price-history"
LINUX_SPOT_PRODUCT = "Linux/UNIX"
_MEMORY = re.compile(r"([\d.,]+)\s*GiB", re.IGNORECASE)
_FARGATE_USAGE = re.compile(r"(?:^|-)(SpotUsage-)?Fargate-(vCPU-Hours:perCPU|GB-Hours)$")
"""x86 Linux Fargate usage types (`USE1-Fargate-vCPU-Hours:perCPU`, `...-SpotUsage-Fargate-GB-Hours`); the ARM,
Windows and ephemeral-storage ones carry another word before the unit and do not match."""


def _ec2_filters(region: str, instance_type: str) -> list[dict[str, str]]:
    """Shared-tenancy Linux without pre-installed software, capacity actually used: the price a Batch instance pays."""
    wanted = {
        "instanceType": instance_type,
        "regionCode": region,
        "operatingSystem": "Linux",
        "tenancy": "Shared",
        "preInstalledSw": "NA",
        "capacitystatus": "Used",
    }
    return [{"Type": "TERM_MATCH", "Field": field, "Value": value} for field, value in wanted.items()]


def _products(pricing: Any, service: str, filters: list[dict[str, str]]) -> Iterable[dict[str, Any]]:
    for page in pricing.get_paginator("get_products").paginate(
        ServiceCode=service, Filters=filters, FormatVersion="aws_v1"
    ):
        for text in page.get("PriceList", []):
            yield json.loads(text) if isinstance(text, str) else text


def _hourly_usd(product: dict[str, Any]) -> float | None:
    """The product's on-demand price per hour (its non-zero `Hrs` dimension), None if it has none."""
    for term in product.get("terms", {}).get("OnDemand", {}).values():
        for dimension in term.get("priceDimensions", {}).values():
            usd = float(dimension.get("pricePerUnit", {}).get("USD", "0") or 0)
            if usd > 0 and str(dimension.get("unit", "")).lower() in ("hrs", "hours", "hour"):
                return usd
    return None


def _gpus(attributes: dict[str, Any]) -> int:
    try:
        return int(str(attributes.get("gpu", "0")).strip() or 0)
    except ValueError:
        return 0


def on_demand_entries(pricing: Any, region: str, instance_type: str, day: str) -> list[PriceEntry]:
    """The type's size and on-demand Linux price in the region (none when the price list has no such product)."""
    for product in _products(pricing, "AmazonEC2", _ec2_filters(region, instance_type)):
        attributes = product.get("product", {}).get("attributes", {})
        usd = _hourly_usd(product)
        memory = _MEMORY.search(str(attributes.get("memory", "")))
        if usd is None or memory is None or not attributes.get("vcpu"):
            continue
        memory_mib = float(memory.group(1).replace(",", "")) * 1024
        shape = entry(
            "shape", "*", instance_type, day, PRICE_LIST_SOURCE,
            vcpus=float(attributes["vcpu"]), memory_mib=memory_mib, gpus=_gpus(attributes),
        )  # fmt: skip
        return [shape, entry("on-demand", region, instance_type, day, PRICE_LIST_SOURCE, usd_per_hour=usd)]
    return []


def fargate_entries(pricing: Any, region: str, day: str) -> list[PriceEntry]:
    """Fargate's and Fargate Spot's x86 Linux rates in the region (a pair missing a half is left out)."""
    filters = [{"Type": "TERM_MATCH", "Field": "regionCode", "Value": region}]
    rates: dict[str, dict[str, float]] = {"fargate": {}, "fargate-spot": {}}
    for product in _products(pricing, "AmazonECS", filters):
        usage = str(product.get("product", {}).get("attributes", {}).get("usagetype", ""))
        matched = _FARGATE_USAGE.search(usage)
        usd = _hourly_usd(product)
        if matched is None or usd is None:
            continue
        kind = "fargate-spot" if matched.group(1) else "fargate"
        rates[kind]["usd_per_vcpu_hour" if matched.group(2).startswith("vCPU") else "usd_per_gb_hour"] = usd
    return [
        entry(kind, region, "", day, PRICE_LIST_SOURCE, **values) for kind, values in rates.items() if len(values) == 2
    ]


def spot_entries(ec2: Any, instance_types: Iterable[str], day: str, now: datetime | None = None) -> list[PriceEntry]:
    """The current Linux spot price of each type in each availability zone of the client's region."""
    types = sorted(set(instance_types))
    if not types:
        return []
    moment = now or datetime.now(UTC)
    newest: dict[tuple[str, str], tuple[datetime, float]] = {}
    pages = ec2.get_paginator("describe_spot_price_history").paginate(
        InstanceTypes=types, ProductDescriptions=[LINUX_SPOT_PRODUCT], StartTime=moment, EndTime=moment
    )
    for page in pages:
        for record in page.get("SpotPriceHistory", []):
            key = (record["AvailabilityZone"], record["InstanceType"])
            stamp = record.get("Timestamp") or moment
            if key not in newest or stamp > newest[key][0]:
                newest[key] = (stamp, float(record["SpotPrice"]))
    return [
        entry("spot", zone, instance_type, day, SPOT_SOURCE, usd_per_hour=usd)
        for (zone, instance_type), (_, usd) in sorted(newest.items())
    ]


class AwsPriceSource:
    """`prices.PriceSource` on AWS: a pricing client in us-east-1, an EC2 client per region from `ec2_client`."""

    def __init__(self, pricing: Any, ec2_client: Callable[[str], Any]) -> None:
        self.pricing = pricing
        self.ec2_client = ec2_client

    def on_demand(self, region: str, instance_type: str, day: str) -> list[PriceEntry]:
        """The type's size and on-demand price in the region."""
        return on_demand_entries(self.pricing, region, instance_type, day)

    def spot(self, region: str, instance_types: Iterable[str], day: str) -> list[PriceEntry]:
        """The types' spot prices in every availability zone of the region."""
        return spot_entries(self.ec2_client(region), instance_types, day)

    def fargate(self, region: str, day: str) -> list[PriceEntry]:
        """Fargate's rates in the region."""
        return fargate_entries(self.pricing, region, day)


def aws_price_source(session: Any = None) -> AwsPriceSource:
    """The AWS price source of a boto3 session (the standard environment's when none is given)."""
    import boto3
    from botocore.config import Config

    session = session or boto3.session.Session()
    config = Config(retries={"mode": "standard", "max_attempts": 5})
    pricing = session.client("pricing", region_name=PRICING_REGION, config=config)
    return AwsPriceSource(pricing, lambda region: session.client("ec2", region_name=region, config=config))
