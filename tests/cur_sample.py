"""A small CUR 2.0 sample with split cost allocation data, made from a simulated Organization's projection.

What AWS documents for split cost allocation data (ECS on EC2, "Example of split cost allocation data"): each hour,
an instance's cost is split into a unit cost per vCPU-hour and per GB-hour with weights 9:1; each task is charged its
allocated vCPU and memory (the larger of used and reserved; here: reserved, as usage is not simulated) at those unit
costs (`split_line_item_split_cost`), and the instance's unallocated cost of the hour is spread over the hour's tasks
in proportion to their split cost (`split_line_item_unused_cost`). Fargate tasks are charged their vCPU and GB hours.
Prices are the packaged illustrative table's; the purchase option comes from the simulator's compute environment
names (the projection may not know it). This is not AWS's bill: it measures how our model differs from the split
cost model on the same work, and gives the reconciliation query real-shaped rows to run on.

Regenerate (after the simulator changes its container workload): `python tests/cur_sample.py`.
"""

from __future__ import annotations

import csv
import math
import sys
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

SAMPLE = Path(__file__).parent / "data" / "cur2_split_cost_sample.csv"
CPU_WEIGHT, MEMORY_WEIGHT = 9.0, 1.0
COLUMNS = (
    "billing_period",
    "line_item_usage_account_id",
    "line_item_line_item_type",
    "line_item_product_code",
    "line_item_usage_type",
    "line_item_resource_id",
    "line_item_usage_start_date",
    "line_item_usage_end_date",
    "line_item_usage_amount",
    "line_item_unblended_cost",
    "product_region_code",
    "split_line_item_parent_resource_id",
    "split_line_item_split_usage",
    "split_line_item_split_usage_ratio",
    "split_line_item_split_cost",
    "split_line_item_unused_cost",
    "split_line_item_public_on_demand_split_cost",
)
HOUR_MS = 3_600_000
_PREFIX = {"us-east-1": "USE1", "eu-west-1": "EU", "us-west-2": "USW2"}


def _ms(text: str) -> int:
    from batchops.times import parse_instant

    return parse_instant(text)


def _iso(ms: int) -> str:
    from batchops.times import iso_ms

    text = iso_ms(ms)
    assert text is not None
    return text[:19] + "Z"


def _hours(start: int, end: int) -> Iterator[tuple[int, float]]:
    """Each clock hour the interval touches, with the overlap in hours."""
    hour = start - start % HOUR_MS
    while hour < end:
        overlap = min(end, hour + HOUR_MS) - max(start, hour)
        if overlap > 0:
            yield hour, overlap / HOUR_MS
        hour += HOUR_MS


def _row(account: str, region: str, hour: int, **fields: Any) -> dict[str, Any]:
    row: dict[str, Any] = dict.fromkeys(COLUMNS)
    row.update(
        billing_period=_iso(hour)[:7],
        line_item_usage_account_id=account,
        line_item_line_item_type="Usage",
        line_item_usage_start_date=_iso(hour),
        line_item_usage_end_date=_iso(hour + HOUR_MS),
        product_region_code=region,
        **fields,
    )
    return row


def cur_rows(
    jobs: list[dict[str, Any]], attempts: list[dict[str, Any]], instances: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """The sample's line items: instance hours, each EC2 task's split vCPU and memory rows, Fargate task rows."""
    from batchops.prices import PriceBook, table_entries

    book = PriceBook(table_entries())
    by_job = {(j["account_id"], j["region"], j["job_id"]): j for j in jobs}
    rows: list[dict[str, Any]] = []
    tasks_on: dict[str, list[tuple[dict[str, Any], dict[str, Any]]]] = defaultdict(list)
    for attempt in attempts:
        job = by_job[(attempt["account_id"], attempt["region"], attempt["job_id"])]
        if not (attempt["task_arn"] and attempt["started_at"] and attempt["stopped_at"]):
            continue
        if job["platform"] == "FARGATE":
            rows += _fargate_rows(job, attempt, book)
        elif attempt["instance_id"]:
            tasks_on[attempt["instance_id"]].append((job, attempt))
    for instance in instances:
        rows += _instance_rows(instance, tasks_on.get(instance["instance_id"], []), book)
    rows.sort(key=lambda r: (r["line_item_usage_start_date"], r["line_item_resource_id"], r["line_item_usage_type"]))
    return rows


def _fargate_rows(job: dict[str, Any], attempt: dict[str, Any], book: Any) -> list[dict[str, Any]]:
    spot = job["pricing"] == "spot"
    rates = book.fargate(job["region"], spot, attempt["started_at"][:10])
    prefix = _PREFIX.get(job["region"], "USE1") + ("-SpotUsage" if spot else "")
    rows = []
    for hour, hours in _hours(_ms(attempt["started_at"]), _ms(attempt["stopped_at"])):
        for usage_type, amount, rate in (
            (f"{prefix}-Fargate-vCPU-Hours:perCPU", float(job["vcpus"]) * hours, rates.usd_per_vcpu_hour),
            (f"{prefix}-Fargate-GB-Hours", float(job["memory_mib"]) / 1024 * hours, rates.usd_per_gb_hour),
        ):
            cost = round(amount * rate, 10)
            rows.append(
                _row(
                    job["account_id"], job["region"], hour,
                    line_item_product_code="AmazonECS", line_item_usage_type=usage_type,
                    line_item_resource_id=attempt["task_arn"], line_item_usage_amount=round(amount, 10),
                    line_item_unblended_cost=cost, split_line_item_split_usage=round(amount, 10),
                    split_line_item_split_usage_ratio=1.0, split_line_item_split_cost=cost,
                    split_line_item_unused_cost=0.0, split_line_item_public_on_demand_split_cost=cost,
                )
            )  # fmt: skip
    return rows


def _instance_rows(
    instance: dict[str, Any], tasks: list[tuple[dict[str, Any], dict[str, Any]]], book: Any
) -> list[dict[str, Any]]:
    """The instance's hours (BoxUsage or SpotUsage) and, per hour, its tasks' split rows with the unused cost."""
    if not (instance["instance_type"] and instance["registered_at"]):
        return []
    spot = "spot" in (instance["compute_environment"] or "")
    day = instance["registered_at"][:10]
    price = (
        book.spot(instance["availability_zone"], instance["instance_type"], day)
        if spot
        else book.on_demand(instance["region"], instance["instance_type"], day)
    )
    on_demand = book.on_demand(instance["region"], instance["instance_type"], day)
    shape = book.shape(instance["instance_type"])
    last_stop = max((_ms(a["stopped_at"]) for _, a in tasks), default=_ms(instance["registered_at"]))
    end = _ms(instance["terminated_at"]) if instance["terminated_at"] else last_stop
    account, region = instance["account_id"], instance["region"]
    memory_gb = shape.memory_mib / 1024
    rows = []
    for hour, up in _hours(_ms(instance["registered_at"]), end):
        box_cost = price.usd_per_hour * up
        rows.append(
            _row(
                account, region, hour, line_item_product_code="AmazonEC2",
                line_item_usage_type=f"{'SpotUsage' if spot else 'BoxUsage'}:{instance['instance_type']}",
                line_item_resource_id=instance["instance_id"], line_item_usage_amount=round(up, 10),
                line_item_unblended_cost=round(box_cost, 10),
            )
        )  # fmt: skip
        unit = price.usd_per_hour / (CPU_WEIGHT * shape.vcpus + MEMORY_WEIGHT * memory_gb)
        public_unit = on_demand.usd_per_hour / (CPU_WEIGHT * shape.vcpus + MEMORY_WEIGHT * memory_gb)
        split = _allocations(tasks, hour, shape.vcpus, memory_gb)
        allocated = sum(CPU_WEIGHT * v + MEMORY_WEIGHT * g for _, v, g in split) * unit
        unused = max(0.0, box_cost - allocated)
        for attempt, vcpu_hours, gb_hours in split:
            for usage_type, amount, weight, available in (
                ("ECS-EC2-vCPU-Hours", vcpu_hours, CPU_WEIGHT, shape.vcpus),
                ("ECS-EC2-GB-Hours", gb_hours, MEMORY_WEIGHT, memory_gb),
            ):
                cost = amount * weight * unit
                rows.append(
                    _row(
                        account, region, hour, line_item_product_code="AmazonECS",
                        line_item_usage_type=f"{_PREFIX.get(region, 'USE1')}-{usage_type}",
                        line_item_resource_id=attempt["task_arn"], line_item_usage_amount=round(amount, 10),
                        line_item_unblended_cost=0.0, split_line_item_parent_resource_id=instance["instance_id"],
                        split_line_item_split_usage=round(amount, 10),
                        split_line_item_split_usage_ratio=round(amount / available, 10),
                        split_line_item_split_cost=round(cost, 10),
                        split_line_item_unused_cost=round(unused * cost / allocated, 10) if allocated else 0.0,
                        split_line_item_public_on_demand_split_cost=round(amount * weight * public_unit, 10),
                    )
                )  # fmt: skip
    return rows


def _allocations(
    tasks: list[tuple[dict[str, Any], dict[str, Any]]], hour: int, vcpus_available: float, gb_available: float
) -> list[tuple[dict[str, Any], float, float]]:
    """The tasks running in the hour with their reserved vCPU-hours and GB-hours."""
    found = []
    for job, attempt in tasks:
        overlap = sum(h for at, h in _hours(_ms(attempt["started_at"]), _ms(attempt["stopped_at"])) if at == hour)
        if overlap > 0:
            # No task reserves more than its instance has (the simulator may place a job on a smaller one).
            vcpus = min(float(job["vcpus"]), vcpus_available)
            gb = min(float(job["memory_mib"]) / 1024, gb_available)
            found.append((attempt, vcpus * overlap, gb * overlap))
    return found


def projection(tmp: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """Jobs, attempts and instances of the sample's simulated Organization, ingested into a store in `tmp`."""
    from batchops.bootstrap import Settings, build_application
    from batchops.ingest import Ingestor
    from batchops.simulation import SimulationSettings, simulate
    from batchops.translation import RawEvent

    app = build_application(Settings.from_environment(store=f"sqlite:///{tmp / 'cur.db'}"), metrics=False)
    try:
        events = list(simulate(SimulationSettings(accounts=2, regions=1, jobs=60, seed=7)))
        Ingestor(app, batch_size=500).ingest(RawEvent(e, i + 1) for i, e in enumerate(events))
        return list(app.views.jobs()), list(app.views.attempts()), list(app.views.instances())
    finally:
        app.close()


def write(rows: list[dict[str, Any]], path: Path = SAMPLE) -> None:
    """The rows as CSV, the CUR 2.0 column names as the header."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as out:
        writer = csv.DictWriter(out, COLUMNS, lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow(
                {
                    k: "" if v is None else (f"{v:.10g}" if isinstance(v, float) and math.isfinite(v) else v)
                    for k, v in row.items()
                }
            )


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        made = cur_rows(*projection(Path(folder)))
    write(made)
    print(f"{len(made)} line items -> {SAMPLE}", file=sys.stderr)
