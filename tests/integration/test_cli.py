"""The `batchops` command line, run as a user runs it (a subprocess, real files, real store)."""

from __future__ import annotations

import csv
import gzip
import io
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from contextlib import closing
from pathlib import Path

import pytest

from conftest import all_samples, sample

FAILED_JOB = "4c7599ae-0a82-49aa-ba5a-4727fcce14a8"


def run(args: list[str], store: Path, stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "BATCHOPS_STORE": f"sqlite:///{store}"}
    result = subprocess.run(
        [sys.executable, "-m", "batchops", *args], input=stdin, env=env, capture_output=True, text=True, timeout=120
    )
    if check and result.returncode != 0:
        raise AssertionError(f"batchops {args} exited {result.returncode}: {result.stderr}")
    return result


@pytest.fixture
def events_file(tmp_path: Path) -> Path:
    path = tmp_path / "events.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in all_samples()))
    return path


def test_ingest_then_list_jobs_as_json_csv_and_table(tmp_path: Path, events_file: Path) -> None:
    store = tmp_path / "b.db"
    out = run(["ingest", str(events_file)], store).stdout
    assert "read 30 events: 28 new, 0 duplicates, 0 rejected, 2 ignored" in out
    rows = json.loads(run(["jobs", "--format", "json"], store).stdout)
    assert len(rows) == 12  # 9 container jobs, one seen only submitted, two service jobs
    failed = run(["jobs", "--account", "123456789012", "--status", "failed", "--format", "csv"], store).stdout
    by_id = {r["job_id"]: r for r in csv.DictReader(io.StringIO(failed))}
    assert set(by_id) == {FAILED_JOB, "a7c17e65-6eb9-4d5c-ad20-90ae910f6660"}
    assert by_id[FAILED_JOB]["attempts"] == "2" and by_id[FAILED_JOB]["pricing"] == "spot"
    table = run(["jobs", "--status", "FAILED"], store).stdout
    assert "2 jobs" in table and "event-test" in table


def test_store_flag_works_after_the_command_too(tmp_path: Path, events_file: Path) -> None:
    other = tmp_path / "other.db"
    run(["ingest", str(events_file), "--store", f"sqlite:///{other}"], tmp_path / "unused.db")
    rows = json.loads(run(["--store", f"sqlite:///{other}", "jobs", "--format", "json"], tmp_path / "x.db").stdout)
    assert len(rows) == 12  # 9 container jobs, one seen only submitted, two service jobs


def test_stdin_and_json_arrays_are_read(tmp_path: Path) -> None:
    store = tmp_path / "b.db"
    array = json.dumps(
        [sample("aws-batch--batch-job-state-change--runnable"), sample("aws-batch--batch-job-state-change--failed")],
        indent=2,
    )
    out = run(["ingest", "-"], store, stdin=array).stdout
    assert "read 2 events: 2 new" in out
    assert json.loads(run(["jobs", "--format", "json"], store).stdout)[0]["status"] == "FAILED"


def test_a_bad_line_is_kept_and_reported_but_the_rest_is_ingested(tmp_path: Path) -> None:
    store = tmp_path / "b.db"
    good = json.dumps(sample("aws-batch--batch-job-state-change--succeeded"))
    done = run(["ingest", "-", "--json"], store, stdin=f'{{"value": "secret-in-a-broken-line", \n{good}\n', check=False)
    assert done.returncode == 3  # read to the end, but something was kept aside
    summary = json.loads(done.stdout)
    assert (summary["read"], summary["new"], summary["rejected"]) == (2, 1, 1)
    listed = run(["rejected"], store).stdout
    assert "line 1: invalid JSON" in listed
    assert b"secret-in-a-broken-line" not in _store_bytes(store)


def test_job_drilldown_and_its_errors(tmp_path: Path, events_file: Path) -> None:
    store = tmp_path / "b.db"
    run(["ingest", str(events_file)], store)
    text = run(["job", FAILED_JOB], store).stdout
    assert "state timeline" in text and "Host EC2 (instance i-0123456789abcdef0) terminated." in text
    assert "first-run-job-definition/default/" in text
    detail = json.loads(run(["job", FAILED_JOB, "--format", "json"], store).stdout)
    assert [a["attempt"] for a in detail["attempt_details"]] == [1, 2]
    missing = run(["job", "no-such-job"], store, check=False)
    assert missing.returncode == 2 and "no job 'no-such-job'" in missing.stderr and "batchops jobs" in missing.stderr


def test_attempts_as_json_csv_and_table(tmp_path: Path, events_file: Path) -> None:
    store = tmp_path / "b.db"
    run(["ingest", str(events_file)], store)
    rows = json.loads(run(["attempts", "--format", "json"], store).stdout)
    failed = [r for r in rows if r["job_id"] == FAILED_JOB]
    assert [(r["attempt"], r["exit_code"], r["status_reason"]) for r in failed] == [
        (1, None, "Host EC2 (instance i-0123456789abcdef0) terminated."),
        (2, 1, "Essential container in task exited"),
    ]
    assert failed[0]["instance_id"] == "i-0123456789abcdef0" and failed[0]["log_stream"] != failed[1]["log_stream"]
    listed = list(csv.DictReader(io.StringIO(run(["attempts", "--format", "csv"], store).stdout)))
    assert [(r["job_id"], r["attempt"]) for r in listed] == [(r["job_id"], str(r["attempt"])) for r in rows]
    assert "job attempts" in run(["attempts", "--format", "table"], store).stdout


def test_clear_errors_for_bad_input(tmp_path: Path) -> None:
    bad_store = run(["--store", "postgres://x", "jobs"], tmp_path / "b.db", check=False)
    assert bad_store.returncode == 2 and "use sqlite:///PATH" in bad_store.stderr
    no_file = run(["ingest", str(tmp_path / "nope.jsonl")], tmp_path / "b.db", check=False)
    assert no_file.returncode == 2 and "no such file" in no_file.stderr
    bad_status = run(["jobs", "--status", "DONE"], tmp_path / "b.db", check=False)
    assert bad_status.returncode == 2 and "unknown status 'DONE'" in bad_status.stderr


def test_a_store_url_naming_an_events_file_or_a_directory_is_a_clear_error_and_touches_nothing(
    tmp_path: Path, events_file: Path
) -> None:
    before = events_file.read_bytes()
    mistaken = run(["--store", f"sqlite:///{events_file}", "jobs"], tmp_path / "unused.db", check=False)
    assert mistaken.returncode == 2 and "Traceback" not in mistaken.stderr
    assert f"{events_file} is not a SQLite database" in mistaken.stderr
    assert f"batchops ingest {events_file}" in mistaken.stderr
    assert events_file.read_bytes() == before
    folder = run(["--store", f"sqlite:///{tmp_path}", "jobs"], tmp_path / "unused.db", check=False)
    assert folder.returncode == 2 and f"{tmp_path} is a directory" in folder.stderr


def test_replay_gives_the_same_rows_and_emits_no_metrics(tmp_path: Path, events_file: Path) -> None:
    store = tmp_path / "b.db"
    emf = tmp_path / "emf.jsonl"
    run(["ingest", str(events_file), "--emf-out", str(emf)], store)
    before = run(["jobs", "--format", "json"], store).stdout
    emitted = emf.read_text()
    out = run(["replay"], store).stdout
    assert "replayed" in out and "generation 2" in out
    assert run(["jobs", "--format", "json"], store).stdout == before
    assert emf.read_text() == emitted


def test_summary_and_instances(tmp_path: Path, events_file: Path) -> None:
    store = tmp_path / "b.db"
    run(["ingest", str(events_file)], store)
    summary = json.loads(run(["summary", "--format", "json"], store).stdout)
    assert summary["jobs"] == 12
    assert summary["jobs_by_status"]["123456789012"]["FAILED"] == 2
    assert summary["pipeline"] == {"ingested": 28, "duplicates_dropped": 0, "rejected": 0, "ignored": 2}
    instances = json.loads(run(["instances", "--format", "json"], store).stdout)
    assert {i["instance_id"] for i in instances} >= {"i-1234567890abcdef0", "i-f3a8506b"}
    assert "batchops summary" in run(["summary"], store).stdout


def test_simulate_writes_a_stream_the_ingest_reads(tmp_path: Path) -> None:
    store = tmp_path / "b.db"
    stream = tmp_path / "sim.jsonl"
    run(
        [
            "simulate",
            "--accounts",
            "2",
            "--regions",
            "1",
            "--jobs",
            "40",
            "--seed",
            "5",
            "--chaos",
            "--out",
            str(stream),
        ],
        store,
    )
    summary = json.loads(run(["ingest", str(stream), "--json"], store).stdout)
    assert summary["read"] == len(stream.read_text().splitlines())
    assert summary["duplicates"] > 0 and summary["rejected"] == 0
    assert b"simulated-user-secret" in stream.read_bytes()
    assert b"simulated-user-secret" not in _store_bytes(store)


def test_a_big_file_is_parsed_in_a_second_process_with_the_same_result(tmp_path: Path) -> None:
    from batchops.bootstrap import Settings, build_application
    from batchops.ingest import Ingestor
    from batchops.simulation import SimulationSettings, simulate
    from batchops.translation import RawEvent

    events = list(simulate(SimulationSettings(accounts=2, regions=1, jobs=400, seed=9, chaos=True)))
    stream = tmp_path / "big.jsonl"
    lines = [json.dumps(e) for e in events]
    lines.insert(5, '{"broken": ')  # a bad line in the middle: kept aside, the rest goes on
    stream.write_text("\n".join(lines) + "\n")
    assert stream.stat().st_size > 8_000_000, "big enough for the parallel path"
    done = run(["ingest", str(stream), "--json"], tmp_path / "big.db", check=False)
    assert done.returncode == 3
    summary = json.loads(done.stdout)
    assert (summary["read"], summary["rejected"]) == (len(events) + 1, 1)
    parallel = json.loads(run(["jobs", "--format", "json"], tmp_path / "big.db").stdout)
    serial = Settings.from_environment(store=f"sqlite:///{tmp_path / 'serial.db'}")
    app = build_application(serial)
    Ingestor(app).ingest(RawEvent(e, i) for i, e in enumerate(events))
    from batchops.price_service import costed_rows  # `jobs` lists the rows with their costs

    assert parallel == costed_rows(serial, app.views)[0]
    app.close()


def _store_bytes(store: Path) -> bytes:
    """Every file of a store: the event store's and its views' (`<store>.views-<N>`, with WAL files)."""
    files = sorted(p for p in store.parent.glob(store.name + "*") if p.is_file())
    assert any(".views-" in p.name for p in files)
    return b"".join(p.read_bytes() for p in files)


def _run_bytes(args: list[str], store: Path, stdin: bytes) -> subprocess.CompletedProcess:
    env = {**os.environ, "BATCHOPS_STORE": f"sqlite:///{store}"}
    return subprocess.run(
        [sys.executable, "-m", "batchops", *args], input=stdin, env=env, capture_output=True, timeout=120
    )


def test_a_gzip_compressed_file_or_pipe_is_read_like_the_plain_file(tmp_path: Path, events_file: Path) -> None:
    def summary(out: str | bytes) -> dict:
        return {k: v for k, v in json.loads(out).items() if k != "seconds"}

    plain = summary(run(["ingest", str(events_file), "--json"], tmp_path / "plain.db").stdout)
    compressed = tmp_path / "events.jsonl.gz"
    compressed.write_bytes(gzip.compress(events_file.read_bytes()))
    assert summary(run(["ingest", str(compressed), "--json"], tmp_path / "file.db").stdout) == plain
    piped = _run_bytes(["ingest", "-", "--json"], tmp_path / "pipe.db", compressed.read_bytes())
    assert piped.returncode == 0 and summary(piped.stdout) == plain
    rows = run(["jobs", "--format", "json"], tmp_path / "plain.db").stdout
    assert run(["jobs", "--format", "json"], tmp_path / "file.db").stdout == rows
    assert run(["jobs", "--format", "json"], tmp_path / "pipe.db").stdout == rows


def test_a_truncated_gzip_file_is_an_error_that_keeps_what_came_before_the_break(tmp_path: Path) -> None:
    store = tmp_path / "b.db"
    stream = tmp_path / "sim.jsonl"
    run(["simulate", "--accounts", "1", "--regions", "1", "--jobs", "60", "--seed", "2", "--out", str(stream)], store)
    whole = gzip.compress(stream.read_bytes())
    cut = tmp_path / "cut.jsonl.gz"
    cut.write_bytes(whole[: len(whole) // 2])
    failed = run(["ingest", str(cut)], store, check=False)
    assert failed.returncode == 1
    assert f"batchops: error: {cut}: the gzip data ends early or is corrupt" in failed.stderr
    assert "ingest a complete copy of the file again" in failed.stderr
    assert "Traceback" not in failed.stderr
    before = json.loads(run(["jobs", "--format", "json"], store).stdout)
    assert before  # what came before the break is recorded
    complete = tmp_path / "sim.jsonl.gz"
    complete.write_bytes(whole)
    run(["ingest", str(complete)], store)
    run(["ingest", str(stream)], tmp_path / "fresh.db")
    assert (
        run(["jobs", "--format", "json"], store).stdout
        == run(["jobs", "--format", "json"], tmp_path / "fresh.db").stdout
    )


def _recorded(store: Path) -> int:
    """Events in the store's event table so far (0 before the table exists)."""
    try:
        with closing(sqlite3.connect(store, timeout=10)) as db:
            return int(db.execute("SELECT COUNT(*) FROM stored_events").fetchone()[0])
    except sqlite3.OperationalError:
        return 0  # not created yet


def _as_from_a_terminal() -> None:
    """The child's signals as a shell started from a terminal leaves them: Ctrl-C handled, nothing blocked (a test
    runner's process may ignore or block some, and a child inherits both)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_SETMASK, [])


def test_ctrl_c_during_ingest_says_what_is_recorded_and_a_second_run_records_the_rest(tmp_path: Path) -> None:
    """Ctrl-C while events are recorded, with its worker process translating standard input. The input stays open
    until the signal is sent, so the run cannot have ended first: no race decides the outcome."""
    store = tmp_path / "b.db"
    stream = tmp_path / "sim.jsonl"
    run(["simulate", "--accounts", "1", "--regions", "1", "--jobs", "1000", "--seed", "3", "--out", str(stream)], store)
    lines = stream.read_bytes().splitlines(keepends=True)
    first_part = b"".join(lines[:10_000])  # more than the worker's chunks ahead, less than the whole stream
    env = {**os.environ, "BATCHOPS_STORE": f"sqlite:///{store}"}
    ingest = subprocess.Popen(
        [sys.executable, "-X", "faulthandler", "-m", "batchops", "ingest", "--batch-size", "500", "-"],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,  # its own process group, which gets the signal as a terminal's Ctrl-C does
        preexec_fn=_as_from_a_terminal,
    )
    assert ingest.stdin is not None and ingest.stdout is not None and ingest.stderr is not None
    # Both outputs are read as they come: a full pipe would block the ingest's writes, and so its exit.
    output: dict[str, bytes] = {}
    readers = [
        threading.Thread(target=lambda n=n, f=f: output.__setitem__(n, f.read()), name=f"test-reads-{n}")
        for n, f in (("out", ingest.stdout), ("err", ingest.stderr))
    ]
    for reader in readers:
        reader.start()
    try:
        writer = threading.Thread(target=ingest.stdin.write, args=(first_part,), name="test-feeds-ingest")
        writer.start()
        writer.join(timeout=60)
        assert not writer.is_alive(), "ingest did not read the first 10,000 lines in 60 s"
        ingest.stdin.flush()
        deadline = time.monotonic() + 60
        while not _recorded(store):  # a batch is stored: the run is under way, and still waits for more input
            assert time.monotonic() < deadline, "no batch recorded in 60 s"
            assert ingest.poll() is None, "ingest ended before the signal"
            time.sleep(0.02)
        os.killpg(ingest.pid, signal.SIGINT)
        try:
            returncode = ingest.wait(timeout=60)  # standard input still open: only the signal ends the run
        except subprocess.TimeoutExpired:
            os.kill(ingest.pid, signal.SIGABRT)  # faulthandler prints where every thread of it waits
            ingest.wait(timeout=30)
            os.killpg(ingest.pid, signal.SIGKILL)  # its worker holds stderr open too
            readers[1].join(timeout=30)
            blocked = signal.pthread_sigmask(signal.SIG_BLOCK, [])
            here = f"this process: SIGINT {signal.getsignal(signal.SIGINT)}, blocked {blocked}"
            pytest.fail(f"ingest did not end within 60 s of Ctrl-C ({here}):\n{output.get('err', b'').decode()}")
    finally:
        if ingest.poll() is None:
            ingest.kill()
        ingest.stdin.close()
        for reader in readers:
            reader.join(timeout=30)
    err = output["err"].decode()
    assert returncode == 130, err
    recorded = re.search(r"batchops: interrupted in standard input\. ([\d,]+) events are recorded", err)
    assert recorded and 0 < int(recorded[1].replace(",", "")) < len(lines), err
    assert "run the same ingest again" in err
    assert "Traceback" not in err  # from this process or its worker
    run(["ingest", "-"], store, stdin=stream.read_text())
    run(["ingest", str(stream)], tmp_path / "once.db")
    once = run(["jobs", "--format", "json"], tmp_path / "once.db").stdout
    assert run(["jobs", "--format", "json"], store).stdout == once


def test_a_reader_that_stops_early_ends_the_summary_quietly(tmp_path: Path, events_file: Path) -> None:
    """`batchops summary | head -1`: the rest of the report meets a closed pipe, and that is not a failure."""
    store = tmp_path / "b.db"
    run(["ingest", str(events_file)], store)
    env = {**os.environ, "BATCHOPS_STORE": f"sqlite:///{store}"}
    summary = subprocess.Popen(
        [sys.executable, "-m", "batchops", "summary"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert summary.stdout is not None and summary.stderr is not None
    assert summary.stdout.readline()  # the first line, as `head -1` takes it; then the reader goes away
    summary.stdout.close()
    assert summary.wait(timeout=60) == 0
    assert b"Traceback" not in summary.stderr.read()


def test_a_terminal_table_shows_the_first_rows_and_says_how_to_see_all(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from batchops import cli

    store, stream = tmp_path / "b.db", tmp_path / "events.jsonl"
    simulated = ["simulate", "--accounts", "1", "--regions", "1", "--jobs", "260", "--seed", "4", "--out", str(stream)]
    run(simulated, store)
    run(["ingest", str(stream)], store)
    assert cli.main(["--store", f"sqlite:///{store}", "jobs", "--format", "json"]) == 0  # every row
    jobs = len(json.loads(capsys.readouterr().out))
    assert jobs > cli.TABLE_ROWS
    assert cli.main(["--store", f"sqlite:///{store}", "jobs"]) == 0
    shown = capsys.readouterr()
    assert f"the first {cli.TABLE_ROWS} jobs (more match)" in shown.out
    assert f"more jobs match than the {cli.TABLE_ROWS} shown" in shown.err and "--format csv or json" in shown.err
    assert cli.main(["--store", f"sqlite:///{store}", "jobs", "--limit", "7"]) == 0  # asked for: no note
    shown = capsys.readouterr()
    assert "7 jobs" in shown.out and not shown.err


def test_an_environment_variable_batchops_cannot_use_is_one_line_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from batchops.cli import main

    monkeypatch.setenv("BATCHOPS_RETENTION_DAYS", "ninety")
    assert main(["--store", f"sqlite:///{tmp_path / 'b.db'}", "jobs"]) == 2
    err = capsys.readouterr().err
    assert err == "batchops: error: BATCHOPS_RETENTION_DAYS='ninety': give a whole number of days, 1 or more\n"


def test_the_readme_lists_every_environment_variable_batchops_reads() -> None:
    from batchops.bootstrap import ENVIRONMENT

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    for name, meaning in ENVIRONMENT.items():
        assert f"| `{name}` | {meaning} |" in readme, name
    sources = Path(__file__).resolve().parents[2] / "shared" / "batchops"
    read = {m for f in sources.rglob("*.py") for m in re.findall(r"\bBATCHOPS_[A-Z_]+", f.read_text())}
    assert read <= set(ENVIRONMENT) | {"BATCHOPS_"}, read - set(ENVIRONMENT)


def test_waiting_jobs_oldest_first_with_their_reason_and_in_the_summary(tmp_path: Path) -> None:
    store, stream = tmp_path / "b.db", tmp_path / "events.jsonl"
    run(["simulate", "--accounts", "2", "--regions", "1", "--jobs", "300", "--seed", "3", "--out", str(stream)], store)
    run(["ingest", str(stream)], store)
    every = json.loads(run(["jobs", "--format", "json"], store).stdout)
    expected = {
        j["job_id"] for j in every if j["status"] in ("SUBMITTED", "PENDING", "RUNNABLE", "SCHEDULED", "STARTING")
    }
    assert expected  # the simulated workload leaves some jobs waiting

    waiting = json.loads(run(["jobs", "--waiting", "--format", "json"], store).stdout)
    assert {w["job_id"] for w in waiting} == expected
    ages = [w["waiting_seconds"] for w in waiting]
    assert ages == sorted(ages, reverse=True) and ages[-1] > 0
    assert all(w["reason"] for w in waiting)  # a blocked queue or the job's own status reason
    # A job that never ran has no compute environment of its own: it shows its queue's, where that queue's jobs ran.
    ran_in = {(j["account_id"], j["region"], j["queue"]): set() for j in every}
    for j in every:
        if j["compute_environment"]:
            ran_in[j["account_id"], j["region"], j["queue"]].add(j["compute_environment"])
    never_ran = [w for w in waiting if not next(j for j in every if j["job_id"] == w["job_id"])["compute_environment"]]
    assert never_ran
    for w in never_ran:
        assert w["compute_environment"] in (ran_in[w["account_id"], w["region"], w["queue"]] or {None})
    assert any(w["compute_environment"] for w in never_ran)
    oldest_age = ages[0]
    assert (
        json.loads(run(["jobs", "--older-than", f"{oldest_age + 3600:.0f}s", "--format", "json"], store).stdout) == []
    )
    # A threshold in the middle of the widest gap between two waits: the runs' clocks differ by far less.
    gap = max(range(len(ages) - 1), key=lambda i: ages[i] - ages[i + 1])
    assert ages[gap] - ages[gap + 1] > 10
    threshold = f"{(ages[gap] + ages[gap + 1]) / 2:.0f}s"
    older = json.loads(run(["jobs", "--older-than", threshold, "--format", "json"], store).stdout)
    assert [w["job_id"] for w in older] == [w["job_id"] for w in waiting[: gap + 1]]

    summary = json.loads(run(["summary", "--format", "json"], store).stdout)["waiting"]
    assert summary["jobs"] == len(waiting) and summary["oldest"]["job_id"] == waiting[0]["job_id"]
    assert sum(q["waiting"] for q in summary["by_queue"]) == len(waiting)
    assert "waiting jobs: " in run(["summary"], store).stdout

    bad = run(["jobs", "--waiting", "--status", "RUNNING"], store, check=False)
    assert bad.returncode == 2 and "not RUNNING" in bad.stderr
    bad = run(["jobs", "--older-than", "soon"], store, check=False)
    assert bad.returncode == 2 and "give a number with s, m, h or d" in bad.stderr
