"""`batchops prices show` and `batchops prices refresh`: the prices costing uses, fetched from AWS once a day."""

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
