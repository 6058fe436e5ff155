"""Terminal reports: tables, the job drilldown and the store summary (rich)."""

from __future__ import annotations

import dataclasses
import os
import statistics
import sys
import time
from collections import Counter, defaultdict
from typing import Any
from urllib.parse import quote

import orjson
from rich.console import Console
from rich.table import Table

from batchops.facts import SERVICE_PLATFORM
from batchops.views import JobFilter, ViewStore
from batchops.waiting import WAITING_STATUSES, waiting_jobs, waits_by_queue

_TABLE_COLUMNS = {
    "jobs": (
        "account_id",
        "region",
        "job_id",
        "job_name",
        "queue",
        "status",
        "attempts",
        "exit_code",
        "queue_seconds",
        "run_seconds",
        "instance_type",
        "pricing",
        "status_reason",
    ),
    "instances": (
        "account_id",
        "region",
        "instance_id",
        "instance_type",
        "availability_zone",
        "compute_environment",
        "pricing",
        "state",
        "registered_at",
        "terminated_at",
        "jobs_run",
    ),
}


class _Console(Console):
    def on_broken_pipe(self) -> None:
        """The reader went away (`batchops summary | head`): stop quietly, as every other command does (exit 0), not
        with rich's exit status 1. Standard output goes to /dev/null, so that nothing fails again at exit."""
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        raise BrokenPipeError


def _console() -> Console:
    # Piped output is read by people and by grep: don't fold it to 80 columns.
    return _Console(soft_wrap=False, width=None if sys.stdout.isatty() else 220)


def print_table(rows: list[dict[str, Any]], title: str, *, more: bool = False) -> None:
    """A terminal table of the most useful columns (`more`: these are the first of more rows)."""
    if not rows:
        _console().print(f"no {title}")
        return
    columns = _TABLE_COLUMNS.get(title) or tuple(rows[0])
    heading = f"the first {len(rows):,} {title} (more match)" if more else f"{len(rows):,} {title}"
    table = Table(title=heading, show_lines=False)
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*("" if row.get(c) is None else str(row.get(c)) for c in columns))
    _console().print(table)


def logs_console_url(region: str, group: str | None, stream: str | None) -> str | None:
    """The CloudWatch Logs console address of a log stream."""
    if not group or not stream:
        return None

    def enc(text: str) -> str:
        return quote(quote(text, safe=""), safe="").replace("%", "$")

    return (
        f"https://{region}.console.aws.amazon.com/cloudwatch/home?region={region}"
        f"#logsV2:log-groups/log-group/{enc(group)}/log-events/{enc(stream)}"
    )


_JOB_FACTS = (
    "account_id",
    "region",
    "job_arn",
    "queue",
    "job_definition",
    "compute_environment",
    "platform",
    "status",
    "status_reason",
    "blocked_reason",
    "failure_kind",
    "attempts",
    "exit_code",
    "submitted_at",
    "submitted_by",
    "depends_on",
    "share_identifier",
    "scheduling_priority",
    "created_at",
    "pending_seconds",
    "queue_seconds",
    "run_seconds",
    "capacity_unit",
    "capacity_usage",
    "instance_id",
    "instance_type",
    "availability_zone",
    "pricing",
    "spot_interrupted",
    "vcpus",
    "memory_mib",
    "gpus",
    "array_parent_id",
    "array_index",
    "array_size",
)
"""The job row's fields the drilldown lists, in this order (those that are set)."""


def print_job(job: dict[str, Any]) -> None:
    """The drilldown of one job: identity, state timeline, attempts with instance, exit and logs."""
    console = _console()
    console.rule(f"[bold]{job['job_name'] or ''} {job['job_id']}")
    facts = Table.grid(padding=(0, 2))
    for key in _JOB_FACTS:
        value = job.get(key)
        if value is not None and value != []:
            facts.add_row(f"[dim]{key}", " ".join(value) if isinstance(value, list) else str(value))
    console.print(facts)
    timeline = Table(title="state timeline")
    for column in ("time", "status", "attempt", "reason"):
        timeline.add_column(column)
    for change in job["timeline"]:
        timeline.add_row(change["event_time"], change["status"], str(change["attempt"]), change["status_reason"] or "")
    console.print(timeline)
    console.print(_attempts_table(job["attempt_details"]))
    url = logs_console_url(job["region"], job["log_group"], job["log_stream"])
    if url:
        console.print(f"logs of the last attempt (account {job['account_id']}): {url}")


def _attempts_table(details: list[dict[str, Any]]) -> Table:
    """One row per attempt: times, exit, reasons, where it ran and its log stream."""
    attempts = Table(title="attempts")
    for column in ("#", "started", "stopped", "exit", "reason", "instance / container instance / task", "log stream"):
        attempts.add_column(column, overflow="fold")
    for attempt in details:
        host = " ".join(v for v in (attempt.get("instance_id"), attempt.get("instance_type")) if v)
        attempts.add_row(
            str(attempt["attempt"]),
            attempt["started_at"] or "",
            attempt["stopped_at"] or "",
            "" if attempt["exit_code"] is None else str(attempt["exit_code"]),
            " / ".join(x for x in (attempt["status_reason"], attempt["container_reason"]) if x),
            "\n".join(x for x in (host, attempt["container_instance_arn"], attempt["task_arn"]) if x),
            f"{attempt['log_group']}\n{attempt['log_stream']}" if attempt["log_stream"] else "",
        )
    return attempts


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def store_summary(views: ViewStore, now_ms: int | None = None) -> dict[str, Any]:
    """The figures a user wants first, computed from the views; waits are measured to `now_ms` (default now)."""
    per_account: dict[str, Counter[str]] = defaultdict(Counter)
    queue_times: dict[str, list[float]] = defaultdict(list)
    failures: Counter[str] = Counter()
    regions: set[tuple[str, str]] = set()
    jobs = array_children = service_jobs = 0
    for job in views.jobs():
        jobs += 1
        array_children += job.get("array_parent_id") is not None
        service_jobs += job.get("platform") == SERVICE_PLATFORM
        regions.add((job["account_id"], job["region"]))
        per_account[job["account_id"]][job["status"] or "UNKNOWN"] += 1
        if job["queue_seconds"] is not None:
            queue_times[f"{job['account_id']}/{job['region']}/{job['queue']}"].append(job["queue_seconds"])
        if job["failure_kind"]:
            failures[job["failure_kind"]] += 1
    waiting = waiting_jobs(
        views.jobs(JobFilter(statuses=WAITING_STATUSES)), int(time.time() * 1000) if now_ms is None else now_ms
    )
    spot: Counter[str] = Counter()
    instances = 0
    for instance in views.instances():
        instances += 1
        if instance["spot_interrupted"]:
            spot[f"{instance['availability_zone']} {instance['instance_type']}"] += 1
    counters = views.counters()
    return {
        "accounts": sorted({a for a, _ in regions}),
        "account_regions": len(regions),
        "jobs": jobs,  # rows of the job view: each array child is one, beside its parent
        "array_children": array_children,
        "service_jobs": service_jobs,  # SageMaker training jobs Batch scheduled (rows of the job view too)
        "instances": instances,
        "jobs_by_status": {a: dict(sorted(c.items())) for a, c in sorted(per_account.items())},
        "queue_seconds": {
            q: {"jobs": len(v), "p50": _percentile(sorted(v), 50), "p95": _percentile(sorted(v), 95)}
            for q, v in sorted(queue_times.items())
        },
        "failures_by_kind": dict(failures.most_common()),
        "waiting": {
            "jobs": len(waiting),
            "oldest": waiting[0] if waiting else None,
            "by_queue": [dataclasses.asdict(q) for q in waits_by_queue(waiting)],
        },
        "spot_interruptions": dict(spot.most_common()),
        "pipeline": {
            "ingested": sum(c.ingested for c in counters),
            "duplicates_dropped": sum(c.duplicates for c in counters),
            "rejected": sum(c.rejected for c in counters),
            "ignored": sum(c.ignored for c in counters),
        },
    }


def print_summary(views: ViewStore, store: str, *, as_json: bool = False) -> None:
    """Print the store summary."""
    figures = store_summary(views)
    if as_json:
        print(orjson.dumps({**figures, "store": store}, option=orjson.OPT_INDENT_2).decode())
        return
    console = _console()
    console.rule("[bold]batchops summary")
    console.print(
        f"store {store}: {figures['jobs']:,} jobs, {figures['instances']:,} instances, "
        f"{len(figures['accounts'])} accounts, {figures['account_regions']} account-regions"
    )
    print_job_figures(console, figures)
    print_waiting(console, figures["waiting"])
    spot = ", ".join(f"{k}: {v}" for k, v in list(figures["spot_interruptions"].items())[:8]) or "none"
    console.print(f"spot interruptions (AZ, instance type): {spot}")
    p = figures["pipeline"]
    console.print(
        f"pipeline: {p['ingested']:,} events ingested, {p['duplicates_dropped']:,} duplicates dropped, "
        f"{p['rejected']:,} rejected, {p['ignored']:,} ignored"
    )


def print_job_figures(console: Console, figures: dict[str, Any], *, title: str = "jobs per status per account") -> None:
    """Jobs per status per account, queue time per queue and failures by kind, from `store_summary`."""
    statuses = sorted({s for c in figures["jobs_by_status"].values() for s in c})
    by_status = Table(title=title)
    by_status.add_column("account")
    for status in statuses:
        by_status.add_column(status, justify="right")
    for account, counts in figures["jobs_by_status"].items():
        by_status.add_row(account, *(f"{counts.get(s, 0):,}" for s in statuses))
    console.print(by_status)
    queues = Table(title="queue time (first RUNNABLE → first STARTING), seconds")
    for column in ("account/region/queue", "jobs", "p50", "p95"):
        queues.add_column(column, justify="left" if column == "account/region/queue" else "right")
    for queue, q in figures["queue_seconds"].items():
        queues.add_row(queue, f"{q['jobs']:,}", f"{q['p50']:.0f}", f"{q['p95']:.0f}")
    console.print(queues)
    failures = ", ".join(f"{k} {v:,}" for k, v in figures["failures_by_kind"].items()) or "none"
    console.print(f"failures by kind: {failures}")


def print_waiting(console: Console, waiting: dict[str, Any]) -> None:
    """The oldest waiting job and the jobs waiting per queue, from `store_summary`."""
    oldest = waiting["oldest"]
    if oldest is None:
        console.print("waiting jobs: none")
        return
    reason = f": {oldest['reason']}" if oldest["reason"] else ""
    console.print(
        f"waiting jobs: {waiting['jobs']:,}; the oldest, {oldest['job_id']} ({oldest['account_id']}/{oldest['region']}/"
        f"{oldest['queue']}), {oldest['status']} for {_duration(oldest['waiting_seconds'])}{reason}"
    )
    queues = Table(title="waiting per queue (see them with: batchops jobs --waiting)")
    for column in ("account/region/queue", "waiting", "oldest"):
        queues.add_column(column, justify="left" if column == "account/region/queue" else "right")
    for q in waiting["by_queue"][:QUEUES_SHOWN]:
        queues.add_row(
            f"{q['account_id']}/{q['region']}/{q['queue']}", f"{q['waiting']:,}", _duration(q["oldest_seconds"])
        )
    console.print(queues)


QUEUES_SHOWN = 10
"""Queues the summary's waiting table shows, longest wait first (`--format json` has them all)."""


def _duration(seconds: float) -> str:
    """`3d 4h`, `2h 5m`, `4m 10s` or `12s`: the two largest units."""
    whole = int(seconds)
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    return f"{minutes}m {secs}s" if minutes else f"{secs}s"
