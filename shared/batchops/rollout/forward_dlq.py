"""The member stacks' forward dead-letter queues: what their rules could not deliver to the central bus.

Each member stack gives its five forwarding rules one DLQ, `<prefix>-forward-dlq` (member-account/template.yaml).
A message there is an event that never reached the central bus, so it is not recorded: `deploy.py status` reads
every queue (sqs:GetQueueUrl, sqs:GetQueueAttributes) in the member account, through the role that
`batchops.rollout.clients.Clients` assumes, and says where events wait and how to see them. A queue it cannot read
is "not checked" with the reason.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from batchops.rollout.clients import Clients
from batchops.rollout.errors import RolloutError

# Visible (waiting) and in flight (received by someone, not yet deleted): both are undelivered events.
_COUNTS = ("ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible")
_RETENTION = "MessageRetentionPeriod"


def queue_name(prefix: str) -> str:
    """The forward DLQ of a member stack (one per account and region: queue names are regional)."""
    return f"{prefix}-forward-dlq"


@dataclass(frozen=True)
class DeadLetters:
    """One account x region's forward DLQ: its message counts, or why it could not be read."""

    account: str
    region: str
    queue_url: str = ""
    waiting: int = 0
    in_flight: int = 0
    retention_seconds: int = 0
    not_checked: str = ""

    @property
    def messages(self) -> int:
        """Every message the queue holds (waiting + in flight)."""
        return self.waiting + self.in_flight


def read_dead_letters(clients: Clients, prefix: str, targets: Iterable[tuple[str, str]]) -> list[DeadLetters]:
    """The forward DLQ of each (account, region), read in that account; an account whose role cannot be assumed
    is tried once, and its other regions say the same reason."""
    refused: dict[str, str] = {}
    found = []
    for account, region in targets:
        if account in refused:
            found.append(DeadLetters(account, region, not_checked=refused[account]))
            continue
        try:
            sqs = clients.client("sqs", region, account)
        except RolloutError as error:
            refused[account] = _assume_refused(error, clients.role_name)
            found.append(DeadLetters(account, region, not_checked=refused[account]))
            continue
        found.append(_read_queue(sqs, queue_name(prefix), account, region))
    return found


def _assume_refused(error: RolloutError, role_name: str) -> str:
    # Clients raises RolloutError "from None": the AWS refusal is still its __context__, and says why.
    refusal = error.__context__
    if not isinstance(refusal, ClientError):
        return str(error)
    return f"cannot assume {role_name} ({_error_code(refusal)}: {refusal.response['Error'].get('Message', '')})"


def _read_queue(sqs: Any, name: str, account: str, region: str) -> DeadLetters:
    try:
        url = str(sqs.get_queue_url(QueueName=name)["QueueUrl"])
        attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=[*_COUNTS, _RETENTION])["Attributes"]
    except ClientError as error:
        code = _error_code(error)
        if code in ("QueueDoesNotExist", "AWS.SimpleQueueService.NonExistentQueue"):
            return DeadLetters(account, region, not_checked=f"queue {name} not found")
        why = f"{error.operation_name} refused ({code}: {error.response['Error'].get('Message', '')})"
        return DeadLetters(account, region, not_checked=why)
    except BotoCoreError as error:
        return DeadLetters(account, region, not_checked=str(error))
    waiting, in_flight, retention = (int(attributes.get(key, 0)) for key in (*_COUNTS, _RETENTION))
    return DeadLetters(account, region, url, waiting, in_flight, retention)


def _error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


# --- what status prints --------------------------------------------------------------------------------------


def dlq_cell(found: DeadLetters | None) -> str:
    """The coverage table's DLQ column: the message count, "not checked", or nothing where no stack is read."""
    if found is None:
        return ""
    if found.not_checked:
        return "[yellow]not checked[/]"
    return f"[red]{found.messages:,}[/]" if found.messages else "0"


def by_target(found: Iterable[DeadLetters]) -> dict[tuple[str, str], DeadLetters]:
    """The readings by (account, region), as the coverage rows look them up."""
    return {(f.account, f.region): f for f in found}


def print_dead_letters(console: Console, prefix: str, found: Sequence[DeadLetters]) -> bool:
    """What the DLQ column counts and its total, the queues not checked and why, the queues holding messages and
    how to see them. True when any holds messages (status then exits 1)."""
    if not found:
        return False
    holding = [f for f in found if f.messages]
    unread = [f for f in found if f.not_checked]
    read = len(found) - len(unread)
    if holding:
        total = f"{sum(f.messages for f in holding):,} in {len(holding)} of the {read} read"
    else:
        total = f"none in the {read} read" if read else "none read"
    console.print(
        f"DLQ: messages in each stack's {queue_name(prefix)}: {total}"
        + (f"; {len(unread)} not checked:" if unread else "")
    )
    _print_unread(console, unread)
    _print_holding(console, holding)
    return bool(holding)


def _bullets(console: Console, items: Iterable[str]) -> None:
    # A grid, so a long reason folds under its own text, not under the bullet.
    grid = Table.grid(padding=(0, 1))
    grid.add_column(width=3, justify="right")
    grid.add_column(overflow="fold")
    for item in items:
        grid.add_row("-", item)
    console.print(grid)


def _print_unread(console: Console, unread: Sequence[DeadLetters]) -> None:
    if not unread:
        return
    # An account's regions refused for one reason (its role) are said once.
    regions: dict[tuple[str, str], list[str]] = {}
    for f in unread:
        regions.setdefault((f.account, f.not_checked), []).append(f.region)
    _bullets(console, (f"{account} {', '.join(r)}: {escape(why)}" for (account, why), r in regions.items()))


def _print_holding(console: Console, holding: Sequence[DeadLetters]) -> None:
    if not holding:
        return
    console.print(
        "[yellow]warning[/] events the member rules could not deliver to the central bus are waiting in "
        f"{len(holding)} dead-letter queue{'s' if len(holding) > 1 else ''}: they are not recorded."
    )
    for found in holding:
        days = f"; the queue keeps them {found.retention_seconds / 86400:g} days" if found.retention_seconds else ""
        _bullets(
            console,
            [f"{found.account} {found.region}: {found.messages:,} ({found.waiting:,} waiting, {found.in_flight:,} "
             f"being received{days}); see them with credentials of {found.account}:"],
        )  # fmt: skip
        # One line, never folded, so it copies whole.
        console.print(
            f"    aws sqs receive-message --region {found.region} --queue-url {found.queue_url} "
            "--attribute-names All --message-attribute-names All --max-number-of-messages 10",
            soft_wrap=True,
            markup=False,
        )
    console.print("Fix the cause (each message's ERROR_CODE and ERROR_MESSAGE attributes say it) before they expire.")
