"""What the simulated accounts are made of: instance types, compute environment and queue names, job templates."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class InstanceType:
    name: str
    vcpus: int
    memory_mib: int

    @property
    def slots(self) -> int:
        return max(1, self.vcpus // 2)


INSTANCE_TYPES = {
    spec[0]: InstanceType(*spec)
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
SPOT_ENVIRONMENTS = (
    ("ce-spot-c5", ("c5.xlarge", "c5.2xlarge", "c5.4xlarge"), "x86_64", False),
    ("ce-spot-m5", ("m5.xlarge", "m5.2xlarge", "m5.4xlarge"), "x86_64", False),
    ("ce-spot-c6g", ("c6g.2xlarge", "c6g.4xlarge"), "arm64", False),
    ("ce-spot-g4dn", ("g4dn.xlarge", "g4dn.2xlarge"), "x86_64", True),
)
ON_DEMAND_ENVIRONMENTS = (
    ("ce-ondemand-m5", ("m5.xlarge", "m5.2xlarge"), "x86_64", False),
    ("ce-ondemand-r5", ("r5.xlarge", "r5.2xlarge"), "x86_64", False),
    ("ce-od-c5", ("c5.2xlarge", "c5.4xlarge"), "x86_64", False),
)
FARGATE_ENVIRONMENTS = ("ce-fargate", "ce-fargate-etl", "fargate-batch-compute")

SPOT_QUEUES = ("genomics-spot", "ml-training-spot", "render-spot", "batch-spot-default")
ON_DEMAND_QUEUES = ("analytics-ondemand", "reporting-ondemand", "critical-ondemand")
FARGATE_QUEUES = ("etl-fargate", "fargate-tasks-queue", "api-export-fargate")


@dataclass(frozen=True, slots=True)
class JobTemplate:
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
        return TASK_CPU[self.vcpu]


TASK_CPU = {vcpu: str(int(float(vcpu) * 1024)) for vcpu in ("0.25", "0.5", "1", "2", "4", "8", "16")}

EC2_TEMPLATES = (
    JobTemplate(
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
    JobTemplate(
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
    JobTemplate(
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
    JobTemplate(
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
    JobTemplate(
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
    JobTemplate(
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
    JobTemplate(
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
    JobTemplate(
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
GPU_TEMPLATE = EC2_TEMPLATES[4]
SIDECAR_TEMPLATE = EC2_TEMPLATES[6]
PLAIN_EC2_TEMPLATES = tuple(t for t in EC2_TEMPLATES if t.gpu is None and not t.sidecar)

FARGATE_TEMPLATES = (
    JobTemplate(
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
    JobTemplate(
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
    JobTemplate(
        "web-app-scanner",
        "security/web-app-scanner:latest",
        (),
        "0.5",
        "2048",
        "FARGATE",
        40,
        environment=(("TARGET_URL", "https://app-{n}.internal.example.com"),),
    ),
    JobTemplate(
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

SECRET_VARIABLES = ("API_TOKEN", "DB_PASSWORD", "GITHUB_TOKEN", "SLACK_WEBHOOK_TOKEN")
TEAMS = ("genomics", "ml-platform", "analytics", "render", "security", "data-eng")
