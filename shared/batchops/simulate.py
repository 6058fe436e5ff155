"""Deterministic, realistic EventBridge stream of AWS Batch and its infrastructure across many accounts.

The simulator plans jobs in submission order. Every job's events (and the EC2/ECS events of the
instances it lands on) happen at or after its submission time, so a heap can release, in time order,
every planned event older than the next submission: memory stays flat however long the run is.
Events are built from their plan only when released, and envelope ids are drawn at that moment
from their own random stream, so the optional chaos layer (duplicates, reordering) never changes
which events exist.
"""

from __future__ import annotations

import bisect
import gc
import heapq
import marshal
import math
import random
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from operator import itemgetter
from typing import Any

__all__ = [
    "DETAIL_TYPES",
    "REGIONS",
    "SECRET_VALUE",
    "ExpectedJob",
    "SimulationSettings",
    "simulate",
    "simulate_with_truth",
]

REGIONS: tuple[str, ...] = (
    "us-east-1",
    "eu-west-1",
    "us-west-2",
    "ap-southeast-2",
    "eu-central-1",
    "us-east-2",
    "ap-northeast-1",
    "ca-central-1",
)
"""Regions the simulator picks from, in order: `--regions 2` means us-east-1 and eu-west-1."""

SECRET_VALUE = "simulated-user-secret"
"""Value of the user environment variable that some jobs carry in clear text (must never be stored)."""

BATCH_JOB_STATE_CHANGE = "Batch Job State Change"
BATCH_JOB_QUEUE_BLOCKED = "Batch Job Queue Blocked"
CLOUDTRAIL_API_CALL = "AWS API Call via CloudTrail"
ECS_TASK_STATE_CHANGE = "ECS Task State Change"
ECS_CONTAINER_INSTANCE_STATE_CHANGE = "ECS Container Instance State Change"
EC2_INSTANCE_STATE_CHANGE = "EC2 Instance State-change Notification"
EC2_SPOT_INTERRUPTION_WARNING = "EC2 Spot Instance Interruption Warning"
EC2_REBALANCE_RECOMMENDATION = "EC2 Instance Rebalance Recommendation"
AUTOSCALING_LAUNCH_SUCCESSFUL = "EC2 Instance Launch Successful"
AUTOSCALING_TERMINATE_SUCCESSFUL = "EC2 Instance Terminate Successful"

DETAIL_TYPES: frozenset[str] = frozenset(
    {
        BATCH_JOB_STATE_CHANGE,
        BATCH_JOB_QUEUE_BLOCKED,
        CLOUDTRAIL_API_CALL,
        ECS_TASK_STATE_CHANGE,
        ECS_CONTAINER_INSTANCE_STATE_CHANGE,
        EC2_INSTANCE_STATE_CHANGE,
        EC2_SPOT_INTERRUPTION_WARNING,
        EC2_REBALANCE_RECOMMENDATION,
        AUTOSCALING_LAUNCH_SUCCESSFUL,
        AUTOSCALING_TERMINATE_SUCCESSFUL,
    }
)
"""Every `detail-type` the simulator emits."""


@dataclass(frozen=True)
class SimulationSettings:
    """What to simulate: how many accounts, regions per account and submitted jobs, and how to deliver."""

    accounts: int = 3
    regions: int = 2
    jobs: int = 1000
    seed: int = 0
    chaos: bool = False
    start: datetime = datetime(2025, 11, 13, 0, 0, tzinfo=UTC)


@dataclass(frozen=True)
class ExpectedJob:
    """Ground truth of one simulated job (array parents and each array child are one each)."""

    account_id: str
    region: str
    job_id: str  # array children: "<parent id>:<index>"
    queue: str  # the job queue's name
    compute_environment: str | None  # CE of the last attempt; None when the job never started
    platform: str  # EC2 | FARGATE
    status: str  # final: SUCCEEDED | FAILED, or RUNNABLE for a job left blocked
    attempts: int  # length of attempts[] in the job's last event (0 for array parents)
    exit_code: int | None  # of the last attempt (essential container); None without one
    pricing: str  # on-demand | spot | fargate (for a job that never started: of the CE it was headed for)
    instance_id: str | None  # EC2 instance of the last attempt; None on Fargate or when never started
    array_parent_id: str | None  # set on array children
    array_index: int | None  # set on array children
    array_size: int | None  # set on array parents
    failure_kind: str | None  # spot_reclaim | oom | exit_nonzero | timeout | cancelled; None otherwise


def simulate(settings: SimulationSettings) -> Iterator[dict[str, Any]]:
    """Stream EventBridge events (dicts) in delivery order; same settings, same events, byte for byte."""
    _validate(settings)
    simulation = _Simulation(settings, truth=None)
    if settings.chaos:
        return _deliver_with_chaos(simulation.timed_events(), settings.seed)
    return map(itemgetter(1), simulation.timed_events())


def simulate_with_truth(settings: SimulationSettings) -> tuple[list[dict[str, Any]], list[ExpectedJob]]:
    """Run a (small) simulation to completion: its events in delivery order and the truth of every job."""
    _validate(settings)
    truth: list[ExpectedJob] = []
    simulation = _Simulation(settings, truth=truth)
    timed = simulation.timed_events()
    delivered = _deliver_with_chaos(timed, settings.seed) if settings.chaos else map(itemgetter(1), timed)
    # Every event stays alive in the list, so each cyclic collection would walk all of them again
    # (more than halving the speed); nothing here needs collecting before the run ends.
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        return list(delivered), truth
    finally:
        if was_enabled:
            gc.enable()


def _validate(settings: SimulationSettings) -> None:
    if settings.accounts < 1:
        raise ValueError("accounts must be at least 1")
    if not 1 <= settings.regions <= len(REGIONS):
        raise ValueError(f"regions must be between 1 and {len(REGIONS)}")
    if settings.jobs < 0:
        raise ValueError("jobs must not be negative")
    if settings.start.tzinfo is None:
        raise ValueError("start must be timezone-aware")


# --- delivery -----------------------------------------------------------------------------------

_DUPLICATE_RATE = 0.05


def _deliver_with_chaos(timed: Iterator[tuple[int, dict[str, Any]]], seed: int) -> Iterator[dict[str, Any]]:
    """EventBridge-like delivery: at-least-once (same id twice), no order guarantee, a few late events."""
    rng = random.Random(f"batchops-simulate-delivery:{seed}")
    in_flight: list[tuple[int, int, dict[str, Any]]] = []
    sequence = 0
    for event_ms, event in timed:
        # Anything still in flight that is due before this event's own time can go: no later event
        # can be delivered before its own event time.
        while in_flight and in_flight[0][0] <= event_ms:
            yield heapq.heappop(in_flight)[2]
        roll = rng.random()
        if roll < 0.80:
            delay = int(rng.random() * 3_000)
        elif roll < 0.995:
            delay = 3_000 + int(rng.random() * 237_000)
        else:
            delay = 300_000 + int(rng.random() * 1_500_000)
        delivered = event_ms + delay
        heapq.heappush(in_flight, (delivered, sequence, event))
        sequence += 1
        if rng.random() < _DUPLICATE_RATE:
            again = delivered + 500 + int(rng.random() * 120_000)
            heapq.heappush(in_flight, (again, sequence, _copy_json(event)))
            sequence += 1
    while in_flight:
        yield heapq.heappop(in_flight)[2]


def _copy_json(event: dict[str, Any]) -> dict[str, Any]:
    """A deep copy of JSON-like data; marshal does it in C, several times faster than `copy.deepcopy`."""
    copied: dict[str, Any] = marshal.loads(marshal.dumps(event))
    return copied


# --- ids and clocks -----------------------------------------------------------------------------

_UUID4_CLEAR = ~((0xF << 76) | (0x3 << 62))
_UUID4_SET = (0x4 << 76) | (0x2 << 62)


def _uuid4(rng: random.Random) -> str:
    text = ((rng.getrandbits(128) & _UUID4_CLEAR) | _UUID4_SET).to_bytes(16).hex()
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


def _hex(rng: random.Random, digits: int) -> str:
    return f"{rng.getrandbits(digits * 4):0{digits}x}"


def _between(rng: random.Random, low: int, high: int) -> int:
    return low + int(rng.random() * (high - low))


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SECONDS = tuple(f"{second:02d}" for second in range(60))
# ECS timestamps drop trailing zeros of the fraction, so the number of fraction digits varies.
_FRACTIONS = ("", *("." + f"{millis:03d}".rstrip("0") for millis in range(1, 1000)))


@lru_cache(maxsize=8192)
def _minute_prefix(minute_number: int) -> str:
    return (_EPOCH + timedelta(minutes=minute_number)).strftime("%Y-%m-%dT%H:%M:")


def _iso_seconds(epoch_ms: int) -> str:
    """`2025-11-13T00:01:02Z`: the EventBridge envelope and CloudTrail precision."""
    minute_number, millis = divmod(epoch_ms, 60_000)
    return f"{_minute_prefix(minute_number)}{_SECONDS[millis // 1000]}Z"


def _iso_ecs(epoch_ms: int) -> str:
    """`2025-11-13T00:01:02.35Z`: milliseconds, trailing zeros (and a zero fraction) left out."""
    minute_number, millis = divmod(epoch_ms, 60_000)
    second, millis = divmod(millis, 1000)
    return f"{_minute_prefix(minute_number)}{_SECONDS[second]}{_FRACTIONS[millis]}Z"


def _envelope(
    event_id: str,
    detail_type: str,
    source: str,
    account: str,
    epoch_ms: int,
    region: str,
    resources: list[str],
    detail: dict[str, Any],
) -> dict[str, Any]:
    return {
        "version": "0",
        "id": event_id,
        "detail-type": detail_type,
        "source": source,
        "account": account,
        "time": _iso_seconds(epoch_ms),
        "region": region,
        "resources": resources,
        "detail": detail,
    }


# --- catalog ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _InstanceType:
    name: str
    vcpus: int
    memory_mib: int

    @property
    def slots(self) -> int:
        return max(1, self.vcpus // 2)


_INSTANCE_TYPES = {
    spec[0]: _InstanceType(*spec)
    for spec in (
        ("c5.xlarge", 4, 8192),
        ("c5.2xlarge", 8, 16384),
        ("c5.4xlarge", 16, 32768),
        ("m5.xlarge", 4, 16384),
        ("m5.2xlarge", 8, 32768),
        ("m5.4xlarge", 16, 65536),
        ("r5.xlarge", 4, 32768),
        ("r5.2xlarge", 8, 65536),
        ("c6g.2xlarge", 8, 16384),
        ("c6g.4xlarge", 16, 32768),
        ("g4dn.xlarge", 4, 16384),
        ("g4dn.2xlarge", 8, 32768),
    )
}

# (name, instance types, architecture, has GPU)
_SPOT_ENVIRONMENTS = (
    ("ce-spot-c5", ("c5.xlarge", "c5.2xlarge", "c5.4xlarge"), "x86_64", False),
    ("ce-spot-m5", ("m5.xlarge", "m5.2xlarge", "m5.4xlarge"), "x86_64", False),
    ("ce-spot-c6g", ("c6g.2xlarge", "c6g.4xlarge"), "arm64", False),
    ("ce-spot-g4dn", ("g4dn.xlarge", "g4dn.2xlarge"), "x86_64", True),
)
_ON_DEMAND_ENVIRONMENTS = (
    ("ce-ondemand-m5", ("m5.xlarge", "m5.2xlarge"), "x86_64", False),
    ("ce-ondemand-r5", ("r5.xlarge", "r5.2xlarge"), "x86_64", False),
    ("ce-od-c5", ("c5.2xlarge", "c5.4xlarge"), "x86_64", False),
)
_FARGATE_ENVIRONMENTS = ("ce-fargate", "ce-fargate-etl", "fargate-batch-compute")

_SPOT_QUEUES = ("genomics-spot", "ml-training-spot", "render-spot", "batch-spot-default")
_ON_DEMAND_QUEUES = ("analytics-ondemand", "reporting-ondemand", "critical-ondemand")
_FARGATE_QUEUES = ("etl-fargate", "fargate-tasks-queue", "api-export-fargate")


@dataclass(frozen=True, slots=True)
class _JobTemplate:
    name: str
    repository: str
    command: tuple[str, ...]
    vcpu: str
    memory: str
    platform: str
    median_seconds: float
    gpu: str | None = None
    timeout_seconds: int | None = None
    parameters: tuple[tuple[str, str], ...] = ()
    environment: tuple[tuple[str, str], ...] = ()
    secrets: tuple[str, ...] = ()
    sidecar: bool = False
    legacy_resources: bool = False
    memory_first: bool = False
    array_capable: bool = False

    @property
    def task_cpu(self) -> str:
        """ECS CPU units of the task, a string as ECS sends it."""
        return _TASK_CPU[self.vcpu]


_TASK_CPU = {vcpu: str(int(float(vcpu) * 1024)) for vcpu in ("0.25", "0.5", "1", "2", "4", "8", "16")}

_EC2_TEMPLATES = (
    _JobTemplate(
        "bwa-align",
        "genomics/bwa:0.7.17",
        ("bwa", "mem", "-t", "Ref::threads", "Ref::reference", "Ref::reads"),
        "4",
        "16384",
        "EC2",
        540,
        timeout_seconds=7200,
        parameters=(
            ("threads", "8"),
            ("reference", "s3://genomics-reference/hg38/hg38.fa"),
            ("reads", "s3://genomics-raw/run-{n}/R1.fastq.gz"),
        ),
        environment=(("SAMPLE_ID", "S{n}"), ("OUTPUT_PREFIX", "s3://genomics-aligned/run-{n}/")),
        array_capable=True,
    ),
    _JobTemplate(
        "gatk-haplotypecaller",
        "genomics/gatk:4.5.0.0",
        ("gatk", "HaplotypeCaller", "-R", "Ref::reference", "-I", "Ref::bam", "-O", "Ref::vcf"),
        "8",
        "32768",
        "EC2",
        1500,
        timeout_seconds=14400,
        parameters=(
            ("reference", "s3://genomics-reference/hg38/hg38.fa"),
            ("bam", "s3://genomics-aligned/run-{n}/sample.bam"),
            ("vcf", "s3://genomics-calls/run-{n}/sample.g.vcf.gz"),
        ),
        environment=(("JAVA_OPTS", "-Xmx28g"), ("SAMPLE_ID", "S{n}")),
        memory_first=True,
    ),
    _JobTemplate(
        "fastqc",
        "genomics/fastqc:0.12.1",
        ("fastqc", "--threads", "2", "Ref::reads"),
        "2",
        "4096",
        "EC2",
        75,
        parameters=(("reads", "s3://genomics-raw/run-{n}/R2.fastq.gz"),),
        environment=(("SAMPLE_ID", "S{n}"),),
        array_capable=True,
    ),
    _JobTemplate(
        "render-frame",
        "render/blender:4.2",
        ("blender", "-b", "/scenes/scene.blend", "-f", "Ref::frame"),
        "4",
        "8192",
        "EC2",
        240,
        parameters=(("frame", "{n}"),),
        environment=(("SCENE", "shot-{n}"), ("RENDER_ENGINE", "CYCLES")),
        secrets=("RENDER_LICENSE",),
        array_capable=True,
    ),
    _JobTemplate(
        "train-resnet50",
        "ml/pytorch-train:2.4-cuda12",
        ("python", "train.py", "--epochs", "Ref::epochs"),
        "4",
        "15360",
        "EC2",
        2400,
        gpu="1",
        timeout_seconds=28800,
        parameters=(("epochs", "20"),),
        environment=(("DATASET", "s3://ml-datasets/imagenet-subset-{n}/"), ("WANDB_MODE", "offline")),
        secrets=("WANDB_API_KEY",),
    ),
    _JobTemplate(
        "nightly-report",
        "analytics/report-builder:2024.11",
        ("python", "-m", "reports.nightly", "--date", "Ref::date"),
        "2",
        "4096",
        "EC2",
        150,
        parameters=(("date", "2025-11-12"),),
        environment=(("REPORT_BUCKET", "s3://analytics-reports/"),),
        legacy_resources=True,
    ),
    _JobTemplate(
        "pipeline-with-sidecar",
        "pipelines/step-runner:3.1",
        ("/opt/pipeline/run-step.sh", "Ref::step"),
        "2",
        "4096",
        "EC2",
        300,
        timeout_seconds=3600,
        parameters=(("step", "transform-{n}"),),
        environment=(("PIPELINE_RUN", "run-{n}"), ("LOG_LEVEL", "info")),
        sidecar=True,
    ),
    _JobTemplate(
        "cpu-stress-test",
        "platform/cpu-stress-test:latest",
        (),
        "2",
        "2048",
        "EC2",
        60,
        parameters=(("stressMinutes", "1"),),
        environment=(("ENVIRONMENT", "prod"),),
    ),
)
_GPU_TEMPLATE = _EC2_TEMPLATES[4]
_SIDECAR_TEMPLATE = _EC2_TEMPLATES[6]
_PLAIN_EC2_TEMPLATES = tuple(t for t in _EC2_TEMPLATES if t.gpu is None and not t.sidecar)

_FARGATE_TEMPLATES = (
    _JobTemplate(
        "csv-export",
        "exports/csv-export:1.8",
        ("python", "export.py", "--table", "Ref::table"),
        "0.5",
        "1024",
        "FARGATE",
        50,
        parameters=(("table", "orders_{n}"),),
        environment=(("EXPORT_BUCKET", "s3://exports-outbound/"),),
    ),
    _JobTemplate(
        "prowler-scan",
        "security/prowler:latest",
        ("prowler", "aws", "--checks", "Ref::checks"),
        "1",
        "2048",
        "FARGATE",
        420,
        timeout_seconds=3600,
        parameters=(("checks", "extra7141,extra7140,extra7127"),),
        environment=(("REGION_NAME", "{region}"),),
    ),
    _JobTemplate(
        "web-app-scanner",
        "security/web-app-scanner:latest",
        (),
        "0.5",
        "2048",
        "FARGATE",
        40,
        environment=(("TARGET_URL", "https://app-{n}.internal.example.com"),),
    ),
    _JobTemplate(
        "etl-transform",
        "etl/spark-lite:3.5",
        ("python", "transform.py", "Ref::partition"),
        "2",
        "4096",
        "FARGATE",
        280,
        timeout_seconds=3600,
        parameters=(("partition", "dt=2025-11-12/part-{n}"),),
        environment=(("WAREHOUSE", "s3://lake-curated/"), ("SPARK_DRIVER_MEMORY", "3g")),
        secrets=("DB_PASSWORD",),
        array_capable=True,
    ),
)

_SECRET_VARIABLES = ("API_TOKEN", "DB_PASSWORD", "GITHUB_TOKEN", "SLACK_WEBHOOK_TOKEN")
_TEAMS = ("genomics", "ml-platform", "analytics", "render", "security", "data-eng")

_REASON_ESSENTIAL_EXITED = "Essential container in task exited"
_REASON_OOM = "OutOfMemoryError: Container killed due to memory usage"
_REASON_TIMEOUT = "Job attempt duration exceeded timeout"
_REASON_CANCELLED = "Cancelled by user"
_REASON_ARRAY_CHILD_FAILED = "Array Child Job failed"
_REASON_SPOT_CAPACITY = (
    "CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY - There is no Spot capacity available that meets the job requirements."
)
_REASON_CAPACITY = (
    "CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY - Service cannot fulfill the capacity requested for instance type "
    "[{itype}]"
)
_REASON_MAX_RESOURCE = (
    "MISCONFIGURATION:COMPUTE_ENVIRONMENT_MAX_RESOURCE - CE(s) associated with the job queue cannot meet "
    "the CPU requirement of the job."
)
_REASON_RESOURCE_REQUIREMENT = (
    "MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT - The job resource requirement (vCPU/memory/GPU) is higher "
    "than that can be met by the CE(s) attached to the job queue."
)

SUCCESS = "success"
SPOT_RECLAIM = "spot_reclaim"
OOM = "oom"
EXIT_NONZERO = "exit_nonzero"
TIMEOUT = "timeout"
CANCELLED = "cancelled"

# Per-attempt failure odds and other rates of the default mix.
_P_SPOT_RECLAIM = 0.07
_P_OOM = 0.025
_P_EXIT_NONZERO = 0.05
_P_TIMEOUT = 0.015
_P_SAME_FAILURE_AGAIN = 0.6
_P_BLOCKED = 0.035
_P_CANCELLED = 0.012
_P_ARRAY = 0.06
_P_DEPENDS_ON = 0.08
_P_SECRET = 0.15
_P_SKIP_RUNNING_WHEN_FAST = 0.6
_SUBMISSIONS_PER_SECOND_PER_REGION = 0.25
_ARRAY_SIZES = (2, 3, 4, 5, 8, 10, 16, 20, 32, 50)
_ARRAY_SIZE_WEIGHTS = (8, 8, 8, 6, 5, 4, 3, 2, 1, 1)


# --- world model --------------------------------------------------------------------------------


@dataclass(slots=True, eq=False)
class _Instance:
    instance_id: str
    arn: str
    environment: _ComputeEnvironment
    instance_type: _InstanceType
    availability_zone: str
    subnet: str
    container_instance_arn: str
    launched_ms: int
    ready_ms: int
    idle_ms: int
    slots: list[int]
    earliest_free: int
    busy_until: int
    warned_ms: int | None = None
    terminated_ms: int | None = None
    alive: bool = True
    # Mutated only while events are released (in time order), so versions increase with time.
    status: str = "REGISTERING"
    version: int = 1
    used_cpu: int = 0
    used_memory: int = 0


@dataclass(slots=True, eq=False)
class _ComputeEnvironment:
    account: str
    region: str
    name: str
    arn: str
    resource_type: str  # EC2 | SPOT | FARGATE | FARGATE_SPOT
    platform: str  # EC2 | FARGATE
    pricing: str  # on-demand | spot | fargate
    cluster_name: str
    cluster_arn: str
    autoscaling_group: str
    autoscaling_group_arn: str
    instance_types: tuple[_InstanceType, ...]
    architecture: str
    has_gpu: bool
    ami: str
    instances: list[_Instance] = field(default_factory=list)


@dataclass(slots=True, eq=False)
class _Queue:
    name: str
    arn: str
    environments: tuple[_ComputeEnvironment, ...]
    environment_weights: tuple[float, ...]
    templates: tuple[_JobTemplate, ...]
    template_weights: tuple[float, ...]
    share_identifier: str | None


@dataclass(frozen=True, slots=True)
class _Definition:
    template: _JobTemplate
    arn: str
    image: str
    sidecar_image: str
    image_digest: str
    execution_role: str
    job_role: str
    task_definition_arn: str
    empty_platform_capabilities: bool
    log_router_first: bool
    propagate_tags: bool
    secrets: tuple[tuple[str, str], ...]  # name, Secrets Manager ARN (a reference, not a secret)


@dataclass(slots=True, eq=False)
class _AccountRegion:
    account: str
    region: str
    availability_zones: tuple[str, ...]
    subnets: tuple[str, ...]
    security_group: str
    environments: list[_ComputeEnvironment]
    queues: list[_Queue]
    queue_weights: tuple[float, ...]
    definitions: dict[str, _Definition]
    recent_successes: deque[tuple[str, int]]


@dataclass(frozen=True, slots=True)
class _NetworkInterface:
    attachment_id: str
    eni_id: str
    private_ip: str
    mac: str
    subnet: str


@dataclass(slots=True, eq=False)
class _Attempt:
    number: int
    kind: str
    environment: _ComputeEnvironment
    instance: _Instance | None
    availability_zone: str
    task_id: str
    task_arn: str
    container_arns: tuple[str, ...]
    network: _NetworkInterface | None
    starting_ms: int
    running_ms: int
    stopped_ms: int
    exit_code: int | None
    sidecar_exit_code: int | None
    status_reason: str
    container_reason: str | None
    runtime_suffix: int
    # ECS timestamps of the task, formatted once on first use: created, connectivity, pull started,
    # pull stopped, started, execution stopped, stopping.
    ecs_times: tuple[str, str, str, str, str, str, str] | None = None


@dataclass(slots=True, eq=False)
class _Job:
    home: _AccountRegion
    queue: _Queue
    environment: _ComputeEnvironment
    definition: _Definition
    job_id: str
    arn: str
    name: str
    created_ms: int
    retry_attempts: int
    parameters: tuple[tuple[str, str], ...]
    user_environment: tuple[tuple[str, str], ...]
    tags: tuple[tuple[str, str], ...]
    depends_on: tuple[str, ...]
    array_size: int | None = None
    array_index: int | None = None
    parent_id: str | None = None
    attempts: list[_Attempt] = field(default_factory=list)
    succeeded_children: int = 0
    failed_children: int = 0

    def log_stream(self, attempt: _Attempt, container: str = "default") -> str:
        return f"{self.definition.template.name}/{container}/{attempt.task_id}"


_Builder = Callable[..., dict[str, Any]]
_Planned = tuple[int, int, _Builder, tuple[Any, ...]]


# --- the simulation -----------------------------------------------------------------------------


class _Simulation:
    """Plans jobs in submission order and releases their events through a time-ordered heap."""

    def __init__(self, settings: SimulationSettings, truth: list[ExpectedJob] | None) -> None:
        self.settings = settings
        self.rng = random.Random(settings.seed)
        self.envelope_ids = random.Random(f"batchops-simulate-envelope-ids:{settings.seed}")
        self.start_ms = int(settings.start.timestamp()) * 1000
        self.truth = truth
        self.planned: list[_Planned] = []
        self.sequence = 0
        self.idle_checks: list[tuple[int, int, _Instance]] = []
        self.fleet = self._build_fleet()
        weights = [self.rng.uniform(0.4, 1.6) for _ in self.fleet]
        self.fleet_weights = tuple(_cumulative(weights))

    # -- plumbing --

    def _at(self, epoch_ms: int, builder: _Builder, *args: Any) -> None:
        heapq.heappush(self.planned, (epoch_ms, self.sequence, builder, args))
        self.sequence += 1

    def _release(self, before: int | None) -> Iterator[tuple[int, dict[str, Any]]]:
        planned = self.planned
        ids = self.envelope_ids
        pop = heapq.heappop
        limit = math.inf if before is None else before
        while planned and planned[0][0] < limit:
            epoch_ms, _, builder, args = pop(planned)
            yield epoch_ms, builder(_uuid4(ids), epoch_ms, *args)

    def timed_events(self) -> Iterator[tuple[int, dict[str, Any]]]:
        """Events with their event time in ms, in time order."""
        rng = self.rng
        first_submission = self._announce_compute_environments() + 60_000
        mean_gap_ms = 1000 / (_SUBMISSIONS_PER_SECOND_PER_REGION * len(self.fleet))
        submitted_ms = first_submission
        for _ in range(self.settings.jobs):
            # Submissions come in small bursts (pipelines submit several jobs at once).
            gap = rng.random() * 400 if rng.random() < 0.15 else rng.expovariate(1 / mean_gap_ms)
            submitted_ms += 1 + int(gap)
            self._scale_in_idle_instances(before=submitted_ms)
            yield from self._release(before=submitted_ms)
            self._submit(submitted_ms)
        self._scale_in_idle_instances(before=None)
        yield from self._release(before=None)

    # -- the fleet --

    def _build_fleet(self) -> list[_AccountRegion]:
        rng = self.rng
        accounts: list[str] = []
        while len(accounts) < self.settings.accounts:
            if not accounts:
                # One account with a leading zero: account ids are strings, never numbers.
                candidate = f"0{rng.randrange(10**10, 10**11):011d}"
            else:
                candidate = f"{rng.randrange(10**11, 10**12):012d}"
            if candidate not in accounts:
                accounts.append(candidate)
        fleet: list[_AccountRegion] = []
        for account in accounts:
            for region in REGIONS[: self.settings.regions]:
                fleet.append(self._build_account_region(account, region))
        return fleet

    def _build_account_region(self, account: str, region: str) -> _AccountRegion:
        rng = self.rng
        zones = tuple(f"{region}{letter}" for letter in "abc")
        subnets = tuple(f"subnet-{_hex(rng, 17)}" for _ in zones)
        spot_spec = rng.choice(_SPOT_ENVIRONMENTS)
        on_demand_spec = rng.choice(_ON_DEMAND_ENVIRONMENTS)
        spot = self._compute_environment(account, region, spot_spec[0], "SPOT", spot_spec[1:])
        on_demand = self._compute_environment(account, region, on_demand_spec[0], "EC2", on_demand_spec[1:])
        fargate_type = "FARGATE_SPOT" if rng.random() < 0.3 else "FARGATE"
        fargate = self._compute_environment(account, region, rng.choice(_FARGATE_ENVIRONMENTS), fargate_type, None)
        ec2_templates = list(rng.sample(_PLAIN_EC2_TEMPLATES, 3))
        spot_templates = [*ec2_templates, _SIDECAR_TEMPLATE]
        spot_weights = [1.0, 1.0, 1.0, 0.35]
        if spot.has_gpu:
            spot_templates.append(_GPU_TEMPLATE)
            spot_weights.append(1.0)

        def queue(
            name: str,
            environments: dict[_ComputeEnvironment, float],
            templates: dict[_JobTemplate, float],
            share_identifier: str | None = None,
        ) -> _Queue:
            return _Queue(
                name=name,
                arn=f"arn:aws:batch:{region}:{account}:job-queue/{name}",
                environments=tuple(environments),
                environment_weights=tuple(_cumulative(list(environments.values()))),
                templates=tuple(templates),
                template_weights=tuple(_cumulative(list(templates.values()))),
                share_identifier=share_identifier,
            )

        # Spot first, on-demand as the fallback when spot capacity is short.
        queues = [
            queue(
                rng.choice(_SPOT_QUEUES),
                {spot: 0.85, on_demand: 0.15},
                dict(zip(spot_templates, spot_weights, strict=True)),
                "blue" if rng.random() < 0.3 else None,
            ),
            queue(rng.choice(_FARGATE_QUEUES), {fargate: 1.0}, dict.fromkeys(rng.sample(_FARGATE_TEMPLATES, 3), 1.0)),
        ]
        queue_weights = [0.55, 0.3]
        if rng.random() < 0.6:
            templates = {**dict.fromkeys(rng.sample(_PLAIN_EC2_TEMPLATES, 2), 1.0), _SIDECAR_TEMPLATE: 0.35}
            queues.append(queue(rng.choice(_ON_DEMAND_QUEUES), {on_demand: 1.0}, templates))
            queue_weights.append(0.25)
        return _AccountRegion(
            account=account,
            region=region,
            availability_zones=zones,
            subnets=subnets,
            security_group=f"sg-{_hex(rng, 17)}",
            environments=[spot, on_demand, fargate],
            queues=queues,
            queue_weights=tuple(_cumulative(queue_weights)),
            definitions={},
            recent_successes=deque(maxlen=12),
        )

    def _compute_environment(
        self,
        account: str,
        region: str,
        name: str,
        resource_type: str,
        ec2_spec: tuple[tuple[str, ...], str, bool] | None,
    ) -> _ComputeEnvironment:
        rng = self.rng
        instance_types: tuple[_InstanceType, ...] = ()
        architecture, has_gpu = "x86_64", False
        if ec2_spec is not None:
            instance_types = tuple(_INSTANCE_TYPES[n] for n in ec2_spec[0])
            architecture, has_gpu = ec2_spec[1], ec2_spec[2]
        cluster = f"AWSBatch-{name}-{_uuid4(rng)}"
        group = f"{cluster}-asg-{_hex(rng, 8)}"
        group_arn = (
            f"arn:aws:autoscaling:{region}:{account}:autoScalingGroup:{_uuid4(rng)}:autoScalingGroupName/{group}"
        )
        return _ComputeEnvironment(
            account=account,
            region=region,
            name=name,
            arn=f"arn:aws:batch:{region}:{account}:compute-environment/{name}",
            resource_type=resource_type,
            platform="EC2" if ec2_spec is not None else "FARGATE",
            pricing="fargate" if ec2_spec is None else "spot" if resource_type == "SPOT" else "on-demand",
            cluster_name=cluster,
            cluster_arn=f"arn:aws:ecs:{region}:{account}:cluster/{cluster}",
            autoscaling_group=group,
            autoscaling_group_arn=group_arn,
            instance_types=instance_types,
            architecture=architecture,
            has_gpu=has_gpu,
            ami=f"ami-{_hex(rng, 17)}",
        )

    def _announce_compute_environments(self) -> int:
        """CloudTrail CreateComputeEnvironment for most CEs; returns the time of the last one."""
        rng = self.rng
        moment = self.start_ms
        for index, home in enumerate(self.fleet):
            for environment in home.environments:
                # Leave some EC2 CEs without a trail so pricing must come from spot signals.
                if index == 0 and environment.resource_type == "SPOT":
                    continue
                if index == 1 and environment.resource_type == "EC2":
                    continue
                if rng.random() < 0.12:
                    continue
                moment += _between(rng, 1_000, 4_000)
                self._at(moment, _cloudtrail_create_compute_environment, home, environment, _uuid4(rng), _uuid4(rng))
        return moment

    def _definition(self, home: _AccountRegion, template: _JobTemplate) -> _Definition:
        known = home.definitions.get(template.name)
        if known is not None:
            return known
        rng = self.rng
        account, region = home.account, home.region
        revision = _between(rng, 1, 14)
        registry = f"{account}.dkr.ecr.{region}.amazonaws.com"
        definition = _Definition(
            template=template,
            arn=f"arn:aws:batch:{region}:{account}:job-definition/{template.name}:{revision}",
            image=f"{registry}/{template.repository}",
            sidecar_image="public.ecr.aws/aws-observability/aws-for-fluent-bit:stable",
            image_digest=f"sha256:{_hex(rng, 64)}",
            execution_role=f"arn:aws:iam::{account}:role/BatchEcsExecutionRole",
            job_role=f"arn:aws:iam::{account}:role/{template.name}-job-role",
            task_definition_arn=(
                f"arn:aws:ecs:{region}:{account}:task-definition/{template.name}:{_between(rng, 1, 40)}"
            ),
            empty_platform_capabilities=template.platform == "EC2" and rng.random() < 0.3,
            log_router_first=rng.random() < 0.5,
            propagate_tags=rng.random() < 0.5,
            secrets=tuple(
                (name, f"arn:aws:secretsmanager:{region}:{account}:secret:prod/{name.lower()}-{_hex(rng, 6)}")
                for name in template.secrets
            ),
        )
        home.definitions[template.name] = definition
        return definition

    # -- instances --

    def _scale_in_idle_instances(self, before: int | None) -> None:
        checks = self.idle_checks
        while checks and (before is None or checks[0][0] < before):
            due, _, instance = heapq.heappop(checks)
            if not instance.alive:
                continue
            if instance.terminated_ms is not None:
                if due == instance.terminated_ms:
                    instance.alive = False
                    instance.environment.instances.remove(instance)
                continue
            if due == instance.busy_until + instance.idle_ms:
                self._scale_in(instance, due)

    def _scale_in(self, instance: _Instance, moment: int) -> None:
        rng = self.rng
        instance.alive = False
        instance.environment.instances.remove(instance)
        if rng.random() < 0.3:
            self._at(moment, _container_instance_event, instance, "DRAINING", 0, 0)
        self._at(moment + _between(rng, 0, 2_000), _ec2_state_event, instance, "shutting-down")
        self._at(moment + _between(rng, 5_000, 30_000), _container_instance_event, instance, "INACTIVE", 0, 0)
        self._at(moment + _between(rng, 20_000, 60_000), _ec2_state_event, instance, "terminated")
        if rng.random() < 0.95:
            self._at(moment + _between(rng, 30_000, 90_000), _autoscaling_event, instance, False, moment, _uuid4(rng))

    def _launch(self, environment: _ComputeEnvironment, wanted_ms: int, home: _AccountRegion) -> _Instance:
        rng = self.rng
        launched = wanted_ms + _between(rng, 3_000, 15_000)
        ready = launched + _between(rng, 60_000, 150_000)
        instance_type = rng.choice(environment.instance_types)
        instance_id = f"i-0{_hex(rng, 16)}"
        zone_index = _between(rng, 0, len(home.availability_zones))
        instance = _Instance(
            instance_id=instance_id,
            arn=f"arn:aws:ec2:{environment.region}:{environment.account}:instance/{instance_id}",
            environment=environment,
            instance_type=instance_type,
            availability_zone=home.availability_zones[zone_index],
            subnet=home.subnets[zone_index],
            container_instance_arn=(
                f"arn:aws:ecs:{environment.region}:{environment.account}:container-instance/"
                f"{environment.cluster_name}/{_hex(rng, 32)}"
            ),
            launched_ms=launched,
            ready_ms=ready,
            idle_ms=_between(rng, 240_000, 720_000),
            slots=[ready] * instance_type.slots,
            earliest_free=ready,
            busy_until=ready,
        )
        environment.instances.append(instance)
        self._at(launched, _ec2_state_event, instance, "pending")
        self._at(launched + _between(rng, 10_000, 25_000), _ec2_state_event, instance, "running")
        if rng.random() < 0.95:
            self._at(
                launched + _between(rng, 25_000, 50_000), _autoscaling_event, instance, True, launched, _uuid4(rng)
            )
        self._at(ready, _container_instance_event, instance, "ACTIVE", 0, 0)
        self._check_idle_later(instance)
        return instance

    def _check_idle_later(self, instance: _Instance) -> None:
        heapq.heappush(self.idle_checks, (instance.busy_until + instance.idle_ms, self.sequence, instance))
        self.sequence += 1

    def _place(
        self,
        environment: _ComputeEnvironment,
        home: _AccountRegion,
        wanted_ms: int,
        occupancy_ms: int,
        terminate_after_ms: int | None,
    ) -> tuple[_Instance, int]:
        """Pick an instance with a free slot at (or just after) the wanted time; launch one if none fits."""
        for instance in environment.instances:
            start = max(wanted_ms, instance.ready_ms + 1_000)
            if instance.earliest_free > start or start - wanted_ms > 90_000:
                continue
            if start > instance.busy_until + instance.idle_ms:
                continue
            end = start + occupancy_ms
            if instance.warned_ms is not None and end > instance.warned_ms:
                continue
            slots = instance.slots
            chosen = -1
            for index, free_from in enumerate(slots):
                if free_from <= start:
                    chosen = index
                    break
            if chosen < 0:
                continue
            if terminate_after_ms is not None:
                terminated = start + terminate_after_ms
                # The instance dies with this attempt: nothing else may still run on it by then.
                if any(free_from > terminated for i, free_from in enumerate(slots) if i != chosen):
                    continue
            self._occupy(instance, chosen, end)
            return instance, start
        instance = self._launch(environment, wanted_ms, home)
        start = instance.ready_ms + _between(self.rng, 1_000, 5_000)
        self._occupy(instance, 0, start + occupancy_ms)
        return instance, start

    def _occupy(self, instance: _Instance, slot: int, end: int) -> None:
        instance.slots[slot] = end
        instance.earliest_free = min(instance.slots)
        if end > instance.busy_until:
            instance.busy_until = end
            if instance.terminated_ms is None:
                self._check_idle_later(instance)

    def _reclaim(self, instance: _Instance, warned: int, terminated: int, earliest: int) -> None:
        """A spot interruption: warning, ~2 minutes, then the instance is gone."""
        rng = self.rng
        instance.warned_ms = warned
        instance.terminated_ms = terminated
        if rng.random() < 0.6:
            recommended = max(earliest, warned - _between(rng, 60_000, 480_000))
            self._at(recommended, _rebalance_recommendation, instance)
        self._at(warned, _spot_interruption_warning, instance)
        self._at(warned + _between(rng, 500, 4_000), _container_instance_event, instance, "DRAINING", 0, 0)
        self._at(terminated, _ec2_state_event, instance, "shutting-down")
        self._at(terminated + _between(rng, 5_000, 40_000), _container_instance_event, instance, "INACTIVE", 0, 0)
        self._at(terminated + _between(rng, 20_000, 60_000), _ec2_state_event, instance, "terminated")
        if rng.random() < 0.95:
            self._at(
                terminated + _between(rng, 30_000, 90_000),
                _autoscaling_event,
                instance,
                False,
                terminated,
                _uuid4(rng),
            )
        heapq.heappush(self.idle_checks, (terminated, self.sequence, instance))
        self.sequence += 1

    # -- jobs --

    def _submit(self, submitted_ms: int) -> None:
        rng = self.rng
        home = self.fleet[_pick(rng, self.fleet_weights)]
        queue = home.queues[_pick(rng, home.queue_weights)]
        template = queue.templates[_pick(rng, queue.template_weights)]
        environment = queue.environments[_pick(rng, queue.environment_weights)]
        if template.gpu is not None and not environment.has_gpu:
            environment = queue.environments[0]
        definition = self._definition(home, template)
        if template.array_capable and rng.random() < _P_ARRAY:
            self._submit_array(home, queue, environment, definition, submitted_ms)
            return
        depends_on: tuple[str, ...] = ()
        ready = submitted_ms + _between(rng, 300, 3_000)
        if home.recent_successes and rng.random() < _P_DEPENDS_ON:
            dependency_id, dependency_end = rng.choice(home.recent_successes)
            depends_on = (dependency_id,)
            ready = max(ready, dependency_end + _between(rng, 1_000, 6_000))
        job = self._new_job(home, queue, environment, definition, submitted_ms, depends_on)
        if depends_on:
            self._at(submitted_ms + _between(rng, 200, 1_500), _batch_job_event, job, "PENDING", 0, -1, None, None)
        status, finished = self._run(job, ready, is_child=False)
        if status == "SUCCEEDED":
            home.recent_successes.append((job.job_id, finished))

    def _new_job(
        self,
        home: _AccountRegion,
        queue: _Queue,
        environment: _ComputeEnvironment,
        definition: _Definition,
        submitted_ms: int,
        depends_on: tuple[str, ...],
    ) -> _Job:
        rng = self.rng
        template = definition.template
        run_number = f"{_between(rng, 1, 100_000):05d}"
        parameters = tuple((key, value.format(n=run_number)) for key, value in template.parameters)
        variables = [(key, value.format(n=run_number, region=home.region)) for key, value in template.environment]
        if rng.random() < _P_SECRET:
            variables.append((rng.choice(_SECRET_VARIABLES), SECRET_VALUE))
        job_id = _uuid4(rng)
        arn = f"arn:aws:batch:{home.region}:{home.account}:job/{job_id}"
        tags: tuple[tuple[str, str], ...] = (("resourceArn", arn),)
        if rng.random() < 0.5:
            tags = (*tags, ("team", rng.choice(_TEAMS)), ("cost-center", f"cc-{_between(rng, 100, 999)}"))
        roll = rng.random()
        retry_attempts = 1 if roll < 0.35 else 2 if roll < 0.7 else 3
        suffix = str(submitted_ms // 1000) if rng.random() < 0.5 else run_number
        name = f"{template.name}-{suffix}"
        return _Job(
            home=home,
            queue=queue,
            environment=environment,
            definition=definition,
            job_id=job_id,
            arn=arn,
            name=name,
            created_ms=submitted_ms,
            retry_attempts=retry_attempts,
            parameters=parameters,
            user_environment=tuple(variables),
            tags=tags,
            depends_on=depends_on,
        )

    def _submit_array(
        self,
        home: _AccountRegion,
        queue: _Queue,
        environment: _ComputeEnvironment,
        definition: _Definition,
        submitted_ms: int,
    ) -> None:
        rng = self.rng
        size = rng.choices(_ARRAY_SIZES, weights=_ARRAY_SIZE_WEIGHTS)[0]
        parent = self._new_job(home, queue, environment, definition, submitted_ms, ())
        parent.array_size = size
        self._at(submitted_ms + _between(rng, 300, 1_500), _batch_job_event, parent, "PENDING", 0, -1, None, None)
        finished = submitted_ms
        for index in range(size):
            child = _Job(
                home=home,
                queue=queue,
                environment=environment,
                definition=definition,
                job_id=f"{parent.job_id}:{index}",
                arn=f"{parent.arn}:{index}",
                name=parent.name,
                created_ms=submitted_ms,
                retry_attempts=parent.retry_attempts,
                parameters=parent.parameters,
                user_environment=parent.user_environment,
                tags=(("resourceArn", f"{parent.arn}:{index}"), *parent.tags[1:]),
                depends_on=(),
                array_index=index,
                parent_id=parent.job_id,
            )
            status, child_finished = self._run(child, submitted_ms + _between(rng, 1_000, 4_000), is_child=True)
            if status == "SUCCEEDED":
                parent.succeeded_children += 1
            else:
                parent.failed_children += 1
            finished = max(finished, child_finished)
        status = "FAILED" if parent.failed_children else "SUCCEEDED"
        stopped = finished + _between(rng, 1_000, 5_000)
        reason = _REASON_ARRAY_CHILD_FAILED if parent.failed_children else None
        self._at(stopped, _batch_job_event, parent, status, 0, -1, reason, stopped)
        self._record(parent, status, None)

    def _run(self, job: _Job, ready: int, is_child: bool) -> tuple[str, int]:
        """Plan a job from RUNNABLE to its end; returns its final status and the time of its last event."""
        rng = self.rng
        self._at(ready, _batch_job_event, job, "RUNNABLE", 0, -1, None, None)
        roll = rng.random()
        if roll < _P_BLOCKED:
            fate = rng.random()
            forever = not is_child and fate < 0.25
            cancelled = not is_child and not forever and fate < 0.45
            reason = self._blocking_reason(job, forever)
            blocked = ready + _between(rng, 180_000, 720_000)
            self._at(blocked, _queue_blocked_event, job, reason)
            self._at(blocked + _between(rng, 50, 900), _batch_job_event, job, "RUNNABLE", 0, -1, reason, None)
            if forever:
                self._record(job, "RUNNABLE", None)
                return "RUNNABLE", blocked + 900
            if cancelled:
                return self._cancel(job, blocked + _between(rng, 300_000, 3_600_000))
            wanted = blocked + _between(rng, 120_000, 2_700_000)
        elif not is_child and roll < _P_BLOCKED + _P_CANCELLED:
            return self._cancel(job, ready + _between(rng, 20_000, 900_000))
        else:
            wanted = ready + self._scheduling_delay()
        previous_kind: str | None = None
        number = 0
        while True:
            number += 1
            kind = self._outcome(job, previous_kind)
            attempt = self._attempt(job, number, kind, wanted)
            if kind == SUCCESS or number >= job.retry_attempts:
                status = "SUCCEEDED" if kind == SUCCESS else "FAILED"
                finished = attempt.stopped_ms + _between(rng, 800, 5_000)
                reason = attempt.status_reason
                self._at(finished, _batch_job_event, job, status, number, number - 1, reason, attempt.stopped_ms)
                self._record(job, status, None if kind == SUCCESS else kind)
                return status, finished
            retried = attempt.stopped_ms + _between(rng, 800, 4_000)
            self._at(retried, _batch_job_event, job, "RUNNABLE", number, -1, None, None)
            wanted = retried + self._scheduling_delay()
            previous_kind = kind

    def _cancel(self, job: _Job, moment: int) -> tuple[str, int]:
        self._at(moment, _batch_job_event, job, "FAILED", 0, -1, _REASON_CANCELLED, moment)
        self._record(job, "FAILED", CANCELLED)
        return "FAILED", moment

    def _blocking_reason(self, job: _Job, forever: bool) -> str:
        if forever:
            return _REASON_RESOURCE_REQUIREMENT
        environment = job.environment
        if environment.platform == "FARGATE":
            return _REASON_MAX_RESOURCE
        if environment.resource_type == "SPOT" and self.rng.random() < 0.5:
            return _REASON_SPOT_CAPACITY
        return _REASON_CAPACITY.format(itype=self.rng.choice(environment.instance_types).name)

    def _scheduling_delay(self) -> int:
        return min(300_000, int(self.rng.lognormvariate(math.log(6_000), 0.8)))

    def _outcome(self, job: _Job, previous_kind: str | None) -> str:
        rng = self.rng
        if previous_kind in (OOM, EXIT_NONZERO, TIMEOUT) and rng.random() < _P_SAME_FAILURE_AGAIN:
            return previous_kind  # a deterministic failure tends to fail again
        roll = rng.random()
        if job.environment.resource_type == "SPOT":
            if roll < _P_SPOT_RECLAIM:
                return SPOT_RECLAIM
            roll -= _P_SPOT_RECLAIM
        if roll < _P_OOM:
            return OOM
        roll -= _P_OOM
        if roll < _P_EXIT_NONZERO:
            return EXIT_NONZERO
        roll -= _P_EXIT_NONZERO
        if job.definition.template.timeout_seconds is not None and roll < _P_TIMEOUT:
            return TIMEOUT
        return SUCCESS

    def _attempt(self, job: _Job, number: int, kind: str, wanted: int) -> _Attempt:
        """Place and plan one attempt: Batch STARTING/RUNNING, ECS task changes, and a spot reclaim."""
        rng = self.rng
        template = job.definition.template
        environment = job.environment
        home = job.home
        fargate = environment.platform == "FARGATE"
        median = template.median_seconds * 1000
        work = int(min(8 * 3_600_000, max(3_000, rng.lognormvariate(math.log(median), 0.9))))
        timeout_ms = None if template.timeout_seconds is None else template.timeout_seconds * 1000
        warn_after = 0
        exit_code: int | None = None
        sidecar_exit: int | None = None
        container_reason: str | None = None
        if kind == TIMEOUT and timeout_ms is not None:
            run = timeout_ms + _between(rng, 200, 3_000)
            reason = _REASON_TIMEOUT
        elif kind == SPOT_RECLAIM:
            warn_after = max(1_000, int(work * rng.uniform(0.1, 0.9)))
            run = warn_after + 120_000 + _between(rng, 2_000, 20_000)
            reason = ""  # filled in once the instance is known
        elif kind in (OOM, EXIT_NONZERO):
            run = max(2_000, int(work * rng.uniform(0.05, 0.9)))
            if kind == OOM:
                exit_code, reason, container_reason = 137, _REASON_OOM, _REASON_OOM
            else:
                exit_code = rng.choice((1, 1, 1, 2, 3, 127, 139, 255))
                reason = _REASON_ESSENTIAL_EXITED
        else:
            run = work if timeout_ms is None else min(work, int(timeout_ms * 0.95))
            exit_code, reason = 0, _REASON_ESSENTIAL_EXITED
        if template.sidecar and exit_code is not None:
            # The log router is stopped with the task: SIGTERM gives 143, a clean shutdown 0.
            sidecar_exit = 143 if rng.random() < 0.5 else 0
        if fargate:
            # ENI provisioning, then the image pull.
            provisioned_after = _between(rng, 8_000, 25_000)
            running_after = provisioned_after + _between(rng, 5_000, 40_000)
        else:
            provisioned_after = 0
            running_after = _between(rng, 3_000, 40_000)
        stop_tail = _between(rng, 500, 3_000)
        occupancy = running_after + run + stop_tail + 1_000
        instance: _Instance | None = None
        if fargate:
            starting = wanted  # Fargate capacity is not modelled: the task starts when scheduled
            zone_index = _between(rng, 0, len(home.availability_zones))
            zone = home.availability_zones[zone_index]
            network: _NetworkInterface | None = _NetworkInterface(
                attachment_id=_uuid4(rng),
                eni_id=f"eni-{_hex(rng, 17)}",
                private_ip=f"10.0.{_between(rng, 0, 255)}.{_between(rng, 4, 254)}",
                mac=":".join(f"{_between(rng, 0, 256):02x}" for _ in range(6)),
                subnet=home.subnets[zone_index],
            )
        else:
            terminate_after = running_after + warn_after + 120_000 if kind == SPOT_RECLAIM else None
            instance, starting = self._place(environment, home, wanted, occupancy, terminate_after)
            zone = instance.availability_zone
            network = None
            if kind == SPOT_RECLAIM:
                reason = f"Host EC2 (instance {instance.instance_id}) terminated."
        running = starting + running_after
        stopped = running + run
        containers = 2 if template.sidecar else 1
        task_id = _hex(rng, 32)
        attempt = _Attempt(
            number=number,
            kind=kind,
            environment=environment,
            instance=instance,
            availability_zone=zone,
            task_id=task_id,
            task_arn=f"arn:aws:ecs:{home.region}:{home.account}:task/{environment.cluster_name}/{task_id}",
            container_arns=tuple(
                f"arn:aws:ecs:{home.region}:{home.account}:container/{environment.cluster_name}/{task_id}/{_uuid4(rng)}"
                for _ in range(containers)
            ),
            network=network,
            starting_ms=starting,
            running_ms=running,
            stopped_ms=stopped,
            exit_code=exit_code,
            sidecar_exit_code=sidecar_exit,
            status_reason=reason,
            container_reason=container_reason,
            runtime_suffix=_between(rng, 1_000_000_000, 4_000_000_000),
        )
        job.attempts.append(attempt)
        index = number - 1
        self._at(starting, _batch_job_event, job, "STARTING", index, index, None, None)
        skip_running = run < 30_000 and rng.random() < _P_SKIP_RUNNING_WHEN_FAST
        if not skip_running:
            self._at(running + _between(rng, 200, 1_500), _batch_job_event, job, "RUNNING", index, index, None, None)
        if attempt.instance is None:
            self._plan_fargate_task(job, attempt, provisioned_after, stop_tail)
        else:
            self._plan_ec2_task(job, attempt, attempt.instance, running + warn_after, stop_tail, occupancy)
        return attempt

    def _plan_fargate_task(self, job: _Job, attempt: _Attempt, provisioned_after: int, stop_tail: int) -> None:
        rng = self.rng
        starting, stopped = attempt.starting_ms, attempt.stopped_ms
        self._at(starting + _between(rng, 100, 800), _ecs_task_event, job, attempt, "PROVISIONING", 1)
        self._at(starting + provisioned_after, _ecs_task_event, job, attempt, "PENDING", 2)
        self._at(attempt.running_ms, _ecs_task_event, job, attempt, "RUNNING", 3)
        self._at(stopped + _between(rng, 100, stop_tail), _ecs_task_event, job, attempt, "DEPROVISIONING", 4)
        self._at(stopped + stop_tail + _between(rng, 10_000, 30_000), _ecs_task_event, job, attempt, "STOPPED", 5)

    def _plan_ec2_task(
        self, job: _Job, attempt: _Attempt, host: _Instance, warned: int, stop_tail: int, occupancy: int
    ) -> None:
        """The task on its container instance: placement, ECS changes, and the end of the host on a reclaim."""
        rng = self.rng
        template = job.definition.template
        starting = attempt.starting_ms
        stopped_event = attempt.stopped_ms + stop_tail
        cpu = int(float(template.vcpu) * 1024)
        memory = int(template.memory)
        self._at(starting + _between(rng, 50, 400), _container_instance_event, host, None, cpu, memory)
        self._at(starting + _between(rng, 400, 900), _ecs_task_event, job, attempt, "PENDING", 1)
        self._at(attempt.running_ms, _ecs_task_event, job, attempt, "RUNNING", 2)
        self._at(stopped_event, _ecs_task_event, job, attempt, "STOPPED", 3)
        if attempt.kind == SPOT_RECLAIM:
            self._reclaim(host, warned, warned + 120_000, starting)
            return
        self._at(stopped_event + _between(rng, 100, 900), _container_instance_event, host, None, -cpu, -memory)
        if host.environment.resource_type == "SPOT" and rng.random() < 0.02:
            # Rebalance recommendations also come for instances that are never interrupted.
            self._at(starting + _between(rng, 0, occupancy), _rebalance_recommendation, host)

    def _record(self, job: _Job, status: str, failure_kind: str | None) -> None:
        if self.truth is None:
            return
        last = job.attempts[-1] if job.attempts else None
        instance = last.instance if last is not None else None
        self.truth.append(
            ExpectedJob(
                account_id=job.home.account,
                region=job.home.region,
                job_id=job.job_id,
                queue=job.queue.name,
                compute_environment=last.environment.name if last is not None else None,
                platform=job.environment.platform,
                status=status,
                attempts=len(job.attempts),
                exit_code=last.exit_code if last is not None else None,
                pricing=job.environment.pricing,
                instance_id=instance.instance_id if instance is not None else None,
                array_parent_id=job.parent_id,
                array_index=job.array_index,
                array_size=job.array_size,
                failure_kind=failure_kind,
            )
        )


def _pick(rng: random.Random, cumulative_weights: tuple[float, ...]) -> int:
    """Index drawn with the given cumulative weights (what `random.choices` does, without its overhead)."""
    return bisect.bisect(cumulative_weights, rng.random() * cumulative_weights[-1])


def _cumulative(weights: list[float]) -> list[float]:
    total = 0.0
    out: list[float] = []
    for weight in weights:
        total += weight
        out.append(total)
    return out


# --- event builders (run when an event is released, in time order) --------------------------------

_TERMINAL = ("SUCCEEDED", "FAILED")


def _resource_requirements(template: _JobTemplate) -> list[dict[str, str]]:
    requirements = [{"value": template.vcpu, "type": "VCPU"}, {"value": template.memory, "type": "MEMORY"}]
    if template.memory_first:
        requirements.reverse()
    if template.gpu is not None:
        requirements.append({"value": template.gpu, "type": "GPU"})
    return requirements


def _secrets(job: _Job) -> list[dict[str, str]]:
    return [{"name": name, "valueFrom": arn} for name, arn in job.definition.secrets]


def _network_interfaces(attempt: _Attempt | None) -> list[dict[str, str]]:
    if attempt is None or attempt.network is None:
        return []
    return [{"attachmentId": attempt.network.attachment_id, "privateIpv4Address": attempt.network.private_ip}]


def _container_instance_arn(attempt: _Attempt) -> str | None:
    return attempt.instance.container_instance_arn if attempt.instance is not None else None


def _attempt_record(job: _Job, attempt: _Attempt) -> dict[str, Any]:
    task_arn = attempt.task_arn
    if job.definition.template.sidecar:
        containers = []
        for name, exit_code in _sidecar_containers(job, attempt):
            container: dict[str, Any] = {}
            if exit_code is not None:
                container["exitCode"] = exit_code
            container["name"] = name
            container["logStreamName"] = job.log_stream(attempt, name)
            container["networkInterfaces"] = []
            containers.append(container)
        task: dict[str, Any] = {}
        instance_arn = _container_instance_arn(attempt)
        if instance_arn is not None:
            task["containerInstanceArn"] = instance_arn
        task["taskArn"] = task_arn
        task["containers"] = containers
        return {
            "startedAt": attempt.running_ms,
            "stoppedAt": attempt.stopped_ms,
            "statusReason": attempt.status_reason,
            "taskProperties": [task],
        }
    record: dict[str, Any] = {}
    instance_arn = _container_instance_arn(attempt)
    if instance_arn is not None:
        record["containerInstanceArn"] = instance_arn
    record["taskArn"] = task_arn
    if attempt.exit_code is not None:
        record["exitCode"] = attempt.exit_code
    if attempt.container_reason is not None:
        record["reason"] = attempt.container_reason
    record["logStreamName"] = job.log_stream(attempt)
    record["networkInterfaces"] = _network_interfaces(attempt)
    return {
        "container": record,
        "startedAt": attempt.running_ms,
        "stoppedAt": attempt.stopped_ms,
        "statusReason": attempt.status_reason,
    }


def _sidecar_containers(job: _Job, attempt: _Attempt | None) -> list[tuple[str, int | None]]:
    main = ("main", attempt.exit_code if attempt is not None else None)
    router = ("log-router", attempt.sidecar_exit_code if attempt is not None else None)
    return [router, main] if job.definition.log_router_first else [main, router]


def _container(job: _Job, status: str, shown: _Attempt | None) -> dict[str, Any]:
    definition = job.definition
    template = definition.template
    fargate = job.environment.platform == "FARGATE"
    container: dict[str, Any] = {
        "image": definition.image,
        "command": list(template.command),
        "jobRoleArn": definition.job_role,
        "executionRoleArn": definition.execution_role,
        "volumes": [],
        "environment": [{"name": name, "value": value} for name, value in job.user_environment],
        "mountPoints": [],
        "ulimits": [],
    }
    if template.legacy_resources:
        container["vcpus"] = int(template.vcpu)
        container["memory"] = int(template.memory)
    else:
        container["resourceRequirements"] = _resource_requirements(template)
    container["secrets"] = _secrets(job)
    if fargate:
        container["fargatePlatformConfiguration"] = {"platformVersion": "LATEST"}
        container["networkConfiguration"] = {"assignPublicIp": "DISABLED"}
    if shown is not None:
        instance_arn = _container_instance_arn(shown)
        if instance_arn is not None:
            container["containerInstanceArn"] = instance_arn
        container["taskArn"] = shown.task_arn
        if status != "STARTING":
            container["logStreamName"] = job.log_stream(shown)
        if status in _TERMINAL:
            if shown.exit_code is not None:
                container["exitCode"] = shown.exit_code
            if shown.container_reason is not None:
                container["reason"] = shown.container_reason
    container["networkInterfaces"] = _network_interfaces(shown)
    return container


def _ecs_properties(job: _Job, status: str, shown: _Attempt | None) -> dict[str, Any]:
    definition = job.definition
    template = definition.template
    containers = []
    for name, exit_code in _sidecar_containers(job, shown):
        main = name == "main"
        container: dict[str, Any] = {
            "command": list(template.command) if main else [],
            "dependsOn": [],
            "environment": (
                [{"name": key, "value": value} for key, value in job.user_environment]
                if main
                else [{"name": "FLB_LOG_LEVEL", "value": "info"}]
            ),
            "essential": main,
            "image": definition.image if main else definition.sidecar_image,
            "mountPoints": [],
            "name": name,
            "resourceRequirements": (
                _resource_requirements(template)
                if main
                else [{"value": "0.25", "type": "VCPU"}, {"value": "256", "type": "MEMORY"}]
            ),
            "secrets": [],
            "ulimits": [],
        }
        if shown is not None:
            if status in _TERMINAL and exit_code is not None:
                container["exitCode"] = exit_code
            container["logStreamName"] = job.log_stream(shown, name)
        container["networkInterfaces"] = []
        containers.append(container)
    task: dict[str, Any] = {"containers": containers}
    if shown is not None:
        instance_arn = _container_instance_arn(shown)
        if instance_arn is not None:
            task["containerInstanceArn"] = instance_arn
        task["taskArn"] = shown.task_arn
    task["executionRoleArn"] = definition.execution_role
    task["taskRoleArn"] = definition.job_role
    task["volumes"] = []
    return {"taskProperties": [task]}


def _job_detail(
    job: _Job, status: str, finished_attempts: int, shown_attempt: int, reason: str | None, stopped: int | None
) -> dict[str, Any]:
    # shown_attempt: index of the attempt whose task the event describes (-1: none, e.g. RUNNABLE).
    shown = job.attempts[shown_attempt] if shown_attempt >= 0 else None
    template = job.definition.template
    detail: dict[str, Any] = {
        "jobArn": job.arn,
        "jobName": job.name,
        "jobId": job.job_id,
        "jobQueue": job.queue.arn,
        "status": status,
    }
    if job.queue.share_identifier is not None:
        detail["shareIdentifier"] = job.queue.share_identifier
        detail["schedulingPriority"] = 1
    detail["attempts"] = [_attempt_record(job, attempt) for attempt in job.attempts[:finished_attempts]]
    if reason is not None:
        detail["statusReason"] = reason
    detail["createdAt"] = job.created_ms
    detail["retryStrategy"] = {"attempts": job.retry_attempts, "evaluateOnExit": []}
    if shown is not None and status != "STARTING":
        detail["startedAt"] = shown.running_ms
    if stopped is not None:
        detail["stoppedAt"] = stopped
    detail["dependsOn"] = [{"jobId": job_id} for job_id in job.depends_on]
    detail["jobDefinition"] = job.definition.arn
    detail["parameters"] = dict(job.parameters)
    if template.timeout_seconds is not None:
        detail["timeout"] = {"attemptDurationSeconds": template.timeout_seconds}
    if not template.sidecar:
        detail["container"] = _container(job, status, shown)
    detail["tags"] = dict(job.tags)
    detail["propagateTags"] = job.definition.propagate_tags
    if job.environment.platform == "FARGATE":
        detail["platformCapabilities"] = ["FARGATE"]
    else:
        detail["platformCapabilities"] = [] if job.definition.empty_platform_capabilities else ["EC2"]
    detail["eksAttempts"] = []
    if template.sidecar:
        detail["ecsProperties"] = _ecs_properties(job, status, shown)
    if job.array_size is not None:
        summary: dict[str, int] = {}
        if status in _TERMINAL:
            summary = {
                "STARTING": 0,
                "FAILED": job.failed_children,
                "RUNNING": 0,
                "SUCCEEDED": job.succeeded_children,
                "RUNNABLE": 0,
                "SUBMITTED": 0,
                "PENDING": 0,
            }
        detail["arrayProperties"] = {"statusSummary": summary, "size": job.array_size}
    elif job.array_index is not None:
        detail["arrayProperties"] = {"index": job.array_index, "statusSummary": {}}
    return detail


def _batch_job_event(
    event_id: str,
    epoch_ms: int,
    job: _Job,
    status: str,
    finished_attempts: int,
    shown_attempt: int,
    reason: str | None,
    stopped: int | None,
) -> dict[str, Any]:
    home = job.home
    detail = _job_detail(job, status, finished_attempts, shown_attempt, reason, stopped)
    return _envelope(
        event_id, BATCH_JOB_STATE_CHANGE, "aws.batch", home.account, epoch_ms, home.region, [job.arn], detail
    )


def _queue_blocked_event(event_id: str, epoch_ms: int, job: _Job, reason: str) -> dict[str, Any]:
    home = job.home
    detail = _job_detail(job, "RUNNABLE", 0, -1, None, None)
    detail["statusReason"] = reason  # the blocking reason comes last, as in AWS's sample
    return _envelope(
        event_id,
        BATCH_JOB_QUEUE_BLOCKED,
        "aws.batch",
        home.account,
        epoch_ms,
        home.region,
        [job.arn, job.queue.arn],
        detail,
    )


_ECS_DESIRED = {
    "PROVISIONING": "RUNNING",
    "PENDING": "RUNNING",
    "RUNNING": "RUNNING",
    "DEPROVISIONING": "STOPPED",
    "STOPPED": "STOPPED",
}
_ENI_STATUS = {
    "PROVISIONING": "PRECREATED",
    "PENDING": "ATTACHED",
    "RUNNING": "ATTACHED",
    "DEPROVISIONING": "ATTACHED",
    "STOPPED": "DELETED",
}


def _task_times(attempt: _Attempt) -> tuple[str, str, str, str, str, str, str]:
    times = attempt.ecs_times
    if times is None:
        starting, running, stopped = attempt.starting_ms, attempt.running_ms, attempt.stopped_ms
        times = attempt.ecs_times = (
            _iso_ecs(starting + 57),
            _iso_ecs(starting + (running - starting) // 4),
            _iso_ecs(starting + (running - starting) // 2),
            _iso_ecs(running - 1_234),
            _iso_ecs(running),
            _iso_ecs(stopped),
            _iso_ecs(stopped + 211),
        )
    return times


def _task_environment(job: _Job, attempt: _Attempt, with_user_variables: bool) -> list[dict[str, str]]:
    """What AWS Batch passes to the container: its own variables, then the user's, in clear text."""
    variables = [
        {"name": "AWS_BATCH_JOB_ID", "value": job.job_id},
        {"name": "AWS_BATCH_JQ_NAME", "value": job.queue.name},
        {"name": "AWS_BATCH_CE_NAME", "value": attempt.environment.name},
        {"name": "AWS_BATCH_JOB_ATTEMPT", "value": str(attempt.number)},
    ]
    if job.array_index is not None:
        variables.append({"name": "AWS_BATCH_JOB_ARRAY_INDEX", "value": str(job.array_index)})
    if with_user_variables:
        variables.extend({"name": name, "value": value} for name, value in job.user_environment)
    return variables


def _ecs_task_event(
    event_id: str, epoch_ms: int, job: _Job, attempt: _Attempt, phase: str, version: int
) -> dict[str, Any]:
    definition = job.definition
    template = definition.template
    environment = attempt.environment
    fargate = environment.platform == "FARGATE"
    task_arn = attempt.task_arn
    times = _task_times(attempt)
    started = phase in ("RUNNING", "DEPROVISIONING", "STOPPED")
    stopping = phase in ("DEPROVISIONING", "STOPPED")
    container_status = "PENDING" if phase == "PROVISIONING" else "STOPPED" if stopping else phase
    network = attempt.network
    layout = _sidecar_containers(job, attempt) if template.sidecar else [("default", attempt.exit_code)]
    containers = []
    overrides = []
    for position, (name, exit_code) in enumerate(layout):
        main = name != "log-router"
        container: dict[str, Any] = {
            "containerArn": attempt.container_arns[position],
            "lastStatus": container_status,
            "name": name,
            "image": definition.image if main else definition.sidecar_image,
        }
        if started:
            container["imageDigest"] = definition.image_digest
            container["runtimeId"] = f"{attempt.task_id}-{attempt.runtime_suffix + position}"
        container["taskArn"] = task_arn
        if phase == "STOPPED" and exit_code is not None:
            container["exitCode"] = exit_code
            if main and attempt.container_reason is not None:
                container["reason"] = attempt.container_reason
        if network is not None and phase != "PROVISIONING":
            container["networkInterfaces"] = [
                {"attachmentId": network.attachment_id, "privateIpv4Address": network.private_ip}
            ]
        else:
            container["networkInterfaces"] = []
        container["cpu"] = "0"
        containers.append(container)
        overrides.append({"environment": _task_environment(job, attempt, main), "name": name})
    detail: dict[str, Any] = {}
    if network is not None:
        detail["attachments"] = [
            {
                "id": network.attachment_id,
                "type": "eni",
                "status": _ENI_STATUS[phase],
                "details": [
                    {"name": "subnetId", "value": network.subnet},
                    {"name": "networkInterfaceId", "value": network.eni_id},
                    {"name": "macAddress", "value": network.mac},
                    {"name": "privateIPv4Address", "value": network.private_ip},
                ],
            }
        ]
    detail["attributes"] = [{"name": "ecs.cpu-architecture", "value": environment.architecture}]
    detail["availabilityZone"] = attempt.availability_zone
    if fargate:
        detail["capacityProviderName"] = environment.resource_type
    detail["clusterArn"] = environment.cluster_arn
    if fargate and phase != "PROVISIONING":
        detail["connectivity"] = "CONNECTED"
        detail["connectivityAt"] = times[1]
    if attempt.instance is not None:
        detail["containerInstanceArn"] = attempt.instance.container_instance_arn
    detail["containers"] = containers
    detail["cpu"] = template.task_cpu
    detail["createdAt"] = times[0]
    detail["desiredStatus"] = _ECS_DESIRED[phase]
    detail["enableExecuteCommand"] = False
    if fargate:
        detail["ephemeralStorage"] = {"sizeInGiB": 20}
    if stopping:
        detail["executionStoppedAt"] = times[5]
    detail["group"] = f"family:{template.name}"
    detail["launchType"] = environment.platform
    detail["lastStatus"] = phase
    detail["memory"] = template.memory
    if fargate:
        detail["overrides"] = {"containerOverrides": overrides, "cpu": template.task_cpu, "memory": template.memory}
        detail["platformVersion"] = "1.4.0"
    else:
        detail["overrides"] = {"containerOverrides": overrides}
    if started:
        detail["pullStartedAt"] = times[2]
        detail["pullStoppedAt"] = times[3]
        detail["startedAt"] = times[4]
    if stopping:
        detail["stoppingAt"] = times[6]
    if phase == "STOPPED":
        detail["stoppedAt"] = _iso_ecs(epoch_ms)
        if attempt.kind == SPOT_RECLAIM:
            detail["stoppedReason"] = attempt.status_reason
        elif attempt.kind == TIMEOUT:
            detail["stoppedReason"] = _REASON_TIMEOUT
            detail["stopCode"] = "UserInitiated"
        else:
            detail["stoppedReason"] = _REASON_ESSENTIAL_EXITED
            detail["stopCode"] = "EssentialContainerExited"
    detail["taskArn"] = task_arn
    detail["taskDefinitionArn"] = definition.task_definition_arn
    detail["updatedAt"] = _iso_ecs(epoch_ms)
    detail["version"] = version
    return _envelope(
        event_id,
        ECS_TASK_STATE_CHANGE,
        "aws.ecs",
        environment.account,
        epoch_ms,
        environment.region,
        [task_arn],
        detail,
    )


def _container_instance_event(
    event_id: str,
    epoch_ms: int,
    instance: _Instance,
    status: str | None,
    cpu_delta: int,
    memory_delta: int,
) -> dict[str, Any]:
    # Status, version and remaining resources are kept here, at release, so they follow event time;
    # a task placement or stop (status None) only bumps the version of whatever status holds.
    if status is not None:
        instance.status = status
    instance.version += 1
    instance.used_cpu += cpu_delta
    instance.used_memory += memory_delta
    environment = instance.environment
    instance_type = instance.instance_type
    cpu = instance_type.vcpus * 1024
    memory = instance_type.memory_mib - 512
    detail: dict[str, Any] = {
        "agentConnected": instance.status != "INACTIVE",
        "attributes": [
            {"name": "ecs.capability.secrets.asm.environment-variables"},
            {"name": "ecs.capability.execution-role-awslogs"},
            {"name": "com.amazonaws.ecs.capability.logging-driver.awslogs"},
            {"name": "com.amazonaws.ecs.capability.docker-remote-api.1.44"},
            {"name": "ecs.capability.task-eni"},
            {"name": "ecs.ami-id", "value": environment.ami},
            {"name": "ecs.availability-zone", "value": instance.availability_zone},
            {"name": "ecs.instance-type", "value": instance_type.name},
            {"name": "ecs.os-type", "value": "linux"},
            {"name": "ecs.os-family", "value": "LINUX"},
            {"name": "ecs.cpu-architecture", "value": environment.architecture},
            {"name": "ecs.subnet-id", "value": instance.subnet},
        ],
        "clusterArn": environment.cluster_arn,
        "containerInstanceArn": instance.container_instance_arn,
        "ec2InstanceId": instance.instance_id,
        "registeredResources": [
            {"name": "CPU", "type": "INTEGER", "integerValue": cpu},
            {"name": "MEMORY", "type": "INTEGER", "integerValue": memory},
            {"name": "PORTS", "type": "STRINGSET", "stringSetValue": ["22", "2375", "2376", "51678", "51679"]},
            {"name": "PORTS_UDP", "type": "STRINGSET", "stringSetValue": []},
        ],
        "remainingResources": [
            {"name": "CPU", "type": "INTEGER", "integerValue": max(0, cpu - instance.used_cpu)},
            {"name": "MEMORY", "type": "INTEGER", "integerValue": max(0, memory - instance.used_memory)},
            {"name": "PORTS", "type": "STRINGSET", "stringSetValue": ["22", "2375", "2376", "51678", "51679"]},
            {"name": "PORTS_UDP", "type": "STRINGSET", "stringSetValue": []},
        ],
        "status": instance.status,
        "version": instance.version,
        "versionInfo": {
            "agentHash": "a1f3b2c9",
            "agentVersion": "1.89.2",
            "dockerVersion": "DockerVersion: 25.0.8",
        },
        "updatedAt": _iso_ecs(epoch_ms),
    }
    return _envelope(
        event_id,
        ECS_CONTAINER_INSTANCE_STATE_CHANGE,
        "aws.ecs",
        environment.account,
        epoch_ms,
        environment.region,
        [instance.container_instance_arn],
        detail,
    )


def _ec2_state_event(event_id: str, epoch_ms: int, instance: _Instance, state: str) -> dict[str, Any]:
    environment = instance.environment
    return _envelope(
        event_id,
        EC2_INSTANCE_STATE_CHANGE,
        "aws.ec2",
        environment.account,
        epoch_ms,
        environment.region,
        [instance.arn],
        {"instance-id": instance.instance_id, "state": state},
    )


def _spot_interruption_warning(event_id: str, epoch_ms: int, instance: _Instance) -> dict[str, Any]:
    environment = instance.environment
    return _envelope(
        event_id,
        EC2_SPOT_INTERRUPTION_WARNING,
        "aws.ec2",
        environment.account,
        epoch_ms,
        environment.region,
        # AWS puts the availability zone where the region goes, and no account.
        [f"arn:aws:ec2:{instance.availability_zone}:instance/{instance.instance_id}"],
        {"instance-id": instance.instance_id, "instance-action": "terminate"},
    )


def _rebalance_recommendation(event_id: str, epoch_ms: int, instance: _Instance) -> dict[str, Any]:
    environment = instance.environment
    return _envelope(
        event_id,
        EC2_REBALANCE_RECOMMENDATION,
        "aws.ec2",
        environment.account,
        epoch_ms,
        environment.region,
        [f"arn:aws:ec2:{instance.availability_zone}:instance/{instance.instance_id}"],
        {"instance-id": instance.instance_id},
    )


def _autoscaling_event(
    event_id: str, epoch_ms: int, instance: _Instance, launched: bool, began_ms: int, activity_id: str
) -> dict[str, Any]:
    environment = instance.environment
    began = _iso_seconds(began_ms)
    if launched:
        detail_type = AUTOSCALING_LAUNCH_SUCCESSFUL
        description = f"Launching a new EC2 instance: {instance.instance_id}"
        cause = (
            f"At {began} an instance was started in response to a difference between desired and actual "
            "capacity, increasing the capacity."
        )
    else:
        detail_type = AUTOSCALING_TERMINATE_SUCCESSFUL
        description = f"Terminating EC2 instance: {instance.instance_id}"
        cause = (
            f"At {began} an instance was taken out of service in response to a difference between desired "
            "and actual capacity, shrinking the capacity."
        )
    detail = {
        "StatusCode": "InProgress",
        "Description": description,
        "AutoScalingGroupName": environment.autoscaling_group,
        "ActivityId": activity_id,
        "Details": {"Availability Zone": instance.availability_zone, "Subnet ID": instance.subnet},
        "RequestId": activity_id,
        "StatusMessage": "",
        "EndTime": _iso_seconds(epoch_ms),
        "EC2InstanceId": instance.instance_id,
        "StartTime": began,
        "Cause": cause,
    }
    return _envelope(
        event_id,
        detail_type,
        "aws.autoscaling",
        environment.account,
        epoch_ms,
        environment.region,
        [environment.autoscaling_group_arn, instance.arn],
        detail,
    )


def _cloudtrail_create_compute_environment(
    event_id: str,
    epoch_ms: int,
    home: _AccountRegion,
    environment: _ComputeEnvironment,
    cloudtrail_id: str,
    request_id: str,
) -> dict[str, Any]:
    account, region = home.account, home.region
    moment = _iso_seconds(epoch_ms)
    resources: dict[str, Any] = {"type": environment.resource_type}
    if environment.platform == "EC2":
        spot = environment.resource_type == "SPOT"
        resources["allocationStrategy"] = "SPOT_PRICE_CAPACITY_OPTIMIZED" if spot else "BEST_FIT_PROGRESSIVE"
        resources["minvCpus"] = 0
        resources["maxvCpus"] = 1024
        resources["instanceTypes"] = [t.name for t in environment.instance_types]
        resources["instanceRole"] = f"arn:aws:iam::{account}:instance-profile/ecsInstanceRole"
    else:
        resources["maxvCpus"] = 256
    resources["subnets"] = list(home.subnets)
    resources["securityGroupIds"] = [home.security_group]
    detail = {
        "eventVersion": "1.08",
        "userIdentity": {
            "type": "AssumedRole",
            "principalId": f"AROA{cloudtrail_id[:8].upper()}EXAMPLE:platform-deployer",
            "arn": f"arn:aws:sts::{account}:assumed-role/PlatformDeployer/platform-deployer",
            "accountId": account,
        },
        "eventTime": moment,
        "eventSource": "batch.amazonaws.com",
        "eventName": "CreateComputeEnvironment",
        "awsRegion": region,
        "sourceIPAddress": "cloudformation.amazonaws.com",
        "userAgent": "cloudformation.amazonaws.com",
        "requestParameters": {
            "computeEnvironmentName": environment.name,
            "type": "MANAGED",
            "state": "ENABLED",
            "computeResources": resources,
        },
        "responseElements": {
            "computeEnvironmentName": environment.name,
            "computeEnvironmentArn": environment.arn,
        },
        "requestID": request_id,
        "eventID": cloudtrail_id,
        "readOnly": False,
        "eventType": "AwsApiCall",
        "managementEvent": True,
        "recipientAccountId": account,
        "eventCategory": "Management",
    }
    return _envelope(event_id, CLOUDTRAIL_API_CALL, "aws.batch", account, epoch_ms, region, [], detail)
