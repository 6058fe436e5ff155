"""`python deploy.py --org-unit ou-demo --local` on a small workload: its summary is the projection's."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import boto3
import pytest
from rich.console import Console

from batchops.bootstrap import Settings, build_application
from batchops.local.organization import LocalFigures, LocalSettings, Remapper, run_local, try_commands, workload
from batchops.reports import store_summary
from batchops.rollout.coverage import DEPLOYED
from batchops.rollout.stacks import stack_outputs


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
    monkeypatch.setattr("batchops.local.emulator.VERIFY_FAST_PATHS", True)
    artifact = tmp_path / "batchops-lambda.zip"
    import zipfile

    with zipfile.ZipFile(artifact, "w") as archive:
        archive.writestr("batchops/__init__.py", "")
    settings = LocalSettings(jobs=6, seed=3, out=tmp_path / "local", artifact=artifact, keep_running=True)
    seen: dict[str, Any] = {}

    def query(figures: LocalFigures) -> None:
        # While the emulator still runs: read the projection the way `batchops --store dynamodb://...` does.
        app = build_application(Settings.from_environment(store=figures.store), project_inline=False)
        seen["summary"] = store_summary(app.views)
        per_account: dict[str, Counter[str]] = defaultdict(Counter)
        for job in app.views.jobs():
            per_account[job["account_id"]][job["status"]] += 1
        seen["jobs_by_status"] = {a: dict(c) for a, c in per_account.items()}
        seen["regions"] = {job["region"] for job in app.views.jobs()}
        outputs = stack_outputs(
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
    assert {state for _, _, state in figures.covered} == {DEPLOYED}
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


# --- the newcomer's path: what it needs, what it prints ------------------------------------------------------

REPO = Path(__file__).resolve().parents[2]
# Makes moto unimportable, as if it were not installed (a `sitecustomize` on PYTHONPATH runs at start-up).
NO_MOTO = """
import sys


class NoMoto:
    def find_spec(self, name, path=None, target=None):
        if name == "moto" or name.startswith("moto."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


sys.meta_path.insert(0, NoMoto())
"""


def _stub_artifact(folder: Path) -> Path:
    import zipfile

    artifact = folder / "batchops-lambda.zip"
    with zipfile.ZipFile(artifact, "w") as archive:
        archive.writestr("batchops/__init__.py", "")
    return artifact


def _deploy_local(tmp_path: Path, *args: str, env: dict[str, str], timeout: float) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, str(REPO / "deploy.py"), "--org-unit", "ou-demo", "--local", "--out", str(tmp_path)]
    return subprocess.run(
        [*command, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def test_without_the_emulator_deploy_local_stops_at_once_in_one_line_with_the_install_command(tmp_path: Path) -> None:
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "sitecustomize.py").write_text(NO_MOTO)
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "site"), "COLUMNS": "80"}
    # The bound: a run that waited for the emulator (2 minutes before) is a failure, not a slow pass.
    result = _deploy_local(tmp_path / "out", env=env, timeout=60)
    assert result.returncode != 0
    assert "Traceback" not in result.stdout + result.stderr and result.stderr == "", result.stderr
    (line,) = result.stdout.strip().splitlines()
    assert line.startswith("error: ") and "moto[server]" in line and "'moto'" in line, line
    assert "pip install -e '.[local]'" in line and "make demo" in line, line


SHADOW_MOTO_THAT_DIES = "import os\n\nos._exit(3)  # a process that dies as it imports moto, without a word\n"
WAIT_FOR_THE_EMULATOR = """
import sys
from batchops.local.emulator_server import LocalRunError, emulator

try:
    with emulator():
        print("served")
except LocalRunError as error:
    print(error)
    sys.exit(7)
"""


def test_the_wait_for_the_emulator_reports_a_process_that_died_at_once(tmp_path: Path) -> None:
    (tmp_path / "moto").mkdir()
    (tmp_path / "moto" / "__init__.py").write_text(SHADOW_MOTO_THAT_DIES)
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-c", WAIT_FOR_THE_EMULATOR], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 7, result.stdout + result.stderr
    assert "ended with exit code 3 before it served" in result.stdout, result.stdout


def test_jobs_means_submitted_jobs_in_all_in_deploy_local_as_in_batchops_simulate(tmp_path: Path) -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("deploy_jobs", REPO / "deploy.py")
    assert spec is not None and spec.loader is not None
    cli = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cli)
    settings = cli.local_settings_from(cli.parser().parse_args(["--org-unit", "ou-demo", "--local", "--jobs", "9"]))
    members = ("111111111111", "222222222222", "333333333333")
    local = workload(settings, members)
    stream = tmp_path / "events.jsonl"
    subprocess.run(
        [sys.executable, "-m", "batchops", "simulate", "--accounts", "3", "--regions", "2", "--jobs", "9",
         "--seed", str(settings.seed), "--chaos", "--out", str(stream)],
        check=True, timeout=60,
    )  # fmt: skip
    simulated = [json.loads(line) for line in stream.read_text().splitlines()]

    def submitted(events: list[dict[str, Any]]) -> set[str]:
        return {
            e["detail"]["jobId"]
            for e in events
            if e["detail-type"] == "Batch Job State Change" and "index" not in e["detail"].get("arrayProperties", {})
        }

    assert len(local) == len(simulated)
    assert submitted(local) == submitted(simulated) and len(submitted(local)) == 9
    for text in (cli.parser().format_help(), _simulate_help()):
        assert "in all" in " ".join(text.split()), text


def _simulate_help() -> str:
    result = subprocess.run(
        [sys.executable, "-m", "batchops", "simulate", "--help"], capture_output=True, text=True, timeout=60, check=True
    )
    return result.stdout


def test_every_option_of_batchops_simulate_has_its_help() -> None:
    text = _simulate_help()
    options = re.findall(r"^  (--[a-z-]+)(?: [A-Z_]+)?\s*(.*)$", text, flags=re.MULTILINE)
    assert {name for name, _ in options} >= {"--accounts", "--regions", "--jobs", "--seed", "--chaos", "--out"}, text
    for name, first_words in options:
        assert first_words.strip(), f"{name} has no help text:\n{text}"


@pytest.mark.slow
def test_the_demo_on_80_columns_says_nothing_false_cuts_nothing_and_ends_with_a_command_that_works(
    tmp_path: Path,
) -> None:
    artifact = _stub_artifact(tmp_path)
    env = {**os.environ, "COLUMNS": "80"}
    result = _deploy_local(tmp_path / "out", "--jobs", "12", "--artifact", str(artifact), env=env, timeout=600)
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    # Nothing of moto's in the middle of the deploy (the emulator's own process filters its warnings).
    assert "No Moto CloudFormation support" not in out + result.stderr
    assert "UserWarning" not in out + result.stderr and "Traceback" not in result.stderr, result.stderr
    # The emulator applies the bus policy of the template: no false warning that member accounts are locked out.
    assert "no resource policy" not in out and "warning" not in out, out
    # Fits 80 columns and cuts nothing; every table ends its line.
    assert max(len(line) for line in out.splitlines()) <= 80
    assert "…" not in out and "┘changed" not in out, out
    flat = " ".join(out.split())
    # The jobs counted, and how they relate to --jobs.
    jobs = re.search(r"([\d,]+) jobs: 12 submitted \+ ([\d,]+) array children \+ ([\d,]+) SageMaker service", flat)
    assert jobs is not None, flat
    total, children, service = (int(g.replace(",", "")) for g in jobs.groups())
    assert total == 12 + children + service and service == 1  # the simulator adds one every 20 submissions
    assert "12 jobs submitted in all" in flat
    # The counters reconcile, each said in words.
    figures = re.search(
        r"([\d,]+) member events sent, ([\d,]+) forwarded by the member rules to the central queue, ([\d,]+) "
        r"filtered out\. The aggregator took ([\d,]+) messages from the queue: ([\d,]+) new events recorded, "
        r"([\d,]+) duplicates dropped .*?, ([\d,]+) rejected, ([\d,]+) ignored\. The projector read ([\d,]+) "
        r"records of the events table's stream: .*? \(([\d,]+)\)",
        flat,
    )
    assert figures is not None, flat
    sent, forwarded, filtered, taken, recorded, duplicates, rejected, ignored, read, first = (
        int(g.replace(",", "")) for g in figures.groups()
    )
    assert sent == forwarded + filtered and forwarded == taken == recorded + duplicates + rejected + ignored
    assert duplicates > 0 and read == recorded + first and first >= total  # one first event per job at least
    progress = re.search(r"SQS messages aggregated .*? (\d+)/\?.*?stream records projected .*? (\d+)/\?", flat)
    assert progress is not None and (int(progress[1]), int(progress[2])) == (taken, read), flat
    # The last line: a command that works after the run (the emulator and its store are gone by then).
    assert "--keep-running" in out.strip().splitlines()[-1]
    assert f"{Path(sys.executable).name} deploy.py --org-unit ou-demo --local --jobs 12 --keep-running" in flat
    assert "store: dynamodb://batchops at http" not in flat
