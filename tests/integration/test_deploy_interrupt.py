"""Ctrl-C during a deploy ends with a message and exit code 130, not a traceback."""

from __future__ import annotations

import importlib.util
import io
from pathlib import Path
from typing import Any

import boto3
from rich.console import Console

REPO = Path(__file__).resolve().parents[2]


def _load_cli() -> Any:
    spec = importlib.util.spec_from_file_location("deploy_interrupt", REPO / "deploy.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_ctrl_c_during_a_deploy_says_where_to_look_and_exits_130() -> None:
    session = boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1")

    def user_presses_ctrl_c(**_: Any) -> None:  # the first AWS call of the preflight, before any request is sent
        raise KeyboardInterrupt

    session.events.register("before-send", user_presses_ctrl_c)
    out = io.StringIO()
    code = _load_cli().main(
        ["--org-unit", "ou-abcd-12345678", "--regions", "us-east-1", "--yes"],
        session=session,
        console=Console(file=out, width=200),
    )
    assert code == 130
    assert "interrupted" in out.getvalue() and "deploy.py status" in out.getvalue()
