"""`python deploy.py status` reads each member stack's forward dead-letter queue, in the member account.

On the emulator (the Organization of test_deploy.py: an OU of three accounts, the StackSet in two regions).
moto cannot make EventBridge fail a delivery, so the tests put messages into a forward DLQ themselves, shaped
as EventBridge dead-letters an event (the event as body, the error in message attributes).
"""

from __future__ import annotations

import io
import json
import warnings
from typing import Any

import boto3
from botocore.awsrequest import AWSResponse
from rich.console import Console
from test_deploy import PREFIX, REGIONS, Org, deploy, deploy_args, moto_gaps, moto_server, org, run

__all__ = ["moto_gaps", "moto_server", "org"]  # the fixtures, shared with test_deploy.py

QUEUE = f"{PREFIX}-forward-dlq"
ROLE = "OrganizationAccountAccessRole"


def status(org: Org, session: boto3.Session | None = None, width: int = 80) -> tuple[int, str]:
    """`python deploy.py status` in-process, as a terminal of `width` columns shows it."""
    out = io.StringIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # moto: "No Moto CloudFormation support for AWS::CloudWatch::Alarm"
        code = deploy.main(
            ["status", "--org-unit", org.ou, "--regions", ",".join(REGIONS), "--prefix", PREFIX],
            session=session or boto3.Session(region_name="us-east-1"),
            console=Console(file=out, width=width, color_system=None),
        )
    return code, out.getvalue()


def dlq_column(printed: str) -> dict[tuple[str, str], str]:
    """The coverage table's DLQ cell by (account, region)."""
    (header,) = [line for line in printed.splitlines() if line.startswith("┃")]
    names = [cell.strip() for cell in header.strip("┃").split("┃")]
    cells = {}
    for line in printed.splitlines():
        if line.startswith("│"):
            row = dict(zip(names, (cell.strip() for cell in line.strip("│").split("│")), strict=True))
            cells[row["account"], row["region"]] = row["DLQ"]
    return cells


def flat(printed: str) -> str:
    """The output with its line folds undone, to find a sentence wherever the console wrapped it."""
    return " ".join(printed.split())


def forward_dlq(org: Org, account: str, region: str) -> tuple[Any, str]:
    """The member's SQS client in `region` and its forward DLQ's URL."""
    sqs = org.session(account).client("sqs", region_name=region)
    return sqs, sqs.get_queue_url(QueueName=QUEUE)["QueueUrl"]


def dead_letter(sqs: Any, url: str, account: str, region: str, job: str) -> None:
    """What EventBridge puts in a target's DLQ when it gives up on an event (moto cannot make it give up)."""
    event = {"source": "aws.batch", "detail-type": "Batch Job State Change", "account": account, "region": region,
             "detail": {"jobId": job, "status": "FAILED"}}  # fmt: skip
    attributes = {
        "ERROR_CODE": "NO_PERMISSIONS",
        "ERROR_MESSAGE": "Not authorized to perform events:PutEvents on the central bus",
        "RULE_ARN": f"arn:aws:events:{region}:{account}:rule/{PREFIX}-batch-jobs",
    }
    sqs.send_message(
        QueueUrl=url,
        MessageBody=json.dumps(event),
        MessageAttributes={k: {"DataType": "String", "StringValue": v} for k, v in attributes.items()},
    )


def test_a_member_forward_dlq_with_messages_is_a_warning_with_its_command_and_status_exits_1(org: Org) -> None:
    code, out = run(org, *deploy_args(org, "--yes"))
    assert code == 0, out
    code, out = status(org)
    assert code == 0, out
    assert set(dlq_column(out).values()) == {"0"} and len(dlq_column(out)) == len(org.members) * len(REGIONS), out
    assert f"DLQ: messages in each stack's {QUEUE}: none in the 6 read" in flat(out)
    said = flat(out)
    assert (
        "CloudTrail records (SubmitJob, SubmitServiceJob: " in said
        and "only from accounts and regions with a trail" in said
    )

    member, region = org.members[1], "eu-west-1"
    sqs, url = forward_dlq(org, member, region)
    dead_letter(sqs, url, member, region, "j-1")
    dead_letter(sqs, url, member, region, "j-2")
    (received,) = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=1)["Messages"]  # one in flight, unseen
    code, out = status(org)

    assert code == 1, out
    cells = dlq_column(out)
    assert cells.pop((member, region)) == "2", out  # the waiting one and the one being received
    assert set(cells.values()) == {"0"} and len(cells) == 5, out
    said = flat(out)
    assert f"DLQ: messages in each stack's {QUEUE}: 2 in 1 of the 6 read" in said
    warning = "warning events the member rules could not deliver to the central bus are waiting in 1 dead-letter queue"
    assert f"{warning}: they are not recorded." in said, out
    where = f"- {member} {region}: 2 (1 waiting, 1 being received; the queue keeps them 14 days)"
    assert f"{where}; see them with credentials of {member}:" in said, out
    assert "Fix the cause (each message's ERROR_CODE and ERROR_MESSAGE attributes say it) before they expire." in said
    # The command stays on one line, to copy whole; everything else fits 80 columns.
    command = (
        f"    aws sqs receive-message --region {region} --queue-url {url} --attribute-names All "
        "--message-attribute-names All --max-number-of-messages 10"
    )
    assert command in out.splitlines(), out
    assert all(len(line) <= 80 for line in out.splitlines() if line != command), out
    assert "…" not in out and "Traceback" not in out

    # Emptied (after the fix), the queue reads 0 again and status exits 0.
    sqs.delete_message(QueueUrl=url, ReceiptHandle=received["ReceiptHandle"])
    (waiting,) = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    sqs.delete_message(QueueUrl=url, ReceiptHandle=waiting["ReceiptHandle"])
    code, out = status(org)
    assert code == 0 and set(dlq_column(out).values()) == {"0"}, out


class RefuseAssumeRole:
    """STS refusing the role in one account, as AWS does when it is missing or does not trust the caller (moto's
    STS lets anyone assume any role, even one that does not exist). Counts the attempts on that account."""

    def __init__(self, account: str) -> None:
        self.role = f"arn:aws:iam::{account}:role/{ROLE}"
        self.attempts = 0

    def __call__(self, model: Any, params: dict[str, Any], **_: Any) -> tuple[AWSResponse, dict[str, Any]] | None:
        if model.name != "AssumeRole" or params["body"].get("RoleArn") != self.role:
            return None
        self.attempts += 1
        message = (
            f"User: arn:aws:iam::123456789012:user/ops is not authorized to perform: sts:AssumeRole on {self.role}"
        )
        error = {"Error": {"Code": "AccessDenied", "Message": message}, "ResponseMetadata": {"HTTPStatusCode": 403}}
        return AWSResponse(self.role, 403, {}, None), error


def test_a_queue_status_cannot_read_is_not_checked_with_the_reason_never_a_guess(org: Org) -> None:
    code, out = run(org, *deploy_args(org, "--yes"))
    assert code == 0, out
    refused, gone, fine = org.members[2], org.members[0], org.members[1]
    sqs, url = forward_dlq(org, gone, "us-east-1")
    sqs.delete_queue(QueueUrl=url)  # as if deleted by hand: the stack instance still says CURRENT
    session = boto3.Session(region_name="us-east-1")
    refusal = RefuseAssumeRole(refused)
    session.events.register("before-call.sts.AssumeRole", refusal)

    code, out = status(org, session)

    assert "Traceback" not in out
    cells = dlq_column(out)
    assert cells[refused, "us-east-1"] == cells[refused, "eu-west-1"] == "not checked", out
    assert cells[gone, "us-east-1"] == "not checked", out
    assert cells[gone, "eu-west-1"] == cells[fine, "us-east-1"] == cells[fine, "eu-west-1"] == "0", out
    said = flat(out)
    assert f"DLQ: messages in each stack's {QUEUE}: none in the 3 read; 3 not checked:" in said
    # Each with its reason; an account's regions refused for one reason are said once, asked once.
    assert f"- {refused} us-east-1, eu-west-1: cannot assume {ROLE} (AccessDenied: User:" in said, out
    assert f"sts:AssumeRole on arn:aws:iam::{refused}:role/{ROLE})" in said, out
    assert refusal.attempts == 1
    assert f"- {gone} us-east-1: queue {QUEUE} not found" in said, out
    # Not knowing is said, not failed: the exit code is for what status saw (nothing failed, nothing waiting).
    assert code == 0, out
    assert all(len(line) <= 80 for line in out.splitlines()), out
