"""Bad input through the CLI, as an operator feeding messy archives sees it: no secret reaches anything batchops
writes or prints, nothing crashes, nothing is dropped silently, nothing too big is stored."""

from __future__ import annotations

import copy
import gzip
import io
import json
import os
import subprocess
import sys
import tracemalloc
from pathlib import Path
from typing import Any

import pytest

from batchops.ingest import Ingestor, read_events
from batchops.simulation import SimulationSettings, simulate
from batchops.translation import MAX_EVENT_BYTES
from conftest import sample

ENVELOPE = {"version": "0", "source": "aws.batch", "account": "123456789012", "region": "us-east-1"}


def _planted() -> tuple[list[dict[str, Any]], list[str]]:
    """Events carrying a distinct secret in every place an AWS Batch, ECS or CloudTrail record can carry one."""
    secrets: list[str] = []

    def s(place: str) -> str:
        """A distinct secret for a place; its first 12 characters are distinct too."""
        secrets.append(f"S3CR3T-{len(secrets):04d}-{place.replace('.', '-')}-tail")
        return secrets[-1]

    container_job = copy.deepcopy(sample("aws-batch--batch-job-state-change--failed"))
    detail = container_job["detail"]
    detail["parameters"] = {"password": s("parameters")}
    detail["container"].update(
        environment=[{"name": "DB_PASSWORD", "value": s("container.environment")}],
        secrets=[{"name": "TOKEN", "valueFrom": s("container.secrets")}],
        command=["run", f"--key={s('container.command')}"],
        logConfiguration={
            "logDriver": "splunk",
            "options": {"splunk-token": s("container.logConfiguration.options")},
            "secretOptions": [{"name": "splunk-token", "valueFrom": s("container.logConfiguration.secretOptions")}],
        },
    )
    eks_job = copy.deepcopy(sample("aws-batch--batch-job-state-change--running"))
    eks_job["detail"].pop("container", None)
    eks_job["detail"]["jobId"] = "eks-job-1"
    eks_job["detail"]["eksProperties"] = {
        "podProperties": {
            "containers": [
                {
                    "name": "main",
                    "env": [{"name": "API_KEY", "value": s("eks.env")}],
                    "args": ["--token", s("eks.args")],
                    "command": ["sh", "-c", s("eks.command")],
                }
            ]
        }
    }
    ecs_job = copy.deepcopy(sample("batch-running-ecsproperties-ec2--aws-batch-runtime-monitoring"))
    ecs_container = ecs_job["detail"]["ecsProperties"]["taskProperties"][0]["containers"][0]
    ecs_container["environment"] = [{"name": "SECRET", "value": s("ecsProperties.environment")}]
    ecs_container["command"] = [s("ecsProperties.command")]
    task = copy.deepcopy(sample("aws-ecs--ecs-task-state-change--batch-on-ec2"))
    override = task["detail"]["overrides"]["containerOverrides"][0]
    override["environment"].append({"name": "USER_PASSWORD", "value": s("ecs.overrides.environment")})
    override["command"] = ["python", s("ecs.overrides.command")]
    trail = copy.deepcopy(sample("aws-batch--cloudtrail-createcomputeenvironment"))
    submit = copy.deepcopy(trail)
    submit["detail"].update(
        eventName="SubmitJob",
        requestParameters={
            "jobName": "j",
            "containerOverrides": {"environment": [{"name": "K", "value": s("cloudtrail.SubmitJob")}]},
            "parameters": {"p": s("cloudtrail.SubmitJob.parameters")},
        },
    )
    register = copy.deepcopy(trail)
    register["detail"].update(
        eventName="RegisterJobDefinition",
        requestParameters={
            "jobDefinitionName": "d",
            "containerProperties": {"command": [s("cloudtrail.RegisterJobDefinition")]},
        },
    )
    return [container_job, eks_job, ecs_job, task, submit, register], secrets


def _invalid(event: dict[str, Any]) -> dict[str, Any]:
    """The same event made unusable (an account of the wrong shape): it is kept aside."""
    return {**copy.deepcopy(event), "account": "123", "id": "invalid-" + str(event.get("id"))}


def _truncated_lines(event: dict[str, Any], secrets: list[str]) -> list[str]:
    """The event's line cut in the middle of each secret it holds: the cut keeps the secret's first 16 characters."""
    text = json.dumps(event)
    return [text[: text.index(secret) + 16] for secret in secrets if secret in text]


def _run(args: list[str], store: Path, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "BATCHOPS_STORE": f"sqlite:///{store}"}
    return subprocess.run(
        [sys.executable, "-m", "batchops", *args], input=stdin, env=env, capture_output=True, text=True, timeout=120
    )


def _everything_written(folder: Path) -> bytes:
    return b"".join(path.read_bytes() for path in sorted(folder.iterdir()) if path.is_file())


def test_no_planted_secret_reaches_the_store_the_metrics_or_the_terminal(tmp_path: Path) -> None:
    events, secrets = _planted()
    assert len({x[:12] for x in secrets}) == len(secrets) == 16
    lines = [json.dumps(e) for e in events]
    lines += [json.dumps(_invalid(e)) for e in events]
    lines += [cut for e in events for cut in _truncated_lines(e, secrets)]
    stream = tmp_path / "events.jsonl"
    stream.write_text("\n".join(lines) + "\n")
    pretty = tmp_path / "events.json"  # the same through the multi-line reader, a truncated value last
    pretty.write_text("\n".join(json.dumps(e, indent=2) for e in [*events, *map(_invalid, events)]) + "\n" + lines[-1])
    written = tmp_path / "written"
    written.mkdir()
    store = written / "batchops.db"
    printed = []
    for source in (stream, pretty):
        done = _run(["ingest", str(source), "--emf-out", str(written / "emf.jsonl")], store)
        assert done.returncode == 3, done.stderr  # kept aside: said by the exit status
        assert "Traceback" not in done.stderr
        printed.append(done.stdout + done.stderr)
    for command in (["rejected", "--limit", "1000"], ["jobs"], ["jobs", "--format", "json"], ["summary"]):
        done = _run(command, store)
        assert done.returncode == 0, done.stderr
        printed.append(done.stdout + done.stderr)
    rejected = _run(["rejected", "--limit", "1000"], store).stdout
    assert rejected.count(" rejected ") >= len(events) + len(secrets)  # every invalid and every cut one
    assert {p.name for p in written.iterdir()} >= {"batchops.db", "emf.jsonl"}
    assert any(p.name.startswith("batchops.db.views-") for p in written.iterdir())
    everything = _everything_written(written) + "".join(printed).encode()
    assert b"123456789012" in everything and b"eks-job-1" in everything  # what may be kept is kept
    for secret in secrets:
        assert secret.encode() not in everything, secret
        assert secret[:12].encode() not in everything, secret[:12]


def test_a_kept_aside_record_is_the_envelope_the_reason_the_position_and_a_redacted_excerpt(make_app) -> None:
    events, secrets = _planted()
    app = make_app()
    text = "\n".join([json.dumps(_invalid(events[0])), *_truncated_lines(events[0], secrets)[:1]]) + "\n"
    Ingestor(app).ingest(read_events(io.BytesIO(text.encode())))
    kept = sorted(app.views.rejected(), key=lambda r: json.loads(r.body)["position"])
    assert [json.loads(r.body)["position"] for r in kept] == ["line 1", "line 2"]
    invalid = json.loads(kept[0].body)
    assert set(invalid) == {"position", "envelope", "excerpt"}
    assert invalid["envelope"]["id"].startswith("invalid-") and invalid["envelope"]["detail-type"] == (
        "Batch Job State Change"
    )
    assert kept[0].reason.startswith("invalid Batch Job State Change: account:")
    assert '"jobId"' in invalid["excerpt"] and "<redacted>" in invalid["excerpt"]
    cut = json.loads(kept[1].body)
    assert cut["envelope"]["account"] == "123456789012" and kept[1].account_id == "123456789012"
    assert cut["excerpt"].rstrip().endswith('"<redacted>"')  # the open string, scrubbed to the end of its line


def _pretty_events(count: int) -> list[str]:
    events = list(simulate(SimulationSettings(accounts=1, regions=1, jobs=150, seed=3)))[:count]
    assert len(events) == count
    return [json.dumps(e, indent=2) for e in events]


BAD_VALUES = {
    "nested 100,000 deep": "[" * 100_000 + "]" * 100_000,
    "a 5,000-digit integer": '{\n  "detail-type": "Batch Job State Change",\n  "version": ' + "7" * 5000 + "\n}",
    "an invalid byte": '{\n  "detail-type": "Batch Job State Change",\n  "id": "\udcff"\n}',
    "a truncated object": '{\n  "version": "0",\n  "detail": {\n    "jobId": "cut", \n    "container": {\n',
}


@pytest.mark.parametrize("bad", list(BAD_VALUES))
@pytest.mark.parametrize("batch_size", [None, "100"])
def test_a_bad_value_among_pretty_printed_events_is_one_record_and_every_good_one_is_projected(
    tmp_path: Path, bad: str, batch_size: str | None
) -> None:
    pretty = _pretty_events(1600)
    before, after = pretty[:800], pretty[800:]
    good = tmp_path / "good.json"
    good.write_text("\n".join(pretty) + "\n")
    broken = tmp_path / "broken.json"
    text = "\n".join(before) + "\n" + BAD_VALUES[bad] + "\n" + "\n".join(after) + "\n"
    broken.write_bytes(text.encode("utf-8", "surrogateescape"))
    bad_line = "\n".join(before).count("\n") + 2
    extra = ["--batch-size", batch_size] if batch_size else []
    expected = _run(["ingest", str(good), "--json"], tmp_path / "good.db")
    done = _run(["ingest", str(broken), "--json", *extra], tmp_path / "broken.db")
    assert done.returncode == 3 and "Traceback" not in done.stderr, done.stderr
    summary, wanted = json.loads(done.stdout), json.loads(expected.stdout)
    assert (summary["read"], summary["rejected"]) == (wanted["read"] + 1, 1)
    assert (summary["new"], summary["duplicates"]) == (wanted["new"], wanted["duplicates"])
    assert sum(summary["reasons"].values()) == 1 and "kept aside" in done.stderr
    jobs = _run(["jobs", "--format", "json"], tmp_path / "broken.db").stdout
    assert jobs == _run(["jobs", "--format", "json"], tmp_path / "good.db").stdout  # projected, not only stored
    listed = _run(["rejected"], tmp_path / "broken.db").stdout
    assert f"line {bad_line}: invalid JSON" in listed, listed


def test_an_event_over_eventbridges_limit_is_kept_aside_with_its_size_and_without_its_body(tmp_path: Path) -> None:
    def compact(value: Any) -> str:  # the entry's JSON as EventBridge measures it: UTF-8, no blanks
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)

    event = copy.deepcopy(sample("aws-batch--batch-job-state-change--failed"))
    event["detail"]["statusReason"] = "x" * (MAX_EVENT_BYTES + 10)
    big = compact(event)
    huge = compact({**event, "detail": {**event["detail"], "statusReason": "y" * 20_000_000}})
    fits = copy.deepcopy(event)
    fits["detail"]["statusReason"] = "z" * (MAX_EVENT_BYTES + 10 - (len(big.encode()) - MAX_EVENT_BYTES))
    assert len(compact(fits).encode()) == MAX_EVENT_BYTES  # at the limit, not over it
    good = sample("aws-batch--batch-job-state-change--succeeded")
    values = [json.loads(big), json.loads(huge), fits, good]
    for name, text in {
        "lines.jsonl": "\n".join(map(compact, values)) + "\n",
        "spaced.jsonl": "\n".join(json.dumps(v) for v in values) + "\n",  # blanks and escapes do not count
        "pretty.json": "\n".join(json.dumps(v, indent=2) for v in values) + "\n",
    }.items():
        source = tmp_path / name
        source.write_text(text)
        store = tmp_path / f"{name}.db"
        done = _run(["ingest", str(source), "--json"], store)
        assert done.returncode == 3, done.stderr
        summary = json.loads(done.stdout)
        assert (summary["read"], summary["new"], summary["rejected"]) == (4, 2, 2), (name, summary)
        kept = [json.loads(line) for line in _store_rows(store)]
        sizes = sorted(record["size"] for record in kept)
        assert sizes[0] == len(big.encode()), name
        assert sizes[1] >= len(huge.encode()), name  # a value too long to decode is measured as written
        assert all(record["excerpt"] == "" for record in kept)
        assert {record["envelope"]["detail-type"] for record in kept} == {"Batch Job State Change"}
        assert store.stat().st_size < 2_000_000  # neither body is stored


def _store_rows(store: Path) -> list[str]:
    import sqlite3
    from contextlib import closing

    with closing(sqlite3.connect(store)) as db:
        return [row[0] for row in db.execute("SELECT body FROM rejected_events")]


@pytest.mark.parametrize("shape", ["one line", "pretty-printed", "gzip"])
def test_a_huge_event_is_measured_without_being_read_whole(make_app, shape: str) -> None:
    event = {**ENVELOPE, "detail-type": "Batch Job State Change", "detail": {"jobId": "j", "statusReason": "y" * 10}}
    text = json.dumps(event, indent=2 if shape == "pretty-printed" else None).replace("y" * 10, "y" * 40_000_000)
    data = (text + "\n" + json.dumps(sample("aws-batch--batch-job-state-change--succeeded")) + "\n").encode()
    if shape == "gzip":
        data = gzip.compress(data, compresslevel=1)
    app = make_app()
    tracemalloc.start()
    try:
        summary = Ingestor(app).ingest(read_events(io.BytesIO(data)))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert (summary.read, summary.new, summary.rejected) == (2, 1, 1)
    assert peak < 30_000_000, peak  # the 40 MB line is never held whole
