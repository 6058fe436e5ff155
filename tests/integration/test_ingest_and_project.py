"""The core pipeline on the embedded store: ingest → event store → projections → replay."""

from __future__ import annotations

import copy
import gzip
import io
import json
import os
import signal
import sqlite3
import threading
import tracemalloc
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

import pytest
from eventsourcing.persistence import IntegrityError

from batchops import ingest as ingest_module
from batchops import translation
from batchops.adapters.sqlite import parallel_replay as replay_workers
from batchops.compressed import UnreadableInput
from batchops.inbound import Parsed, translate
from batchops.ingest import Ingestor, read_events
from batchops.projection import JOB_FIELDS
from batchops.translation_workers import RestOrder, translate_in_worker
from batchops.tuning import Tuning
from batchops.views import RejectedEvent
from conftest import all_samples, ingest, rows_by_job, sample

FAILED_JOB = ("123456789012", "us-east-1", "4c7599ae-0a82-49aa-ba5a-4727fcce14a8")


def _job_events() -> list[dict]:
    names = [
        "aws-batch--batch-job-state-change--runnable",
        "aws-batch--batch-job-queue-blocked",
        "aws-batch--batch-job-state-change--running",
        "aws-ecs--ecs-task-state-change--batch-on-ec2",
        "aws-batch--batch-job-state-change--failed",
        "aws-batch--cloudtrail-createcomputeenvironment",
    ]
    return [sample(n) for n in names]


def test_samples_give_the_contract_rows(make_app) -> None:
    app = make_app()
    ingestor = ingest(app, all_samples())
    assert ingestor.summary.read == len(all_samples())
    assert ingestor.summary.rejected == 0 and ingestor.summary.ignored == 2
    rows = rows_by_job(app)
    row = rows[FAILED_JOB]
    assert list(row)[: len(JOB_FIELDS)] == list(JOB_FIELDS)
    assert row["status"] == "FAILED" and row["attempts"] == 2 and row["exit_code"] == 1
    assert row["compute_environment"] == "my-ce" and row["pricing"] == "spot"
    assert row["started_at"] == "2022-01-11T23:55:00.000Z" and row["stopped_at"] == "2022-01-12T01:02:03.000Z"
    assert row["run_seconds"] == 4023.0
    assert row["blocked_reason"].startswith("CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY")
    assert row["availability_zone"] == "us-east-1b"  # from the ECS task of attempt 2
    assert row["failure_kind"] == "exit_nonzero"


def test_reversed_and_duplicated_delivery_gives_the_same_rows(make_app) -> None:
    events = _job_events()
    in_order = make_app("in_order")
    ingest(in_order, events)
    shuffled = make_app("shuffled")
    ingestor = ingest(shuffled, [*reversed(events), *events], batch_size=2)
    assert ingestor.summary.duplicates == len(events)
    assert rows_by_job(shuffled) == rows_by_job(in_order)


def test_saves_whose_views_were_never_updated_are_projected_by_the_next_run(make_app) -> None:
    events = _job_events()
    reference = make_app("reference")
    ingest(reference, events)
    crashed = make_app("crashed")
    crashed.record([translate(e) for e in events[:4]], project=False)  # saved; the process dies before the views
    assert list(crashed.views.jobs()) == []
    crashed.close()
    reopened = make_app("crashed")
    ingest(reopened, events[2:])  # the run catches the views up first, then goes on (two events are duplicates)
    assert rows_by_job(reopened) == rows_by_job(reference)


def test_a_late_running_never_overwrites_a_terminal_state(make_app) -> None:
    app = make_app()
    ingest(app, [sample("aws-batch--batch-job-state-change--failed")])
    ingest(app, [sample("aws-batch--batch-job-state-change--running")])
    row = rows_by_job(app)[FAILED_JOB]
    assert row["status"] == "FAILED" and row["attempts"] == 2


def test_same_envelope_id_with_different_content_is_not_a_duplicate(make_app) -> None:
    running = sample("aws-batch--batch-job-state-change--running")
    failed = sample("aws-batch--batch-job-state-change--failed")
    assert running["id"] == failed["id"]  # both samples carry the placeholder id "<uuid>"
    app = make_app()
    summary = ingest(app, [running, failed]).summary
    assert summary.new == 2 and summary.duplicates == 0


def _instance_and_warning(ci_arn: str) -> tuple[dict, dict]:
    """An ECS container instance event (i-0abc, m5.large, us-east-1d, CE my-ce) and a spot interruption warning for
    it."""
    instance = copy.deepcopy(sample("aws-ecs--ecs-container-instance-state-change--active"))
    instance.update(account="123456789012", region="us-east-1", id="ci-1")
    instance["detail"].update(
        containerInstanceArn=ci_arn,
        clusterArn="arn:aws:ecs:us-east-1:123456789012:cluster/AWSBatch-my-ce-1a2b3c4d",
        ec2InstanceId="i-0abc",
    )
    instance["detail"]["attributes"] += [
        {"name": "ecs.instance-type", "value": "m5.large"},
        {"name": "ecs.availability-zone", "value": "us-east-1d"},
    ]
    warning = copy.deepcopy(sample("aws-ec2--ec2-spot-instance-interruption-warning"))
    warning.update(account="123456789012", region="us-east-1", resources=["arn:aws:ec2:us-east-1d:instance/i-0abc"])
    warning["detail"]["instance-id"] = "i-0abc"
    return instance, warning


def test_instance_facts_arriving_after_the_job_still_join(make_app) -> None:
    job = copy.deepcopy(sample("aws-batch--batch-job-state-change--running"))
    instance, warning = _instance_and_warning(job["detail"]["container"]["containerInstanceArn"])

    late = make_app("late")
    ingest(late, [job])
    assert rows_by_job(late)[FAILED_JOB]["instance_id"] is None
    ingest(late, [instance])
    ingest(late, [warning])
    row = rows_by_job(late)[FAILED_JOB]
    assert (row["instance_id"], row["instance_type"], row["availability_zone"]) == ("i-0abc", "m5.large", "us-east-1d")
    assert row["pricing"] == "spot"  # no CloudTrail record: a reclaimed instance makes its CE a spot CE
    assert row["spot_interrupted"] is True

    early = make_app("early")
    ingest(early, [warning, instance, job])
    assert rows_by_job(early) == rows_by_job(late)
    [listed] = list(early.views.instances())
    assert listed["jobs_run"] == 1 and listed["compute_environment"] == "my-ce" and listed["pricing"] == "spot"


def test_an_instance_change_that_reaches_thousands_of_jobs_holds_few_of_their_rows_at_once(
    make_app,
) -> None:
    running = sample("aws-batch--batch-job-state-change--running")
    instance, warning = _instance_and_warning(running["detail"]["container"]["containerInstanceArn"])

    def interrupt_an_instance_that_ran(jobs: int) -> int:
        """Python memory at its peak while the interruption rebuilds the rows of every job the instance ran."""
        app = make_app(f"ran-{jobs}", tuning=Tuning(job_rows_queued=100))
        events = [instance]
        for i in range(jobs):
            job = copy.deepcopy(running)
            job["id"] = f"event-{i}"
            job["detail"]["jobId"] = f"job-{i:05d}"
            events.append(job)
        ingest(app, events)
        tracemalloc.start()
        try:
            ingest(app, [warning])
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        rows = list(app.views.jobs())
        assert len(rows) == jobs and all(r["spot_interrupted"] is True and r["pricing"] == "spot" for r in rows)
        return peak

    few, many = interrupt_an_instance_that_ran(200), interrupt_an_instance_that_ran(2000)
    # Queued all at once, 1,800 more rows of a few KB each would be several MB more.
    assert many - few < 2_000_000, (few, many)


def test_no_secret_reaches_the_store(make_app, tmp_path: Path) -> None:
    app = make_app()
    secret_job = copy.deepcopy(sample("aws-batch--batch-job-state-change--runnable"))
    secret_job["detail"]["container"]["environment"] = [{"name": "DB_PASSWORD", "value": "planted-secret-1"}]
    secret_job["detail"]["container"]["command"] = ["run", "--token", "planted-secret-2"]
    secret_job["detail"]["parameters"] = {"key": "planted-secret-3"}
    unknown = copy.deepcopy(secret_job)
    unknown["detail-type"] = "Batch Something Else"
    ingest(app, [*all_samples(), secret_job, unknown])
    app.close()
    blob = b"".join(p.read_bytes() for p in tmp_path.rglob("*") if p.is_file())
    for secret in (b"this-is-a-user-secret", b"planted-secret-1", b"planted-secret-2", b"planted-secret-3"):
        assert secret not in blob


def test_unusable_events_are_kept_with_their_reason_and_do_not_stop_the_batch(make_app) -> None:
    app = make_app()
    bad = {
        "detail-type": "Batch Job State Change",
        "account": "1",
        "region": "r",
        "time": "2025-01-01T00:00:00Z",
        "detail": {"status": "RUNNING"},
    }
    summary = ingest(app, [bad, sample("aws-batch--batch-job-state-change--succeeded"), {"x": 1}]).summary
    assert (summary.read, summary.new, summary.rejected) == (3, 1, 2)
    kept = app.views.rejected()
    assert {k.reason.split(":")[0] for k in kept} == {"invalid Batch Job State Change", "no 'detail-type'"}
    assert len(list(app.views.jobs())) == 1


def test_the_summary_counts_undecodable_lines_under_one_reason_and_keeps_few_reasons(make_app) -> None:
    app = make_app()
    lines = [b"{not json %d" % i for i in range(300)]  # each line's own error message, position and line number
    lines += [
        json.dumps({**sample("aws-batch--batch-job-state-change--succeeded"), "detail-type": f"Made Up {i}"}).encode()
        for i in range(ingest_module.REASONS_KEPT + 20)
    ]
    summary = Ingestor(app, batch_size=100).ingest(read_events(io.BytesIO(b"\n".join(lines) + b"\n")))
    assert summary.rejected == len(lines)
    undecodable = {reason: n for reason, n in summary.reasons.items() if reason.startswith("invalid JSON")}
    assert sum(undecodable.values()) == 300 and len(undecodable) <= 2  # the first line is read as a whole document too
    assert len(summary.reasons) == ingest_module.REASONS_KEPT + 1
    assert summary.reasons[ingest_module.OTHER_REASONS] == 120 - (ingest_module.REASONS_KEPT - len(undecodable))
    assert sum(summary.reasons.values()) == len(lines)
    kept = app.views.rejected(limit=len(lines))
    assert len(kept) == len(lines)  # each with its own reason, line number included
    assert sum(1 for k in kept if k.reason.startswith("line 7: invalid JSON")) == 1


def _indexes(app, generation: int) -> set[str]:
    """The indexes in a generation's views file (generation number left out of their names)."""
    with closing(sqlite3.connect(app.views.generation_file(generation))) as db:
        names = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL")}
    return {n.replace(f"_{generation}_", "_N_") for n in names}


def test_replay_rebuilds_the_same_projection_into_a_fresh_generation(make_app) -> None:
    app = make_app(tuning=Tuning(replay_page=4))
    ingest(app, all_samples(), batch_size=3)
    live_jobs = list(app.views.jobs())
    live_instances = list(app.views.instances())
    live_timeline = list(app.views.timeline())
    generation = app.views.current_generation()
    live_indexes = _indexes(app, generation)
    applied = app.replay()
    assert applied == app.stored_events()
    assert app.views.current_generation() == generation + 1
    assert list(app.views.jobs()) == live_jobs
    assert list(app.views.instances()) == live_instances
    assert list(app.views.timeline()) == live_timeline
    # The rebuild writes its job rows before their indexes: the generation readers now see has every one of them.
    assert _indexes(app, generation + 1) == live_indexes >= {"jobs_N_job_id", "jobs_N_status", "placements_N_ci"}


def _only_this_thread() -> None:
    """Wait for threads an earlier test left ending (a pool shutting down, a server stopping): the workers are forked,
    and so see a monkeypatch, only when this process runs one thread. Fails naming any thread still alive after 30 s."""
    for thread in threading.enumerate():
        if thread is not threading.current_thread():
            thread.join(timeout=30)
    alive = [t.name for t in threading.enumerate() if t is not threading.current_thread()]
    assert not alive, f"threads still running, the worker would be spawned and not see the patch: {alive}"


@contextmanager
def _fails_after(seconds: int, message: str) -> Iterator[None]:
    """Raise instead of hanging (the alarm is this process's: a forked worker does not inherit it)."""

    def stop(signum: int, frame: object) -> None:
        raise TimeoutError(message)

    previous = signal.signal(signal.SIGALRM, stop)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def test_replay_on_two_cores_gives_the_same_projection_even_when_its_worker_dies(make_app, monkeypatch) -> None:
    app = make_app(tuning=Tuning(replay_page=2, parallel_replay_min_events=0))
    ingest(app, all_samples(), batch_size=3)
    live = (list(app.views.jobs()), list(app.views.instances()), list(app.views.timeline()))
    assert app.replay() == app.stored_events()
    assert (list(app.views.jobs()), list(app.views.instances()), list(app.views.timeline())) == live

    # A worker that dies before handing back any row: its half is rebuilt in this process.
    _only_this_thread()  # so the worker is forked and sees the patch
    monkeypatch.setattr(replay_workers, "_worker", lambda *args: os._exit(3))
    assert app.replay() == app.stored_events()
    assert (list(app.views.jobs()), list(app.views.instances()), list(app.views.timeline())) == live

    # One that dies holding the write turn (its last argument): this process goes on writing without it.
    monkeypatch.setattr(replay_workers, "_worker", lambda *args: (args[-1].acquire(), os._exit(3)))
    with _fails_after(60, "the replay still waits for the write turn of a worker that died"):
        assert app.replay() == app.stored_events()
    assert (list(app.views.jobs()), list(app.views.instances()), list(app.views.timeline())) == live


def test_a_replay_by_another_process_retires_the_views_an_ingest_has_open_and_loses_nothing(make_app) -> None:
    events = all_samples()
    ingesting = make_app()  # two applications on one store: two connections, as two processes have
    replaying = make_app(tuning=Tuning(replay_page=2))
    ingest(ingesting, events[: len(events) // 2], batch_size=3)
    old = ingesting.views.current_generation()
    replaying.replay()
    assert not replaying.views.generation_file(old).exists()  # the retired generation's file is gone
    ingest(ingesting, events[len(events) // 2 :], batch_size=3)  # its connection had the old file attached
    assert ingesting.views.current_generation() == replaying.views.current_generation() == old + 1
    assert ingesting.views.position() == ingesting.stored_events()
    reference = make_app("reference")
    ingest(reference, events, batch_size=3)
    assert list(ingesting.views.jobs()) == list(replaying.views.jobs()) == list(reference.views.jobs())
    assert list(replaying.views.instances()) == list(reference.views.instances())


def test_ingest_after_replay_continues_on_the_new_generation(make_app) -> None:
    app = make_app()
    ingest(app, [sample("aws-batch--batch-job-state-change--runnable")])
    app.replay()
    ingest(app, [sample("aws-batch--batch-job-state-change--failed")])
    assert rows_by_job(app)[FAILED_JOB]["status"] == "FAILED"
    assert app.views.position() == app.stored_events()


def test_drilldown_shows_timeline_attempts_and_logs(make_app) -> None:
    app = make_app()
    ingest(app, _job_events())
    [job] = app.views.job(FAILED_JOB[2])
    assert [(t["status"], t["attempt"]) for t in job["timeline"]] == [("RUNNABLE", 0), ("RUNNING", 1), ("FAILED", 2)]
    first, second = job["attempt_details"]
    assert first["status_reason"] == "Host EC2 (instance i-0123456789abcdef0) terminated."
    assert first["instance_id"] == "i-0123456789abcdef0"  # each attempt names its own instance
    assert second["exit_code"] == 1 and second["log_group"] == "/aws/batch/job"
    assert second["log_stream"].startswith("first-run-job-definition/default/")


def _stream_file(path: Path) -> Path:
    """A simulated stream as JSON Lines, with an invalid line in the middle."""
    from batchops.simulation import SimulationSettings, simulate_with_truth

    events, _ = simulate_with_truth(SimulationSettings(accounts=1, regions=2, jobs=40, seed=5, chaos=True))
    lines = [json.dumps(e) for e in events]
    lines.insert(len(lines) // 2, '{"detail-type": "Batch Job State Change", "detail": {')
    path.write_text("\n".join(lines) + "\n")
    return path


HERE = Tuning(parallel_translation_min_bytes=0)
"""Translated in this process."""
IN_WORKER = Tuning(parallel_translation_min_bytes=1, translation_chunk_lines=7)
"""Translated by a worker process, 7 lines a chunk."""


def _ingest_file(app, path: Path, tuning: Tuning) -> dict:
    with path.open("rb") as stream:
        return Ingestor(app, batch_size=50, project_every=120).ingest(read_events(stream, tuning)).as_dict()


def test_a_file_translated_by_the_worker_process_gives_what_this_process_gives(make_app, tmp_path: Path) -> None:
    path = _stream_file(tmp_path / "events.jsonl")
    here = make_app("here")
    expected = _ingest_file(here, path, HERE)
    assert expected["rejected"] == 1
    there = make_app("there")
    with path.open("rb") as stream:
        assert read_events(stream, IN_WORKER).parallel_worthwhile()
    assert _ingest_file(there, path, IN_WORKER) == expected
    assert rows_by_job(there) == rows_by_job(here)
    assert [r.reason for r in there.views.rejected()] == [r.reason for r in here.views.rejected()]


def _workers_die_after_three_chunks(monkeypatch, after: int = 3) -> list[int]:
    """Make a forked translation worker exit after its third chunk (or `after`); the list collects the first line
    number of every chunk translated, here or in a worker."""
    parent = os.getpid()
    chunks: list[int] = []
    translate_numbered = translation.translate_numbered

    def dies_after_three_chunks(lines: Any) -> bytes:
        lines = list(lines)
        chunks.append(lines[0][0] if lines else 0)
        if os.getpid() != parent and len(chunks) > after:
            os._exit(3)
        return translate_numbered(lines)

    monkeypatch.setattr(translation, "translate_numbered", dies_after_three_chunks)
    _only_this_thread()  # so the worker is forked and sees the patch
    return chunks


def test_when_the_worker_process_dies_mid_file_this_process_translates_the_rest(
    make_app, tmp_path: Path, monkeypatch
) -> None:
    path = _stream_file(tmp_path / "events.jsonl")
    here = make_app("here")
    expected = _ingest_file(here, path, HERE)
    _workers_die_after_three_chunks(monkeypatch)
    crashed = make_app("crashed")
    assert _ingest_file(crashed, path, IN_WORKER) == expected
    assert rows_by_job(crashed) == rows_by_job(here)


def test_a_store_made_anew_where_one_was_deleted_does_not_take_up_its_leftover_views(make_app, tmp_path: Path) -> None:
    events = _job_events()
    old = make_app("store")
    ingest(old, events)
    old.replay()  # views in generation 2's file
    old.close()
    leftovers = sorted(p.name for p in tmp_path.glob("store.db.views-*"))
    assert leftovers == ["store.db.views-2"]
    for path in tmp_path.glob("store.db*"):
        if ".views-" not in path.name:
            path.unlink()  # the store deleted, its views file forgotten
    (tmp_path / "store.db.views-1").write_bytes((tmp_path / "store.db.views-2").read_bytes())
    new = make_app("store")
    assert list(new.views.jobs()) == []  # not the old store's rows
    ingest(new, events[:2])
    assert len(list(new.views.jobs())) == 1
    assert new.replay() == new.stored_events()  # generation 2 rebuilt from this store, not the leftover file
    assert len(list(new.views.jobs())) == 1


def test_two_ingests_into_one_store_at_once_converge_to_what_one_would_record(make_app) -> None:
    """Two runs on one store, taking turns with overlapping batches: a save that the other run beat raises inside,
    the batch is recorded again on fresh state, and the store and views end as a single run leaves them."""
    from batchops.simulation import SimulationSettings, simulate_with_truth

    events, _ = simulate_with_truth(SimulationSettings(accounts=1, regions=2, jobs=40, seed=5, chaos=True))
    facts = [f for f in map(translate, events) if isinstance(f, Parsed)]
    first, second = make_app("shared"), make_app("shared")
    conflicts: list[int] = []
    for run in (first, second):

        def record(batch: Any, *, project: bool = True, record: Any = run.record) -> Any:
            try:
                return record(batch, project=project)
            except IntegrityError:
                conflicts.append(len(batch))
                raise

        run.record = record  # type: ignore[method-assign]
    first.record_with_retry(facts[:20], project=False)
    second.record_with_retry(facts[:20], project=False)  # both now hold the same aggregates in their caches
    for start in range(20, len(facts), 25):
        first.record_with_retry(facts[start : start + 25], project=False)
        second.record_with_retry(facts[max(20, start - 10) : start + 15], project=False)  # overlaps, goes stale
        if start % 100 == 20:
            first.project_saved()
    first.project_saved()
    second.project_saved()

    alone = make_app("alone")
    alone.record(facts)
    assert conflicts  # the runs did collide
    assert rows_by_job(first) == rows_by_job(alone)
    assert first.stored_events() == alone.stored_events()


def test_a_compressed_file_through_the_worker_gives_what_the_plain_file_gives_and_a_break_keeps_what_came_before(
    make_app, tmp_path: Path
) -> None:
    path = _stream_file(tmp_path / "events.jsonl")
    plain = make_app("plain")
    expected = _ingest_file(plain, path, HERE)
    compressed = tmp_path / "events.jsonl.gz"
    compressed.write_bytes(gzip.compress(path.read_bytes()))
    with compressed.open("rb") as stream:
        assert read_events(stream, IN_WORKER).parallel_worthwhile()
    unpacked = make_app("unpacked")
    assert _ingest_file(unpacked, compressed, IN_WORKER) == expected
    assert rows_by_job(unpacked) == rows_by_job(plain)

    cut = tmp_path / "cut.jsonl.gz"
    cut.write_bytes(compressed.read_bytes()[: compressed.stat().st_size * 2 // 3])
    read_before_break = []
    for name, tuning in (("worker", IN_WORKER), ("here", HERE)):
        app = make_app(f"cut-{name}")
        ingestor = Ingestor(app, batch_size=50, project_every=120)
        with cut.open("rb") as stream, pytest.raises(UnreadableInput, match="ends early or is corrupt"):
            ingestor.ingest(read_events(stream, tuning))
        read_before_break.append(ingestor.summary.read)
        assert app.stored_events() > 0 and len(rows_by_job(app)) > 0  # what came before the break is recorded
    assert read_before_break[0] == read_before_break[1] > 0
    app = make_app("cut-worker")
    assert _ingest_file(app, compressed, IN_WORKER)["read"] == expected["read"]  # the whole file again: nothing is lost
    assert rows_by_job(app) == rows_by_job(plain)


def test_a_byte_order_mark_at_the_start_of_a_file_is_not_an_event(make_app, tmp_path: Path) -> None:
    """Some Windows tools start a UTF-8 file with a byte order mark: the first event must not be rejected for it."""
    path = _stream_file(tmp_path / "events.jsonl")
    expected = _ingest_file(make_app("plain"), path, HERE)
    for blank_first in (False, True):
        marked = tmp_path / f"marked-{blank_first}.jsonl"
        marked.write_bytes(b"\xef\xbb\xbf" + (b"\n" if blank_first else b"") + path.read_bytes())
        for name, tuning in (("here", HERE), ("worker", IN_WORKER)):
            summary = _ingest_file(make_app(f"marked-{blank_first}-{name}"), marked, tuning)
            assert summary == expected  # the one rejected event is the bad line in the middle, as without the mark


def test_a_piped_stream_fed_to_the_worker_gives_what_this_process_gives_even_when_the_worker_dies(
    make_app, tmp_path: Path, monkeypatch
) -> None:
    import subprocess

    path = _stream_file(tmp_path / "events.jsonl")
    here = make_app("here")
    expected = _ingest_file(here, path, HERE)

    def ingest_piped(app: Any) -> dict:
        with subprocess.Popen(["cat", str(path)], stdout=subprocess.PIPE) as cat:  # a real pipe, and no thread
            assert cat.stdout is not None
            reader = read_events(cat.stdout, IN_WORKER)
            assert reader.parallel_worthwhile()
            return Ingestor(app, batch_size=50, project_every=120).ingest(reader).as_dict()

    fed = make_app("fed")
    assert ingest_piped(fed) == expected
    assert rows_by_job(fed) == rows_by_job(here)

    chunks = _workers_die_after_three_chunks(monkeypatch)
    crashed = make_app("crashed")
    assert ingest_piped(crashed) == expected
    assert chunks  # this process translated what the dead worker was handed, and the rest
    assert rows_by_job(crashed) == rows_by_job(here)


def _simulated(jobs: int = 200) -> list[dict]:
    from batchops.simulation import SimulationSettings, simulate_with_truth

    events, _ = simulate_with_truth(SimulationSettings(accounts=1, regions=2, jobs=jobs, seed=7, chaos=True))
    return events


def test_a_pretty_printed_array_and_values_one_after_the_other_give_what_json_lines_give(make_app) -> None:
    events = _simulated(60)
    as_lines = b"".join(json.dumps(e).encode() + b"\n" for e in events)
    as_array = json.dumps(events, indent=2).encode()
    as_jq = b"".join(json.dumps(e, indent=2).encode() + b"\n" for e in events)  # what `jq .` prints
    expected = None
    for name, data in (("lines", as_lines), ("array", as_array), ("jq", as_jq)):
        app = make_app(name)
        summary = Ingestor(app, batch_size=50).ingest(read_events(io.BytesIO(data))).as_dict()
        assert summary["read"] == len(events) and summary["rejected"] == 0
        expected = expected or rows_by_job(app)
        assert rows_by_job(app) == expected


def test_a_big_pretty_printed_array_is_read_in_flat_memory() -> None:
    data = json.dumps(_simulated(300), indent=2).encode()
    assert len(data) > 8_000_000
    tracemalloc.start()
    small_reads = Tuning(json_read_bytes=64 * 1024, json_near_end=16 * 1024)
    count = sum(1 for raw in read_events(io.BytesIO(data), small_reads) if raw.error is None)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert count == len(json.loads(data))
    assert peak < 2_000_000  # parsed whole, the events alone take several times the 8 MB of text


def test_a_value_that_cannot_be_decoded_is_kept_with_its_line_and_the_values_after_it_are_read(make_app) -> None:
    events = _simulated(20)
    pretty = [json.dumps(e, indent=2) for e in events]
    broken = '{\n  "id": "broken",\n  "detail": {"a": }\n}'
    middle = len(pretty) // 2
    text = "\n".join([*pretty[:middle], broken, *pretty[middle:]]) + "\n"
    broken_line = "\n".join(pretty[:middle]).count("\n") + 2
    app = make_app()
    summary = Ingestor(app, batch_size=50).ingest(read_events(io.BytesIO(text.encode()))).as_dict()
    assert summary["new"] + summary["duplicates"] == len(events)  # every event before and after the broken one
    assert summary["rejected"] >= 1
    reasons = [k.reason for k in app.views.rejected(limit=50)]
    assert any(r.startswith(f"line {broken_line}: invalid JSON") for r in reasons), reasons  # where the value starts


def test_an_input_out_of_time_order_is_sorted_by_event_time_first_and_gives_the_same_views(
    make_app, tmp_path: Path
) -> None:
    """Once a batch has to read many of its aggregates back from the store (they fell out of the cache: the input is
    out of time order), the rest of the input is sorted by event time on disk before it is recorded."""
    import random

    events = _simulated(120)
    random.Random(3).shuffle(events)
    path = tmp_path / "shuffled.jsonl.gz"
    path.write_bytes(gzip.compress(b"".join(json.dumps(e).encode() + b"\n" for e in events)))
    small_cache = {"aggregate_cache_size": 20, "parallel_translation_min_bytes": 0}
    as_arrived = make_app("as-arrived", tuning=Tuning(time_order_reread_share=2.0, **small_cache))
    expected = _ingest_file(as_arrived, path, as_arrived.tuning)
    assert expected["time_ordered"] == 0
    sorted_first = make_app("sorted-first", tuning=Tuning(**small_cache))
    summary = _ingest_file(sorted_first, path, sorted_first.tuning)
    assert 0 < summary["time_ordered"] < len(events)  # the first batches go as they came
    # How many facts add something new depends on the order they come in (the views do not): compare the sum.
    for counted in (summary, expected):
        counted["recorded"] = counted.pop("new") + counted.pop("duplicates")
    assert {**summary, "time_ordered": 0} == expected
    assert rows_by_job(sorted_first) == rows_by_job(as_arrived)

    cut = tmp_path / "cut.jsonl.gz"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size * 2 // 3])
    app = make_app("cut", tuning=Tuning(**small_cache))
    ingestor = Ingestor(app, batch_size=50, project_every=120)
    with cut.open("rb") as stream, pytest.raises(UnreadableInput, match="ends early or is corrupt"):
        ingestor.ingest(read_events(stream, app.tuning))
    assert ingestor.summary.time_ordered > 0  # what was sorted before the break is recorded
    assert app.stored_events() > 0 and ingestor.summary.read > 0
    assert _ingest_file(app, path, app.tuning)["read"] == expected["read"]  # the whole file again: nothing lost
    assert rows_by_job(app) == rows_by_job(as_arrived)


def test_a_plain_file_found_out_of_order_is_translated_in_event_time_order_and_keeps_its_line_numbers(
    make_app, tmp_path: Path, monkeypatch
) -> None:
    """Once the ingest finds a plain file out of order, the rest of its lines are sorted by event time on disk and
    translated in that order by a fed worker: the result is what one process gives in file order, a bad line keeps
    its line number, and what a dying worker leaves is translated here."""
    import random

    lines = [json.dumps(e) for e in _simulated(120)]
    random.Random(5).shuffle(lines)
    bad = [len(lines) // 3, len(lines) * 3 // 4]
    for at in bad:
        lines.insert(at, '{"detail-type": "Batch Job State Change", "detail": {')
    path = tmp_path / "shuffled.jsonl"
    path.write_text("\n".join(lines) + "\n\n")
    sorting = {"aggregate_cache_size": 20, "time_order_reread_share": 0.0, "translation_chunk_lines": 7}
    here = make_app("here", tuning=Tuning(parallel_translation_min_bytes=0, **sorting))
    expected = _ingest_file(here, path, here.tuning)
    assert expected["time_ordered"] > 0 and expected["rejected"] == 2

    in_worker = Tuning(parallel_translation_min_bytes=1, **sorting)
    sorted_lines = make_app("sorted-lines", tuning=in_worker)
    _only_this_thread()
    summary = _ingest_file(sorted_lines, path, in_worker)
    assert summary["time_ordered"] > 0
    # How many facts add something new depends on the order they come in (the views do not): compare the sum.
    for counted in (summary, expected):
        counted["recorded"] = counted.pop("new") + counted.pop("duplicates")
    assert {**summary, "time_ordered": 0} == {**expected, "time_ordered": 0}
    assert rows_by_job(sorted_lines) == rows_by_job(here)
    reasons = sorted(r.reason for r in sorted_lines.views.rejected())
    assert reasons == sorted(r.reason for r in here.views.rejected())
    assert sorted(int(r.split(":")[0].removeprefix("line ")) for r in reasons) == [at + 1 for at in bad]

    chunks = _workers_die_after_three_chunks(monkeypatch, after=40)  # the file's worker, then the sorted one
    crashed = make_app("crashed", tuning=in_worker)
    summary = _ingest_file(crashed, path, in_worker)
    summary["recorded"] = summary.pop("new") + summary.pop("duplicates")
    assert {**summary, "time_ordered": 0} == {**expected, "time_ordered": 0}
    assert len(chunks) > 40  # this process translated what the dead workers left
    assert rows_by_job(crashed) == rows_by_job(here)


def test_the_rest_of_a_file_comes_in_event_time_order_once_asked(tmp_path: Path) -> None:
    """Seen from the translation itself, on lines that are all kept aside (each result then says its line): the
    chunk being read when the sort is asked ends in file order, then every other line comes once, oldest event
    time first (file order among equal times, a line without a time first), blank lines left out."""
    import random

    times = [f"2026-12-0{1 + i % 3}T{i % 24:02d}:00:00Z" for i in range(300)]
    random.Random(2).shuffle(times)
    rows = [f'{{"time": "{t}", "detail-type": "Batch Job State Change", "detail": {{}}}}' for t in times]
    rows[100] = "not json, no time"
    rows[200] = ""
    path = tmp_path / "times.jsonl"
    path.write_text("header\n" + "\n".join(rows) + "\n")
    order = RestOrder()
    with path.open("rb") as stream:
        stream.readline()
        results = translate_in_worker(stream, 2, False, 7, order)
        numbers = [_line_of(next(results))]
        order.ask()
        numbers += [_line_of(r) for r in results]
    assert numbers[:7] == list(range(2, 9))  # the first chunk, as it was read
    rest = numbers[7:]
    assert sorted(rest) == [n for n in range(9, 302) if n != 202]  # each other line once; the blank one left out
    assert rest[0] == 102  # no time: first
    key = {n: (times[n - 2], n) for n in rest[1:]}
    assert rest[1:] == sorted(rest[1:], key=key.__getitem__)
    assert order.time_ordered == len(rest)


def _line_of(result: Parsed | RejectedEvent) -> int:
    """The line a kept-aside result came from, as its record says."""
    assert isinstance(result, RejectedEvent), result
    return int(json.loads(result.body)["position"].removeprefix("line "))


def test_a_first_batch_of_events_hours_apart_is_enough_to_sort_the_rest(make_app, tmp_path: Path) -> None:
    """The first batch has nothing to read back, so there the events' times say the input is out of order: a shuffled
    file is sorted from the second batch on even with a cache that holds every aggregate (nothing is ever read back);
    the same events in time order, or as the simulator's chaos delivers them, are recorded as they come."""
    import random

    chaos = _simulated(120)
    in_time = sorted(chaos, key=lambda e: e["time"])
    shuffled = list(chaos)
    random.Random(4).shuffle(shuffled)
    never_reread = Tuning(aggregate_cache_size=100_000, parallel_translation_min_bytes=0)
    summaries = {}
    for name, events in (("chaos", chaos), ("time", in_time), ("shuffled", shuffled)):
        path = tmp_path / f"{name}.jsonl"
        path.write_text("".join(json.dumps(e) + "\n" for e in events))
        summaries[name] = _ingest_file(make_app(name, tuning=never_reread), path, never_reread)
    assert summaries["chaos"]["time_ordered"] == summaries["time"]["time_ordered"] == 0
    assert summaries["shuffled"]["time_ordered"] == len(shuffled) - 50  # all but the first batch of 50
