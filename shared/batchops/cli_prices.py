"""`batchops prices show|refresh` (the prices costing uses, fetched from AWS once a day) and `batchops costs` (what
jobs cost over a range: per account, queue, compute environment and job definition, wasted, the costliest)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

import orjson

from batchops.bootstrap import Settings


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add `prices show` and `prices refresh` to the CLI's subcommands."""
    parser = subparsers.add_parser("prices", help="the instance and Fargate prices job costs are computed with")
    commands = parser.add_subparsers(dest="prices_command", required=True, metavar="ACTION")
    show = commands.add_parser("show", help="list the prices in effect (local stores: the packaged table too)")
    show.add_argument("--kind", choices=("shape", "on-demand", "spot", "fargate", "fargate-spot"), help="only these")
    show.add_argument("--location", help="only this region (or availability zone, for spot)")
    show.add_argument("--json", action="store_true", help="JSON Lines instead of a table")
    show.set_defaults(handler=_show)
    refresh = commands.add_parser(
        "refresh", help="fetch the prices the stored jobs call for from AWS (Price List API, spot price history)"
    )
    refresh.add_argument("--day", help="the day to date the prices (default: today, UTC)")
    refresh.set_defaults(handler=_refresh)
    costs = subparsers.add_parser("costs", help="what jobs cost: per account, queue, compute environment, definition")
    range_options(costs)
    costs.add_argument("--top", type=int, default=20, help="the costliest jobs to list (default 20)")
    costs.add_argument("--format", choices=("text", "json"), default="text")
    costs.set_defaults(handler=_costs)


def range_options(parser: argparse.ArgumentParser) -> None:
    """--since / --until: the jobs that started in the range (ISO-8601 instants or dates, UTC)."""
    parser.add_argument("--since", help="only jobs that started at or after this instant (e.g. 2025-11-13)")
    parser.add_argument("--until", help="only jobs that started before this instant")


def _settings(args: argparse.Namespace) -> Settings:
    return Settings.from_environment(store=getattr(args, "store", None))


def _show(args: argparse.Namespace) -> int:
    from batchops.price_service import book_for

    book = book_for(_settings(args))
    shown = [
        e
        for e in book.entries()
        if (args.kind is None or e.kind == args.kind) and (args.location is None or e.location == args.location)
    ]
    out = sys.stdout
    if args.json:
        for price in shown:
            out.write(orjson.dumps(price.to_dict()).decode() + "\n")
        return 0
    out.write(f"{'kind':<13} {'location':<16} {'item':<14} {'as of':<10} {'source':<18} values\n")
    for price in shown:
        values = " ".join(f"{k}={v:g}" for k, v in price.values)
        out.write(
            f"{price.kind:<13} {price.location:<16} {price.item:<14} {price.as_of:<10} {price.source:<18} {values}\n"
        )
    out.write(f"{len(shown)} prices\n")
    return 0


def _refresh(args: argparse.Namespace) -> int:
    from batchops.adapters.aws_prices import aws_price_source
    from batchops.price_service import refresh_from_jobs

    report = refresh_from_jobs(_settings(args), aws_price_source(), day=args.day)
    print(
        f"asked {report.asked} prices ({report.cached} already checked today), "
        f"found {report.found}, stored {report.written} that changed"
    )
    return 0


def cost_figures(args: argparse.Namespace, views: Any, top: int = 20) -> dict[str, Any]:
    """The cost summary of the store's jobs in the arguments' range."""
    from batchops.cost_report import cost_summary
    from batchops.price_service import costed_rows

    jobs, attempts = costed_rows(_settings(args), views)
    return cost_summary(jobs, attempts, since=args.since, until=args.until, top=top)


def _costs(args: argparse.Namespace) -> int:
    from batchops.bootstrap import build_application

    app = build_application(_settings(args), metrics=False, verify_store=True)
    try:
        figures = cost_figures(args, app.views, args.top)
    finally:
        app.close()
    if args.format == "json":
        print(orjson.dumps(figures, option=orjson.OPT_INDENT_2).decode())
    else:
        print_costs(figures)
    return 0


def _money(value: float) -> str:
    return f"${value:,.4f}"


def print_costs(figures: dict[str, Any], groups_shown: int = 10) -> None:
    """The cost figures as text: the total, each grouping's costliest, wasted by kind, the costliest jobs."""
    out = sys.stdout
    total = figures["total"]
    span = figures["range"]
    out.write(
        f"cost of {total['jobs']:,} jobs started {span['since'] or 'any time'} .. {span['until'] or 'now'}: "
        f"{_money(total['cost_usd'])}, of it wasted {_money(total['wasted_cost_usd'])}"
        f" ({total['unpriced_jobs']:,} jobs without a known price, not summed)\n"
    )
    for name in ("by_account", "by_queue", "by_compute_environment", "by_job_definition"):
        out.write(f"{name.replace('_', ' ')}:\n")
        for key, group in list(figures[name].items())[:groups_shown]:
            out.write(
                f"  {key:<78} {_money(group['cost_usd']):>12}  wasted {_money(group['wasted_cost_usd']):>10}"
                f"  {group['jobs']:>6,} jobs ({group['unpriced_jobs']:,} unpriced)\n"
            )
    wasted = ", ".join(f"{kind} {_money(usd)}" for kind, usd in figures["wasted_by_failure_kind"].items()) or "none"
    out.write(f"wasted by failure kind: {wasted}\n")
    out.write(f"the {len(figures['top_jobs'])} costliest jobs:\n")
    for job in figures["top_jobs"]:
        out.write(
            f"  {_money(job['cost_usd']):>12}  {job['account_id']} {job['region']} {job['job_id']}"
            f"  {job['job_name']}  {job['queue']}  ({job['attempts']} attempts)\n"
        )
