"""StackSet operations: started (waiting while another runs), followed live to their end, their results."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError
from rich.console import Console
from rich.live import Live

from batchops.rollout.errors import RolloutError, error_code
from batchops.rollout.stack_set import StackSetSpec, list_instances
from batchops.rollout.tables import failures_table, progress_table


def retry_in_progress(call: Callable[[], dict[str, Any]], poll: float, timeout: float, console: Console) -> str:
    """Run a StackSets call, waiting while another operation (e.g. an automatic deployment) runs; its OperationId."""
    deadline = time.monotonic() + timeout
    told = False
    while True:
        try:
            return str(call()["OperationId"])
        except ClientError as error:
            if error_code(error) != "OperationInProgressException" or time.monotonic() > deadline:
                raise
            if not told:
                console.print("another StackSet operation is running (an automatic deployment?): waiting for it")
                told = True
            time.sleep(poll)


@dataclass
class OperationOutcome:
    """How a StackSet operation ended, per account and region."""

    operation_id: str
    status: str
    results: dict[tuple[str, str], tuple[str, str]]

    def count(self, *statuses: str) -> int:
        """Targets in any of these statuses."""
        return sum(1 for status, _ in self.results.values() if status in statuses)

    @property
    def failures(self) -> list[tuple[str, str, str]]:
        """(account, region, reason) of every failed target."""
        return sorted((a, r, reason) for (a, r), (s, reason) in self.results.items() if s in ("FAILED", "CANCELLED"))

    def tolerance_exceeded(self, percentage: int) -> bool:
        """True when the operation failed or stopped, or failures passed the tolerance."""
        if self.status in ("FAILED", "STOPPED"):
            return True
        total = len(self.results) or 1
        return self.count("FAILED") * 100 > percentage * total


def operation_results(cfn: Any, name: str, operation_id: str, call_as: str) -> dict[tuple[str, str], tuple[str, str]]:
    """(account, region) → (status, reason) as the operation reports them."""
    results = {}
    pages = cfn.get_paginator("list_stack_set_operation_results").paginate(
        StackSetName=name, OperationId=operation_id, CallAs=call_as
    )
    for page in pages:
        for s in page["Summaries"]:
            results[(s["Account"], s["Region"])] = (s.get("Status", ""), s.get("StatusReason", ""))
    return results


def _results_from_instances(cfn: Any, name: str, call_as: str, outcome: OperationOutcome) -> None:
    """Some services (and emulators) report no per-target results: the instances tell instead."""
    by_target = {(i.account, i.region): i for i in list_instances(cfn, name, call_as)}
    for target, (status, _) in list(outcome.results.items()):
        instance = by_target.get(target)
        if status in ("PENDING", "RUNNING") and instance is not None:
            detailed = instance.detailed_status or ("SUCCEEDED" if instance.status == "CURRENT" else "")
            outcome.results[target] = (detailed or instance.status, instance.reason)


def watch_operation(
    cfn: Any,
    name: str,
    operation_id: str,
    *,
    call_as: str,
    targets: Sequence[tuple[str, str]],
    console: Console,
    poll_seconds: float,
    timeout_seconds: float,
    account_names: Mapping[str, str] | None = None,
) -> OperationOutcome:
    """Follow an operation to its end, showing accounts done / failed / pending, and the reason of each failure."""
    deadline = time.monotonic() + timeout_seconds
    outcome = OperationOutcome(operation_id, "QUEUED", dict.fromkeys(targets, ("PENDING", "")))
    with Live(progress_table(name, outcome), console=console, auto_refresh=False, transient=False) as live:
        while True:
            operation = cfn.describe_stack_set_operation(StackSetName=name, OperationId=operation_id, CallAs=call_as)
            outcome.status = operation["StackSetOperation"]["Status"]
            outcome.results.update(operation_results(cfn, name, operation_id, call_as))
            finished = outcome.status in ("SUCCEEDED", "FAILED", "STOPPED")
            if finished and outcome.count("PENDING", "RUNNING"):
                _results_from_instances(cfn, name, call_as, outcome)
            live.update(progress_table(name, outcome), refresh=True)
            if finished:
                break
            if time.monotonic() > deadline:
                raise RolloutError(f"StackSet operation {operation_id} still {outcome.status} after {timeout_seconds}s")
            time.sleep(poll_seconds)
    if not console.is_terminal:
        console.line()  # off a terminal Live prints its last table without the line's end
    if outcome.failures:
        console.print(failures_table(outcome, account_names or {}))
    return outcome


@dataclass(frozen=True)
class Follow:
    """How operations are followed and shown."""

    console: Console
    poll_seconds: float
    timeout_seconds: float
    account_names: Mapping[str, str]


def run_operation(
    cfn: Any,
    spec: StackSetSpec,
    call: Callable[[str], dict[str, Any]],
    targets: Sequence[tuple[str, str]],
    follow: Follow,
) -> OperationOutcome:
    """Start one StackSet operation (`call(token)`, the token making retries idempotent) and follow it."""
    token = str(uuid.uuid4())
    operation_id = retry_in_progress(lambda: call(token), follow.poll_seconds, follow.timeout_seconds, follow.console)
    return watch_operation(
        cfn,
        spec.name,
        operation_id,
        call_as=spec.call_as,
        targets=targets,
        console=follow.console,
        poll_seconds=follow.poll_seconds,
        timeout_seconds=follow.timeout_seconds,
        account_names=follow.account_names,
    )
