"""Round trips of a warm aggregator container's batch of new events, with each DynamoDB request made to take one.

    python bench/aggregator_writes.py [--jobs 300] [--batches 5] [--round-trip-ms 5]

Since f7df254 an aggregator batch brings the aggregates it finds in its cache up to date with what other containers
saved (`EventStore.newer_events`: one Query per cached aggregate) and writes each aggregate's new events on their
own (a PutItem for a lone event, a transaction for several), instead of one TransactWriteItems for the whole batch
that failed whole whenever one cached aggregate was stale (docs/dynamodb-capacity.md, section 6). That costs round
trips: this bench counts them. A container records the first half of a simulated stream (its cache is warm), then
batches of 100 consecutive events of the second half (new facts of aggregates it mostly holds). moto answers at once,
so each Query, PutItem and TransactWriteItems waits `--round-trip-ms` first, in the calling thread. It runs with one
request at a time and with the default `history_readers` / `event_writers`; the elapsed time over the round trip is
the number of round trips the batch waited for one after the other. Everything stays in process (moto's mock).
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from typing import Any

from moto import mock_aws

from aggregator_reads import arguments, facts  # the bench beside this one
from batchops.adapters.dynamodb.stream_projection import stream_fed
from batchops.bootstrap import Settings, build_application
from batchops.facts import Parsed
from batchops.tuning import DEFAULT_TUNING, Tuning

BATCH = 100
TIMED = ("Query", "PutItem", "TransactWriteItems")


def timed_batches(
    prefix: str, warm: list[Parsed], batches: list[list[Parsed]], concurrency: int, round_trip: float
) -> tuple[float, Counter[str], int]:
    """Seconds, requests by operation and facts recorded for a container that recorded `warm` first."""
    settings = Settings.from_environment(store=f"dynamodb://{prefix}")
    tuning = Tuning(history_readers=concurrency, event_writers=concurrency)
    app = build_application(settings, metrics=False, project_inline=False, tuning=tuning)
    for start in range(0, len(warm), 500):
        app.record_with_retry(warm[start : start + 500], project=False)
    sent: Counter[str] = Counter()
    lock = threading.Lock()

    def round_trip_wait(model: Any, **_: Any) -> None:
        with lock:
            sent[model.name] += 1
        time.sleep(round_trip)

    client = stream_fed(app).recorder.client
    for operation in TIMED:
        client.meta.events.register(f"before-call.dynamodb.{operation}", round_trip_wait)
    started = time.perf_counter()
    new = sum(app.record_with_retry(batch, project=False).new for batch in batches)
    elapsed = time.perf_counter() - started
    app.close()
    return elapsed, sent, new


def main() -> None:
    args = arguments(__doc__)
    stream = facts(args.jobs, args.seed)
    half = len(stream) // 2
    warm, rest = stream[:half], stream[half:]
    batches = [rest[i : i + BATCH] for i in range(0, min(len(rest), BATCH * args.batches), BATCH)]
    round_trip = args.round_trip_ms / 1000
    runs = {}
    with mock_aws():  # a store of its own per run: every run records the same new facts
        floor, _, _ = timed_batches("floor", warm, batches, DEFAULT_TUNING.event_writers, 0.0)
        for label, concurrency in (("one request at a time", 1), (f"{DEFAULT_TUNING.event_writers} at a time", 10)):
            runs[label] = timed_batches(f"c{concurrency}", warm, batches, concurrency, round_trip)
    per = len(batches)
    print(f"{len(warm):,} events recorded by the container first; {per} batches of {BATCH} later events, "
          f"{args.round_trip_ms:g} ms a request")  # fmt: skip
    print(f"{'no round trip (moto and our code)':<32} {floor / per:8.3f} s a batch")
    for label, (elapsed, sent, new) in runs.items():
        counts = ", ".join(f"{sent[o] / per:.1f} {o}" for o in TIMED)
        waited = max(elapsed - floor, 0.0) / per
        print(f"{label:<32} {elapsed / per:8.3f} s a batch, {waited / round_trip:6.1f} round trips one after another "
              f"({counts} a batch; {new / per:.1f} new facts)")  # fmt: skip
    print("before f7df254 the save was one TransactWriteItems round trip and cached aggregates were not read")


if __name__ == "__main__":
    main()
