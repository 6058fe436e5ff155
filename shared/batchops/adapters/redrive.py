"""Dead-letter redrive: put the messages of a DLQ back on the queue they came from, after a fix.

`redrive` moves them itself (receive, send, delete) so it runs anywhere, emulators included, and
returns how many it moved. `start_move_task` asks SQS to do the same server-side (StartMessageMoveTask,
standard queues only), which suits very large DLQs; it returns at once with a task handle.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

# SendMessageBatch's limits: 10 entries and 256 KiB of bodies plus attributes in one call.
_BATCH_ENTRIES = 10
_BATCH_BYTES = 256 * 1024
# Long enough for one receive-send-delete round, so a message we hold is not handed to us again
# mid-round; short enough that a crashed redrive leaves its messages in the DLQ, visible again soon.
_VISIBILITY_SECONDS = 60


class RedriveError(RuntimeError):
    """Some messages could not be moved; they are still in the DLQ. `moved` were moved before that."""

    def __init__(self, message: str, *, moved: int, failures: Sequence[str]) -> None:
        super().__init__(message)
        self.moved = moved
        self.failures = list(failures)


@dataclass
class _Round:
    """Messages received together, and what became of them."""

    messages: list[dict[str, Any]]
    sent: list[dict[str, Any]] = field(default_factory=list)
    failures: dict[str, str] = field(default_factory=dict)


def redrive(
    sqs_client: Any,
    dlq_url: str,
    source_url: str,
    *,
    limit: int | None = None,
    wait_seconds: int = 1,
    visibility_seconds: int = _VISIBILITY_SECONDS,
) -> int:
    """Move messages from `dlq_url` to `source_url` (body, message attributes, trace header, FIFO group kept).

    Each message is sent before it is deleted, so a crash between the two leaves a copy in both queues,
    never in neither; a message that shows up again in the same run is deleted without being sent twice.
    Stops when the DLQ looks empty (one long-poll receive of `wait_seconds` finds nothing) or after
    `limit` messages. Messages being moved are hidden from other readers for `visibility_seconds`.
    Returns how many were moved; raises RedriveError when some could not be.
    """
    if limit is not None and limit < 0:
        raise ValueError("limit must be 0 or more")
    fifo = source_url.endswith(".fifo")
    moved = 0
    seen: set[str] = set()
    failures: dict[str, str] = {}  # message id -> why it is still in the DLQ
    while limit is None or moved < limit:
        wanted = _BATCH_ENTRIES if limit is None else min(_BATCH_ENTRIES, limit - moved)
        messages = sqs_client.receive_message(
            QueueUrl=dlq_url,
            MaxNumberOfMessages=wanted,
            MessageAttributeNames=["All"],
            MessageSystemAttributeNames=["All"],
            VisibilityTimeout=visibility_seconds,
            WaitTimeSeconds=wait_seconds,
        ).get("Messages", [])
        if not messages:
            break
        again = [m for m in messages if m["MessageId"] in seen]
        fresh = [m for m in messages if m["MessageId"] not in seen]
        current = _Round(fresh)
        for chunk in _chunks(fresh):
            _send(sqs_client, source_url, chunk, fifo, current)
        # A message that failed on an earlier receive and got through now, or one sent earlier this run whose
        # deletion was missing (it shows up again: delete it, never send it twice).
        for message in current.sent + again:
            failures.pop(message["MessageId"], None)
        failures.update(current.failures)
        _delete(sqs_client, dlq_url, current.sent + again, failures)
        seen.update(m["MessageId"] for m in current.sent)
        moved += len(current.sent)
        if current.failures and not current.sent:
            break  # nothing gets through: stop instead of spinning on the same messages
    if failures:
        reasons = [f"{message_id}: {reason}" for message_id, reason in sorted(failures.items())]
        raise RedriveError(
            f"moved {moved} message(s); {len(reasons)} could not be moved and stay in the DLQ: {reasons[:5]}",
            moved=moved,
            failures=reasons,
        )
    return moved


def _entry(message: dict[str, Any], index: int, fifo: bool) -> dict[str, Any]:
    """The SendMessageBatch entry that recreates a received message."""
    entry: dict[str, Any] = {"Id": str(index), "MessageBody": message["Body"]}
    attributes = {
        name: {k: v for k, v in value.items() if k in ("DataType", "StringValue", "BinaryValue")}
        for name, value in message.get("MessageAttributes", {}).items()
    }
    if attributes:
        entry["MessageAttributes"] = attributes
    system = message.get("Attributes", {})
    if "AWSTraceHeader" in system:
        entry["MessageSystemAttributes"] = {
            "AWSTraceHeader": {"DataType": "String", "StringValue": system["AWSTraceHeader"]}
        }
    if fifo:
        entry["MessageGroupId"] = system.get("MessageGroupId", "redrive")
        entry["MessageDeduplicationId"] = system.get("MessageDeduplicationId", message["MessageId"])
    return entry


def _size(message: dict[str, Any]) -> int:
    size = len(message["Body"].encode())
    for name, value in message.get("MessageAttributes", {}).items():
        size += len(name.encode()) + len(value.get("DataType", "").encode())
        size += len(value.get("StringValue", "").encode()) + len(value.get("BinaryValue", b""))
    return size


def _chunks(messages: list[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    """Split into SendMessageBatch calls under the entry and payload limits (a big message goes alone)."""
    chunk: list[dict[str, Any]] = []
    total = 0
    for message in messages:
        size = _size(message)
        if chunk and (len(chunk) == _BATCH_ENTRIES or total + size > _BATCH_BYTES):
            yield chunk
            chunk, total = [], 0
        chunk.append(message)
        total += size
    if chunk:
        yield chunk


def _send(sqs_client: Any, source_url: str, chunk: list[dict[str, Any]], fifo: bool, current: _Round) -> None:
    entries = [_entry(m, i, fifo) for i, m in enumerate(chunk)]
    response = sqs_client.send_message_batch(QueueUrl=source_url, Entries=entries)
    sent = {s["Id"] for s in response.get("Successful", [])}
    current.sent += [m for i, m in enumerate(chunk) if str(i) in sent]
    for failed in response.get("Failed", []):
        current.failures[chunk[int(failed["Id"])]["MessageId"]] = f"{failed.get('Code')} {failed.get('Message', '')}"


def _delete(sqs_client: Any, dlq_url: str, messages: list[dict[str, Any]], failures: dict[str, str]) -> None:
    for start in range(0, len(messages), _BATCH_ENTRIES):
        batch = messages[start : start + _BATCH_ENTRIES]
        entries = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(batch)]
        response = sqs_client.delete_message_batch(QueueUrl=dlq_url, Entries=entries)
        for failed in response.get("Failed", []):
            # Sent but still in the DLQ: a later run would send it again, so say so.
            failures[batch[int(failed["Id"])]["MessageId"]] = "sent, but not deleted from the DLQ"


def queue_arn(sqs_client: Any, queue_url: str) -> str:
    """The ARN of a queue given its URL."""
    attributes = sqs_client.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]
    return str(attributes["QueueArn"])


def start_move_task(
    sqs_client: Any, dlq_url: str, source_url: str | None = None, *, max_per_second: int | None = None
) -> str:
    """Ask SQS to move the DLQ's messages back server-side (standard queues); returns the task handle.

    Without `source_url` SQS sends each message back to the queue it was dead-lettered from.
    Progress: `sqs_client.list_message_move_tasks(SourceArn=...)`.
    """
    request: dict[str, Any] = {"SourceArn": queue_arn(sqs_client, dlq_url)}
    if source_url is not None:
        request["DestinationArn"] = queue_arn(sqs_client, source_url)
    if max_per_second is not None:
        request["MaxNumberOfMessagesPerSecond"] = max_per_second
    return str(sqs_client.start_message_move_task(**request)["TaskHandle"])


def sqs_client() -> Any:
    """An SQS client from the standard AWS environment (profile, region, AWS_ENDPOINT_URL[_SQS])."""
    import os

    import boto3

    endpoint = os.environ.get("AWS_ENDPOINT_URL_SQS") or os.environ.get("AWS_ENDPOINT_URL") or None
    return boto3.client("sqs", endpoint_url=endpoint)
