"""Make a preset zlib dictionary for DynamoDB items (shared/batchops/adapters/dynamodb/primed_zlib.py).

    python bench/item_dictionaries.py jobs OUT.jsonl [--events 3000] [--seed 7] [--examples 3]
    python bench/item_dictionaries.py events OUT.jsonl [--events 3000] [--seed 7]

Runs a simulated multi-account stream through the Lambda path on the emulator (in process, as
bench/cost_per_million.py does) and writes, one JSON line each:
- jobs: the packed payloads (row and fold) of the largest job items, which have the most attempts and tasks, so the
  most of a job's shapes;
- events: the largest stored state of each event class.
Account ids and UUIDs are replaced by zeros, so a dictionary holds the format (field names, ARN and log-stream
shapes, state names), not one Organization's identifiers.

`job_item_dictionary_v1.jsonl` and `event_state_dictionary_v1.jsonl` were made with the defaults and are part of the
stored format: never rewrite them. A better dictionary is a new file and a new version byte.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path

import boto3
import orjson
from botocore.config import Config
from moto import mock_aws

sys.path.insert(0, str(Path(__file__).resolve().parent))

import cost_per_million as path
from batchops.adapters.dynamodb.event_state import EventStateCompressor
from batchops.adapters.dynamodb.items import from_item
from batchops.adapters.dynamodb.job_items import job_parts, job_payload

_ACCOUNT = re.compile(rb'(?<=[:"])\d{12}(?=[:"])')
_UUID = re.compile(rb"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def stored_items(events: int, seed: int) -> dict[str, list[dict]]:
    """The jobs and events tables' items after the path has run over a simulated stream."""
    with mock_aws():
        plain = boto3.client("dynamodb", region_name=path.REGION, config=Config(account_id_endpoint_mode="disabled"))
        aggregator, projector = path.central_application(), path.central_application()
        sqs = boto3.client("sqs", region_name=path.REGION)
        run = path.Run()
        queue_url = sqs.create_queue(QueueName=f"{path.PREFIX}-central")["QueueUrl"]
        streams = boto3.client(
            "dynamodbstreams", region_name=path.REGION, config=Config(account_id_endpoint_mode="disabled")
        )
        stream = plain.describe_table(TableName=f"{path.PREFIX}-events")["Table"]["LatestStreamArn"]
        tail = path.StreamTail(streams, stream)
        path.forward(sqs, queue_url, path.simulated_events(events, seed), run)
        path.run_aggregators(sqs, queue_url, [aggregator], run)
        path.run_projector(tail.new_records(), projector, run)
        found = {}
        for table in ("jobs", "events"):
            pages = plain.get_paginator("scan").paginate(TableName=f"{path.PREFIX}-{table}")
            found[table] = [item for page in pages for item in page["Items"]]
        for app in (aggregator, projector):
            app.close()
    return found


def job_examples(items: list[dict], count: int) -> list[bytes]:
    payloads = []
    for item in items:
        parts = job_parts(from_item(item))
        payloads.append(orjson.dumps(job_payload(parts.row, parts.fold)))
    return sorted(payloads, key=len)[-count:]


def event_examples(items: list[dict]) -> list[bytes]:
    largest: dict[str, bytes] = {}
    states = EventStateCompressor()
    for item in items:
        state = states.decompress(bytes(item["state"]["B"]))
        topic = item["topic"]["S"]
        if len(state) > len(largest.get(topic, b"")):
            largest[topic] = state
    return [largest[topic] for topic in sorted(largest)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("kind", choices=("jobs", "events"))
    parser.add_argument("out", type=Path)
    parser.add_argument("--events", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--examples", type=int, default=3, help="job items (jobs only)")
    args = parser.parse_args()
    if args.out.exists():
        parser.error(f"{args.out} exists: a dictionary in use is never rewritten (write a new version's file)")
    credentials = {"AWS_ACCESS_KEY_ID": "t", "AWS_SECRET_ACCESS_KEY": "t", "AWS_DEFAULT_REGION": path.REGION}
    for name, value in credentials.items():
        os.environ.setdefault(name, value)
    os.environ["BATCHOPS_CREATE_TABLES"] = "1"
    path.patch_moto()
    items = stored_items(args.events, args.seed)
    examples = job_examples(items["jobs"], args.examples) if args.kind == "jobs" else event_examples(items["events"])
    lines = [_UUID.sub(b"00000000-0000-0000-0000-000000000000", _ACCOUNT.sub(b"000000000000", e)) for e in examples]
    args.out.write_bytes(b"\n".join(lines) + b"\n")
    print(f"{args.out}: {len(lines)} examples, {args.out.stat().st_size:,} bytes")


if __name__ == "__main__":
    main()
