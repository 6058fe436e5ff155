"""The Lambda artifact in a private, encrypted, versioned, TLS-only bucket of the central account."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError
from rich.console import Console

from batchops.rollout.errors import RolloutError, error_code
from batchops.rollout.settings import RolloutSettings

_BLOCK_ALL = {
    "BlockPublicAcls": True,
    "IgnorePublicAcls": True,
    "BlockPublicPolicy": True,
    "RestrictPublicBuckets": True,
}


@dataclass(frozen=True)
class StagedArtifact:
    """Where the deploy put the Lambda zip, and what it changed to put it there."""

    bucket: str
    key: str
    changes: list[str]


def artifact_bucket_name(prefix: str, account: str, region: str) -> str:
    """The artifact bucket of the central account and home region (S3 names are global: account and region)."""
    name = f"{prefix}-artifacts-{account}-{region}"
    return name if len(name) <= 63 else f"{prefix}-{account}-{region}"


def artifact_bucket_policy(bucket: str, partition: str = "aws") -> dict[str, Any]:
    """The artifact bucket's policy: no request without TLS (everything else is IAM's business)."""
    arn = f"arn:{partition}:s3:::{bucket}"
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "DenyInsecureTransport",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "s3:*",
                "Resource": [arn, f"{arn}/*"],
                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
            }
        ],
    }


def _bucket_exists(s3: Any, bucket: str) -> bool:
    try:
        s3.head_bucket(Bucket=bucket)
    except ClientError as error:
        if error_code(error) in ("403", "AccessDenied", "Forbidden"):
            raise RolloutError(
                f"the bucket name {bucket} is taken by another account: pass --artifact-bucket"
            ) from None
        if error_code(error) not in ("404", "NoSuchBucket", "NotFound"):
            raise
        return False
    return True


def _create_bucket(s3: Any, bucket: str, region: str) -> None:
    create: dict[str, Any] = {"Bucket": bucket}
    if region != "us-east-1":
        create["CreateBucketConfiguration"] = {"LocationConstraint": region}
    s3.create_bucket(**create)


_Check = tuple[str, Callable[[], bool], Callable[[], None]]


def _bucket_checks(s3: Any, bucket: str, partition: str, *, tls_only: bool) -> list[_Check]:
    """(label, holds, apply) of each setting the bucket must have."""
    desired_policy = artifact_bucket_policy(bucket, partition)
    checks: list[_Check] = [
        (
            "block public access",
            lambda: s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"] == _BLOCK_ALL,
            lambda: s3.put_public_access_block(Bucket=bucket, PublicAccessBlockConfiguration=_BLOCK_ALL),
        ),
        (
            "bucket owner enforced (no ACLs)",
            lambda: (
                s3.get_bucket_ownership_controls(Bucket=bucket)["OwnershipControls"]["Rules"][0]["ObjectOwnership"]
                == "BucketOwnerEnforced"
            ),
            lambda: s3.put_bucket_ownership_controls(
                Bucket=bucket, OwnershipControls={"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]}
            ),
        ),
        (
            "default encryption",
            lambda: bool(
                s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"][0][
                    "ApplyServerSideEncryptionByDefault"
                ]["SSEAlgorithm"]
            ),
            lambda: s3.put_bucket_encryption(
                Bucket=bucket,
                ServerSideEncryptionConfiguration={
                    "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]
                },
            ),
        ),
        (
            "versioning",
            lambda: s3.get_bucket_versioning(Bucket=bucket).get("Status") == "Enabled",
            lambda: s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"}),
        ),
        (
            "TLS-only policy",
            lambda: json.loads(s3.get_bucket_policy(Bucket=bucket)["Policy"]) == desired_policy,
            lambda: s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps(desired_policy)),
        ),
    ]
    return checks if tls_only else [c for c in checks if c[0] != "TLS-only policy"]


def _holds(holds: Callable[[], bool]) -> bool:
    """Whether an existing bucket has a setting; a missing setting reads as an error, and as not holding."""
    try:
        return holds()
    except ClientError as error:
        if error_code(error) in ("AccessDenied", "403"):
            raise
        return False


def ensure_artifact_bucket(
    s3: Any, bucket: str, region: str, *, partition: str, dry_run: bool, tls_only: bool = True
) -> list[str]:
    """A private, encrypted, versioned, TLS-only bucket; returns what was (or would be) changed.

    `tls_only=False` leaves the TLS-only policy out: over a plain-HTTP endpoint (a local emulator) it
    would deny this very client.
    """
    changes: list[str] = []
    exists = _bucket_exists(s3, bucket)
    if not exists:
        changes.append(f"create bucket {bucket}")
        if not dry_run:
            _create_bucket(s3, bucket, region)
    for label, holds, apply in _bucket_checks(s3, bucket, partition, tls_only=tls_only):
        if not (exists and _holds(holds)):
            changes.append(f"{bucket}: {label}")
            if not dry_run:
                apply()
    return changes


def artifact_key(path: Path) -> str:
    """S3 key of an artifact, named after its sha256 so a new build changes the functions and nothing else does."""
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return f"lambda/batchops-lambda-{digest}.zip"


def upload_artifact(s3: Any, bucket: str, path: Path, *, dry_run: bool) -> tuple[str, bool]:
    """Upload the zip unless an object of the same hash is there; returns its key and whether it was uploaded."""
    key = artifact_key(path)
    try:
        s3.head_object(Bucket=bucket, Key=key)
        return key, False
    except ClientError as error:
        if error_code(error) not in ("404", "NoSuchKey", "NotFound", "NoSuchBucket"):
            raise
    if not dry_run:
        s3.put_object(Bucket=bucket, Key=key, Body=path.read_bytes(), ContentType="application/zip")
    return key, True


def build_artifact(settings: RolloutSettings, console: Console, workdir: Path) -> Path:
    """The --artifact given, or a zip built now into `workdir`."""
    if settings.artifact is not None:
        if not settings.artifact.is_file():
            raise RolloutError(f"--artifact {settings.artifact}: no such file")
        return settings.artifact
    from batchops.rollout.lambda_package import ArtifactError, build_lambda_artifact

    console.print("building the Lambda artifact (python -m batchops.rollout.lambda_package)…")
    try:
        return build_lambda_artifact(workdir)
    except ArtifactError as error:
        raise RolloutError(f"the Lambda artifact could not be built: {error}") from None


def stage_artifact(
    settings: RolloutSettings, s3: Any, console: Console, *, central: str, partition: str, workdir: Path
) -> StagedArtifact:
    """Step 1 of the deploy: the bucket as it should be, the zip built (or given) and uploaded unless there."""
    bucket = settings.artifact_bucket or artifact_bucket_name(settings.prefix, central, settings.home_region)
    tls = str(s3.meta.endpoint_url).startswith("https://")
    if not tls:
        console.print(f"[yellow]note[/] {s3.meta.endpoint_url} is plain HTTP: the bucket gets no TLS-only policy")
    changes = ensure_artifact_bucket(
        s3, bucket, settings.home_region, partition=partition, dry_run=settings.dry_run, tls_only=tls
    )
    artifact = build_artifact(settings, console, workdir)
    key, uploaded = upload_artifact(s3, bucket, artifact, dry_run=settings.dry_run)
    if uploaded:
        changes.append(f"upload s3://{bucket}/{key}")
    return StagedArtifact(bucket, key, changes)


def empty_bucket(s3: Any, bucket: str) -> None:
    """Delete every object version and delete marker (S3 deletes only an empty bucket)."""
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
        doomed = [
            {"Key": v["Key"], "VersionId": v["VersionId"]}
            for v in page.get("Versions", []) + page.get("DeleteMarkers", [])
        ]
        if doomed:
            s3.delete_objects(Bucket=bucket, Delete={"Objects": doomed, "Quiet": True})
