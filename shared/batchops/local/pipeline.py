"""The central account's event path run on an AWS emulator, step by step, with where the time goes.

Used by the local Organization (`deploy.py --local`): member events are filtered by the member stack's own
rules (their patterns read back from the emulator), forwarded to the central queue with their envelopes
intact (EventBridge keeps `account`, `region` and `resources` across accounts; the emulator rewrites them,
so the forwarder does what EventBridge does), received in batches like Lambda's SQS event source, recorded
by the aggregator handler, and projected by the projector handler from the events table's stream.
"""

from __future__ import annotations

import fnmatch
import json
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from batchops.adapters.dynamodb.stream_projection import stream_fed
from batchops.application import BatchOpsApplication
from batchops.entrypoints.lambdas import handle_sqs_batch, handle_stream_batch


def pattern_matches(pattern: Mapping[str, Any], event: Mapping[str, Any]) -> bool:
    """EventBridge content filtering for the operators batchops rules use (values, prefix, wildcard, anything-but,
    exists)."""
    for key, expected in pattern.items():
        present = key in event
        value = event.get(key)
        if isinstance(expected, dict):
            if not isinstance(value, dict) or not pattern_matches(expected, value):
                return False
            continue
        candidates = value if isinstance(value, list) else [value]
        if not any(_matches_one(rule, candidate, present) for rule in expected for candidate in candidates):
            return False
    return True


def _matches_one(rule: Any, value: Any, present: bool) -> bool:
    if isinstance(rule, dict):
        if "exists" in rule:
            return bool(rule["exists"]) == present
        if not present:
            return False
        if "prefix" in rule:
            return isinstance(value, str) and value.startswith(rule["prefix"])
        if "anything-but" in rule:
            excluded = rule["anything-but"]
            excluded = excluded if isinstance(excluded, list) else [excluded]
            return value not in excluded
        if "wildcard" in rule:
            return isinstance(value, str) and fnmatch.fnmatchcase(value, str(rule["wildcard"]).replace("[", "[[]"))
        if "equals-ignore-case" in rule:
            return isinstance(value, str) and value.lower() == str(rule["equals-ignore-case"]).lower()
        raise ValueError(f"unsupported pattern operator {sorted(rule)}")
    return present and value == rule


@dataclass
class PipelineFigures:
    """Counts and seconds per step of the path."""

    member_events: int = 0
    forwarded: int = 0
    filtered_out: int = 0
    aggregator_batches: int = 0
    stream_records: int = 0
    seconds: dict[str, float] = field(default_factory=dict)

    def add_time(self, step: str, seconds: float) -> None:
        """Add seconds to a step."""
        self.seconds[step] = self.seconds.get(step, 0.0) + seconds


class LocalPipeline:
    """Member rules → central queue → aggregator → events table → stream → projector → views."""

    def __init__(
        self,
        app: BatchOpsApplication,
        sqs: Any,
        streams: Any,
        queue_url: str,
        events_table: str,
        *,
        projector_app: BatchOpsApplication | None = None,
    ) -> None:
        self.app = app
        # The projector's own application (a Lambda container of its own on AWS), so that it can run on another
        # thread than the aggregator's; the aggregator's when not given.
        self.projector_app = projector_app or app
        self.sqs = sqs
        self.streams = streams
        self.queue_url = queue_url
        self.events_table = events_table
        self.figures = PipelineFigures()
        self._positions: dict[str, str] = {}
        self._stream_arn: str | None = None
        self._queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]

    def forward(
        self, events: Iterable[dict[str, Any]], patterns: Mapping[tuple[str, str], list[dict[str, Any]]]
    ) -> None:
        """Send each member event its account's rules match to the central queue, envelope intact."""
        started = time.perf_counter()
        entries: list[dict[str, str]] = []
        for event in events:
            self.figures.member_events += 1
            rules = patterns.get((event["account"], event["region"]), [])
            if not any(pattern_matches(p, event) for p in rules):
                self.figures.filtered_out += 1
                continue
            entries.append({"Id": str(len(entries)), "MessageBody": json.dumps(event)})
            if len(entries) == 10:
                self._send(entries)
                entries = []
        if entries:
            self._send(entries)
        self.figures.add_time("forward to the central queue", time.perf_counter() - started)

    def _send(self, entries: list[dict[str, str]]) -> None:
        response = self.sqs.send_message_batch(QueueUrl=self.queue_url, Entries=entries)
        if response.get("Failed"):
            raise RuntimeError(f"the emulator refused {len(response['Failed'])} messages: {response['Failed'][:1]}")
        self.figures.forwarded += len(entries)

    def run_aggregator(self, batch_size: int = 100, progress: Callable[[int], Any] | None = None) -> int:
        """Receive like Lambda's event source (up to `batch_size` per invocation), record, delete successes, until
        the queue is empty; returns how many messages were recorded."""
        recorded = 0
        sqs_seconds = 0.0
        handler_seconds = 0.0
        while True:
            started = time.perf_counter()
            messages: list[dict[str, Any]] = []
            while len(messages) < batch_size:
                got = self.sqs.receive_message(
                    QueueUrl=self.queue_url, MaxNumberOfMessages=10, AttributeNames=["All"], WaitTimeSeconds=0
                ).get("Messages", [])
                if not got:
                    break
                messages.extend(got)
            sqs_seconds += time.perf_counter() - started
            if not messages:
                break
            started = time.perf_counter()
            response = handle_sqs_batch(self.app, _lambda_sqs_event(messages, self._queue_arn))
            handler_seconds += time.perf_counter() - started
            self.figures.aggregator_batches += 1
            failed = {f["itemIdentifier"] for f in response["batchItemFailures"]}
            started = time.perf_counter()
            done = [m for m in messages if m["MessageId"] not in failed]
            for i in range(0, len(done), 10):
                self.sqs.delete_message_batch(
                    QueueUrl=self.queue_url,
                    Entries=[
                        {"Id": str(j), "ReceiptHandle": m["ReceiptHandle"]} for j, m in enumerate(done[i : i + 10])
                    ],
                )
            sqs_seconds += time.perf_counter() - started
            recorded += len(done)
            if progress is not None:
                progress(len(done))
        self.figures.add_time("SQS receive/delete", sqs_seconds)
        self.figures.add_time("aggregator (parse, DynamoDB event store)", handler_seconds)
        return recorded

    def run_projector(
        self,
        batch_size: int = 100,
        progress: Callable[[int], Any] | None = None,
        stop: Callable[[], bool] | None = None,
    ) -> int:
        """Read every shard of the events table's stream from where it stopped and project in batches; returns how
        many stream records were projected. `stop` is asked between batches (and ends the run when true)."""
        started = time.perf_counter()
        records = self._new_stream_records()
        read_seconds = time.perf_counter() - started
        started = time.perf_counter()
        for i in range(0, len(records), batch_size):
            if stop is not None and stop():
                break
            chunk = records[i : i + batch_size]
            response = handle_stream_batch(self.projector_app, {"Records": chunk})
            if response["batchItemFailures"]:
                raise RuntimeError(f"the projector failed on a stream batch: {response}")
            if progress is not None:
                progress(len(chunk))
        self.figures.stream_records += len(records)
        self.figures.add_time("stream read", read_seconds)
        self.figures.add_time("projector (DynamoDB views)", time.perf_counter() - started)
        return len(records)

    def _new_stream_records(self) -> list[dict[str, Any]]:
        if self._stream_arn is None:
            client = stream_fed(self.projector_app).recorder.client
            self._stream_arn = str(client.describe_table(TableName=self.events_table)["Table"]["LatestStreamArn"])
        arn = self._stream_arn
        records: list[dict[str, Any]] = []
        for shard in self.streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]:
            shard_id = shard["ShardId"]
            if shard_id in self._positions:
                iterator = self.streams.get_shard_iterator(
                    StreamArn=arn,
                    ShardId=shard_id,
                    ShardIteratorType="AFTER_SEQUENCE_NUMBER",
                    SequenceNumber=self._positions[shard_id],
                )["ShardIterator"]
            else:
                iterator = self.streams.get_shard_iterator(
                    StreamArn=arn, ShardId=shard_id, ShardIteratorType="TRIM_HORIZON"
                )["ShardIterator"]
            while iterator:
                response = self.streams.get_records(ShardIterator=iterator, Limit=1000)
                got = response["Records"]
                if not got:
                    break
                records.extend(got)
                self._positions[shard_id] = got[-1]["dynamodb"]["SequenceNumber"]
                iterator = response.get("NextShardIterator")
        return records


def _lambda_sqs_event(messages: list[dict[str, Any]], queue_arn: str) -> dict[str, Any]:
    """The event Lambda's SQS event source builds from received messages."""
    return {
        "Records": [
            {
                "messageId": m["MessageId"],
                "receiptHandle": m["ReceiptHandle"],
                "body": m["Body"],
                "attributes": {
                    "ApproximateReceiveCount": m["Attributes"].get("ApproximateReceiveCount", "1"),
                    "SentTimestamp": m["Attributes"].get("SentTimestamp", "0"),
                    "SenderId": m["Attributes"].get("SenderId", "local"),
                    "ApproximateFirstReceiveTimestamp": m["Attributes"].get("ApproximateFirstReceiveTimestamp", "0"),
                },
                "messageAttributes": {},
                "md5OfBody": m["MD5OfBody"],
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": queue_arn.split(":")[3],
            }
            for m in messages
        ]
    }


def rule_patterns(events_client: Any, prefix: str) -> list[dict[str, Any]]:
    """The event patterns of a member account's batchops rules on its default bus (read from the emulator)."""
    patterns = []
    for rule in events_client.list_rules(NamePrefix=prefix, EventBusName="default").get("Rules", []):
        if rule.get("EventPattern") and rule.get("State") == "ENABLED":
            patterns.append(json.loads(rule["EventPattern"]))
    return patterns
