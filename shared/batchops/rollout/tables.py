"""What the rollout prints: who runs it, change sets, StackSet progress and failures, coverage, the summary.

Tables fit 80 columns: long values fold, never cut to "…".
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from batchops.rollout.coverage import AUTO_DEPLOYMENT_PENDING, DEPLOYED, FAILED, MISSING, CoverageRow
from batchops.rollout.preflight import PreflightReport

if TYPE_CHECKING:  # the operations module prints with these tables
    from batchops.rollout.stack_set_operations import OperationOutcome


def print_preflight(console: Console, report: PreflightReport) -> None:
    """Who runs the rollout, on what."""
    caller = report.caller
    role = "management account" if caller.is_management else "delegated administrator"
    console.print(
        f"caller {caller.arn} ({role}, --call-as {caller.call_as}) in Organization {caller.organization_id}; "
        f"central account {report.central_account_id}"
    )
    for unit in report.org_units:
        console.print(f"  OU {unit.id} {unit.name}: {len(unit.accounts)} accounts")
    console.print(f"  regions: {', '.join(report.regions)}")
    for note in report.notes:
        console.print(f"[yellow]note[/] {note}")


def show_changes(console: Console, title: str, rows: Sequence[Mapping[str, str]]) -> None:
    """A change set as a table."""
    # A replacement column only when some change replaces; long values fold, never cut to "…" (80 columns).
    keys = ["action", "logical_id", "type"] + (["replacement"] if any(r["replacement"] for r in rows) else [])
    table = Table(title=title, show_lines=False)
    for key in keys:
        table.add_column(key.replace("_", " "), overflow="fold")
    for row in rows:
        table.add_row(*(row[key] for key in keys))
    console.print(table)


def progress_table(name: str, outcome: OperationOutcome) -> Group:
    """Targets of a running operation: done, failed, running, pending."""
    # The heading on a line of its own: as a title it would wrap to the narrow table's width.
    heading = Text(f"StackSet {name} operation {outcome.operation_id}: {outcome.status}")
    table = Table()
    for column in ("done", "failed", "running", "pending"):
        table.add_column(column, justify="right")
    table.add_row(
        str(outcome.count("SUCCEEDED")),
        str(outcome.count("FAILED", "CANCELLED")),
        str(outcome.count("RUNNING")),
        str(outcome.count("PENDING")),
    )
    return Group(heading, table)


def failures_table(outcome: OperationOutcome, names: Mapping[str, str]) -> Table:
    """The failed targets of an operation, with each reason."""
    table = Table(title="failed")
    for column in ("account", "name", "region", "reason"):
        table.add_column(column)
    for account, region, reason in outcome.failures:
        table.add_row(account, names.get(account, ""), region, reason)
    return table


def coverage_table(rows: Sequence[CoverageRow], extra: tuple[str, Callable[[CoverageRow], str]] | None = None) -> Table:
    """The status table, to fit 80 columns: a column all rows agree on goes to the title, a detail that only repeats
    the state is left out, and long values fold (never cut to "…"). `extra` is one more column, before the detail."""
    org_units = {row.org_unit for row in rows}
    drifts = {row.drift for row in rows}
    said: list[str] = []
    columns: list[tuple[str, Callable[[CoverageRow], str]]] = [
        ("account", lambda row: row.account_id),
        ("name", lambda row: row.account_name),
    ]
    if len(org_units) > 1:
        columns.append(("OU", lambda row: row.org_unit))
    elif org_units and "" not in org_units:
        said.append(f"OU {next(iter(org_units))}")
    columns += [("region", lambda row: row.region), ("state", _coloured_state)]
    if len(drifts) > 1:
        columns.append(("drift", lambda row: row.drift))
    elif drifts and "" not in drifts:
        said.append(f"drift {next(iter(drifts))}")
    if extra is not None:
        columns.append(extra)
    if any(_detail(row) for row in rows):
        columns.append(("detail", _detail))
    title = "member accounts x regions" + (f" ({', '.join(said)})" if said else "")
    table = Table(title=title, min_width=len(title))  # as wide as its title, which would wrap otherwise
    for name, _ in columns:
        if name == "account":  # an account id cut in two is no use: the other columns fold first
            table.add_column(name, no_wrap=True, min_width=12)
        else:
            table.add_column(name, overflow="fold")
    for row in rows:
        table.add_row(*(cell(row) for _, cell in columns))
    return table


_STATE_COLOURS = {DEPLOYED: "green", FAILED: "red", MISSING: "red", AUTO_DEPLOYMENT_PENDING: "yellow"}


def _coloured_state(row: CoverageRow) -> str:
    colour = _STATE_COLOURS.get(row.state, "")
    return f"[{colour}]{row.state}[/]" if colour else row.state


def _detail(row: CoverageRow) -> str:
    # A deployed instance's detail is its SUCCEEDED status: the state column says it already.
    return "" if row.state == DEPLOYED and row.detail in ("SUCCEEDED", "CURRENT") else row.detail


def print_changes(console: Console, changes: Sequence[str], *, dry_run: bool) -> None:
    """The deploy's last word: every change made (or, in a dry run, that would be), or that there was none."""
    if changes:
        console.print("the deploy would:" if dry_run else "changed:")
        for change in changes:
            console.print(f"  - {change}")
    else:
        console.print("[green]no changes[/]: everything is already as asked")
