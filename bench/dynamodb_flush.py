"""Time of a DynamoDB view session that writes many job items, with each PutItem made to take a network round trip.

    python bench/dynamodb_flush.py [--jobs 2000] [--round-trip-ms 5]

An instance change (a spot interruption, an instance type learnt late) rebuilds the row of every job that ran on
the instance, and the projector Lambda has 60 s. moto answers at once, so each PutItem on the jobs table is made to
wait `--round-trip-ms` first (a botocore hook in the calling thread, as a real round trip holds its caller). The
session runs with one writer (the items one after the other) and with `JOB_WRITERS`; both times are printed, beside
the time with no round trip at all: moto's own work and ours, which runs under one interpreter lock whatever the
writers (in AWS the service does its part elsewhere).
Everything stays in process (moto's mock): no traffic leaves the machine.
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Any

import boto3
from botocore.config import Config
from moto import mock_aws

from batchops.adapters.dynamodb.views import DynamoDBViewStore, ensure_view_tables
from batchops.jobs import job_key, new_job_fold, observe_state
from batchops.projection import attempts_of, job_row
from batchops.tuning import DEFAULT_TUNING

ACCOUNT, REGION = "123456789012", "us-east-1"


def job_fold(number: int) -> dict[str, Any]:
    """A running job placed on one container instance."""
    fold = new_job_fold(ACCOUNT, REGION, f"job-{number}")
    observation = {
        "at": 1_700_000_000_000,
        "status": "RUNNING",
        "queue": "q1",
        "done": 0,
        "created": 1_699_999_990_000,
        "fp": f"fp-{number}",
        "current": {"n": 1, "ci": "arn:aws:ecs:us-east-1:123456789012:container-instance/ce/abc", "started": 1},
    }
    observe_state(fold, observation)  # type: ignore[arg-type]
    return fold


def timed_session(jobs: int, round_trip: float, writers: int, prefix: str) -> float:
    """Seconds for one session putting `jobs` job items, with `writers` at a time."""
    client = boto3.client("dynamodb", region_name=REGION, config=Config(account_id_endpoint_mode="disabled"))
    ensure_view_tables(client, prefix)

    def round_trip_wait(params: dict[str, Any], **_: Any) -> None:
        if params["TableName"].endswith("-jobs"):
            time.sleep(round_trip)

    client.meta.events.register("before-parameter-build.dynamodb.PutItem", round_trip_wait)
    store = DynamoDBViewStore(client, prefix, job_writers=writers)
    folds = [job_fold(n) for n in range(jobs)]
    started = time.perf_counter()
    with store.session() as session:
        for fold in folds:
            session.put_job(job_key(ACCOUNT, REGION, fold["job_id"]), fold, job_row(fold, session), attempts_of(fold))
    elapsed = time.perf_counter() - started
    written = sum(1 for _ in store.jobs())
    if written != jobs:
        raise SystemExit(f"{written} job items written, not {jobs}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--round-trip-ms", type=float, default=5.0)
    args = parser.parse_args()
    if not 1 <= args.jobs <= 20_000:
        parser.error("--jobs must be between 1 and 20,000 (moto keeps every item in memory)")
    for name, value in {"AWS_ACCESS_KEY_ID": "t", "AWS_SECRET_ACCESS_KEY": "t", "AWS_DEFAULT_REGION": REGION}.items():
        os.environ.setdefault(name, value)
    concurrent = DEFAULT_TUNING.job_writers
    round_trip = args.round_trip_ms / 1000
    with mock_aws():
        floor = timed_session(args.jobs, 0.0, 1, "floor")
        one = timed_session(args.jobs, round_trip, 1, "one")
        many = timed_session(args.jobs, round_trip, concurrent, "many")
    print(f"{args.jobs:,} job items, {args.round_trip_ms:g} ms per PutItem")
    print(f"{'no round trip (moto and our code)':<36} {floor:8.2f} s")
    print(f"{'one writer':<36} {one:8.2f} s  (waiting {one - floor:.2f} s)")
    print(f"{f'{concurrent} writers':<36} {many:8.2f} s  (waiting {max(many - floor, 0):.2f} s)")


if __name__ == "__main__":
    main()
