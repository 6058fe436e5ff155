"""Ingest and replay throughput on a simulated stream, beside a raw SQLite append of the same bytes.

    python bench/ingest.py [--jobs 17000[,170000]] [--orders time,chaos,shuffled] [--seed 1] [--keep DIR]
                           [--stream FILE] [--repeat N]

Real input is not always in time order (an archive replay, an S3 export read by prefix, a backfill merged from
several accounts), so every figure is measured on the same events in each order asked: sorted by event time, the
simulator's chaos stream as it is, and every line shuffled with a fixed seed; and at each size asked. The tables put
the orders side by side, with shuffled against time order, and the larger size against the smaller.

`--jobs 6000` (≈74k events) is a quick mode; `--stream` reuses a stream kept by an earlier `--keep`. `--repeat 3`
measures the raw append, ingest and replay three times, the orders taking turns, and prints each round and the
medians: this
machine's speed drifts by 20% within a day, and a ratio is only meaningful between runs made close together.

Every figure comes from this one run on this machine: the raw append and our ingest read the same file, so
their ratio is our overhead. Ingest and replay run as subprocesses (the real CLI) so their peak memory is
their own; ingest runs on half the stream too, so memory growth with stream length shows.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import random
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

TARGETS = {"ingest events/s": 20_000, "ingest % of raw append": 30.0, "replay events/s": 100_000}


def simulate(path: Path, jobs: int, seed: int) -> int:
    """Write the stream with the CLI; return the number of events."""
    subprocess.run(
        [
            sys.executable,
            "-m",
            "batchops",
            "simulate",
            "--accounts",
            "3",
            "--regions",
            "2",
            "--jobs",
            str(jobs),
            "--seed",
            str(seed),
            "--chaos",
            "--out",
            str(path),
        ],
        check=True,
    )
    with path.open("rb") as stream:
        return sum(1 for _ in stream)


ORDERS = ("time", "chaos", "shuffled")


def ordered_stream(events: Path, order: str, seed: int) -> Path:
    """The same lines in `order`: `chaos` is the stream as simulated, `time` sorted by event time (ties by the line
    itself, so the file is the same every run), `shuffled` a permutation drawn with the seed. Written by a process
    of its own: the lines held here would count in the peak memory of every CLI run forked afterwards."""
    if order == "chaos":
        return events
    path = events.with_name(f"{events.stem}-{order}.jsonl")
    writer = multiprocessing.get_context("spawn").Process(target=write_ordered, args=(events, path, order, seed))
    writer.start()
    writer.join()
    if writer.exitcode != 0:
        raise SystemExit(f"could not write the {order} stream (exit status {writer.exitcode})")
    return path


def write_ordered(events: Path, path: Path, order: str, seed: int) -> None:
    lines = events.read_bytes().splitlines(keepends=True)
    if order == "time":
        lines.sort(key=lambda line: (json.loads(line).get("time", ""), line))
    else:
        random.Random(seed).shuffle(lines)
    path.write_bytes(b"".join(lines))


def raw_append(events: Path, database: Path, batch: int = 5000) -> float:
    """Append every line's bytes to a SQLite table, `batch` rows per transaction (WAL, like the event store)."""
    db = sqlite3.connect(database, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("CREATE TABLE stored_events (id INTEGER PRIMARY KEY AUTOINCREMENT, state BLOB)")
    started = time.perf_counter()
    rows: list[tuple[bytes]] = []
    count = 0
    with events.open("rb") as stream:
        for line in stream:
            rows.append((line,))
            if len(rows) == batch:
                db.execute("BEGIN")
                db.executemany("INSERT INTO stored_events (state) VALUES (?)", rows)
                db.execute("COMMIT")
                count += len(rows)
                rows = []
    if rows:
        db.execute("BEGIN")
        db.executemany("INSERT INTO stored_events (state) VALUES (?)", rows)
        db.execute("COMMIT")
        count += len(rows)
    elapsed = time.perf_counter() - started
    db.close()
    return count / elapsed


def run_cli(args: list[str]) -> tuple[float, float, str]:
    """Run `python -m batchops ARGS`; return wall seconds, peak RSS in MiB and standard output."""
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-m", "batchops", *args], stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    output = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - started
    if status != 0:
        raise SystemExit(f"batchops {' '.join(args)} failed with status {status}")
    return elapsed, usage.ru_maxrss / 1024, output


FIGURES = (
    "raw append events/s",
    "ingest events/s",
    "ingest % of raw append",
    "replay events/s",
    "ingest peak RSS MiB (half stream)",
    "ingest peak RSS MiB (full stream)",
    "replay peak RSS MiB",
)


def measure_round(events: Path, folder: Path, total: int) -> tuple[dict[str, float], dict[str, Any], int]:
    """Raw append, then ingest and replay into a fresh store: the figures, ingest's summary and the events replayed."""
    delete_stores(folder, "raw.db", "batchops.db")
    raw_rate = raw_append(events, folder / "raw.db")
    store = f"sqlite:///{folder / 'batchops.db'}"
    ingest_seconds, ingest_rss, out = run_cli(["--store", store, "ingest", str(events), "--json", "--quiet"])
    summary = json.loads(out)
    replay_seconds, replay_rss, out = run_cli(["--store", store, "replay", "--quiet"])
    stored = int(out.split("replayed ")[1].split(" ")[0].replace(",", ""))
    ingest_rate = total / ingest_seconds
    figures = {
        "raw append events/s": raw_rate,
        "ingest events/s": ingest_rate,
        "ingest % of raw append": 100 * ingest_rate / raw_rate,
        "replay events/s": stored / replay_seconds,
        "ingest peak RSS MiB (full stream)": ingest_rss,
        "replay peak RSS MiB": replay_rss,
    }
    return figures, summary, stored


def delete_stores(folder: Path, *names: str) -> None:
    """Delete these SQLite stores of the folder with their WAL, shared-memory and views files."""
    for name in names:
        for path in (folder / name, *folder.glob(f"{name}-*"), *folder.glob(f"{name}.views-*")):
            path.unlink(missing_ok=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--jobs", default="17000", help="submitted jobs to simulate, comma-separated sizes (17,000 ≈ 210k events)"
    )
    parser.add_argument("--orders", default=",".join(ORDERS), help=f"comma-separated, of {', '.join(ORDERS)}")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", help="keep the stream and stores in this directory")
    parser.add_argument("--stream", help="use this already simulated stream (JSON Lines) instead of simulating")
    parser.add_argument("--repeat", type=int, default=1, help="rounds of raw append, ingest and replay (medians)")
    args = parser.parse_args()
    orders = [o for o in args.orders.split(",") if o]
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    if not orders or set(orders) - set(ORDERS):
        parser.error(f"--orders takes {', '.join(ORDERS)}")
    sizes = [int(j) for j in args.jobs.split(",")]
    if args.stream and len(sizes) > 1:
        parser.error("--stream is one size: give one --jobs or none")
    folder = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="batchops-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    by_size = {}
    for jobs in sizes:
        by_size[jobs] = measure_size(args, folder, jobs, orders)
    if len(sizes) > 1:
        small, large = by_size[sizes[0]], by_size[sizes[-1]]
        print(f"\nthe largest size against the smallest ({sizes[-1]:,} jobs / {sizes[0]:,} jobs):")
        for order in orders:
            ratio = large[order]["ingest events/s"] / small[order]["ingest events/s"]
            print(f"  {order:<10} ingest rate {100 * ratio:5.1f}%  (goal >= 85%)")
    if not args.keep:
        for path in folder.iterdir():
            path.unlink()
        folder.rmdir()


def measure_size(args: argparse.Namespace, folder: Path, jobs: int, orders: list[str]) -> dict[str, dict[str, float]]:
    """Every order of one stream: the figures per order (medians of the rounds; peak memory the largest)."""
    events = folder / f"events-{jobs}.jsonl"
    if args.stream:
        events = Path(args.stream)
        with events.open("rb") as lines:
            total = sum(1 for _ in lines)
    else:
        total = simulate(events, jobs, args.seed)
    print(
        f"\nstream: {total:,} events, {events.stat().st_size / 1e6:.0f} MB "
        + (f"({events})" if args.stream else f"({jobs:,} jobs, 3 accounts x 2 regions, chaos)")
    )
    streams = {order: ordered_stream(events, order, args.seed) for order in orders}
    halves = {order: measure_half(streams[order], folder, total) for order in orders}
    rounds: dict[str, list[tuple[dict[str, float], dict[str, Any], int]]] = {order: [] for order in orders}
    for _ in range(args.repeat):  # the orders take turns, so that a drift of the machine's speed hits them alike
        for order in orders:
            rounds[order].append(measure_round(streams[order], folder, total))
    results = {order: report_order(order, rounds[order], halves[order]) for order in orders}
    for ordered in streams.values():
        if ordered != events:
            ordered.unlink()
    print(f"{'':<36}" + "".join(f"{order:>14}" for order in orders))
    for name in FIGURES:
        goal = TARGETS.get(name)
        row = "".join(f"{results[order][name]:>14,.1f}" for order in orders)
        print(f"{name:<36}{row}" + ("" if goal is None else f"   target {goal:,}"))
    if "time" in results and "shuffled" in results:
        time_order, shuffled = results["time"], results["shuffled"]
        rate = shuffled["ingest events/s"] / time_order["ingest events/s"]
        memory = shuffled["ingest peak RSS MiB (full stream)"] / time_order["ingest peak RSS MiB (full stream)"]
        print(f"shuffled / time order: ingest rate {100 * rate:.1f}% (goal >= 80%),", end=" ")
        print(f"peak memory {memory:.2f}x (goal <= 1.2x)")
        if args.repeat > 1:
            pairs = zip(rounds["time"], rounds["shuffled"], strict=True)
            turns = [s[0]["ingest events/s"] / t[0]["ingest events/s"] for t, s in pairs]
            print("  per round (shuffled after time order): " + ", ".join(f"{100 * r:.1f}%" for r in turns))
    return results


def measure_half(events: Path, folder: Path, total: int) -> tuple[float, float]:
    """Ingest the first half of the stream: its seconds and peak memory."""
    delete_stores(folder, "half.db")
    half = folder / "half.jsonl"
    with events.open("rb") as source, half.open("wb") as target:
        for i, line in enumerate(source):
            if i >= total // 2:
                break
            target.write(line)
    seconds, rss, _ = run_cli(["--store", f"sqlite:///{folder / 'half.db'}", "ingest", str(half), "--json", "--quiet"])
    delete_stores(folder, "half.db")
    half.unlink()
    return seconds, rss


def report_order(
    order: str, rounds: list[tuple[dict[str, float], dict[str, Any], int]], half: tuple[float, float]
) -> dict[str, float]:
    """Print what one order's rounds did; its figures (medians of the rounds; peak memory the largest)."""
    summary, stored = rounds[0][1], rounds[0][2]
    print(
        f"{order}: {summary['new']:,} new, {summary['duplicates']:,} duplicates, {summary['rejected']:,} rejected;"
        f" {summary.get('time_ordered', 0):,} sorted by event time first;"
        f" {stored:,} stored events replayed; half stream ingested in {half[0]:.1f} s"
    )
    if len(rounds) > 1:
        for number, (figures, _, _) in enumerate(rounds, start=1):
            print(f"  round {number}: " + ", ".join(f"{name} {value:,.1f}" for name, value in figures.items()))
    return {
        name: half[1]
        if name == "ingest peak RSS MiB (half stream)"
        else max(r[0][name] for r in rounds)
        if "RSS" in name
        else statistics.median(r[0][name] for r in rounds)
        for name in FIGURES
    }


if __name__ == "__main__":
    main()
