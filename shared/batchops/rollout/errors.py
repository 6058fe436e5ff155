"""How the rollout fails: a message that says why and what to do."""

from __future__ import annotations

from botocore.exceptions import ClientError


class RolloutError(RuntimeError):
    """The rollout cannot go on; the message says why and what to do."""


def error_code(error: ClientError) -> str:
    """The AWS error code of a failed call ('' when the response has none)."""
    return str(error.response.get("Error", {}).get("Code", ""))
