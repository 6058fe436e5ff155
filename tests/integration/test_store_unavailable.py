"""A `dynamodb://` store that cannot be used says why in one line and what to do; no traceback, nothing written."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from moto.server import ThreadedMotoServer

ROOT = Path(__file__).resolve().parents[2]
EVENT = ROOT / "tests" / "events" / "aws-batch--batch-job-state-change--failed.json"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def emulator() -> Iterator[str]:
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture(scope="module")
def enforcing_emulator() -> Iterator[str]:
    """A moto server that checks IAM from its third request on (the first two create a user and its key)."""
    port = _free_port()
    env = {**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": "2"}
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while True:  # readiness only: the assertions below never depend on how long this takes
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                server.kill()
                pytest.fail("the enforcing moto server did not start")
            time.sleep(0.1)
    yield f"http://127.0.0.1:{port}"
    server.kill()
    server.wait(timeout=10)


def _batchops(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {
        key: value for key, value in os.environ.items() if not key.startswith(("AWS_", "BATCHOPS_", "INITIAL_NO_AUTH"))
    }
    base.update(
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_REGION="us-east-1",
        AWS_EC2_METADATA_DISABLED="true",
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
    )
    base.update(env)
    base = {key: value for key, value in base.items() if value}
    return subprocess.run(
        [sys.executable, "-m", "batchops", *args], env=base, capture_output=True, text=True, timeout=120, check=False
    )


def _one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("batchops: error: cannot open store dynamodb://")
    return lines[0]


@pytest.mark.parametrize("command", [["ingest", str(EVENT)], ["jobs"], ["summary"], ["replay"], ["job", "x"]])
def test_missing_tables_name_the_table_and_both_ways_out(emulator: str, command: list[str]) -> None:
    result = _batchops("--store", "dynamodb://absent", *command, AWS_ENDPOINT_URL=emulator)

    line = _one_line_error(result)
    assert "absent-events" in line
    assert "python deploy.py" in line
    assert "BATCHOPS_CREATE_TABLES=1" in line
    tables = boto3.client(
        "dynamodb", endpoint_url=emulator, region_name="us-east-1", aws_access_key_id="t", aws_secret_access_key="t"
    ).list_tables()["TableNames"]
    assert not [name for name in tables if name.startswith("absent")], "a failed open must create nothing"


def test_with_create_tables_the_same_ingest_works(emulator: str) -> None:
    result = _batchops(
        "--store", "dynamodb://created", "ingest", str(EVENT), "--quiet", AWS_ENDPOINT_URL=emulator,
        BATCHOPS_CREATE_TABLES="1",
    )  # fmt: skip

    assert result.returncode == 0, result.stderr
    assert "1 new" in result.stderr + result.stdout


def test_no_region_says_to_set_one(emulator: str) -> None:
    line = _one_line_error(_batchops("--store", "dynamodb://x", "jobs", AWS_ENDPOINT_URL=emulator, AWS_REGION=""))
    assert "AWS_REGION" in line


def test_no_credentials_say_where_to_put_them(emulator: str) -> None:
    result = _batchops(
        "--store", "dynamodb://x", "jobs", AWS_ENDPOINT_URL=emulator, AWS_ACCESS_KEY_ID="", AWS_SECRET_ACCESS_KEY=""
    )
    assert "no AWS credentials" in _one_line_error(result)


def test_an_unreachable_endpoint_names_it() -> None:
    endpoint = f"http://127.0.0.1:{_free_port()}"
    line = _one_line_error(_batchops("--store", "dynamodb://x", "jobs", AWS_ENDPOINT_URL=endpoint))
    assert endpoint in line


def test_rejected_credentials_and_denied_access_are_told_apart(enforcing_emulator: str) -> None:
    iam = boto3.client(
        "iam", endpoint_url=enforcing_emulator, region_name="us-east-1", aws_access_key_id="t",
        aws_secret_access_key="t",
    )  # fmt: skip
    iam.create_user(UserName="no-dynamodb")
    key = iam.create_access_key(UserName="no-dynamodb")["AccessKey"]

    wrong = _batchops("--store", "dynamodb://x", "jobs", AWS_ENDPOINT_URL=enforcing_emulator)
    denied = _batchops(
        "--store", "dynamodb://x", "jobs", AWS_ENDPOINT_URL=enforcing_emulator,
        AWS_ACCESS_KEY_ID=key["AccessKeyId"], AWS_SECRET_ACCESS_KEY=key["SecretAccessKey"],
    )  # fmt: skip

    assert "rejected the credentials" in _one_line_error(wrong)
    assert "access denied" in _one_line_error(denied)
