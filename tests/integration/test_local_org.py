"""`python deploy.py --org-unit ou-demo --local` on a small workload: its summary is the projection's."""

from __future__ import annotations

import io
import re
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import boto3
import pytest
from rich.console import Console

from batchops.aws import rollout
from batchops.aws.local_org import LocalFigures, LocalSettings, Remapper, run_local, try_commands
from batchops.bootstrap import Settings, build_application
from batchops.reports import store_summary


def test_remapper_rewrites_every_account_and_region_string() -> None:
    remap = Remapper(["111111111111", "222222222222"], ["eu-central-1", "ap-south-1"])
    event = {
        "account": "012345678901",
        "region": "us-east-1",
        "resources": ["arn:aws:batch:us-east-1:012345678901:job/abc"],
        "detail": {"zone": "us-east-1a", "n": 123456789012, "other": "9012345678901"},
    }
    assert remap(event) == {
        "account": "111111111111",
        "region": "eu-central-1",
        "resources": ["arn:aws:batch:eu-central-1:111111111111:job/abc"],
        "detail": {"zone": "eu-central-1a", "n": 123456789012, "other": "9012345678901"},
    }
    assert remap({"account": "000000000002", "region": "eu-west-1"}) == {
        "account": "222222222222",
        "region": "ap-south-1",
    }


@pytest.mark.slow
def test_local_demo_summary_equals_the_projection_queried_afterwards(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The emulator checks every response of its fast serializers against moto's own (a mismatch fails the run).
    monkeypatch.setattr("batchops.aws.emulator.VERIFY_FAST_PATHS", True)
    artifact = tmp_path / "batchops-lambda.zip"
    import zipfile

    with zipfile.ZipFile(artifact, "w") as archive:
        archive.writestr("batchops/__init__.py", "")
    settings = LocalSettings(jobs_per_account=2, seed=3, out=tmp_path / "local", artifact=artifact, keep_running=True)
    seen: dict[str, Any] = {}

    def query(figures: LocalFigures) -> None:
        # While the emulator still runs: read the projection the way `batchops --store dynamodb://...` does.
        app = build_application(Settings(store=figures.store), project_inline=False)
        seen["summary"] = store_summary(app.views)
        per_account: dict[str, Counter[str]] = defaultdict(Counter)
        for job in app.views.jobs():
            per_account[job["account_id"]][job["status"]] += 1
        seen["jobs_by_status"] = {a: dict(c) for a, c in per_account.items()}
        seen["regions"] = {job["region"] for job in app.views.jobs()}
        outputs = rollout.stack_outputs(
            boto3.client("cloudformation", region_name="us-east-1").describe_stacks(StackName="batchops-central")[
                "Stacks"
            ][0]
        )
        seen["outputs"] = outputs

    out = io.StringIO()
    figures = run_local(settings, Console(file=out, width=200), while_running=query)
    printed = out.getvalue()

    assert figures.summary == seen["summary"]
    assert figures.summary["jobs_by_status"] == {
        a: dict(sorted(c.items())) for a, c in sorted(seen["jobs_by_status"].items())
    }
    assert figures.summary["jobs"] > 0
    for account, counts in figures.summary["jobs_by_status"].items():
        assert account in figures.members
        assert account in printed and all(f"{n:,}" in printed for n in counts.values())
    assert set(figures.summary["accounts"]) == set(figures.members)
    assert seen["regions"] == set(settings.regions)
    assert sorted((a, r) for a, r, _ in figures.covered) == sorted(
        (a, r) for a in figures.members for r in settings.regions
    )
    assert {state for _, _, state in figures.covered} == {rollout.DEPLOYED}
    p = figures.pipeline
    assert p.member_events > 0 and p.forwarded + p.filtered_out == p.member_events
    assert f"{p.member_events:,} member events" in printed
    assert figures.summary["pipeline"]["duplicates_dropped"] > 0  # chaos redelivers
    assert seen["outputs"]["StoreUrl"] == figures.store == "dynamodb://batchops"
    assert figures.emf_file is not None and figures.emf_file.stat().st_size > 0
    assert figures.dashboards and all(path.is_file() for path in figures.dashboards)
    assert re.search(r"disabled [2-9] Lambda event source mappings", printed)  # aggregator, projector, ...
    assert try_commands(settings, figures)[0] in printed.replace("\n", "")
    assert f"AWS_ENDPOINT_URL={figures.endpoint}" in try_commands(settings, figures)[0]
