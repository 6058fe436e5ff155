"""`redrive` on moto's SQS: every dead-lettered message goes back once, with its attributes, and none is lost."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from batchops.adapters.redrive import RedriveError, redrive, start_move_task

REGION = "us-east-1"


@pytest.fixture
def sqs() -> Iterator[Any]:
    with mock_aws():
        yield boto3.client("sqs", region_name=REGION)


def make_queues(sqs: Any, *, fifo: bool = False) -> tuple[str, str]:
    """A source queue whose messages dead-letter after one receive, and its DLQ; returns (source, dlq) URLs."""
    suffix = ".fifo" if fifo else ""
    extra = {"FifoQueue": "true", "ContentBasedDeduplication": "true"} if fifo else {}
    dlq = sqs.create_queue(QueueName=f"ingest-dlq{suffix}", Attributes=extra)["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    redrive_policy = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 1})
    source = sqs.create_queue(QueueName=f"ingest{suffix}", Attributes={**extra, "RedrivePolicy": redrive_policy})
    return source["QueueUrl"], dlq


def event(n: int) -> str:
    return json.dumps({"source": "aws.batch", "detail-type": "Batch Job State Change", "detail": {"jobId": f"j-{n}"}})


ATTRIBUTES = {
    "origin": {"DataType": "String", "StringValue": "member-bus"},
    "attempt": {"DataType": "Number", "StringValue": "3"},
    "blob": {"DataType": "Binary", "BinaryValue": b"\x00\x01\xff"},
}


def dead_letter(sqs: Any, source: str, dlq: str, count: int) -> None:
    """Send `count` messages to the source queue and fail them until SQS moves them all to the DLQ."""
    for n in range(count):
        sqs.send_message(QueueUrl=source, MessageBody=event(n), MessageAttributes=ATTRIBUTES)
    for _ in range(count * 3):  # received once (maxReceiveCount 1), then dead-lettered on the next receive
        if depth(sqs, dlq) == count:
            return
        sqs.receive_message(QueueUrl=source, MaxNumberOfMessages=10, VisibilityTimeout=0)
    raise AssertionError(f"only {depth(sqs, dlq)} of {count} messages reached the DLQ")


def depth(sqs: Any, url: str) -> int:
    attributes = sqs.get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]) + int(attributes["ApproximateNumberOfMessagesNotVisible"])


def drain(sqs: Any, url: str) -> list[dict[str, Any]]:
    """Every message of a queue (deleted as read)."""
    found: list[dict[str, Any]] = []
    while batch := sqs.receive_message(
        QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"], MessageSystemAttributeNames=["All"]
    ).get("Messages", []):
        found += batch
        sqs.delete_message_batch(
            QueueUrl=url, Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(batch)]
        )
    return found


def test_every_message_goes_back_once_with_its_attributes(sqs: Any) -> None:
    source, dlq = make_queues(sqs)
    dead_letter(sqs, source, dlq, 25)
    assert depth(sqs, source) == 0

    assert redrive(sqs, dlq, source) == 25  # default long poll: the run ends on one empty 1 s receive

    assert depth(sqs, dlq) == 0
    back = drain(sqs, source)
    assert Counter(m["Body"] for m in back) == Counter(event(n) for n in range(25))  # none lost, none twice
    for message in back:
        kept = {k: {f: v[f] for f in ("DataType", "StringValue", "BinaryValue") if f in v}
                for k, v in message["MessageAttributes"].items()}  # fmt: skip
        assert kept == ATTRIBUTES
    assert redrive(sqs, dlq, source, wait_seconds=0) == 0  # nothing left: a second run moves nothing


def test_limit_moves_that_many_and_leaves_the_rest(sqs: Any) -> None:
    source, dlq = make_queues(sqs)
    dead_letter(sqs, source, dlq, 23)
    assert redrive(sqs, dlq, source, limit=7, wait_seconds=0) == 7
    assert (depth(sqs, source), depth(sqs, dlq)) == (7, 16)
    assert redrive(sqs, dlq, source, limit=0, wait_seconds=0) == 0
    assert redrive(sqs, dlq, source, wait_seconds=0, visibility_seconds=0) == 16
    assert Counter(m["Body"] for m in drain(sqs, source)) == Counter(event(n) for n in range(23))
    with pytest.raises(ValueError):
        redrive(sqs, dlq, source, limit=-1)


def test_large_messages_are_sent_in_batches_under_the_payload_limit(sqs: Any) -> None:
    source, dlq = make_queues(sqs)
    bodies = [json.dumps({"n": n, "pad": "x" * 100_000}) for n in range(9)]  # ~100 KB each: 2 per batch
    for body in bodies:
        sqs.send_message(QueueUrl=dlq, MessageBody=body)
    calls = CountingClient(sqs)
    assert redrive(calls, dlq, source, wait_seconds=0) == 9
    assert calls.batch_sizes and max(calls.batch_sizes) <= 2
    assert sorted(m["Body"] for m in drain(sqs, source)) == sorted(bodies)


def test_fifo_messages_keep_their_group(sqs: Any) -> None:
    source, dlq = make_queues(sqs, fifo=True)
    for n in range(6):
        sqs.send_message(QueueUrl=dlq, MessageBody=event(n), MessageGroupId=f"account-{n % 2}")
    assert redrive(sqs, dlq, source, wait_seconds=0) == 6
    back = drain(sqs, source)
    groups = {json.loads(m["Body"])["detail"]["jobId"]: m["Attributes"]["MessageGroupId"] for m in back}
    assert groups == {f"j-{n}": f"account-{n % 2}" for n in range(6)}


class CountingClient:
    """The moto client, with the size of every SendMessageBatch call recorded."""

    def __init__(self, sqs: Any) -> None:
        self.sqs = sqs
        self.batch_sizes: list[int] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.sqs, name)

    def send_message_batch(self, **request: Any) -> Any:
        self.batch_sizes.append(len(request["Entries"]))
        return self.sqs.send_message_batch(**request)


class FlakyClient(CountingClient):
    """Refuses to send bodies containing `refuse`, and fails the first `lost_deletes` deletions of a batch call."""

    def __init__(self, sqs: Any, *, refuse: str | None = None, lost_deletes: int = 0) -> None:
        super().__init__(sqs)
        self.refuse = refuse
        self.lost_deletes = lost_deletes

    def send_message_batch(self, **request: Any) -> Any:
        refused = [e for e in request["Entries"] if self.refuse and self.refuse in e["MessageBody"]]
        accepted = [e for e in request["Entries"] if e not in refused]
        response = self.sqs.send_message_batch(QueueUrl=request["QueueUrl"], Entries=accepted) if accepted else {}
        failed = [{"Id": e["Id"], "Code": "InternalError", "SenderFault": False} for e in refused]
        return {"Successful": response.get("Successful", []), "Failed": failed}

    def delete_message_batch(self, **request: Any) -> Any:
        entries = request["Entries"]
        lost, kept = entries[: self.lost_deletes], entries[self.lost_deletes :]
        self.lost_deletes -= len(lost)
        response = self.sqs.delete_message_batch(QueueUrl=request["QueueUrl"], Entries=kept) if kept else {}
        failed = [{"Id": e["Id"], "Code": "InternalError", "SenderFault": False} for e in lost]
        return {"Successful": response.get("Successful", []), "Failed": failed}


def test_a_message_whose_deletion_failed_is_not_sent_twice(sqs: Any) -> None:
    source, dlq = make_queues(sqs)
    dead_letter(sqs, source, dlq, 12)
    # Visibility 0: the undeleted messages come straight back in the same run, already sent once.
    flaky = FlakyClient(sqs, lost_deletes=3)
    assert redrive(flaky, dlq, source, wait_seconds=0, visibility_seconds=0) == 12
    assert depth(sqs, dlq) == 0
    assert Counter(m["Body"] for m in drain(sqs, source)) == Counter(event(n) for n in range(12))


def test_messages_that_cannot_be_sent_stay_in_the_dlq(sqs: Any) -> None:
    source, dlq = make_queues(sqs)
    dead_letter(sqs, source, dlq, 12)
    flaky = FlakyClient(sqs, refuse='"j-7"')
    with pytest.raises(RedriveError) as raised:
        redrive(flaky, dlq, source, wait_seconds=0, visibility_seconds=0)
    assert raised.value.moved == 11
    assert len(raised.value.failures) == 1 and "InternalError" in raised.value.failures[0]
    assert [m["Body"] for m in drain(sqs, dlq)] == [event(7)]
    assert sorted(m["Body"] for m in drain(sqs, source)) == sorted(event(n) for n in range(12) if n != 7)


def test_a_sent_message_left_in_the_dlq_is_reported() -> None:
    with mock_aws():
        sqs = boto3.client("sqs", region_name=REGION)
        source, dlq = make_queues(sqs)
        dead_letter(sqs, source, dlq, 4)
        # Visibility 60 s: the undeleted message does not come back in this run, so the run must say so.
        with pytest.raises(RedriveError, match="not deleted") as raised:
            redrive(FlakyClient(sqs, lost_deletes=1), dlq, source, wait_seconds=0)
        assert raised.value.moved == 4


def test_start_move_task_asks_sqs_to_move_server_side() -> None:
    sqs = boto3.client("sqs", region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x")
    dlq, source = "https://sqs.us-east-1.amazonaws.com/1/dlq", "https://sqs.us-east-1.amazonaws.com/1/src"
    with Stubber(sqs) as stub:
        for url, arn in ((dlq, "arn:aws:sqs:us-east-1:1:dlq"), (source, "arn:aws:sqs:us-east-1:1:src")):
            stub.add_response("get_queue_attributes", {"Attributes": {"QueueArn": arn}},
                              {"QueueUrl": url, "AttributeNames": ["QueueArn"]})  # fmt: skip
        stub.add_response(
            "start_message_move_task",
            {"TaskHandle": "handle-1"},
            {"SourceArn": "arn:aws:sqs:us-east-1:1:dlq", "DestinationArn": "arn:aws:sqs:us-east-1:1:src",
             "MaxNumberOfMessagesPerSecond": 50},
        )  # fmt: skip
        assert start_move_task(sqs, dlq, source, max_per_second=50) == "handle-1"
        stub.assert_no_pending_responses()
