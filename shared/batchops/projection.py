"""The projection contract: job rows, instance rows, job timelines and attempts computed from folds and joins.

Pure functions: a row is a function of the job's fold and of what is known about its instance and its
compute environment, so whichever order the job, task and instance events arrive in, recomputing a row
once the last of them is known gives the same answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from batchops.compute_environments import configured_pricing
from batchops.jobs import STATUS_ORDER, TERMINAL
from batchops.names import DEFAULT_LOG_GROUP, cluster_of, compute_environment_of_cluster, host_instance_in
from batchops.times import iso_ms, seconds_between

JOB_FIELDS = (
    "account_id",
    "region",
    "job_id",
    "job_arn",
    "job_name",
    "queue",
    "job_definition",
    "compute_environment",
    "platform",
    "status",
    "status_reason",
    "blocked_reason",
    "attempts",
    "exit_code",
    "created_at",
    "runnable_at",
    "starting_at",
    "started_at",
    "stopped_at",
    "queue_seconds",
    "run_seconds",
    "instance_id",
    "instance_type",
    "availability_zone",
    "pricing",
    "spot_interrupted",
    "container_instance_arn",
    "task_arn",
    "log_group",
    "log_stream",
    "vcpus",
    "memory_mib",
    "gpus",
    "array_parent_id",
    "array_index",
    "array_size",
    "last_event_time",
)
"""The job-projection contract, in order. Rows also carry `JOB_EXTRA_FIELDS`."""
JOB_SUBMISSION_FIELDS = (
    "submitted_at",
    "pending_seconds",
    "depends_on",
    "submitted_by",
    "share_identifier",
    "scheduling_priority",
    "capacity_unit",
    "capacity_usage",
)
"""What a job row says of its submission (SubmitJob records, where the account has a trail), of its scheduling and,
for a service job, of the capacity it asked for. `depends_on` is a list of job ids (empty when none is known)."""
JOB_EXTRA_FIELDS = ("failure_kind", *JOB_SUBMISSION_FIELDS)
LIST_FIELDS = frozenset({"depends_on"})
"""Job row fields whose value is a list (a store that keeps only scalars encodes them)."""
INSTANCE_FIELDS = (
    "account_id",
    "region",
    "instance_id",
    "instance_type",
    "availability_zone",
    "compute_environment",
    "pricing",
    "container_instance_arn",
    "state",
    "registered_at",
    "terminated_at",
    "spot_interrupted",
    "spot_interruption_at",
    "vcpus",
    "memory_mib",
    "jobs_run",
    "last_event_time",
)
TIMELINE_FIELDS = ("account_id", "region", "job_id", "status", "attempt", "event_time", "status_reason")
ATTEMPT_FIELDS = (
    "account_id",
    "region",
    "job_id",
    "attempt",
    "started_at",
    "stopped_at",
    "run_seconds",
    "exit_code",
    "status_reason",
    "container_reason",
    "instance_id",
    "instance_type",
    "availability_zone",
    "container_instance_arn",
    "task_arn",
    "log_group",
    "log_stream",
)
"""A job's attempt rows (`batchops attempts`, the `job_attempts` export), in order."""
FAILURE_KINDS = ("spot_reclaim", "host_terminated", "oom", "exit_nonzero", "timeout", "cancelled", "other")
TIME_FIELDS = frozenset(
    {"created_at", "runnable_at", "starting_at", "started_at", "stopped_at", "last_event_time", "submitted_at"}
)
_ENVELOPE_TIME_SLACK_MS = 999
"""An event's envelope time has seconds only: it may read up to this much before a millisecond time of the job."""


@dataclass(frozen=True, slots=True)
class InstanceFacts:
    """What the job row needs of the instance an attempt ran on."""

    instance_id: str
    instance_type: str | None
    availability_zone: str | None
    compute_environment: str | None
    spot_signal: bool
    spot_interrupted: bool


class Joins(Protocol):
    """Lookups the job row needs; the view store answers them from its own tables."""

    def instance_by_container_instance(self, account: str, region: str, arn: str) -> InstanceFacts | None:
        """The instance behind an ECS container instance, when an ECS event has told us."""

    def instance_by_id(self, account: str, region: str, instance_id: str) -> InstanceFacts | None:
        """An instance by its EC2 id, when any event has told us about it."""

    def compute_environment_pricing(self, account: str, region: str, name: str) -> str | None:
        """on-demand / spot / fargate for a compute environment, None when unknown."""


def compute_environment_pricing(ce_fold: dict[str, Any] | None, spot_signal: bool) -> str | None:
    """A CE's pricing: its configured type when a CloudTrail record was seen, else spot once any of its
    instances got a spot interruption or rebalance signal, else unknown (None)."""
    configured = configured_pricing(ce_fold)
    if configured is not None:
        return configured
    return "spot" if spot_signal else None


def _first(*values: Any) -> Any:
    for value in values:
        if value is not None:
            return value
    return None


def _number(value: float | None) -> float | int | None:
    if value is None:
        return None
    return int(value) if float(value).is_integer() else value


def attempts_of(fold: dict[str, Any]) -> list[dict[str, Any]]:
    """Every attempt of a job, merged from Batch attempts[], the live attempt and ECS tasks, in order."""
    by_number: dict[int, dict[str, Any]] = {}
    tasks_by_arn: dict[str, dict[str, Any]] = {}
    for task in fold["tasks"].values():
        if task.get("task"):
            tasks_by_arn[task["task"]] = task
        if task.get("n") is not None:
            by_number.setdefault(int(task["n"]), {})["t"] = task
    for number, sources in fold["attempts"].items():
        by_number.setdefault(int(number), {}).update(sources)
    merged: list[dict[str, Any]] = []
    for number in sorted(by_number):
        sources = by_number[number]
        batch = sources.get("b", {})
        live = sources.get("l", {})
        task_arn = _first(batch.get("task"), live.get("task"))
        task = sources.get("t") or (tasks_by_arn.get(task_arn, {}) if task_arn else {})
        merged.append(
            {
                "attempt": number,
                "started": _first(batch.get("started"), live.get("started"), task.get("started")),
                "stopped": _first(batch.get("stopped"), task.get("stopped")),
                "exit_code": batch.get("exit"),
                "status_reason": _first(batch.get("reason"), task.get("stopped_reason")),
                "container_reason": batch.get("container_reason"),
                "container_instance_arn": _first(batch.get("ci"), live.get("ci"), task.get("ci")),
                "task_arn": _first(task_arn, task.get("task")),
                "log_stream": _first(batch.get("stream"), live.get("stream")),
                "availability_zone": task.get("az"),
                "compute_environment": task.get("ce"),
                "stop_code": task.get("stop_code"),
            }
        )
    return merged


def _task_platform(fold: dict[str, Any]) -> str | None:
    for task in fold["tasks"].values():
        if task.get("launch") == "FARGATE":
            return "FARGATE"
    return None


def failure_kind(status: str | None, reason: str | None, exit_code: int | None, spot: bool) -> str | None:
    """A bounded classification of why a job failed (None unless FAILED)."""
    if status != "FAILED":
        return None
    text = (reason or "").lower()
    if "host ec2" in text and "terminated" in text:
        return "spot_reclaim" if spot else "host_terminated"
    if "outofmemory" in text or "out of memory" in text or "oom" in text.split():
        return "oom"
    if "timeout" in text and "attempt duration" in text:
        return "timeout"
    if "cancel" in text or "terminated by user" in text or "terminated by the user" in text:
        return "cancelled"
    if exit_code == 137 and "memory" in text:
        return "oom"
    if exit_code not in (None, 0):
        return "exit_nonzero"
    return "other"


def _compute_environment(
    ci_arn: str | None, last: dict[str, Any], instance: InstanceFacts | None, attempts: list[dict[str, Any]]
) -> str | None:
    """The job's compute environment: from its last attempt's cluster, task or instance, else any earlier attempt's
    (the first known, in this order; each source only looked at when the ones before it say nothing)."""
    ce = compute_environment_of_cluster(cluster_of(ci_arn))
    if ce is None:
        ce = compute_environment_of_cluster(cluster_of(last.get("task_arn")))
    if ce is None:
        ce = _first(last.get("compute_environment"), instance.compute_environment if instance else None)
    if ce is None:
        ce = _first(*(a.get("compute_environment") for a in reversed(attempts)))
    if ce is None:
        ce = _first(*(compute_environment_of_cluster(cluster_of(a.get("task_arn"))) for a in reversed(attempts)))
    return ce


def job_row(fold: dict[str, Any], joins: Joins, attempts: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The contract row of one job (null where unknown; times ISO-8601 UTC with milliseconds). `attempts` is
    `attempts_of(fold)` when the caller has it already."""
    account = fold["account"]
    region = fold["region"]
    static = fold["static"]
    if attempts is None:
        attempts = attempts_of(fold)
    last = attempts[-1] if attempts else {}
    status = fold["status"]
    first = fold["first"]
    platform = static.get("platform") or _task_platform(fold) or "EC2"
    ci_arn, host, instance, ce, pricing, spot_interrupted = _placement(fold, joins, platform, last, attempts)
    exit_code = _exit_code(fold, last)
    runnable_at = first.get("RUNNABLE")
    starting_at = first.get("STARTING")
    first_start = _first(starting_at, attempts[0].get("started") if attempts else None, first.get("RUNNING"))
    return {
        "account_id": account,
        "region": region,
        "job_id": fold["job_id"],
        "job_arn": static.get("arn") or f"arn:aws:batch:{region}:{account}:job/{fold['job_id']}",
        "job_name": static.get("name"),
        "queue": static.get("queue"),
        "job_definition": static.get("definition"),
        "compute_environment": ce,
        "platform": platform,
        "status": status,
        "status_reason": fold["reason"],
        "blocked_reason": fold["blocked"][1] if fold["blocked"] else None,
        "attempts": max((a["attempt"] for a in attempts), default=0),
        "exit_code": exit_code,
        "created_at": iso_ms(static.get("created")),
        "runnable_at": iso_ms(runnable_at),
        "starting_at": iso_ms(starting_at),
        "started_at": iso_ms(last.get("started")),
        "stopped_at": iso_ms(last.get("stopped")),
        "queue_seconds": seconds_between(runnable_at, first_start),
        "run_seconds": seconds_between(last.get("started"), last.get("stopped")),
        "instance_id": instance.instance_id if instance else host,
        "instance_type": instance.instance_type if instance else None,
        "availability_zone": _first(last.get("availability_zone"), instance.availability_zone if instance else None),
        "pricing": pricing,
        "spot_interrupted": spot_interrupted,
        "container_instance_arn": ci_arn,
        "task_arn": last.get("task_arn"),
        "log_group": static.get("log_group") or DEFAULT_LOG_GROUP,
        "log_stream": last.get("log_stream"),
        "vcpus": _number(static.get("vcpus")),
        "memory_mib": _number(static.get("memory")),
        "gpus": static.get("gpus"),
        "array_parent_id": static.get("parent"),
        "array_index": static.get("index"),
        "array_size": static.get("size"),
        "last_event_time": iso_ms(fold["last"]),
        "failure_kind": _job_failure_kind(fold, exit_code, pricing),
        **_submission(fold, runnable_at),
    }


def _submission(fold: dict[str, Any], runnable_at: int | None) -> dict[str, Any]:
    """The row's `JOB_SUBMISSION_FIELDS`. The pending time runs from Batch's createdAt (when the job entered
    SUBMITTED, to the millisecond) or else the SubmitJob record's time, to the first RUNNABLE: so a SubmitJob record
    arriving late changes no more than the fields only it knows."""
    static = fold["static"]
    submitted = fold["first"].get("SUBMITTED")
    return {
        "submitted_at": iso_ms(submitted),
        "pending_seconds": _pending_seconds(_first(static.get("created"), submitted), runnable_at),
        "depends_on": list(static.get("depends_on") or ()),
        "submitted_by": static.get("submitted_by"),
        "share_identifier": static.get("share"),
        "scheduling_priority": static.get("priority"),
        "capacity_unit": static.get("capacity_unit"),
        "capacity_usage": _number(static.get("capacity")),
    }


def _pending_seconds(submitted: int | None, runnable: int | None) -> float | None:
    """Seconds from submission to the first RUNNABLE (0 when the RUNNABLE event's whole-second time reads earlier)."""
    if submitted is None or runnable is None or runnable + _ENVELOPE_TIME_SLACK_MS < submitted:
        return None
    return max(0, runnable - submitted) / 1000


def _placement(
    fold: dict[str, Any], joins: Joins, platform: str, last: dict[str, Any], attempts: list[dict[str, Any]]
) -> tuple[str | None, str | None, InstanceFacts | None, str | None, str, bool | None]:
    """Where the last attempt ran: its container instance, the host a reason names, the instance (joined by container
    instance, else by that host), the compute environment, the pricing, and whether spot took the instance back."""
    account = fold["account"]
    region = fold["region"]
    ci_arn = last.get("container_instance_arn")
    instance: InstanceFacts | None = None
    if ci_arn:
        instance = joins.instance_by_container_instance(account, region, ci_arn)
    host = host_instance_in(last.get("status_reason")) or host_instance_in(fold["reason"])
    if instance is None and host:
        instance = joins.instance_by_id(account, region, host)
    ce = _compute_environment(ci_arn, last, instance, attempts)
    ce_pricing = joins.compute_environment_pricing(account, region, ce) if ce else None
    pricing = _pricing(platform, ce_pricing, instance)
    return ci_arn, host, instance, ce, pricing, _spot_interrupted(platform, pricing, instance, host, last)


def _pricing(platform: str, ce_pricing: str | None, instance: InstanceFacts | None) -> str:
    """The compute environment's pricing, else what the instance's events say, else unknown."""
    if platform == "FARGATE":
        return "spot" if ce_pricing == "spot" else "fargate"
    if ce_pricing is not None:
        return ce_pricing
    if instance is not None and instance.spot_signal:
        return "spot"
    return "unknown"


def _spot_interrupted(
    platform: str, pricing: str, instance: InstanceFacts | None, host: str | None, last: dict[str, Any]
) -> bool | None:
    """Whether spot took the instance back: as its events say, or as the reason for a spot host's end says."""
    if instance is not None:
        spot_interrupted: bool | None = instance.spot_interrupted
    elif platform == "FARGATE" or pricing == "on-demand":
        spot_interrupted = False
    else:
        spot_interrupted = None
    if host and pricing == "spot" and last.get("status_reason") and host_instance_in(last.get("status_reason")):
        spot_interrupted = True
    return spot_interrupted


def _exit_code(fold: dict[str, Any], last: dict[str, Any]) -> int | None:
    """The last attempt's exit code, else the job's once it has ended."""
    exit_code = last.get("exit_code") if last else None
    if exit_code is None and fold["status"] in TERMINAL:
        exit_code = fold["exit"]
    return exit_code


def _job_failure_kind(fold: dict[str, Any], exit_code: int | None, pricing: str) -> str | None:
    """Why the job failed; none for an array parent, which fails because children failed (they carry the cause)."""
    if fold["static"].get("size") is not None:
        return None
    return failure_kind(fold["status"], fold["reason"], exit_code, pricing == "spot")


def timeline_rows(fold: dict[str, Any]) -> list[dict[str, Any]]:
    """The job's distinct state changes in time order (one row per status and attempt)."""
    rows = []
    for key, (at, reason) in fold["transitions"].items():
        status, _, done_text = key.partition("#")
        done = int(done_text or 0)
        attempt = done if status in TERMINAL else done + (1 if STATUS_ORDER.get(status, 0) >= 3 else 0)
        rows.append(
            {
                "account_id": fold["account"],
                "region": fold["region"],
                "job_id": fold["job_id"],
                "status": status,
                "attempt": attempt,
                "event_time": iso_ms(at),
                "status_reason": reason or None,
            }
        )
    rows.sort(key=lambda r: (r["event_time"], STATUS_ORDER.get(r["status"], 0)))
    return rows


def instance_spot_signal(fold: dict[str, Any]) -> bool:
    """True once the instance got a spot interruption warning or a rebalance recommendation."""
    first = fold["first"]
    return "spot_warning" in first or "rebalance" in first


def instance_facts(fold: dict[str, Any]) -> InstanceFacts:
    """The join-relevant facts of an instance."""
    fixed = fold["fixed"]
    return InstanceFacts(
        instance_id=fold["instance_id"],
        instance_type=fixed.get("type"),
        availability_zone=fixed.get("az"),
        compute_environment=fixed.get("ce"),
        spot_signal=instance_spot_signal(fold),
        spot_interrupted="spot_warning" in fold["first"],
    )


def instance_row(fold: dict[str, Any], ce_pricing: str | None) -> dict[str, Any]:
    """The compute-instance view row (jobs_run is counted by the view store)."""
    fixed = fold["fixed"]
    first = fold["first"]
    spot = instance_spot_signal(fold)
    registered = _first(
        first.get("registered"), first.get("launched"), first.get("state:pending"), first.get("state:running")
    )
    terminated_candidates = [first[k] for k in ("state:terminated", "terminated") if k in first]
    terminated = min(terminated_candidates) if terminated_candidates else first.get("deregistered")
    return {
        "account_id": fold["account"],
        "region": fold["region"],
        "instance_id": fold["instance_id"],
        "instance_type": fixed.get("type"),
        "availability_zone": fixed.get("az"),
        "compute_environment": fixed.get("ce"),
        "pricing": ce_pricing or ("spot" if spot else "unknown"),
        "container_instance_arn": fixed.get("ci"),
        "state": fold["state"],
        "registered_at": iso_ms(registered),
        "terminated_at": iso_ms(terminated),
        "spot_interrupted": "spot_warning" in first,
        "spot_interruption_at": iso_ms(first.get("spot_warning")),
        "vcpus": _number(fixed.get("vcpus")),
        "memory_mib": _number(fixed.get("memory")),
        "jobs_run": 0,
        "last_event_time": iso_ms(fold["last"]),
    }


def attempt_detail(attempt: dict[str, Any], log_group: str | None) -> dict[str, Any]:
    """One attempt as the drilldown shows it: times, exit, reasons, where it ran and where it logged."""
    return {
        "attempt": attempt["attempt"],
        "started_at": iso_ms(attempt.get("started")),
        "stopped_at": iso_ms(attempt.get("stopped")),
        "exit_code": attempt.get("exit_code"),
        "status_reason": attempt.get("status_reason"),
        "container_reason": attempt.get("container_reason"),
        "container_instance_arn": attempt.get("container_instance_arn"),
        "task_arn": attempt.get("task_arn"),
        "availability_zone": attempt.get("availability_zone"),
        "log_group": log_group,
        "log_stream": attempt.get("log_stream"),
    }


def attempt_rows(fold: dict[str, Any], joins: Joins) -> list[dict[str, Any]]:
    """A job's attempts, one row each (ATTEMPT_FIELDS): the drilldown's detail of every attempt with the instance
    it ran on, joined as `job_row` joins the last one's (by container instance, else by the host a reason names)."""
    account = fold["account"]
    region = fold["region"]
    log_group = fold["static"].get("log_group") or DEFAULT_LOG_GROUP
    rows = []
    for attempt in attempts_of(fold):
        detail = attempt_detail(attempt, log_group)
        ci_arn = detail["container_instance_arn"]
        instance = joins.instance_by_container_instance(account, region, ci_arn) if ci_arn else None
        host = host_instance_in(detail["status_reason"])
        if instance is None and host:
            instance = joins.instance_by_id(account, region, host)
        row = {
            **detail,
            "account_id": account,
            "region": region,
            "job_id": fold["job_id"],
            "run_seconds": seconds_between(attempt.get("started"), attempt.get("stopped")),
            "instance_id": instance.instance_id if instance else host,
            "instance_type": instance.instance_type if instance else None,
            "availability_zone": _first(detail["availability_zone"], instance.availability_zone if instance else None),
        }
        rows.append({f: row[f] for f in ATTEMPT_FIELDS})
    return rows
