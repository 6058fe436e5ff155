"""The local Organization: the whole product on one machine (`python deploy.py --org-unit ou-demo --local`).

An AWS emulator (moto server on 127.0.0.1) holds an Organization with the OU and three member accounts; the
real rollout deploys the central stack and the member StackSet to it; a simulated Batch workload of the
member accounts is filtered by their rules, forwarded to the central queue, recorded by the aggregator
handler, projected by the projector handler from the events table's stream (invoked in-process: the emulator
has no Lambda runtime), and summarised from the projection.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import sys
import tempfile
import threading
import time
import warnings
import zipfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from batchops.adapters.dynamodb.stream_projection import stream_fed
from batchops.application import BatchOpsApplication
from batchops.bootstrap import Settings, build_application
from batchops.local.emulator import EMULATOR_CENTRAL_PARAMETERS
from batchops.local.emulator_server import (
    FAKE_CREDENTIALS,
    LocalRunError,
    aws_environment,
    emulator,
    require_emulator,
    shown_path,
)
from batchops.local.pipeline import LocalPipeline, PipelineFigures, rule_patterns
from batchops.reports import print_job_figures, store_summary
from batchops.rollout.clients import Clients
from batchops.rollout.coverage import DEPLOYED
from batchops.rollout.deploy import deploy
from batchops.rollout.settings import RolloutSettings
from batchops.rollout.status import status
from batchops.simulation import REGIONS as SIMULATED_REGIONS
from batchops.simulation import SimulationSettings, simulate

CHUNK_EVENTS = 100  # moto SQS costs grow with the queue length (every receive recounts the queue): keep it short


@dataclass(frozen=True)
class LocalSettings:
    """What the local run does: the OU's name, the regions, the workload, where files go."""

    org_unit: str = "ou-demo"
    regions: tuple[str, ...] = ("us-east-1", "eu-west-1")
    accounts: int = 3
    jobs: int = 600  # submitted jobs in all (as `batchops simulate --jobs`): an array job is one, its children more
    seed: int = 7
    prefix: str = "batchops"
    out: Path = Path("out/local")
    artifact: Path | None = None
    keep_running: bool = False
    grafana_url: str | None = None
    grafana_token: str | None = None

    @property
    def store(self) -> str:
        """The store URL of the central tables."""
        return f"dynamodb://{self.prefix}"


@dataclass
class LocalFigures:
    """What the run covered and measured; the printed summary is made of these."""

    endpoint: str = ""
    store: str = ""
    organization_id: str = ""
    org_unit_id: str = ""
    members: tuple[str, ...] = ()
    covered: list[tuple[str, str, str]] = field(default_factory=list)  # (account, region, state)
    summary: dict[str, Any] = field(default_factory=dict)  # batchops.reports.store_summary of the projection
    pipeline: PipelineFigures = field(default_factory=PipelineFigures)
    pipeline_seconds: float = 0.0
    phases: dict[str, float] = field(default_factory=dict)  # seconds per phase of the whole run
    emf_file: Path | None = None
    dashboards: list[Path] = field(default_factory=list)
    grafana_changes: list[str] = field(default_factory=list)

    @property
    def events_per_second(self) -> float:
        """Member events per second through the whole path (forward, aggregate, project)."""
        return self.pipeline.member_events / self.pipeline_seconds if self.pipeline_seconds else 0.0


# --- the emulator ------------------------------------------------------------------------------------------


def create_organization(org_unit_name: str, accounts: int, region: str) -> tuple[str, str, tuple[str, ...]]:
    """An Organization with one OU of `accounts` member accounts; returns (organization id, OU id, members)."""
    orgs = boto3.client("organizations", region_name=region)
    organization = orgs.create_organization(FeatureSet="ALL")["Organization"]
    root = orgs.list_roots()["Roots"][0]["Id"]
    ou = orgs.create_organizational_unit(ParentId=root, Name=org_unit_name)["OrganizationalUnit"]["Id"]
    members = []
    for i in range(1, accounts + 1):
        status = orgs.create_account(AccountName=f"member-{i}", Email=f"member-{i}@example.com")
        account = status["CreateAccountStatus"]["AccountId"]
        orgs.move_account(AccountId=account, SourceParentId=root, DestinationParentId=ou)
        members.append(str(account))
    return str(organization["Id"]), str(ou), tuple(members)


# --- the Lambda artifact -----------------------------------------------------------------------------------


def source_hash(source: Path) -> str:
    """sha256 over the package's files (names and contents), caches excluded."""
    digest = hashlib.sha256()
    for path in sorted(source.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts and path.suffix not in (".pyc", ".pyo"):
            digest.update(path.relative_to(source).as_posix().encode() + b"\0")
            digest.update(path.read_bytes())
    return digest.hexdigest()


def cached_artifact(out: Path, console: Console) -> Path:
    """The Lambda artifact built once per package source (out/artifact/<hash>/); a package-only stub when the
    dependencies cannot be fetched (the emulator stores the code but never runs it)."""
    from batchops.rollout.lambda_package import ArtifactError, build_lambda_artifact, package_source

    source = package_source()
    folder = out / "artifact" / source_hash(source)[:16]
    built = folder / "batchops-lambda.zip"
    if built.is_file():
        console.print(f"Lambda artifact: {built} (cached for this package source)")
        return built
    console.print("building the Lambda artifact once for this package source (pip fetches Lambda wheels)…")
    try:
        return build_lambda_artifact(folder)
    except (ArtifactError, OSError) as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        stub = folder / "batchops-lambda-stub.zip"
        console.print(
            f"[yellow]note[/] the Lambda artifact could not be built ({first}); deploying a stub with the batchops "
            "package only: the emulator stores Lambda code but never runs it. Pass --artifact to use a real one."
        )
        folder.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(stub, "w") as archive:
            for path in sorted(source.rglob("*.py")):
                archive.write(path, f"batchops/{path.relative_to(source).as_posix()}")
        return stub


# --- the workload ------------------------------------------------------------------------------------------


class Remapper:
    """Rewrites simulated account ids and regions (in every string, ARNs included) to the Organization's."""

    def __init__(self, members: Sequence[str], regions: Sequence[str]) -> None:
        self._free = list(members)
        self._accounts: dict[str, str] = {}
        self._regions = {s: r for s, r in zip(SIMULATED_REGIONS, regions, strict=False) if s != r}
        self._pattern: re.Pattern[str] | None = None

    def __call__(self, event: dict[str, Any]) -> dict[str, Any]:
        """The event with every account id and region replaced."""
        account = event["account"]
        if account not in self._accounts:
            if not self._free:
                raise LocalRunError(f"the simulation has more accounts than the Organization ({account})")
            self._accounts[account] = self._free.pop(0)
            names = [re.escape(a) for a in self._accounts] + [re.escape(r) for r in self._regions]
            self._pattern = re.compile(r"(?<![0-9])(" + "|".join(sorted(names, key=len, reverse=True)) + r")(?![0-9])")
        assert self._pattern is not None
        text = self._pattern.sub(self._replace, json.dumps(event))
        remapped: dict[str, Any] = json.loads(text)
        return remapped

    def _replace(self, match: re.Match[str]) -> str:
        found = match.group(1)
        return self._accounts.get(found) or self._regions[found]

    @property
    def accounts(self) -> Mapping[str, str]:
        """Simulated account id → member account id."""
        return self._accounts


def workload(settings: LocalSettings, members: Sequence[str]) -> list[dict[str, Any]]:
    """The simulated member events (spot, on-demand, Fargate, retries, chaos), remapped to the Organization."""
    simulated = SimulationSettings(
        accounts=len(members),
        regions=len(settings.regions),
        jobs=settings.jobs,
        seed=settings.seed,
        chaos=True,
    )
    remap = Remapper(members, settings.regions)
    return [remap(event) for event in simulate(simulated)]


# --- the run -----------------------------------------------------------------------------------------------


class _Phases:
    def __init__(self, figures: LocalFigures, console: Console) -> None:
        self.figures = figures
        self.console = console

    @contextlib.contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        self.console.rule(f"[bold]{name}")
        started = time.perf_counter()
        try:
            yield
        finally:
            self.figures.phases[name] = time.perf_counter() - started


def _follow_stream(env: dict[str, str], job: dict[str, str], messages: Any, ingested: Any, stop: Any) -> None:
    """The projector's process: follows the events table's stream with its own application (a Lambda container
    of its own on AWS) until ingestion is over and the stream is read, or `stop` is set. It reports
    ("progress", records), then ("done", records, seconds per step) or ("failed", message) on `messages`."""
    import signal
    import traceback

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's: it sets `stop`
    os.environ.update(env)
    try:
        from batchops.entrypoints import lambdas as handlers

        handlers.logger.setLevel(logging.WARNING)
        app = build_application(Settings.from_environment(store=job["store"]), project_inline=False)
        stream_fed(app)  # wired to DynamoDB
        region = env["AWS_DEFAULT_REGION"]
        pipeline = LocalPipeline(
            app,
            boto3.client("sqs", region_name=region),
            boto3.client("dynamodbstreams", region_name=region),
            job["queue_url"],
            job["events_table"],
        )
        while not stop.is_set():
            last_round = ingested.is_set()  # read first: a round that starts after ingestion sees it all
            if pipeline.run_projector(progress=lambda n: messages.put(("progress", n)), stop=stop.is_set) == 0:
                if last_round:
                    break
                ingested.wait(0.05)  # an idle stream: poll again shortly, as the event source does
        messages.put(("done", pipeline.figures.stream_records, dict(pipeline.figures.seconds)))
    except BaseException as error:  # handed to the parent
        messages.put(("failed", f"{type(error).__name__}: {error}\n{traceback.format_exc()}"))


class _StreamFollower:
    """Projects the events table's stream as it grows, in a process of its own (spawned, like the emulator), until
    told that ingestion is over and the stream is read.

    Its own process, not a thread: the projector's and the aggregator's boto3 work is Python, and in one process
    they take turns on one core (the GIL); apart, the client side uses both cores of the machine."""

    def __init__(
        self, figures: PipelineFigures, progress: Callable[[int], Any], env: dict[str, str], job: dict[str, str]
    ) -> None:
        import multiprocessing

        context = multiprocessing.get_context("spawn")
        self.figures = figures
        self.progress = progress
        self.failure: str | None = None
        self._messages = context.Queue()
        self._ingested, self._stop = context.Event(), context.Event()
        self._done = threading.Event()
        self._process = context.Process(
            target=_follow_stream,
            args=(env, job, self._messages, self._ingested, self._stop),
            name="batchops-projector",
            daemon=True,
        )
        self._reader = threading.Thread(target=self._read, name="projector-progress", daemon=True)

    def start(self) -> None:
        """Start the projector's process and the thread that reads its reports."""
        self._process.start()
        self._reader.start()

    def _read(self) -> None:
        import queue

        while not self._done.is_set():
            try:
                message = self._messages.get(timeout=0.2)
            except queue.Empty:
                if not self._process.is_alive() and self._messages.empty() and not self._done.is_set():
                    self.failure = f"the projector's process ended with exit code {self._process.exitcode}"
                    self._done.set()
                continue
            if message[0] == "progress":
                self.progress(message[1])
            elif message[0] == "done":
                self.figures.stream_records += message[1]
                for step, seconds in message[2].items():
                    self.figures.add_time(step, seconds)
                self._done.set()
            else:
                self.failure = message[1]
                self._done.set()

    def finish(self) -> None:
        """Ingestion is over: project what is left, then stop."""
        self._ingested.set()
        while not self._done.wait(0.5):
            pass
        self._reader.join()
        self._process.join(10)
        self._end_process()

    def abort(self) -> None:
        """Stop now (Ctrl-C or a failure): the projector stops after its current batch; killed if it lingers."""
        self._stop.set()
        self._process.join(10)
        self._end_process()
        self._done.set()
        self._reader.join(5)

    def _end_process(self) -> None:
        if self._process.is_alive():
            self._process.kill()
            self._process.join(5)

    def raise_failure(self) -> None:
        """Raise in the caller what stopped the projector."""
        if self.failure is not None:
            raise LocalRunError(f"the projector stopped: {self.failure}")


def disable_event_source_mappings(awslambda: Any, functions: Sequence[str]) -> int:
    """Turn the central stack's Lambda event sources off (the emulator would run the Lambdas in Docker)."""
    disabled = 0
    for function in functions:
        for mapping in awslambda.list_event_source_mappings(FunctionName=function).get("EventSourceMappings", []):
            awslambda.update_event_source_mapping(UUID=mapping["UUID"], Enabled=False)
            disabled += 1
    return disabled


def run_local(
    settings: LocalSettings, console: Console, *, while_running: Callable[[LocalFigures], None] | None = None
) -> LocalFigures:
    """Set up the local Organization, deploy, drive the workload, print the summary; with keep_running, wait
    (for `while_running`, or for Ctrl-C) before the emulator stops."""
    require_emulator()
    figures = LocalFigures(store=settings.store)
    phase = _Phases(figures, console)
    home = settings.regions[0]
    settings.out.mkdir(parents=True, exist_ok=True)
    with phase("AWS emulator"), contextlib.ExitStack() as stack:
        figures.endpoint = stack.enter_context(emulator())
        stack.enter_context(aws_environment(figures.endpoint, home))
        console.print(f"moto server on {figures.endpoint} (fake credentials, nothing leaves this machine)")
        stack_outer = stack.pop_all()
    with stack_outer:
        with phase("Organization"):
            figures.organization_id, figures.org_unit_id, figures.members = create_organization(
                settings.org_unit, settings.accounts, home
            )
            console.print(
                f"Organization {figures.organization_id}: OU {figures.org_unit_id} ({settings.org_unit}) with "
                f"member accounts {', '.join(figures.members)}"
            )
        clients, outputs = _deploy(settings, figures, phase, console)
        app = _central_application(settings, phase, figures, console, outputs, clients)
        _drive(settings, figures, phase, console, app, clients, outputs)
        with phase("summary"):
            figures.summary = store_summary(app.views)
            print_local_summary(console, settings, figures)
        if settings.keep_running:
            _keep_running(settings, figures, console, while_running)
    return figures


def _deploy(
    settings: LocalSettings, figures: LocalFigures, phase: _Phases, console: Console
) -> tuple[Clients, dict[str, str]]:
    home = settings.regions[0]
    with phase("artifact"):
        artifact = settings.artifact or cached_artifact(settings.out, console)
    rollout_settings = RolloutSettings(
        org_units=(figures.org_unit_id,),
        regions=settings.regions,
        home_region=home,
        prefix=settings.prefix,
        assume_yes=True,
        artifact=artifact,
        central_parameters=dict(EMULATOR_CENTRAL_PARAMETERS),
        oam=False,  # the emulator has no CloudWatch OAM
        grafana=False,  # nor Managed Grafana: dashboards are rendered to files (and pushed with --grafana-url)
        poll_seconds=0.05,
    )
    clients = Clients(boto3.Session(region_name=home))
    with phase("deploy (the real rollout: central stack, StackSet, stack instances)"), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # moto: "No Moto CloudFormation support for AWS::CloudWatch::Alarm", ...
        with tempfile.TemporaryDirectory(prefix="batchops-local-") as workdir:
            result = deploy(rollout_settings, clients, console, lambda _: True, workdir=Path(workdir))
        if result.exit_code:
            raise LocalRunError("the rollout to the local Organization failed (see above)")
    with phase("status"):
        covered = status(rollout_settings, clients, console)
        figures.covered = [(row.account_id, row.region, row.state) for row in covered.coverage]
    outputs = dict(covered.outputs or result.outputs)
    return clients, outputs


def _central_application(
    settings: LocalSettings,
    phase: _Phases,
    figures: LocalFigures,
    console: Console,
    outputs: Mapping[str, str],
    clients: Clients,
) -> BatchOpsApplication:
    home = settings.regions[0]
    with phase("central application"):
        # Every function of the central stack (aggregator, projector, and whatever the template adds).
        functions = sorted(value for name, value in outputs.items() if name.endswith("FunctionName") and value)
        disabled = disable_event_source_mappings(clients.client("lambda", home), functions)
        console.print(
            f"disabled {disabled} Lambda event source mappings of the central stack: the emulator would run the "
            "Lambdas in Docker and consume the ingest queue; here the aggregator and projector handlers run "
            "in-process on the same SQS batches and stream records"
        )
        figures.store = outputs.get("StoreUrl", settings.store)
        app = build_application(Settings.from_environment(store=figures.store), project_inline=False)
        stream_fed(app)  # wired to DynamoDB
        from batchops.entrypoints import lambdas as handlers

        handlers.logger.setLevel(logging.WARNING)  # one JSON line per batch otherwise, amid the progress bars
    return app


def _drive(
    settings: LocalSettings,
    figures: LocalFigures,
    phase: _Phases,
    console: Console,
    app: BatchOpsApplication,
    clients: Clients,
    outputs: Mapping[str, str],
) -> None:
    with phase("simulated workload"):
        events, patterns = _simulated_workload(settings, figures, console, clients)
    with phase("pipeline (member rules → SQS → aggregator → DynamoDB → stream → projector)"):
        _run_pipeline(settings, figures, console, app, outputs, events, patterns)
    with phase("dashboards"):
        _write_dashboards(settings, figures, console, outputs)


def _simulated_workload(
    settings: LocalSettings, figures: LocalFigures, console: Console, clients: Clients
) -> tuple[list[dict[str, Any]], dict[tuple[str, str], Any]]:
    """The members' events, and the forwarding rules' patterns of each member account x region."""
    events = workload(settings, figures.members)
    console.print(
        f"{len(events):,} member events: {settings.jobs:,} jobs submitted in all (array jobs among them, each "
        f"with its children), {len(figures.members)} accounts x {len(settings.regions)} regions, seed "
        f"{settings.seed}, with duplicates and reordering"
    )
    patterns = {
        (account, region): rule_patterns(clients.client("events", region, account), f"{settings.prefix}-")
        for account in figures.members
        for region in settings.regions
    }
    return events, patterns


def _run_pipeline(
    settings: LocalSettings,
    figures: LocalFigures,
    console: Console,
    app: BatchOpsApplication,
    outputs: Mapping[str, str],
    events: list[dict[str, Any]],
    patterns: dict[tuple[str, str], Any],
) -> None:
    """Forward the events through the member rules, aggregate them from SQS, and follow the stream with the
    projector in its own process, as the Lambdas do on AWS; the figures of each step."""
    home = settings.regions[0]
    pipeline = LocalPipeline(
        app,
        boto3.client("sqs", region_name=home),
        boto3.client("dynamodbstreams", region_name=home),
        outputs["IngestQueueUrl"],
        outputs["EventsTableName"],
    )
    # The projector's process needs this process's AWS environment (the emulator's endpoint, fake credentials).
    projector_env = {key: os.environ[key] for key in (*FAKE_CREDENTIALS, "AWS_ENDPOINT_URL", "AWS_DEFAULT_REGION")}
    projector_job = {
        "store": figures.store,
        "queue_url": outputs["IngestQueueUrl"],
        "events_table": outputs["EventsTableName"],
    }
    figures.emf_file = settings.out / "emf.jsonl"
    started = time.perf_counter()
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with (
        figures.emf_file.open("w") as emf,
        Progress(*columns, console=console, redirect_stdout=False, redirect_stderr=False) as progress,
    ):
        sent = progress.add_task("member events sent", total=len(events))
        recorded = progress.add_task("SQS messages aggregated", total=None)
        projected = progress.add_task("stream records projected", total=None)
        # The projector follows the stream while the member events are forwarded and aggregated, as the
        # projector Lambda does on AWS: in its own process (see _StreamFollower).
        projector = _StreamFollower(
            pipeline.figures, lambda n: progress.update(projected, advance=n), projector_env, projector_job
        )
        projector.start()
        try:
            for i in range(0, len(events), CHUNK_EVENTS):
                projector.raise_failure()
                chunk = events[i : i + CHUNK_EVENTS]
                pipeline.forward(chunk, patterns)
                progress.update(sent, advance=len(chunk))
                with contextlib.redirect_stdout(emf):  # the aggregator prints EMF as Lambda's stdout would
                    pipeline.run_aggregator(progress=lambda n: progress.update(recorded, advance=n))
            projector.finish()
        except BaseException:
            projector.abort()  # Ctrl-C or a failure: stop the projector now, not after the stream is read
            raise
        projector.raise_failure()
    figures.pipeline_seconds = time.perf_counter() - started
    figures.pipeline = pipeline.figures


def _write_dashboards(
    settings: LocalSettings, figures: LocalFigures, console: Console, outputs: Mapping[str, str]
) -> None:
    """The dashboards for this stack, pushed to a Grafana when one is given."""
    from batchops.dashboards import DashboardSettings, write_dashboards

    dlq = outputs.get("IngestDeadLetterQueueUrl", "").rsplit("/", 1)[-1] or DashboardSettings().dlq_name
    figures.dashboards = write_dashboards(settings.out / "dashboards", DashboardSettings(dlq_name=dlq))
    if settings.grafana_url and settings.grafana_token:
        from batchops.rollout.grafana_workspace import push_dashboards

        home = settings.regions[0]
        figures.grafana_changes = push_dashboards(settings.grafana_url, settings.grafana_token, outputs, home)
        console.print(f"pushed to {settings.grafana_url}: {', '.join(figures.grafana_changes) or 'no changes'}")


def rerun_command(settings: LocalSettings) -> str:
    """This run's command line again, with --keep-running."""
    jobs = f" --jobs {settings.jobs}" if settings.jobs != LocalSettings.jobs else ""
    seed = f" --seed {settings.seed}" if settings.seed != LocalSettings.seed else ""
    python = shown_path(Path(sys.executable))
    return f"{python} deploy.py --org-unit {settings.org_unit} --local{jobs}{seed} --keep-running"


def try_commands(settings: LocalSettings, figures: LocalFigures) -> list[str]:
    """Commands to try against the running emulator."""
    env = (
        f"AWS_ENDPOINT_URL={figures.endpoint} AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing "
        f"AWS_DEFAULT_REGION={settings.regions[0]}"
    )
    return [
        f"{env} .venv/bin/batchops --store {figures.store} jobs",
        f"{env} .venv/bin/batchops --store {figures.store} summary",
        f"{env} .venv/bin/batchops --store {figures.store} job JOB_ID",
        f"{env} .venv/bin/python deploy.py status --org-unit {figures.org_unit_id} --prefix {settings.prefix}",
    ]


def _keep_running(
    settings: LocalSettings,
    figures: LocalFigures,
    console: Console,
    while_running: Callable[[LocalFigures], None] | None,
) -> None:
    console.rule("[bold]the emulator keeps running")
    console.print("try, from another terminal in this directory:")
    for command in try_commands(settings, figures):
        console.print(f"  {command}", soft_wrap=True, highlight=False)
    if while_running is not None:
        while_running(figures)
        return
    console.print("Ctrl-C stops the emulator.")
    stop = threading.Event()
    try:
        while not stop.wait(3600):
            pass
    except KeyboardInterrupt:
        console.print("stopping the emulator")


# --- the summary -------------------------------------------------------------------------------------------


def jobs_by_status(summary: Mapping[str, Any]) -> dict[str, dict[str, int]]:
    """Jobs per status per account, from a store summary."""
    return {account: dict(counts) for account, counts in summary.get("jobs_by_status", {}).items()}


def print_local_summary(console: Console, settings: LocalSettings, figures: LocalFigures) -> None:
    """What a user wants to know after the run."""
    summary = figures.summary
    deployed = [(a, r) for a, r, state in figures.covered if state == DEPLOYED]
    regions = sorted({r for _, r in deployed})
    console.print(
        f"covered: {len({a for a, _ in deployed})} of {len(figures.members)} member accounts x "
        f"{len(regions)} regions ({', '.join(regions)}): {len(deployed)} of {len(figures.covered)} stack instances "
        "deployed"
    )
    children, service = summary.get("array_children", 0), summary.get("service_jobs", 0)
    submitted = summary["jobs"] - children - service
    print_job_figures(
        console,
        summary,
        title=f"{summary['jobs']:,} jobs: {submitted:,} submitted + {children:,} array children + {service:,} "
        "SageMaker service jobs",
    )
    spot = summary["spot_interruptions"]
    where = ", ".join(f"{k}: {v}" for k, v in list(spot.items())[:6]) or "none"
    console.print(f"spot interruptions: {sum(spot.values())} ({where})")
    p, stored = figures.pipeline, summary["pipeline"]
    handled = stored["ingested"] + stored["duplicates_dropped"] + stored["rejected"] + stored["ignored"]
    console.print(
        f"pipeline: {p.member_events:,} member events sent, {p.forwarded:,} forwarded by the member rules to the "
        f"central queue, {p.filtered_out:,} filtered out. The aggregator took {handled:,} messages from the queue: "
        f"{stored['ingested']:,} new events recorded, {stored['duplicates_dropped']:,} duplicates dropped (the "
        f"workload redelivers some), {stored['rejected']:,} rejected, {stored['ignored']:,} ignored. The projector "
        f"read {p.stream_records:,} records of the events table's stream: the stored events, which are the recorded "
        f"ones and the first event of each job, instance and compute environment "
        f"({p.stream_records - stored['ingested']:,}). {figures.events_per_second:,.0f} member events/s end to end "
        f"({figures.pipeline_seconds:.1f} s)"
    )
    steps = Table(title="where the time goes")
    steps.add_column("step")
    steps.add_column("seconds", justify="right")
    for name, seconds in figures.phases.items():
        if not name.startswith("pipeline"):
            steps.add_row(name, f"{seconds:.1f}")
    for name, seconds in p.seconds.items():
        steps.add_row(f"pipeline: {name}", f"{seconds:.1f}")
    console.print(steps)
    total = sum(p.seconds.values())
    if total:
        name, seconds = max(p.seconds.items(), key=lambda step: step[1])
        console.print(
            f"the slowest step: {name} ({seconds:.1f} s; the projector follows the stream in its own process while "
            f"events are forwarded and aggregated, so the steps overlap within the pipeline's "
            f"{figures.pipeline_seconds:.1f} s). Every step is a round trip to the emulator, whose DynamoDB serves one "
            "request at a time and slows as its tables grow: large volumes are the embedded store's and the "
            "benchmark's job (make demo-sqlite, make bench)"
        )
    console.print(f"EMF metrics: {figures.emf_file}")
    console.print(f"dashboards: {settings.out / 'dashboards'} ({len(figures.dashboards)} files)")
    if not settings.keep_running:
        console.print(
            f"the emulator stops now and its store ({figures.store}) with it: to query the store, run again with "
            f"--keep-running (`{rerun_command(settings)}`), which prints the commands to try",
            highlight=False,
        )
