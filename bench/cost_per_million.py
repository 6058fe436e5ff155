"""Cost per million events of the Lambda path, measured on the emulator (moto, in process).

    python bench/cost_per_million.py [--events 20000] [--seed 7] [--aggregators 4] [--window-seconds 1]
                                     [--round-trip-ms 0] [--baseline REV]

A multi-account stream (`batchops simulate`: 3 accounts x 2 regions, with chaos: duplicates, reordering, late
delivery) goes the central account's way: one SendMessage per event to the central queue (as EventBridge's SQS
target sends them), ReceiveMessage 10 at a time into batches of up to 100 (as Lambda's SQS poller), the aggregator
handler (`entrypoints.lambdas.handle_sqs_batch`) on `--aggregators` warm containers in turn (each with its own
aggregate cache), DeleteMessageBatch, then the events table's new stream records in batches of up to 100 to the
projector handler (`handle_stream_batch`). Every DynamoDB request of those handlers is metered by botocore hooks on
their clients (bench/capacity_meter.py: AWS's rounding rules on the items' sizes; moto's ReturnConsumedCapacity is a
constant), every SQS request by hooks on the bench's client, and each handler invocation is timed. The bill is those
counts at the list prices below, per million events forwarded, with the arithmetic printed per phase.

It runs twice on the same events. In full batches, every batch holds 100 consecutive events: per-batch costs are as
at the design load (1,000 events/s fill a batch in a fraction of a second), but a batch spans minutes of this small
simulated Organization, so a job's events coalesce into one row write far more than they would in a busy one. In
delivery windows, the events of each `--window-seconds` of event time are delivered, recorded and projected before the
next window's: a job's events coalesce only within a window, as within the Lambdas' batching windows, but the batches
are small. The design-load estimate takes the per-event lines from the windows and the per-batch lines (Lambda,
counters, stream batch markers) from the full batches.

Lambda durations are the in-process times: they include moto's own work and none of AWS's network round trips, and
vary with the machine's load; `--round-trip-ms` adds that many milliseconds per DynamoDB request (all sequential: an
upper bound, since the handlers read and write up to 10 at a time). `--baseline REV` measures the package as it was at
a git revision first, on the same events, and prints both. Everything stays in process: no traffic leaves the machine.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import math
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import boto3
import orjson
from botocore.config import Config
from moto import mock_aws

from batchops.adapters.dynamodb.stream_projection import stream_fed
from batchops.application import BatchOpsApplication
from batchops.bootstrap import Settings, build_application
from batchops.entrypoints.lambdas import handle_sqs_batch, handle_stream_batch
from batchops.local.emulator import patch_moto
from batchops.simulation import SimulationSettings, simulate

sys.path.insert(0, str(Path(__file__).resolve().parent))
from capacity_meter import CapacityMeter, table_shape

REGION = "us-east-1"
PREFIX = "cost"
BATCH = 100
CHUNK = 64 * 1024
EVENTS_PER_JOB = 13.7  # what `simulate --chaos` emits per submitted job (3 accounts x 2 regions), to size --jobs

# us-east-1 list prices (late 2025, as docs/dynamodb-capacity.md section 6 lists them).
PRICE_EVENTBRIDGE = 1.00 / 1e6  # cross-account event, per 64 KB chunk
PRICE_SQS = 0.40 / 1e6  # standard queue request, per 64 KB chunk
PRICE_LAMBDA_REQUEST = 0.20 / 1e6
PRICE_LAMBDA_GB_SECOND = 0.0000133334  # arm64, as the template's functions
PRICE_WRU = 0.625 / 1e6
PRICE_RRU = 0.125 / 1e6
PRICE_WCU_HOUR = 0.00065  # provisioned capacity: a write unit a second, for an hour
PRICE_RCU_HOUR = 0.00013  # a strongly consistent read of up to 4 KB a second, for an hour
PRICE_STORAGE_GB_MONTH = 0.25
PRICE_PITR_GB_MONTH = 0.20  # every table of the template has point-in-time recovery on
LAMBDA_MEMORY_GB = 1024 / 1024  # AggregatorMemorySize and ProjectorMemorySize defaults

WRITES = {"PutItem", "DeleteItem", "UpdateItem", "BatchWriteItem", "TransactWriteItems"}


@dataclass
class Run:
    """What one run of the path measured."""

    forwarded: int = 0
    eventbridge_chunks: int = 0
    sqs_requests: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    invocations: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    dynamodb_requests: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    batched: dict[str, int] = field(default_factory=lambda: defaultdict(int))  # messages, stream records
    received: list[int] = field(default_factory=list)  # bytes of each message received
    stage: str = "setup"
    turn: int = 0  # the aggregator container whose turn it is


def simulated_events(count: int, seed: int) -> list[dict[str, Any]]:
    """About `count` member events: a whole simulation of as many jobs, so every job's life is in it."""
    jobs = max(1, round(count / EVENTS_PER_JOB))
    return list(simulate(SimulationSettings(accounts=3, regions=2, jobs=jobs, seed=seed, chaos=True)))


def meter_categories(run: Run) -> Any:
    """The category of a DynamoDB request: the stage that made it and what it did to which table."""

    def category(operation: str, table: str, key: Mapping[str, Any] | None) -> str:
        purpose = table.split("-", 1)[-1]
        writes = operation in WRITES
        if key is not None and key.get("pk") == {"S": "projecting"}:
            return f"{run.stage}: stream batch markers"
        if key is not None and key.get("pk") == {"S": "generation"}:
            return f"{run.stage}: generation pointer reads"
        if run.stage == "aggregator":
            if purpose == "events":
                return "aggregator: event writes" if writes else "aggregator: aggregate loads"
            return "aggregator: counters, kept-aside events"
        if run.stage == "projector":
            if not writes:
                return "projector: reads"
            return {
                "jobs": "projector: view writes, job items",
                "jobs#indexes": "projector: view writes, job indexes (GSIs)",
                "instances": "projector: view writes, instance items",
            }.get(purpose, "projector: view writes, meta items (edges, environments)")
        return f"{run.stage}: {purpose}"

    return category


def metered_sqs(client: Any, run: Run) -> None:
    """Count SQS requests as billed: per 64 KB chunk of payload; a batch of sends stands for one send per event."""

    def remember(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        context["metered_params"] = dict(params)

    def after(parsed: dict[str, Any], model: Any, context: dict[str, Any], **_: Any) -> None:
        params = context.get("metered_params") or {}
        if model.name == "SendMessageBatch":
            for entry in params["Entries"]:
                run.sqs_requests["SendMessage (EventBridge's target: one per event)"] += _chunks(entry["MessageBody"])
        elif model.name == "ReceiveMessage":
            # Billed as at the design load, where the poller's receives are full: 10 messages, or a chunk.
            for message in parsed.get("Messages", []):
                run.received.append(len(message["Body"].encode()))

    client.meta.events.register("before-parameter-build.sqs", remember)
    client.meta.events.register("after-call.sqs", after)


def _chunks(body: str) -> int:
    return max(1, math.ceil(len(body.encode()) / CHUNK))


def central_application() -> BatchOpsApplication:
    """A Lambda container's application (`entrypoints.lambdas.central_application`, built afresh each time)."""
    return build_application(Settings.from_environment(store=f"dynamodb://{PREFIX}"), metrics=True,
                             project_inline=False)  # fmt: skip


def dynamodb_clients(app: BatchOpsApplication) -> Iterator[Any]:
    """Every DynamoDB client an application's handlers use: the event store's and the views'."""
    yield stream_fed(app).recorder.client
    yield stream_fed(app).views.client


def counted_requests(client: Any, run: Run) -> None:
    """Count requests per stage (for `--round-trip-ms`)."""

    def count(**_: Any) -> None:
        run.dynamodb_requests[run.stage] += 1

    client.meta.events.register("after-call.dynamodb", count)


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """The handlers print EMF documents on stdout (CloudWatch reads them on AWS): into the void here."""
    with open(os.devnull, "w") as void, contextlib.redirect_stdout(void):
        yield


def forward(sqs: Any, queue_url: str, events: list[dict[str, Any]], run: Run) -> None:
    """Each member event to the central queue, as the member rules and the central bus's rule deliver it."""
    entries: list[dict[str, str]] = []
    for event in events:
        body = orjson.dumps(event).decode()
        run.forwarded += 1
        run.eventbridge_chunks += _chunks(body)
        entries.append({"Id": str(len(entries)), "MessageBody": body})
        if len(entries) == 10:
            sqs.send_message_batch(QueueUrl=queue_url, Entries=entries)
            entries = []
    if entries:
        sqs.send_message_batch(QueueUrl=queue_url, Entries=entries)


def run_aggregators(sqs: Any, queue_url: str, apps: list[BatchOpsApplication], run: Run) -> None:
    """Batches of up to 100 messages to the aggregator containers in turn, until the queue is empty."""
    from batchops.local.pipeline import _lambda_sqs_event

    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    while True:
        messages: list[dict[str, Any]] = []
        while len(messages) < BATCH:
            got = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, AttributeNames=["All"]).get(
                "Messages", []
            )
            if not got:
                break
            messages.extend(got)
        if not messages:
            return
        run.stage = "aggregator"
        started = time.perf_counter()
        with quiet():
            response = handle_sqs_batch(apps[run.turn % len(apps)], _lambda_sqs_event(messages, queue_arn))
        run.invocations["aggregator"].append(time.perf_counter() - started)
        run.batched["aggregator"] += len(messages)
        run.stage = "sqs"
        run.turn += 1
        if response["batchItemFailures"]:
            raise SystemExit(f"the aggregator failed messages: {response['batchItemFailures'][:3]}")
        for start in range(0, len(messages), 10):
            chunk = messages[start : start + 10]
            entries = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(chunk)]
            sqs.delete_message_batch(QueueUrl=queue_url, Entries=entries)


class StreamTail:
    """The events table's stream read on from where it was last read, shard by shard."""

    def __init__(self, streams: Any, stream_arn: str) -> None:
        self.streams = streams
        self.arn = stream_arn
        self.positions: dict[str, str] = {}

    def new_records(self) -> list[dict[str, Any]]:
        records: list[dict[str, Any]] = []
        for shard in self.streams.describe_stream(StreamArn=self.arn)["StreamDescription"]["Shards"]:
            shard_id = shard["ShardId"]
            where: dict[str, Any] = {"ShardIteratorType": "TRIM_HORIZON"}
            if shard_id in self.positions:
                where = {"ShardIteratorType": "AFTER_SEQUENCE_NUMBER", "SequenceNumber": self.positions[shard_id]}
            iterator = self.streams.get_shard_iterator(StreamArn=self.arn, ShardId=shard_id, **where)["ShardIterator"]
            while iterator:
                response = self.streams.get_records(ShardIterator=iterator, Limit=1000)
                if not response["Records"]:
                    break
                records.extend(response["Records"])
                self.positions[shard_id] = response["Records"][-1]["dynamodb"]["SequenceNumber"]
                iterator = response.get("NextShardIterator")
        return records


def delivery_windows(events: list[dict[str, Any]], seconds: float) -> list[list[dict[str, Any]]]:
    """The events in delivery order, cut where the latest envelope time so far enters a new window of `seconds`
    (what the Lambdas' batching windows gather at once); 0: one window, every batch full."""
    if seconds <= 0:
        return [events]
    windows: list[list[dict[str, Any]]] = []
    latest, current = 0.0, -1
    for event in events:
        latest = max(latest, datetime.fromisoformat(event["time"].replace("Z", "+00:00")).timestamp())
        if int(latest // seconds) != current:
            current = int(latest // seconds)
            windows.append([])
        windows[-1].append(event)
    return windows


def run_projector(records: list[dict[str, Any]], app: BatchOpsApplication, run: Run) -> None:
    """The stream's records in batches of 100 to the projector handler."""
    for start in range(0, len(records), BATCH):
        run.stage = "projector"
        started = time.perf_counter()
        with quiet():
            response = handle_stream_batch(app, {"Records": records[start : start + BATCH]})
        run.invocations["projector"].append(time.perf_counter() - started)
        run.batched["projector"] += len(records[start : start + BATCH])
        run.stage = "stream"
        if response["batchItemFailures"]:
            raise SystemExit(f"the projector failed a stream batch: {response}")


def measure(events: list[dict[str, Any]], aggregators: int, window: float) -> tuple[Run, CapacityMeter, int]:
    """Run the path over the events in a fresh emulator, a delivery window at a time (`delivery_windows`): what it
    measured, and the number of job rows."""
    run = Run()
    with mock_aws():
        plain = boto3.client("dynamodb", region_name=REGION, config=Config(account_id_endpoint_mode="disabled"))
        apps = [central_application() for _ in range(aggregators)]
        projector = central_application()
        names = [t for t in plain.list_tables()["TableNames"] if t.startswith(f"{PREFIX}-")]
        shapes = {name: table_shape(plain.describe_table(TableName=name)["Table"]) for name in names}

        def fetch(table: str, key: dict[str, Any]) -> Any:
            return plain.get_item(TableName=table, Key=key, ConsistentRead=True).get("Item")

        meter = CapacityMeter(shapes, meter_categories(run), fetch=fetch)
        for app in [*apps, projector]:
            for client in dynamodb_clients(app):
                meter.attach(client)
                counted_requests(client, run)
        sqs = boto3.client("sqs", region_name=REGION)
        metered_sqs(sqs, run)
        queue_url = sqs.create_queue(QueueName=f"{PREFIX}-central")["QueueUrl"]
        streams = boto3.client(
            "dynamodbstreams", region_name=REGION, config=Config(account_id_endpoint_mode="disabled")
        )
        tail = StreamTail(streams, plain.describe_table(TableName=f"{PREFIX}-events")["Table"]["LatestStreamArn"])
        for delivered in delivery_windows(events, window):
            forward(sqs, queue_url, delivered, run)
            run_aggregators(sqs, queue_url, apps, run)
            run_projector(tail.new_records(), projector, run)
        rows = sum(1 for _ in projector.views.jobs())
        for app in [*apps, projector]:
            app.close()
    return run, meter, rows


@dataclass
class Bill:
    """Lines of $ per million events: (item, arithmetic, dollars)."""

    per_million: float
    lines: list[tuple[str, str, float]] = field(default_factory=list)
    units: dict[str, tuple[float, float]] = field(default_factory=dict)
    """Millions of DynamoDB write and read units per million events, by line (to price them another way)."""

    def add(self, item: str, arithmetic: str, dollars: float) -> None:
        self.lines.append((item, arithmetic, dollars))

    def total(self) -> float:
        return sum(d for _, _, d in self.lines)


def lambda_line(bill: Bill, run: Run, function: str, round_trip: float) -> None:
    """A function's requests and GB-seconds, per million events."""
    durations = run.invocations[function]
    if not durations:
        return
    # At the design load the batches are full (100); the seconds are those measured, small batches' overhead included.
    invocations = math.ceil(run.batched[function] / BATCH) * bill.per_million
    seconds = (sum(durations) + run.dynamodb_requests[function] * round_trip) * bill.per_million
    dollars = invocations * PRICE_LAMBDA_REQUEST + seconds * LAMBDA_MEMORY_GB * PRICE_LAMBDA_GB_SECOND
    mean = seconds / invocations
    bill.add(
        f"{function} Lambda",
        f"{invocations:,.0f} invocations x $0.20/M + {invocations:,.0f} x {mean:.3f} s x {LAMBDA_MEMORY_GB:g} GB"
        f" = {seconds * LAMBDA_MEMORY_GB:,.0f} GB-s x ${PRICE_LAMBDA_GB_SECOND}",
        dollars,
    )


def dynamodb_lines(bill: Bill, meter: CapacityMeter, stage: str) -> None:
    """One line per metered category of a stage: its WRU and RRU per event, and their price."""
    for name, usage in sorted(meter.usage.items()):
        if not name.startswith(f"{stage}:"):
            continue
        wru, rru = usage.write_units * bill.per_million / 1e6, usage.read_units * bill.per_million / 1e6
        parts = [f"{wru:.2f} M WRU x $0.625/M" if wru else "", f"{rru:.2f} M RRU x $0.125/M" if rru else ""]
        bill.add(f"DynamoDB {name}", " + ".join(p for p in parts if p), wru * 0.625 + rru * 0.125)
        bill.units[f"DynamoDB {name}"] = (wru, rru)


def on_provisioned_capacity(bill: Bill, utilisation: float) -> Bill:
    """The same bill with its DynamoDB units bought as provisioned capacity that auto scaling keeps `utilisation`
    busy on average (a steady load: bursts wait in the queue and the stream), the other lines as they are."""
    wru_price = PRICE_WCU_HOUR / 3600 * 1e6 / utilisation  # $ per million write units
    rru_price = PRICE_RCU_HOUR / 3600 * 1e6 / utilisation
    priced = Bill(bill.per_million, units=dict(bill.units))
    for item, arithmetic, dollars in bill.lines:
        if item in bill.units:
            wru, rru = bill.units[item]
            parts = [f"{wru:.2f} M WRU x ${wru_price:.3f}/M" if wru else "",
                     f"{rru:.2f} M RRU x ${rru_price:.3f}/M" if rru else ""]  # fmt: skip
            priced.add(item, " + ".join(p for p in parts if p), wru * wru_price + rru * rru_price)
        else:
            priced.add(item, arithmetic, dollars)
    return priced


def storage_line(bill: Bill, meter: CapacityMeter) -> None:
    stored = meter.stored_bytes()
    gigabytes = sum(stored.values()) * bill.per_million / 1024**3
    biggest = ", ".join(f"{t.split('-', 1)[1]} {b / 1024**2:.1f} MiB" for t, b in sorted(stored.items()) if b)
    bill.add(
        "DynamoDB storage + PITR, first month",
        f"{gigabytes:.3f} GB x ($0.25 + $0.20) (this run: {biggest})",
        gigabytes * (PRICE_STORAGE_GB_MONTH + PRICE_PITR_GB_MONTH),
    )


def bill_of(run: Run, meter: CapacityMeter, round_trip: float) -> Bill:
    """$ per million forwarded events, phase by phase in the path's order."""
    bill = Bill(1e6 / run.forwarded)
    chunks = run.eventbridge_chunks * bill.per_million
    bill.add("EventBridge cross-account delivery", f"{chunks:,.0f} 64 KB chunks x $1.00/M", chunks * PRICE_EVENTBRIDGE)
    receives = sum(max(1, math.ceil(sum(run.received[i : i + 10]) / CHUNK)) for i in range(0, len(run.received), 10))
    run.sqs_requests["ReceiveMessage (Lambda's poller, 10 at a time)"] = receives
    run.sqs_requests["DeleteMessageBatch (Lambda, 10 at a time)"] = math.ceil(len(run.received) / 10)
    for name, count in run.sqs_requests.items():
        requests = count * bill.per_million
        bill.add(f"SQS {name}", f"{requests:,.0f} requests x $0.40/M", requests * PRICE_SQS)
    lambda_line(bill, run, "aggregator", round_trip)
    dynamodb_lines(bill, meter, "aggregator")
    bill.add("DynamoDB stream of the events table", "read by the projector's Lambda trigger: free", 0.0)
    lambda_line(bill, run, "projector", round_trip)
    dynamodb_lines(bill, meter, "projector")
    storage_line(bill, meter)
    return bill


def print_bill(
    title: str, bill: Bill, run: Run | None = None, meter: CapacityMeter | None = None, rows: int = 0
) -> None:
    print(f"\n== {title} ==")
    if run is not None and meter is not None:
        events = run.forwarded
        writes = sum(u.write_units for n, u in meter.usage.items() if n.startswith("projector:"))
        reads = sum(u.read_units for n, u in meter.usage.items() if n.startswith("projector:"))
        exported = sum(meter.stream_records[t] for t in meter.stream_records if not t.endswith("-events"))
        print(f"{events:,} events forwarded, {rows:,} job rows; view writes {writes / events:.2f} WRU/event, projector"
              f" reads {reads / events:.2f} RRU/event, {exported / events:.2f} view stream records/event (the"
              " export's input)")  # fmt: skip
    for item, arithmetic, dollars in bill.lines:
        print(f"{item:<72} {dollars:8.3f}  {arithmetic}")
    storage = sum(dollars for item, _, dollars in bill.lines if "storage" in item)
    print(f"{'Total, $ per million events, with the first month of storage':<72} {bill.total():8.3f}")
    print(f"{'          without storage':<72} {bill.total() - storage:8.3f}")


PER_BATCH = ("Lambda", "counters", "stream batch markers", "generation pointer")
"""Lines whose cost is per batch, not per event: at the design load the batches are full, as in the full-batch run."""


def design_load(full: Bill, windowed: Bill) -> Bill:
    """What a busy Organization pays: per-event lines as the windowed run measured them (a job's events coalesce only
    within a batching window), per-batch lines as the full-batch run did (batches fill at 1,000 events/s)."""
    per_batch = {line[0]: line for line in full.lines if any(word in line[0] for word in PER_BATCH)}
    bill = Bill(windowed.per_million)
    for line in windowed.lines:
        bill.add(*per_batch.get(line[0], line))
        units = (full if line[0] in per_batch else windowed).units.get(line[0])
        if units is not None:
            bill.units[line[0]] = units
    return bill


def measured_bills(events: list[dict[str, Any]], args: argparse.Namespace) -> dict[str, Bill]:
    """The path run twice on the same events, in full batches and in delivery windows; the bills and the design-load
    estimate made of both."""
    bills = {}
    for mode, window in (("full batches", 0.0), (f"{args.window_seconds:g}-s delivery windows", args.window_seconds)):
        started = time.perf_counter()
        run, meter, rows = measure(events, args.aggregators, window)
        bills[mode] = bill_of(run, meter, args.round_trip_ms / 1000)
        print_bill(f"{args.label}, {mode}", bills[mode], run, meter, rows)
        print(f"({time.perf_counter() - started:.0f} s)")
    full, windowed = bills.values()
    bills["design load"] = design_load(full, windowed)
    print_bill(f"{args.label}, design load (per-event lines from the windows, per-batch lines from full batches)",
               bills["design load"])  # fmt: skip
    utilisation = args.provisioned_utilisation
    bills["design load, provisioned"] = on_provisioned_capacity(bills["design load"], utilisation)
    title = f"{args.label}, design load on provisioned capacity at {utilisation:.0%} use (no template mode yet)"
    print_bill(title, bills["design load, provisioned"])
    return bills


def baseline(revision: str, events: list[dict[str, Any]], args: argparse.Namespace) -> dict[str, list[list[Any]]]:
    """The bills of the same events with the package as it was at `revision` (`git archive` of shared/ into a
    temporary directory, put first on the path of a second run of this bench)."""
    root = Path(__file__).resolve().parent.parent
    with tempfile.TemporaryDirectory(prefix="cost-baseline-") as tmp:
        archive = subprocess.run(["git", "-C", str(root), "archive", revision, "shared"], check=True,
                                 capture_output=True).stdout  # fmt: skip
        subprocess.run(["tar", "-x", "-C", tmp], input=archive, check=True)
        (Path(tmp) / "events.json").write_bytes(orjson.dumps(events))
        command = [sys.executable, __file__, "--events-file", str(Path(tmp) / "events.json"),
                   "--aggregators", str(args.aggregators), "--round-trip-ms", str(args.round_trip_ms),
                   "--window-seconds", str(args.window_seconds),
                   "--label", f"at {revision}", "--json", str(Path(tmp) / "bill.json")]  # fmt: skip
        environment = {**os.environ, "PYTHONPATH": str(Path(tmp) / "shared")}
        subprocess.run(command, check=True, env=environment)
        bills: dict[str, list[list[Any]]] = orjson.loads((Path(tmp) / "bill.json").read_bytes())
        return bills


def print_comparison(before: dict[str, list[list[Any]]], after: dict[str, Bill], revision: str) -> None:
    for mode, bill in after.items():
        old = {item: dollars for item, _, dollars in before[mode]}
        print(f"\n== $ per million events, {mode}: at {revision} -> as built ==")
        for item, _, dollars in bill.lines:
            print(f"{item:<72} {old.get(item, 0.0):8.3f} -> {dollars:8.3f}")
        print(f"{'Total':<72} {sum(old.values()):8.3f} -> {bill.total():8.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--aggregators", type=int, default=4, help="warm aggregator containers, batches in turn")
    parser.add_argument("--round-trip-ms", type=float, default=0.0, help="added to the Lambdas per DynamoDB request")
    parser.add_argument("--window-seconds", type=float, default=1.0, help="the delivery window of the second run")
    parser.add_argument("--baseline", metavar="REV", help="also measure the package at this git revision, first")
    parser.add_argument(
        "--provisioned-utilisation", type=float, default=0.7, help="average use of provisioned capacity (last bill)"
    )
    parser.add_argument("--events-file", help=argparse.SUPPRESS)  # the baseline's run: the same events
    parser.add_argument("--label", default="as built", help=argparse.SUPPRESS)
    parser.add_argument("--json", help=argparse.SUPPRESS)  # the baseline's run: where its bills go
    args = parser.parse_args()
    if not 1_000 <= args.events <= 60_000 or not 1 <= args.aggregators <= 24 or args.window_seconds <= 0:
        parser.error(
            "--events 1,000..60,000, --aggregators 1..24 (moto keeps every item in memory), --window-seconds > 0"
        )
    if not 0 < args.provisioned_utilisation <= 1:
        parser.error("--provisioned-utilisation is a share of the capacity: above 0, at most 1 (e.g. 0.7)")
    for name, value in {"AWS_ACCESS_KEY_ID": "t", "AWS_SECRET_ACCESS_KEY": "t", "AWS_DEFAULT_REGION": REGION}.items():
        os.environ.setdefault(name, value)
    os.environ["BATCHOPS_CREATE_TABLES"] = "1"
    logging.getLogger("batchops").setLevel(logging.WARNING)  # the handlers' per-batch log lines are not the subject
    patch_moto()
    if args.events_file:
        events = orjson.loads(Path(args.events_file).read_bytes())
    else:
        events = simulated_events(args.events, args.seed)
    before = baseline(args.baseline, events, args) if args.baseline else None
    bills = measured_bills(events, args)
    if args.json:
        Path(args.json).write_bytes(orjson.dumps({mode: bill.lines for mode, bill in bills.items()}))
    if before is not None:
        print_comparison(before, bills, args.baseline)


if __name__ == "__main__":
    main()
