"""Secret scrubbing: what may never reach a store, a log line or a metric.

Job and task events carry user environment variables, parameters, commands, arguments, log driver options and
secret references in clear text. Whatever we keep of an event we cannot use passes through here first: `redact` for a
decoded value, `scrub_text` for text that may not be JSON at all (a broken or truncated line). Both replace every
scalar under a key that can carry user data (`USER_DATA_KEYS`, at any depth), whatever its type.
"""

from __future__ import annotations

import re
from typing import Any

BATCH_VARIABLE_PREFIX = "AWS_BATCH_"
REDACTED = "<redacted>"
USER_DATA_KEYS = frozenset(
    {
        # Batch / ECS containers: environment, secrets, command, log driver options and their secrets
        "environment",
        "environmentfiles",
        "secrets",
        "secretoptions",
        "command",
        "parameters",
        "options",
        "repositorycredentials",
        # EKS containers
        "env",
        "args",
        # ECS task overrides (environment and command of every container)
        "containeroverrides",
        # CloudTrail SubmitJob / RegisterJobDefinition (and any other call): the request as the caller sent it
        "requestparameters",
        # a {name, value} pair out of its context (a fragment of an environment list)
        "value",
    }
)
"""Lowercase names of keys whose whole value is user data (compared case-insensitively: ECS writes `Environment` in
some APIs)."""
_SURROGATES = re.compile("[\ud800-\udfff]")
_INT64 = 1 << 63


def is_user_data(key: object) -> bool:
    """True for a key under which every value is replaced."""
    return isinstance(key, str) and key.lower() in USER_DATA_KEYS


def redact(value: Any) -> Any:
    """A copy of a decoded JSON value in which every scalar under a user-data key is `REDACTED`, and what orjson
    cannot write (lone surrogates, integers beyond 64 bits) is replaced. A string that holds JSON itself (an event
    logged as a string) is scrubbed as text."""
    return _redact(value, False)


def _redact(value: Any, hidden: bool) -> Any:
    if isinstance(value, dict):
        return {_clean_key(k): _redact(v, hidden or is_user_data(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact(item, hidden) for item in value]
    if hidden and value is not None:
        return REDACTED
    if isinstance(value, str):
        if value.lstrip()[:1] in ("{", "["):
            return scrub_text(without_surrogates(value))
        return without_surrogates(value)
    if isinstance(value, int) and not isinstance(value, bool) and not -_INT64 <= value < _INT64:
        return f"<integer of {value.bit_length()} bits>"
    return value


def _clean_key(key: Any) -> Any:
    return without_surrogates(key) if isinstance(key, str) else key


def without_surrogates(text: str) -> str:
    """Text without lone surrogates (undecodable bytes, or escapes no UTF-8 can hold)."""
    return text if text.isascii() else _SURROGATES.sub("\ufffd", text)


_TOKEN = re.compile(
    r'"(?:[^"\\\n]++|\\.)*+(?:"|\\?$)'  # a string, or an unclosed one up to the end of its line
    r"|[{}\[\]:,]"
    r'|[^\s"{}\[\]:,]+',  # anything else that is not blank: a number, true/false/null, or not JSON at all
    re.MULTILINE,
)
_KEY_AFTER = re.compile(r"\s*:")


def scrub_text(text: str) -> str:
    """Text that may not be JSON (broken, truncated, a fragment) with every scalar under a user-data key replaced; a
    string left open is replaced up to the end of its line. Text that does not start as a JSON object or array, or
    that closes more than it opened, is a fragment whose context is unknown: all of its scalars are replaced."""
    out: list[str] = []
    last = 0
    unknown = text.lstrip()[:1] not in ("{", "[")
    stack: list[bool] = []  # per open container: whether its scalars are hidden
    key_hidden: bool | None = None  # the hiddenness of the value that follows the last key read in an object
    for match in _TOKEN.finditer(text):
        token = match.group()
        scope = stack[-1] if stack else unknown
        first = token[0]
        if first in "{[":
            stack.append(key_hidden if key_hidden is not None else scope)
            key_hidden = None
            continue
        if first in "}]":
            if stack:
                stack.pop()
            else:
                unknown = True
            key_hidden = None
            continue
        if first == ",":
            key_hidden = None
            continue
        if first == ":":
            continue
        if first == '"' and len(token) > 1 and token.endswith('"') and _KEY_AFTER.match(text, match.end()):
            key_hidden = scope or is_user_data(token[1:-1])  # a key: its value is hidden under a user-data key
            continue
        hidden = key_hidden if key_hidden is not None else scope
        if hidden:
            out.append(text[last : match.start()])
            out.append(f'"{REDACTED}"')
            last = match.end()
    out.append(text[last:])
    return "".join(out)
