"""The `batchops` command line: thin wrappers over the application and the view store."""

from __future__ import annotations

import argparse
import csv
import io
import itertools
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import orjson

from batchops.bootstrap import (
    DEFAULT_STORE,
    STORE_VARIABLE,
    Settings,
    SettingsError,
    StoreUnavailable,
    StoreURLError,
    build_application,
)
from batchops.projection import ATTEMPT_FIELDS, INSTANCE_FIELDS, JOB_EXTRA_FIELDS, JOB_FIELDS, TIMELINE_FIELDS
from batchops.views import JobFilter

STATUSES = ("SUBMITTED", "PENDING", "RUNNABLE", "SCHEDULED", "STARTING", "RUNNING", "SUCCEEDED", "FAILED")
"""Job states (SCHEDULED: a service job handed to SageMaker, not yet starting)."""


class UsageError(Exception):
    """A mistake the user can fix; printed without a traceback."""


def _store_option(parser: argparse.ArgumentParser, *, top: bool) -> None:
    parser.add_argument(
        "--store",
        default=None if top else argparse.SUPPRESS,
        help=f"event store URL (default: ${STORE_VARIABLE} or {DEFAULT_STORE}); sqlite:///PATH or dynamodb://PREFIX",
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (subcommands register here)."""
    parser = argparse.ArgumentParser(prog="batchops", description="Organization-wide operations view of AWS Batch.")
    _store_option(parser, top=True)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _ingest_parser(commands)
    _view_parsers(commands)
    _store_parsers(commands)
    _simulate_parser(commands)
    _redrive_parser(commands)
    try:
        from batchops.cli_dashboards import register
    except ImportError:  # the dashboards module is optional in a partial checkout
        pass
    else:
        register(commands)
    from batchops.cli_prices import register as register_prices

    register_prices(commands)
    return parser


def _ingest_parser(commands: Any) -> None:
    ingest = commands.add_parser("ingest", help="ingest EventBridge events (JSON Lines or JSON arrays)")
    _store_option(ingest, top=False)
    ingest.add_argument("files", nargs="+", help="event files; '-' reads standard input")
    ingest.add_argument("--emf-out", help="write the CloudWatch EMF documents of live ingestion to this file")
    ingest.add_argument("--namespace", help="metric namespace (default BatchOps or $BATCHOPS_NAMESPACE)")
    ingest.add_argument("--batch-size", type=int, default=10_000, help="events per save (default 10,000)")
    ingest.add_argument("--quiet", action="store_true", help="no progress display")
    ingest.add_argument("--json", action="store_true", help="print the summary as JSON")


def _view_parsers(commands: Any) -> None:
    """The commands that read the projections: jobs, job, instances, timeline, attempts."""
    jobs = commands.add_parser("jobs", help="list job projection rows")
    _store_option(jobs, top=False)
    jobs.add_argument("--account", action="append", default=[], help="account id (repeatable)")
    jobs.add_argument("--region", action="append", default=[], help="region (repeatable)")
    jobs.add_argument("--status", action="append", default=[], type=str.upper, help="status (repeatable)")
    jobs.add_argument("--queue", action="append", default=[], help="job queue name (repeatable)")
    jobs.add_argument("--compute-environment", action="append", default=[], help="compute environment (repeatable)")
    jobs.add_argument("--limit", type=int, help="at most this many rows")
    jobs.add_argument("--format", choices=("table", "json", "csv"), default="table")
    jobs.add_argument(
        "--waiting", action="store_true", help="jobs not yet running (SUBMITTED to STARTING), the oldest wait first"
    )
    jobs.add_argument(
        "--older-than", metavar="DURATION", help="with --waiting: waiting at least this long (30m, 2h, 1d)"
    )

    job = commands.add_parser("job", help="drill down into one job: timeline, attempts, instance, logs")
    _store_option(job, top=False)
    job.add_argument("job_id")
    job.add_argument("--account", help="account id, when the same job id exists in several accounts")
    job.add_argument("--format", choices=("text", "json"), default="text")

    for name, description, default in (
        ("instances", "list the compute-instance view", "table"),
        ("timeline", "list every job's state changes (the drilldown timeline)", "json"),
        ("attempts", "list every job's attempts with instance, exit code and reason", "json"),
    ):
        listing = commands.add_parser(name, help=description)
        _store_option(listing, top=False)
        listing.add_argument("--format", choices=("table", "json", "csv"), default=default)


def _store_parsers(commands: Any) -> None:
    """The commands about the store as a whole: replay, summary, rejected."""
    replay = commands.add_parser("replay", help="rebuild every projection from the event store")
    _store_option(replay, top=False)
    replay.add_argument("--quiet", action="store_true", help="no progress display")

    summary = commands.add_parser("summary", help="what the store holds: jobs per status, queue times, failures")
    _store_option(summary, top=False)
    summary.add_argument("--format", choices=("text", "json"), default="text")
    from batchops.cli_prices import range_options

    range_options(summary)

    rejected = commands.add_parser("rejected", help="events that could not be used, with the reason")
    _store_option(rejected, top=False)
    rejected.add_argument("--limit", type=int, default=20)


def _simulate_parser(commands: Any) -> None:
    simulate = commands.add_parser(
        "simulate",
        help="write a realistic multi-account event stream to stdout",
        description="Write a deterministic EventBridge stream (JSON Lines) of AWS Batch and its ECS, EC2 and Auto"
        " Scaling events across simulated accounts and regions: the same options give the same bytes.",
    )
    simulate.add_argument("--accounts", type=int, default=3, help="simulated member accounts (default 3)")
    simulate.add_argument(
        "--regions", type=int, default=2, help="regions per account, from us-east-1, eu-west-1, ... (default 2)"
    )
    simulate.add_argument(
        "--jobs", type=int, default=1000,
        help="jobs submitted in all, spread over the accounts and regions (default 1,000), as `deploy.py --local"
        " --jobs`; an array job is one submission, and its children are jobs of their own in the views",
    )  # fmt: skip
    simulate.add_argument("--seed", type=int, default=0, help="seed of the workload: another seed, another stream")
    simulate.add_argument(
        "--chaos", action="store_true", help="deliver like EventBridge: some duplicates, some events reordered"
    )
    simulate.add_argument("--out", help="write to this file instead of standard output")


def _redrive_parser(commands: Any) -> None:
    redrive = commands.add_parser("redrive", help="move the aggregator's dead-letter messages back to its queue")
    redrive.add_argument(
        "--dlq-url", required=True, help="the dead-letter queue URL (stack output IngestDeadLetterQueueUrl)"
    )
    redrive.add_argument("--queue-url", required=True, help="the ingest queue URL (stack output IngestQueueUrl)")
    redrive.add_argument("--limit", type=int, help="move at most this many messages")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `batchops` console script."""
    try:
        args = build_parser().parse_args(argv)  # the parser's defaults read the environment (SettingsError)
        handler = _HANDLERS.get(args.command)
        if handler is None:
            return int(args.handler(args) or 0)
        return handler(args)
    except (UsageError, StoreURLError, SettingsError) as exc:
        print(f"batchops: error: {exc}", file=sys.stderr)
        return 2
    except StoreUnavailable as exc:
        print(f"batchops: error: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        return 0
    except KeyboardInterrupt:  # every write is a transaction: nothing half-written is left behind
        print("batchops: interrupted", file=sys.stderr)
        return 130


def _settings(args: argparse.Namespace) -> Settings:
    return Settings.from_environment(store=getattr(args, "store", None), namespace=getattr(args, "namespace", None))


def _open(args: argparse.Namespace, *, metrics: bool = False) -> Any:
    return build_application(_settings(args), metrics=metrics, verify_store=True)


def cmd_ingest(args: argparse.Namespace) -> int:
    """`batchops ingest FILE...`"""
    from batchops.emf import emf_documents
    from batchops.ingest import Ingestor

    settings = _settings(args)
    for name in args.files:
        if name != "-" and not Path(name).is_file():
            raise UsageError(f"no such file: {name} (give event files, or '-' for standard input)")
    app = build_application(settings, metrics=bool(args.emf_out), verify_store=True)
    emf_file: IO[bytes] | None = open(args.emf_out, "ab") if args.emf_out else None  # noqa: SIM115

    def write_points(points: list[Any]) -> None:
        assert emf_file is not None
        for document in emf_documents(points, settings.namespace):
            emf_file.write(orjson.dumps(document) + b"\n")

    started = time.perf_counter()
    total_bytes = sum(Path(n).stat().st_size for n in args.files if n != "-")
    # Big files, and standard input (its size is unknown): an event count on a terminal.
    show_progress = not args.quiet and (total_bytes > 5_000_000 or "-" in args.files) and sys.stderr.isatty()
    try:
        with _progress_bar(show_progress, "ingest", None) as advance:
            ingestor = Ingestor(
                app, batch_size=args.batch_size, on_points=write_points if emf_file else None, on_progress=advance
            )
            stopped = _ingest_files(ingestor, args.files)
            if stopped is not None:
                return stopped
    finally:
        if emf_file is not None:
            emf_file.close()
    return _report_ingest(ingestor, time.perf_counter() - started, as_json=args.json)


def _ingest_files(ingestor: Any, names: Sequence[str]) -> int | None:
    """Ingest each file in turn; the exit status if one breaks off or Ctrl-C stops it (what came before is kept)."""
    from batchops.compressed import UnreadableInput
    from batchops.ingest import read_events

    for name in names:
        where = "standard input" if name == "-" else name
        try:
            if name == "-":
                ingestor.ingest(read_events(sys.stdin.buffer, ingestor.app.tuning))
            else:
                with open(name, "rb") as stream:
                    ingestor.ingest(read_events(stream, ingestor.app.tuning))
        except UnreadableInput as error:
            print(
                f"batchops: error: {where}: {error}."
                f" The {ingestor.summary.read:,} events read before the break are recorded"
                f" ({ingestor.summary.new:,} new); ingest a complete copy of the file again:"
                " what is recorded already counts as duplicates.",
                file=sys.stderr,
            )
            return 1
        except KeyboardInterrupt:
            print(
                f"batchops: interrupted in {where}."
                f" {ingestor.summary.read:,} events are recorded ({ingestor.summary.new:,} new);"
                " run the same ingest again to record the rest: what is recorded counts as duplicates.",
                file=sys.stderr,
            )
            return 130
    return None


def _report_ingest(ingestor: Any, elapsed: float, *, as_json: bool) -> int:
    """The ingest's summary (a line per reason, or JSON) and its exit status."""
    summary = ingestor.summary
    # Exit status 3: everything was read, but some events were kept aside as unusable (the summary says why).
    status = 3 if summary.rejected else 0
    if summary.rejected:
        print(f"batchops: {summary.rejected:,} events kept aside as unusable (exit status 3)", file=sys.stderr)
    if as_json:
        print(orjson.dumps({**summary.as_dict(), "seconds": round(elapsed, 3)}).decode())
        return status
    rate = summary.read / elapsed if elapsed > 0 else 0.0
    print(
        f"read {summary.read:,} events: {summary.new:,} new, {summary.duplicates:,} duplicates, "
        f"{summary.rejected:,} rejected, {summary.ignored:,} ignored ({elapsed:.1f} s, {rate:,.0f} events/s)"
    )
    if summary.time_ordered:
        print(f"  the input was out of time order: {summary.time_ordered:,} events were sorted by event time first")
    for reason, count in list(summary.as_dict()["reasons"].items())[:10]:
        print(f"  {count:>8,}  {reason}")
    if summary.rejected or summary.ignored:
        print("  see them with: batchops rejected")
    return status


TABLE_ROWS = 200
"""Rows a terminal table shows unless `--limit` says otherwise: a table of thousands is slow to draw and no one reads
it (measured in the README's CLI section); json and csv stream every row."""


def _emit(
    rows: Iterable[dict[str, Any]], fields: Sequence[str], fmt: str, title: str, *, limited: bool = False
) -> None:
    """Rows as JSON, CSV or a terminal table (at most `TABLE_ROWS` of them unless the caller's `limited` already)."""
    out = sys.stdout
    if fmt == "json":
        out.write("[")
        for i, row in enumerate(rows):
            out.write(("," if i else "") + "\n" + orjson.dumps(row).decode())
        out.write("\n]\n")
    elif fmt == "csv":
        writer = csv.DictWriter(out, fieldnames=list(fields), extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        for row in rows:
            # A list (a job's dependencies) is one cell of space-separated values, not Python's repr.
            writer.writerow({k: " ".join(map(str, v)) if isinstance(v, list) else v for k, v in row.items()})
    else:
        from batchops.reports import print_table

        shown = list(rows) if limited else list(itertools.islice(rows, TABLE_ROWS + 1))
        more = len(shown) > TABLE_ROWS and not limited
        print_table(shown[:TABLE_ROWS] if more else shown, title, more=more)
        if more:
            print(
                f"more {title} match than the {TABLE_ROWS:,} shown: narrow the filters, give --limit N,"
                " or use --format csv or json for all of them",
                file=sys.stderr,
            )


def cmd_jobs(args: argparse.Namespace) -> int:
    """`batchops jobs`"""
    for status in args.status:
        if status not in STATUSES:
            raise UsageError(f"unknown status {status!r}: choose from {', '.join(STATUSES)}")
    if args.waiting or args.older_than is not None:
        return _waiting_jobs(args)
    app = _open(args)
    query = JobFilter(
        accounts=tuple(args.account),
        regions=tuple(args.region),
        statuses=tuple(args.status),
        queues=tuple(args.queue),
        compute_environments=tuple(args.compute_environment),
        limit=args.limit,
    )
    from batchops.job_cost import COST_FIELDS
    from batchops.price_service import costed_rows

    jobs, _ = costed_rows(_settings(args), app.views, query)  # costed as read: stored rows, dated prices
    fields = (*JOB_FIELDS, *JOB_EXTRA_FIELDS, *COST_FIELDS)
    _emit(iter(jobs), fields, args.format, "jobs", limited=args.limit is not None)
    return 0


def _waiting_jobs(args: argparse.Namespace) -> int:
    """`batchops jobs --waiting [--older-than DURATION]`"""
    from batchops.waiting import (
        WAITING_FIELDS,
        WAITING_STATUSES,
        DurationError,
        parse_duration,
        queue_compute_environments,
        waiting_jobs,
        with_queue_compute_environments,
    )

    try:
        older_than = parse_duration(args.older_than) if args.older_than is not None else 0.0
    except DurationError as error:
        raise UsageError(str(error)) from None
    not_waiting = [s for s in args.status if s not in WAITING_STATUSES]
    if not_waiting:
        raise UsageError(f"--waiting lists {', '.join(WAITING_STATUSES)} jobs, not {', '.join(not_waiting)}")
    app = _open(args)
    query = JobFilter(
        accounts=tuple(args.account),
        regions=tuple(args.region),
        statuses=tuple(args.status) or WAITING_STATUSES,
        queues=tuple(args.queue),
        compute_environments=tuple(args.compute_environment),
    )
    rows = waiting_jobs(app.views.jobs(query), _now_ms(), older_than)
    if args.limit is not None:
        rows = rows[: args.limit]
    if any(not row.get("compute_environment") for row in rows):
        queues = tuple(sorted({row["queue"] for row in rows if row.get("queue")}))
        ran = app.views.jobs(JobFilter(accounts=tuple(args.account), regions=tuple(args.region), queues=queues))
        rows = with_queue_compute_environments(rows, queue_compute_environments(ran))
    _emit(iter(rows), WAITING_FIELDS, args.format, "waiting jobs", limited=args.limit is not None)
    return 0


def _now_ms() -> int:
    return int(time.time() * 1000)


def cmd_job(args: argparse.Namespace) -> int:
    """`batchops job ID`"""
    app = _open(args)
    found = app.views.job(args.job_id, args.account)
    if not found:
        raise UsageError(f"no job {args.job_id!r} in {_settings(args).store} (list jobs with: batchops jobs)")
    if args.format == "json":
        print(orjson.dumps(found if len(found) > 1 else found[0], option=orjson.OPT_INDENT_2).decode())
    else:
        from batchops.reports import print_job

        for job in found:
            print_job(job)
    return 0


def cmd_instances(args: argparse.Namespace) -> int:
    """`batchops instances`"""
    app = _open(args)
    _emit(app.views.instances(), INSTANCE_FIELDS, args.format, "instances")
    return 0


def cmd_timeline(args: argparse.Namespace) -> int:
    """`batchops timeline`"""
    app = _open(args)
    _emit(app.views.timeline(), TIMELINE_FIELDS, args.format, "job state changes")
    return 0


def cmd_attempts(args: argparse.Namespace) -> int:
    """`batchops attempts`"""
    from batchops.job_cost import COST_FIELDS
    from batchops.price_service import costed_rows

    app = _open(args)
    _, attempts = costed_rows(_settings(args), app.views)
    _emit(iter(attempts), (*ATTEMPT_FIELDS, *COST_FIELDS), args.format, "job attempts")
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    """`batchops replay`"""
    app = _open(args)
    total = app.stored_events()
    started = time.perf_counter()
    with _progress_bar(not args.quiet and sys.stderr.isatty(), "replay", total) as advance:
        applied = app.replay(progress=advance)
    elapsed = time.perf_counter() - started
    rate = applied / elapsed if elapsed > 0 else 0.0
    print(
        f"replayed {applied:,} stored events into fresh views in {elapsed:.1f} s ({rate:,.0f} events/s);"
        f" readers now see generation {app.views.current_generation()}"
    )
    return 0


@contextmanager
def _progress_bar(show: bool, label: str, total: int | None) -> Iterator[Callable[[int], None]]:
    """A progress bar on standard error, advanced by the callable given (rich is loaded only when one is shown)."""
    if not show:
        yield lambda _count: None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    count = MofNCompleteColumn() if total is not None else TextColumn("{task.completed:,} events")
    with Progress(TextColumn(label), BarColumn(), count, TimeElapsedColumn()) as progress:
        task = progress.add_task(label, total=total)
        yield lambda n: progress.advance(task, n)


def cmd_summary(args: argparse.Namespace) -> int:
    """`batchops summary`"""
    settings = _settings(args)
    app = build_application(settings, metrics=False, verify_store=True)
    from batchops.cli_prices import cost_figures, print_costs
    from batchops.reports import print_summary, store_summary

    costs = cost_figures(args, app.views)
    if args.format == "json":  # the store's figures with the cost ones, as one document
        figures = {**store_summary(app.views), "store": settings.store, "cost": costs}
        print(orjson.dumps(figures, option=orjson.OPT_INDENT_2).decode())
        return 0
    print_summary(app.views, settings.store)
    print_costs(costs)
    return 0


def cmd_rejected(args: argparse.Namespace) -> int:
    """`batchops rejected`"""
    app = _open(args)
    kept = app.views.rejected(args.limit)
    if not kept:
        print("no rejected or ignored events")
    for event in kept:
        kind = "rejected" if event.rejected else "ignored"
        where = f"{event.account_id or '?'}/{event.region or '?'}"
        try:
            position = orjson.loads(event.body).get("position")
        except (orjson.JSONDecodeError, AttributeError):  # a record kept before records had a position
            position = None
        at = f" ({position})" if position and not event.reason.startswith(f"{position}:") else ""
        print(f"{event.received_at}  {kind:<8} {where:<28} {event.detail_type or '-'}: {event.reason}{at}")
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
    """`batchops simulate`"""
    from batchops.simulation import SimulationSettings, simulate

    if min(args.accounts, args.regions, args.jobs) < 1:
        raise UsageError("--accounts, --regions and --jobs must be at least 1")
    settings = SimulationSettings(
        accounts=args.accounts, regions=args.regions, jobs=args.jobs, seed=args.seed, chaos=args.chaos
    )
    target: IO[bytes] = open(args.out, "wb") if args.out else sys.stdout.buffer  # noqa: SIM115
    buffer = io.BufferedWriter(target, buffer_size=1 << 20) if not args.out else target  # type: ignore[arg-type]
    try:
        for event in simulate(settings):
            buffer.write(orjson.dumps(event) + b"\n")
        buffer.flush()
    finally:
        if args.out:
            target.close()
    return 0


def cmd_redrive(args: argparse.Namespace) -> int:
    """`batchops redrive`: after a fix, send dead-lettered events through the aggregator again."""
    from batchops.adapters.redrive import RedriveError, redrive, sqs_client

    try:
        moved = redrive(sqs_client(), args.dlq_url, args.queue_url, limit=args.limit)
    except RedriveError as error:
        raise UsageError(f"{error} (messages not moved stay in the dead-letter queue; run redrive again)") from error
    print(f"moved {moved:,} messages from {args.dlq_url} back to {args.queue_url}")
    return 0


_HANDLERS = {
    "ingest": cmd_ingest,
    "jobs": cmd_jobs,
    "job": cmd_job,
    "instances": cmd_instances,
    "timeline": cmd_timeline,
    "attempts": cmd_attempts,
    "replay": cmd_replay,
    "summary": cmd_summary,
    "rejected": cmd_rejected,
    "simulate": cmd_simulate,
    "redrive": cmd_redrive,
}

__all__ = ["build_parser", "main", "os"]
