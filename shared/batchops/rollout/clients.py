"""boto3 clients per service, region and account for the rollout; a dry run's clients refuse every write.

A dry run refuses every call that is not a read, at the botocore level, so it cannot write even by mistake.
"""

from __future__ import annotations

from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from batchops.rollout.errors import RolloutError

_READ_PREFIXES = ("Describe", "List", "Get", "Head", "BatchGet", "Validate", "Search", "Lookup")
_READ_OPERATIONS = frozenset({("sts", "AssumeRole")})


def is_read_only(service: str, operation: str) -> bool:
    """True for calls that change nothing (Describe*, List*, Get*, Head*, ..., and STS AssumeRole)."""
    return operation.startswith(_READ_PREFIXES) or (service, operation) in _READ_OPERATIONS


class WriteRefused(RuntimeError):
    """A dry run reached a call that would write."""


def refuse_writes(model: Any, **_: Any) -> None:
    """botocore `before-call` handler of dry runs: stop any call that is not a read before it is sent."""
    service = model.service_model.service_name
    if not is_read_only(service, model.name):
        raise WriteRefused(f"dry run: {service}:{model.name} would change something; refused")


class Clients:
    """boto3 clients per service, region and account (other accounts through an assumed role), cached."""

    def __init__(
        self,
        session: boto3.Session,
        *,
        read_only: bool = False,
        role_name: str = "OrganizationAccountAccessRole",
        config: Config | None = None,
    ) -> None:
        self.session = session
        self.role_name = role_name
        self.read_only = read_only
        self.config = config or Config(retries={"mode": "standard", "max_attempts": 10}, user_agent_extra="batchops")
        if read_only:
            session.events.register("before-call", refuse_writes, unique_id="batchops-refuse-writes")
        self._clients: dict[tuple[str, str, str | None], Any] = {}
        self._credentials: dict[str, dict[str, str]] = {}
        self._caller: dict[str, str] | None = None

    def caller(self, region: str) -> dict[str, str]:
        """The caller's identity (Account, Arn)."""
        if self._caller is None:
            identity = self.client("sts", region).get_caller_identity()
            self._caller = {"Account": identity["Account"], "Arn": identity["Arn"]}
        return self._caller

    def client(self, service: str, region: str, account: str | None = None) -> Any:
        """A client of `service` in `region`, in `account` (None or the caller's own: the session's credentials)."""
        if account is not None and account == self.caller(region)["Account"]:
            account = None
        key = (service, region, account)
        if key not in self._clients:
            credentials = self._assume(account, region) if account else {}
            self._clients[key] = self.session.client(service, region_name=region, config=self.config, **credentials)
        return self._clients[key]

    def _assume(self, account: str, region: str) -> dict[str, str]:
        if account not in self._credentials:
            partition = self.caller(region)["Arn"].split(":")[1]
            role = f"arn:{partition}:iam::{account}:role/{self.role_name}"
            try:
                found = self.client("sts", region).assume_role(RoleArn=role, RoleSessionName="batchops-deploy")
            except ClientError as error:
                raise RolloutError(
                    f"cannot assume {role} ({error.response['Error']['Message']}): pass the role another name "
                    "with --central-role-name, or run with the central account's credentials"
                ) from None
            c = found["Credentials"]
            self._credentials[account] = {
                "aws_access_key_id": c["AccessKeyId"],
                "aws_secret_access_key": c["SecretAccessKey"],
                "aws_session_token": c["SessionToken"],
            }
        return self._credentials[account]
