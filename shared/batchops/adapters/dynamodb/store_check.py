"""Before a command touches a `dynamodb://` store: are the central account's tables there, and can we reach them?

A missing table, missing credentials or the wrong region otherwise surface deep inside a save or a query as a
botocore traceback; here each becomes one sentence that says what to do.
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
    PartialCredentialsError,
)

from batchops.adapters.dynamodb.event_store import build_client
from batchops.adapters.dynamodb.tables import EVENTS_PURPOSE, table_name
from batchops.adapters.dynamodb.views import INSTANCES, JOBS, META
from batchops.bootstrap import StoreUnavailable

REQUIRED_PURPOSES = (EVENTS_PURPOSE, JOBS, INSTANCES, META)
"""The tables the CLI reads or writes (the stack's snapshots and tracking tables serve its Lambdas only)."""

_CREDENTIAL_ERRORS = {
    "UnrecognizedClientException",
    "InvalidClientTokenId",
    "InvalidSignatureException",
    "SignatureDoesNotMatch",
    "ExpiredTokenException",
    "ExpiredToken",
}
_ACCESS_ERRORS = {"AccessDeniedException", "AccessDenied"}
_NO_REGION = (
    "cannot open store {url}: no AWS region is set; set AWS_REGION (or AWS_PROFILE with a region) to the central"
    " account's home region"
)


def central_client(env: dict[str, str], prefix: str) -> Any:
    """The DynamoDB client of the standard AWS environment, or StoreUnavailable when no region is set."""
    try:
        return build_client(env)
    except NoRegionError as error:
        raise StoreUnavailable(_NO_REGION.format(url=f"dynamodb://{prefix}")) from error


def check_central_tables(client: Any, prefix: str) -> None:
    """Raise StoreUnavailable, in one line, unless every table of `prefix` is there and readable."""
    url = f"dynamodb://{prefix}"
    missing: list[str] = []
    for purpose in REQUIRED_PURPOSES:
        name = table_name(prefix, purpose)
        try:
            client.describe_table(TableName=name)
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code", "")
            if code == "ResourceNotFoundException":
                missing.append(name)
                continue
            raise StoreUnavailable(_client_error_message(url, client, code, error)) from error
        except NoRegionError as error:
            raise StoreUnavailable(_NO_REGION.format(url=url)) from error
        except (NoCredentialsError, PartialCredentialsError) as error:
            raise StoreUnavailable(
                f"cannot open store {url}: no AWS credentials found; set AWS_PROFILE or AWS_ACCESS_KEY_ID/"
                "AWS_SECRET_ACCESS_KEY for the central account"
            ) from error
        except EndpointConnectionError as error:
            raise StoreUnavailable(
                f"cannot open store {url}: cannot reach DynamoDB at {client.meta.endpoint_url}; check AWS_REGION and"
                " AWS_ENDPOINT_URL (unset it for real AWS)"
            ) from error
        except BotoCoreError as error:
            raise StoreUnavailable(f"cannot open store {url}: {error}") from error
    if missing:
        raise StoreUnavailable(
            f"cannot open store {url}: table {', '.join(missing)} not found in {client.meta.region_name};"
            f" deploy the central stack there (python deploy.py --org-unit OU, its --prefix {prefix}), or on an"
            " emulator set BATCHOPS_CREATE_TABLES=1 to create the tables"
        )


def _client_error_message(url: str, client: Any, code: str, error: ClientError) -> str:
    region = client.meta.region_name
    if error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 403 and code not in _ACCESS_ERRORS:
        # An emulator may answer in XML that botocore's JSON parser leaves unread: the code is in the text.
        text = str(error)
        code = next((known for known in sorted(_CREDENTIAL_ERRORS) if known in text), code)
        if code not in _CREDENTIAL_ERRORS:
            code = next((known for known in sorted(_ACCESS_ERRORS) if known in text), code)
    if code in _CREDENTIAL_ERRORS:
        return (
            f"cannot open store {url}: AWS rejected the credentials ({code}); refresh them or pick the central"
            " account's profile with AWS_PROFILE"
        )
    if code in _ACCESS_ERRORS:
        return (
            f"cannot open store {url}: access denied to the tables in {region} ({code}); use a role with the"
            " operator policy of docs/deploy.md"
        )
    return f"cannot open store {url}: DynamoDB in {region} answered {code}: {error.response['Error'].get('Message')}"
