"""Round trips of an aggregator batch that must read its aggregates back, with each Query made to take a round trip.

    python bench/aggregator_reads.py [--jobs 300] [--batches 5] [--round-trip-ms 5]

A Lambda container starts with an empty aggregate cache, and a batch of 100 SQS messages in arbitrary order touches
up to 100 aggregates that already have events. Each is read back with a Query on the events table. A stream is
simulated and recorded first; then fresh applications record batches of 100 of its events, shuffled with a fixed
seed (every fact is a duplicate by then, so the time is the reading). moto answers at once, so each Query waits
`--round-trip-ms` first, in the calling thread as a real round trip holds its caller. It runs with one reader at a
time (how every aggregate was read before `EventStore.histories`) and with `Tuning.history_readers`; the elapsed
time divided by the round trip is the number of round trips the batch waited for one after the other.
Everything stays in process (moto's mock): no traffic leaves the machine.
"""

from __future__ import annotations

import argparse
import os
import random
import threading
import time
from typing import Any

from moto import mock_aws

from batchops.adapters.dynamodb.stream_projection import stream_fed
from batchops.bootstrap import Settings, build_application
from batchops.facts import Parsed
from batchops.inbound import translate
from batchops.local.emulator import patch_moto
from batchops.simulation import SimulationSettings, simulate
from batchops.tuning import DEFAULT_TUNING, Tuning

REGION = "us-east-1"
BATCH = 100


def facts(jobs: int, seed: int) -> list[Parsed]:
    """The simulated stream's usable facts."""
    return [f for f in map(translate, simulate(SimulationSettings(accounts=3, regions=2, jobs=jobs, seed=seed)))
            if isinstance(f, Parsed)]  # fmt: skip


def timed_batches(batches: list[list[Parsed]], readers: int, round_trip: float) -> tuple[float, int]:
    """Seconds and Queries for a fresh application (empty cache) recording the batches, `readers` at a time."""
    settings = Settings.from_environment(store="dynamodb://bench")
    app = build_application(settings, metrics=False, project_inline=False, tuning=Tuning(history_readers=readers))
    queries = [0]
    lock = threading.Lock()

    def round_trip_wait(**_: Any) -> None:
        with lock:
            queries[0] += 1
        time.sleep(round_trip)

    client = stream_fed(app).recorder.client
    client.meta.events.register("before-call.dynamodb.Query", round_trip_wait)
    started = time.perf_counter()
    for batch in batches:
        outcome = app.record_with_retry(batch, project=False)
        if outcome.new:
            raise SystemExit(f"{outcome.new} facts were new: the batch should only read")
    elapsed = time.perf_counter() - started
    client.meta.events.unregister("before-call.dynamodb.Query", round_trip_wait)
    app.close()
    return elapsed, queries[0]


def arguments(description: str | None) -> argparse.Namespace:
    """The options of the aggregator benches (--jobs, --batches, --round-trip-ms, --seed), with moto's environment set
    and its tables serving one request at a time, as each is atomic on AWS (the aggregator writes in threads)."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=300)
    parser.add_argument("--batches", type=int, default=5)
    parser.add_argument("--round-trip-ms", type=float, default=5.0)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    if not 1 <= args.jobs <= 2000 or not 1 <= args.batches <= 50:
        parser.error("--jobs 1..2,000 and --batches 1..50 (moto keeps every item in memory)")
    for name, value in {"AWS_ACCESS_KEY_ID": "t", "AWS_SECRET_ACCESS_KEY": "t", "AWS_DEFAULT_REGION": REGION}.items():
        os.environ.setdefault(name, value)
    os.environ["BATCHOPS_CREATE_TABLES"] = "1"
    patch_moto()
    return args


def main() -> None:
    args = arguments(__doc__)
    stream = facts(args.jobs, args.seed)
    shuffled = random.Random(args.seed).sample(stream, len(stream))
    batches = [shuffled[i : i + BATCH] for i in range(0, BATCH * args.batches, BATCH)]
    round_trip = args.round_trip_ms / 1000
    with mock_aws():
        writer = build_application(Settings.from_environment(store="dynamodb://bench"), metrics=False,
                                   project_inline=False)  # fmt: skip
        for start in range(0, len(stream), 500):
            writer.record_with_retry(stream[start : start + 500], project=False)
        writer.close()
        floor, _ = timed_batches(batches, DEFAULT_TUNING.history_readers, 0.0)
        one, queries = timed_batches(batches, 1, round_trip)
        many, _ = timed_batches(batches, DEFAULT_TUNING.history_readers, round_trip)
    per = len(batches)
    print(f"{len(stream):,} events recorded; {per} batches of {BATCH} shuffled events, {args.round_trip_ms:g} ms/Query")
    print(f"{'Queries per batch':<40} {queries / per:8.1f}")
    print(f"{'no round trip (moto and our code)':<40} {floor / per:8.3f} s a batch")
    for label, elapsed in (("one reader at a time", one), (f"{DEFAULT_TUNING.history_readers} readers", many)):
        waited = max(elapsed - floor, 0.0) / per
        print(f"{label:<40} {elapsed / per:8.3f} s a batch, {waited / round_trip:6.1f} round trips one after another")


if __name__ == "__main__":
    main()
