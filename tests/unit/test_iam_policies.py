"""The policy evaluator the IAM tests rely on follows IAM's documented rules (tests/iam_policies.py)."""

from __future__ import annotations

import pytest

from iam_policies import ALLOWED, EXPLICIT_DENY, IMPLICIT_DENY, Request, UnknownConditionOperator, decide

TABLE = "arn:aws:dynamodb:us-east-1:123456789012:table/bo-events"


def _policy(*statements: dict) -> dict:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def test_allow_needs_a_matching_statement_and_an_explicit_deny_wins() -> None:
    allow = _policy({"Effect": "Allow", "Action": ["dynamodb:Query", "dynamodb:PutItem"], "Resource": TABLE})
    deny = _policy({"Effect": "Deny", "Action": "dynamodb:PutItem", "Resource": "*"})
    assert decide(Request("dynamodb:Query", TABLE), [allow]) == ALLOWED
    assert decide(Request("dynamodb:Scan", TABLE), [allow]) == IMPLICIT_DENY
    assert decide(Request("dynamodb:PutItem", TABLE), [allow, deny]) == EXPLICIT_DENY
    assert decide(Request("dynamodb:Query", f"{TABLE}-2"), [allow]) == IMPLICIT_DENY


def test_actions_match_without_case_and_wildcards_stay_inside_one_arn_part() -> None:
    policy = _policy({"Effect": "Allow", "Action": "DynamoDB:Get*", "Resource": "arn:aws:dynamodb:*:*:table/bo-*"})
    assert decide(Request("dynamodb:GetItem", TABLE), [policy]) == ALLOWED
    assert decide(Request("dynamodb:GetItem", f"{TABLE}/index/by-status"), [policy]) == ALLOWED  # * spans '/'
    assert (
        decide(Request("dynamodb:GetItem", "arn:aws:dynamodb:us-east-1:123456789012:table/other"), [policy]) != ALLOWED
    )
    stream = _policy({"Effect": "Allow", "Action": "dynamodb:*", "Resource": "arn:aws:dynamodb:us-east-*:1*"})
    assert decide(Request("dynamodb:GetItem", TABLE), [stream]) == IMPLICIT_DENY  # '1*' cannot reach the resource part
    assert decide(Request("s3:ListBucket", "*"), [policy]) == IMPLICIT_DENY  # a call on '*' needs Resource '*'


def test_not_action_not_resource_and_conditions() -> None:
    policy = _policy(
        {"Effect": "Allow", "NotAction": "s3:DeleteObject", "NotResource": "arn:aws:s3:::secret/*"},
        {
            "Effect": "Allow",
            "Action": "s3:ListBucket",
            "Resource": "arn:aws:s3:::b",
            "Condition": {"StringLike": {"s3:prefix": "projections/*"}},
        },
    )
    assert decide(Request("s3:GetObject", "arn:aws:s3:::b/k"), [policy]) == ALLOWED
    assert decide(Request("s3:DeleteObject", "arn:aws:s3:::b/k"), [policy]) == IMPLICIT_DENY
    assert decide(Request("s3:GetObject", "arn:aws:s3:::secret/k"), [policy]) == IMPLICIT_DENY
    listing = [_policy(policy["Statement"][1])]
    assert decide(Request("s3:ListBucket", "arn:aws:s3:::b", {"s3:prefix": "projections/jobs/"}), listing) == ALLOWED
    assert decide(Request("s3:ListBucket", "arn:aws:s3:::b", {"s3:prefix": "athena-results/"}), listing) != ALLOWED
    assert decide(Request("s3:ListBucket", "arn:aws:s3:::b"), listing) != ALLOWED  # an absent key matches nothing
    tls = [
        _policy(
            {
                "Effect": "Deny",
                "Action": "s3:*",
                "Resource": "*",
                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
            }
        )
    ]
    assert decide(Request("s3:GetObject", "arn:aws:s3:::b/k", {"aws:SecureTransport": "false"}), tls) == EXPLICIT_DENY
    negated = [
        _policy(
            {
                "Effect": "Allow",
                "Action": "sqs:*",
                "Resource": "*",
                "Condition": {"StringNotEquals": {"aws:SourceAccount": "1"}},
            }
        )
    ]
    assert decide(Request("sqs:SendMessage", "*"), negated) == ALLOWED  # a negated operator holds for an absent key
    with pytest.raises(UnknownConditionOperator):
        decide(
            Request("sqs:SendMessage", "*"),
            [
                _policy(
                    {
                        "Effect": "Allow",
                        "Action": "*",
                        "Resource": "*",
                        "Condition": {"DateGreaterThan": {"aws:CurrentTime": "2020"}},
                    }
                )
            ],
        )
