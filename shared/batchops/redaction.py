"""Secret scrubbing: what may never reach a store, a log line or a metric.

Job and task events carry user environment variables, parameters, commands and secret references in
clear text. Everything we keep of a raw event (e.g. a rejected one) passes through `redact` first.
"""

from __future__ import annotations

from typing import Any

BATCH_VARIABLE_PREFIX = "AWS_BATCH_"
REDACTED = "<redacted>"
_CLEARED_KEYS = frozenset({"parameters", "command", "secrets", "secretOptions", "repositoryCredentials"})
_ENVIRONMENT_KEYS = frozenset({"environment", "Environment"})


def redact(value: Any) -> Any:
    """Return a copy of a JSON value without user environment values, parameters, commands or secrets."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if key in _ENVIRONMENT_KEYS:
                out[key] = _redact_environment(item)
            elif key in _CLEARED_KEYS:
                out[key] = REDACTED if item else item
            else:
                out[key] = redact(item)
        return out
    if isinstance(value, list):
        return [redact(item) for item in value]
    return value


def _redact_environment(environment: Any) -> Any:
    """Keep AWS_BATCH_* variables; drop the value of every other variable, keep its name."""
    if isinstance(environment, list):
        kept: list[Any] = []
        for variable in environment:
            if isinstance(variable, dict):
                name = variable.get("name")
                if isinstance(name, str) and name.startswith(BATCH_VARIABLE_PREFIX):
                    kept.append({"name": name, "value": variable.get("value")})
                else:
                    kept.append({"name": name if isinstance(name, str) else None, "value": REDACTED})
        return kept
    if isinstance(environment, dict):
        return {
            k: (v if isinstance(k, str) and k.startswith(BATCH_VARIABLE_PREFIX) else REDACTED)
            for k, v in environment.items()
        }
    return REDACTED if environment else environment
