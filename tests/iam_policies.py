"""IAM's evaluation of identity policies, for the tests that enforce what AWS enforces and moto does not.

The rules, as AWS documents them (policy evaluation logic, single account, identity-based policies): a request is
allowed when some statement allows it and none denies it; an explicit Deny wins; no statement means an implicit deny.
A statement applies when its Action (or NotAction), Resource (or NotResource) and every Condition match. Actions
match case-insensitively with `*` and `?`; resources case-sensitively, each of the six ARN parts on its own
(a `*` in one part does not reach into the next). Condition operators we do not know fail closed: the test says so.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any

ALLOWED = "allowed"
EXPLICIT_DENY = "explicitly denied"
IMPLICIT_DENY = "implicitly denied (no statement allows it)"


@dataclass(frozen=True)
class Request:
    """One authorisation IAM makes: an action on a resource ARN (or `*`), with the request's condition keys."""

    action: str
    resource: str
    context: Mapping[str, str | Sequence[str]] = field(default_factory=dict)

    def __str__(self) -> str:
        keys = f" with {dict(self.context)}" if self.context else ""
        return f"{self.action} on {self.resource}{keys}"


class UnknownConditionOperator(ValueError):
    """A policy uses a condition operator this evaluator does not implement: teach it, never guess."""


def decide(request: Request, policies: Iterable[Mapping[str, Any]]) -> str:
    """ALLOWED, EXPLICIT_DENY or IMPLICIT_DENY for the request under the identity policies (documents)."""
    allowed = False
    for policy in policies:
        for statement in _statements(policy):
            if not _applies(statement, request):
                continue
            if statement["Effect"] == "Deny":
                return EXPLICIT_DENY
            allowed = True
    return ALLOWED if allowed else IMPLICIT_DENY


def _statements(policy: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    statements = policy["Statement"]
    return [statements] if isinstance(statements, Mapping) else list(statements)


def _as_list(value: Any) -> list[Any]:
    return [value] if isinstance(value, str | bool | int) else list(value)


def _applies(statement: Mapping[str, Any], request: Request) -> bool:
    if "Action" in statement:
        if not any(_action_matches(p, request.action) for p in _as_list(statement["Action"])):
            return False
    elif any(_action_matches(p, request.action) for p in _as_list(statement["NotAction"])):
        return False
    if "Resource" in statement:
        if not any(resource_matches(p, request.resource) for p in _as_list(statement["Resource"])):
            return False
    elif any(resource_matches(p, request.resource) for p in _as_list(statement["NotResource"])):
        return False
    return all(
        _condition_holds(operator, key, _as_list(values), request.context)
        for operator, block in statement.get("Condition", {}).items()
        for key, values in block.items()
    )


@cache
def _wildcard(pattern: str, flags: int = 0) -> re.Pattern[str]:
    """IAM's wildcards: `*` any run of characters, `?` one character; everything else literal."""
    body = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.compile(f"{body}\\Z", flags | re.DOTALL)


def _action_matches(pattern: str, action: str) -> bool:
    return _wildcard(pattern, re.IGNORECASE).match(action) is not None


def resource_matches(pattern: str, resource: str) -> bool:
    """Whether a policy's resource pattern covers a resource ARN (a request on `*` needs a `*` pattern)."""
    if pattern == "*":
        return True
    if resource == "*":
        return False
    pattern_parts, resource_parts = pattern.split(":", 5), resource.split(":", 5)
    if len(pattern_parts) != 6 or len(resource_parts) != 6:
        return False
    return all(_wildcard(p).match(r) is not None for p, r in zip(pattern_parts, resource_parts, strict=True))


def _condition_holds(operator: str, key: str, expected: list[Any], context: Mapping[str, str | Sequence[str]]) -> bool:
    base, if_exists = (operator[:-8], True) if operator.endswith("IfExists") else (operator, False)
    if base == "Null":  # true: the key must be absent; false: present
        return (key not in context) == (str(expected[0]).lower() == "true")
    positive = _NEGATIONS.get(base, base)
    matcher = _MATCHERS.get(positive)
    if matcher is None:
        raise UnknownConditionOperator(operator)
    if key not in context:  # an absent key matches nothing: a negated operator holds, a positive one does not
        return if_exists or base in _NEGATIONS
    actual = context[key]
    values = [actual] if isinstance(actual, str) else list(actual)
    matched = any(matcher(str(e), v) for e in expected for v in values)
    return not matched if base in _NEGATIONS else matched


_MATCHERS: dict[str, Any] = {
    "StringEquals": lambda e, v: e == v,
    "StringEqualsIgnoreCase": lambda e, v: e.lower() == v.lower(),
    "StringLike": lambda e, v: _wildcard(e).match(v) is not None,
    "ArnEquals": lambda e, v: e == v,
    "ArnLike": resource_matches,
    "Bool": lambda e, v: e.lower() == v.lower(),
}
_NEGATIONS = {
    "StringNotEquals": "StringEquals",
    "StringNotEqualsIgnoreCase": "StringEqualsIgnoreCase",
    "StringNotLike": "StringLike",
    "ArnNotEquals": "ArnEquals",
    "ArnNotLike": "ArnLike",
}
