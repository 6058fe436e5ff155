"""The rendered Grafana dashboards: structure, Athena SQL run on a simulated workload, EMF metrics."""

from __future__ import annotations

import itertools
import json
import math
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest
import sqlglot

from batchops.dashboards import DashboardSettings, render_dashboards, write_dashboards

ATHENA = "grafana-athena-datasource"
CLOUDWATCH = "cloudwatch"
EVENTS_DIR = Path(__file__).resolve().parents[1] / "events"

# The projections' Iceberg tables Athena queries (docs/athena-data-path.md), partitioned by account_id and dt: the
# UTC date a finished row ended, 9999-12-31 while it is open.
ATHENA_COLUMNS = {
    "jobs": (
        "account_id string, region string, job_id string, job_arn string, job_name string, queue string, "
        "job_definition string, compute_environment string, platform string, status string, "
        "status_reason string, blocked_reason string, attempts bigint, exit_code bigint, created_at string, "
        "runnable_at string, starting_at string, started_at string, stopped_at string, queue_seconds double, "
        "run_seconds double, instance_id string, instance_type string, availability_zone string, "
        "pricing string, spot_interrupted boolean, container_instance_arn string, task_arn string, "
        "log_group string, log_stream string, vcpus double, memory_mib double, gpus bigint, "
        "array_parent_id string, array_index bigint, array_size bigint, last_event_time string, "
        "failure_kind string, submitted_at string, pending_seconds double, depends_on array<string>, "
        "submitted_by string, share_identifier string, scheduling_priority bigint, capacity_unit string, "
        "capacity_usage double, cost_usd double, wasted_cost_usd double, cost_basis string"
    ),
    "instances": (
        "account_id string, region string, instance_id string, instance_type string, availability_zone string, "
        "compute_environment string, pricing string, container_instance_arn string, state string, "
        "registered_at string, terminated_at string, spot_interrupted boolean, spot_interruption_at string, "
        "vcpus double, memory_mib double, jobs_run bigint, last_event_time string"
    ),
    "job_events": (
        "account_id string, region string, job_id string, status string, attempt bigint, event_time string, "
        "status_reason string"
    ),
    "job_attempts": (
        "account_id string, region string, job_id string, attempt bigint, started_at string, stopped_at string, "
        "run_seconds double, exit_code bigint, status_reason string, container_reason string, instance_id string, "
        "instance_type string, availability_zone string, container_instance_arn string, task_arn string, "
        "log_group string, log_stream string, cost_usd double, wasted_cost_usd double, cost_basis string"
    ),
}
OPEN = "DATE '9999-12-31'"
PARTITION_DATE = {
    "jobs": "CASE WHEN status IN ('SUCCEEDED', 'FAILED') "
    f"THEN CAST(substr(coalesce(stopped_at, last_event_time), 1, 10) AS DATE) ELSE {OPEN} END",
    "instances": f"CASE WHEN terminated_at IS NOT NULL THEN CAST(substr(terminated_at, 1, 10) AS DATE) ELSE {OPEN} END",
    "job_events": "CAST(substr(event_time, 1, 10) AS DATE)",
    "job_attempts": f"CASE WHEN stopped_at IS NOT NULL THEN CAST(substr(stopped_at, 1, 10) AS DATE) ELSE {OPEN} END",
}
PRUNING = re.compile(r"\b(\w+\.)?dt >= CAST\(\$__timeFrom\(\) AS date\)")
DUCKDB_TYPES = {
    "string": "VARCHAR",
    "bigint": "BIGINT",
    "double": "DOUBLE",
    "boolean": "BOOLEAN",
    "array<string>": "VARCHAR[]",
}


def columns_of(table: str) -> dict[str, str]:
    """Column name -> DuckDB type of an Athena table."""
    pairs = (column.split() for column in ATHENA_COLUMNS[table].split(","))
    return {name: DUCKDB_TYPES[kind] for name, kind in pairs}


# Metrics AWS itself publishes (CloudWatch documentation), with the dimension set the panels use.
AWS_METRICS = {
    ("AWS/EC2", "CPUUtilization"): {"InstanceId"},
    ("AWS/EC2", "NetworkIn"): {"InstanceId"},
    ("AWS/EC2", "NetworkOut"): {"InstanceId"},
    ("AWS/EC2", "EBSReadBytes"): {"InstanceId"},
    ("AWS/EC2", "EBSWriteBytes"): {"InstanceId"},
    ("AWS/SQS", "ApproximateNumberOfMessagesVisible"): {"QueueName"},
    ("CWAgent", "mem_used_percent"): {"InstanceId"},
}
STATISTICS = {"Sum", "Average", "Maximum", "Minimum", "SampleCount"}

# Grafana's template-variable syntax ($var, [[var]], ${var.path:format}), as in its templateSrv.
VARIABLE = re.compile(r"\$(\w+)|\[\[(\w+?)(?::(\w+))?\]\]|\$\{(\w+)(?:\.([^:^\}]+))?(?::([^\}]+))?\}")
GRAFANA_BUILTINS = {"__interval", "__interval_ms", "__from", "__to", "__data", "__field", "__url_time_range"}
ATHENA_MACROS = {"__timeFilter", "__timeFrom", "__timeTo", "__dateFilter", "__timeGroup", "__unixEpochFilter"}


# What a member account may also forward: the pipeline rejects it (and counts it in EventsRejected).
UNUSABLE_EVENTS = (
    "\n".join(
        [
            "not JSON at all",
            json.dumps(
                {
                    "version": "0",
                    "id": "unusable-1",
                    "detail-type": "Batch Job State Change",
                    "source": "aws.batch",
                    "account": "111122223333",
                    "region": "us-east-1",
                    "time": "2025-11-13T00:00:00Z",
                    "resources": [],
                    "detail": {"status": 42},
                }
            ),
        ]
    )
    + "\n"
)

# ---------------------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def settings() -> DashboardSettings:
    return DashboardSettings()


@pytest.fixture(scope="module")
def dashboards(settings: DashboardSettings) -> dict[str, dict[str, Any]]:
    return render_dashboards(settings)


@dataclass
class Workload:
    """What the CLI made of a simulated Organization: projection rows and the EMF it emitted."""

    jobs: list[dict[str, Any]]
    instances: list[dict[str, Any]]
    job_events: list[dict[str, Any]]
    job_attempts: list[dict[str, Any]]
    emf: list[dict[str, Any]]
    files: dict[str, Path]


def _cli(args: list[str], cwd: Path, status: int = 0) -> str:
    """Run the CLI; a failure of ours fails every test that needs the workload (never a skip)."""
    done = subprocess.run(
        [sys.executable, "-m", "batchops", *args], cwd=cwd, capture_output=True, text=True, timeout=300
    )
    if done.returncode != status:
        pytest.fail(
            f"`batchops {' '.join(args[:3])} ...` exited {done.returncode}, not {status}: {done.stderr.strip()[-600:]}",
            pytrace=False,
        )
    return done.stdout


@pytest.fixture(scope="session")
def workload(tmp_path_factory: pytest.TempPathFactory) -> Workload:
    """Simulate an Organization, ingest it (plus the sample events) with the CLI, export the projections."""
    tmp = tmp_path_factory.mktemp("workload")
    _cli(
        [
            "simulate",
            "--accounts",
            "3",
            "--regions",
            "2",
            "--jobs",
            "500",
            "--seed",
            "1",
            "--chaos",
            "--out",
            "events.jsonl",
        ],
        tmp,
    )
    samples = sorted(str(p) for p in [*EVENTS_DIR.glob("*.json"), *EVENTS_DIR.glob("real/*.json")])
    (tmp / "unusable.jsonl").write_text(UNUSABLE_EVENTS)
    _cli(
        [
            "--store",
            "sqlite:///store.db",
            "ingest",
            "--quiet",
            "events.jsonl",
            *samples,
            "unusable.jsonl",
            "--emf-out",
            "emf.jsonl",
        ],
        tmp,
        status=3,  # the two unusable events are kept aside, and the exit status says so
    )
    files = {}
    commands = (("jobs", "jobs"), ("instances", "instances"), ("job_events", "timeline"), ("job_attempts", "attempts"))
    for table, command in commands:
        files[table] = tmp / f"{table}.json"
        files[table].write_text(_cli(["--store", "sqlite:///store.db", command, "--format", "json"], tmp))
    emf_lines = (tmp / "emf.jsonl").read_text().splitlines()
    return Workload(
        jobs=json.loads(files["jobs"].read_text()),
        instances=json.loads(files["instances"].read_text()),
        job_events=json.loads(files["job_events"].read_text()),
        job_attempts=json.loads(files["job_attempts"].read_text()),
        emf=[json.loads(line) for line in emf_lines if line.strip()],
        files=files,
    )


def athena_of(files: dict[str, Path]) -> duckdb.DuckDBPyConnection:
    """DuckDB standing in for Athena: the projections' rows from the CLI as the Iceberg tables hold them, dt a column
    of each (the tables are partitioned by account_id and dt)."""
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute('CREATE SCHEMA "batchops"')
    for table, partition_date in PARTITION_DATE.items():
        columns_sql = "{" + ", ".join(f"'{name}': '{kind}'" for name, kind in columns_of(table).items()) + "}"
        con.execute(
            f'CREATE TABLE "batchops"."{table}" AS SELECT *, {partition_date} AS dt '
            f"FROM read_json('{files[table]}', format = 'array', columns = {columns_sql})"
        )
    return con


@pytest.fixture(scope="session")
def athena(workload: Workload) -> duckdb.DuckDBPyConnection:
    return athena_of(workload.files)


@pytest.fixture(scope="session")
def scheduled(
    workload: Workload, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Workload, duckdb.DuckDBPyConnection]:
    """The workload with every job that waits RUNNABLE at its end SCHEDULED instead, as a service job SageMaker
    has taken but not started reads (the simulation's service jobs have all moved on by then), and its tables."""
    jobs = [dict(job, status="SCHEDULED") if job["status"] == "RUNNABLE" else job for job in workload.jobs]
    assert sum(job["status"] == "SCHEDULED" for job in jobs) >= 3
    path = tmp_path_factory.mktemp("scheduled") / "jobs.json"
    path.write_text(json.dumps(jobs))
    files = {**workload.files, "jobs": path}
    return Workload(jobs, workload.instances, workload.job_events, workload.job_attempts, workload.emf, files), (
        athena_of(files)
    )


@pytest.fixture(params=["as simulated", "RUNNABLE as SCHEDULED"])
def waiting_case(request: pytest.FixtureRequest, workload: Workload) -> tuple[Workload, duckdb.DuckDBPyConnection]:
    """The workload and its tables as simulated, or with its RUNNABLE jobs SCHEDULED."""
    if request.param == "RUNNABLE as SCHEDULED":
        case: tuple[Workload, duckdb.DuckDBPyConnection] = request.getfixturevalue("scheduled")
        return case
    return workload, request.getfixturevalue("athena")


# ---------------------------------------------------------------------------------------------- helpers


def panels_of(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])


def strings_in(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from strings_in(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings_in(item)


def referenced_variables(text: str) -> set[str]:
    names = set()
    for match in VARIABLE.finditer(text):
        names.add(match.group(1) or match.group(2) or match.group(4))
    return names


def athena_queries(dashboard: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any], str]]:
    """(where, panel or variable, SQL) for every Athena query of a dashboard."""
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query" and variable["datasource"]["type"] == ATHENA:
            yield f"variable {variable['name']}", variable, variable["query"]["rawSQL"]
    for panel in panels_of(dashboard):
        for target in panel.get("targets", []):
            if target["datasource"]["type"] == ATHENA:
                yield f"panel {panel['title']!r} {target['refId']}", panel, target["rawSQL"]


def cloudwatch_targets(dashboards: dict[str, dict[str, Any]], mode: str) -> list[tuple[str, dict[str, Any]]]:
    found = []
    for dashboard in dashboards.values():
        for panel in panels_of(dashboard):
            for target in panel.get("targets", []):
                if target["datasource"]["type"] == CLOUDWATCH and target["queryMode"] == mode:
                    found.append((f"{dashboard['uid']} {panel['title']!r} {target['refId']}", target))
    return found


def emitted_metrics(emf: list[dict[str, Any]]) -> dict[tuple[str, str], set[frozenset[str]]]:
    """(namespace, metric) -> the dimension sets the EMF documents declare for it."""
    found: dict[tuple[str, str], set[frozenset[str]]] = {}
    for document in emf:
        for directive in document["_aws"]["CloudWatchMetrics"]:
            for metric in directive["Metrics"]:
                for dimensions in directive["Dimensions"]:
                    found.setdefault((directive["Namespace"], metric["Name"]), set()).add(frozenset(dimensions))
    return found


# -------------------------------------------------- Grafana's interpolation and the Athena plugin's macros


@dataclass
class TimeRange:
    start: datetime
    end: datetime

    @property
    def interval_ms(self) -> int:
        """Grafana's $__interval for ~500 data points, at least one minute, in whole minutes."""
        span_ms = (self.end - self.start).total_seconds() * 1000
        return max(60_000, math.ceil(span_ms / 500 / 60_000) * 60_000)


def format_value(variable: dict[str, Any], value: str | list[str], fmt: str | None, where: str) -> str:
    if isinstance(value, list):
        if fmt != "singlequote":
            raise AssertionError(f"{where}: multi-value ${variable['name']} needs an explicit :singlequote format")
        return ",".join("'" + item.replace("'", "\\'") + "'" for item in value)
    if fmt == "singlequote":
        return "'" + value.replace("'", "\\'") + "'"
    if fmt is not None:
        raise AssertionError(f"{where}: format {fmt!r} is not simulated here")
    return value


class Grafana:
    """Interpolates a dashboard's variables the way Grafana's frontend does, resolving query variables on DuckDB."""

    def __init__(
        self,
        dashboard: dict[str, Any],
        con: duckdb.DuckDBPyConnection,
        time: TimeRange,
        chosen: dict[str, str | list[str]],
    ) -> None:
        self.con = con
        self.time = time
        self.variables = {v["name"]: v for v in dashboard["templating"]["list"]}
        self.values: dict[str, str | list[str]] = {}
        self.all_selected: set[str] = set()
        for variable in dashboard["templating"]["list"]:
            self._resolve(variable, chosen)

    def _resolve(self, variable: dict[str, Any], chosen: dict[str, str | list[str]]) -> None:
        name, kind = variable["name"], variable["type"]
        if kind == "datasource":
            self.values[name] = variable["current"]["value"]
            return
        if kind == "textbox":
            self.values[name] = str(chosen.get(name, variable["query"]))
            return
        if kind == "custom":
            options = [custom_option(text)[1] for text in re.findall(r"(?:\\,|[^,])+", variable["query"])]
        else:
            rows, _ = run_athena(
                self.con,
                self.interpolate(variable["query"]["rawSQL"], f"variable {name}"),
                self.time,
                f"variable {name}",
            )
            options = [str(row[0]) for row in rows if row[0] is not None]
        if name in chosen:
            wanted = chosen[name]
            picked = wanted if isinstance(wanted, list) else [wanted]
            assert set(picked) <= set(options), f"variable {name}: {picked} not among its options {options[:10]}"
            self.values[name] = picked if variable.get("multi") else picked[0]
        elif variable.get("includeAll"):
            self.all_selected.add(name)
            self.values[name] = options
        else:
            assert options, f"variable {name} has no options on the workload"
            self.values[name] = options[0]

    def interpolate(self, text: str, where: str) -> str:
        def replace(match: re.Match[str]) -> str:
            name = match.group(1) or match.group(2) or match.group(4)
            fmt = match.group(3) or match.group(6)
            if name == "__interval":
                return f"{self.time.interval_ms // 60_000}m"
            if name == "__interval_ms":
                return str(self.time.interval_ms)
            if name not in self.variables:
                return match.group(0)  # Grafana leaves unknown names (the Athena macros) alone
            variable = self.variables[name]
            if name in self.all_selected and "allValue" in variable:
                return str(variable["allValue"])  # a custom "All" value is inserted unformatted
            return format_value(variable, self.values[name], fmt, where)

        return VARIABLE.sub(replace, text)


def custom_option(text: str) -> tuple[str, str]:
    """(text, value) of one option of a custom variable: `text : value`, else the text is the value (Grafana's
    CustomVariable; `\\,` is a comma inside an option)."""
    text = text.replace("\\,", ",")
    pair = re.fullmatch(r"(.+)\s:\s(.+)", text)
    return (pair[1].strip(), pair[2].strip()) if pair else (text.strip(), text.strip())


def macro_calls(sql: str) -> Iterator[tuple[int, int, str, list[str]]]:
    """(start, end, name, args) of each $__macro(...) call, parsed like grafana-plugin-sdk's sqlds."""
    for match in re.finditer(r"\$__(\w+)", sql):
        end = match.end()
        if end < len(sql) and sql[end] == "(":
            depth = 0
            for index in range(end, len(sql)):
                depth += {"(": 1, ")": -1}.get(sql[index], 0)
                if depth == 0:
                    args = [a.strip() for a in sql[end + 1 : index].split(",")]
                    yield match.start(), index + 1, match.group(1), [a for a in args if a]
                    break
        else:
            yield match.start(), end, match.group(1), []


def expand_macros(sql: str, time: TimeRange, where: str) -> str:
    """The grafana-athena-datasource macros, as its backend expands them before calling Athena."""
    layout = "%Y-%m-%d %H:%M:%S"
    start, end = time.start.strftime(layout), time.end.strftime(layout)
    while (call := next(macro_calls(sql), None)) is not None:
        begin, finish, name, args = call
        if name == "timeFilter":
            text = f"{args[0]} BETWEEN TIMESTAMP '{start}' AND TIMESTAMP '{end}'"
        elif name == "timeFrom":
            text = f"TIMESTAMP '{start}'"
        elif name == "timeTo":
            text = f"TIMESTAMP '{end}'"
        elif name == "dateFilter":
            text = f"{args[0]} BETWEEN date '{time.start:%Y-%m-%d}' AND date '{time.end:%Y-%m-%d}'"
        elif name == "unixEpochFilter":
            text = f"{args[0]} BETWEEN {int(time.start.timestamp())} AND {int(time.end.timestamp())}"
        elif name == "timeGroup":
            unit = {"s": 1, "m": 60, "h": 3600, "d": 86400}
            seconds = int(args[1].strip("'")[:-1]) * unit[args[1].strip("'")[-1]]
            text = f"FROM_UNIXTIME(FLOOR(TO_UNIXTIME({args[0]})/{seconds})*{seconds})"
        else:
            raise AssertionError(f"{where}: ${'__' + name} is not a grafana-athena-datasource macro")
        sql = sql[:begin] + text + sql[finish:]
    return sql


def run_athena(con: duckdb.DuckDBPyConnection, sql: str, time: TimeRange, where: str) -> tuple[list[Any], list[str]]:
    """Expand the macros, transpile Athena SQL to DuckDB with sqlglot, run it: (rows, column names)."""
    expanded = expand_macros(sql, time, where)
    assert "$" not in expanded, f"{where}: unexpanded variable left in\n{expanded}"
    statements = sqlglot.transpile(expanded, read="athena", write="duckdb")
    assert len(statements) == 1, f"{where}: one statement expected"
    try:
        cursor = con.execute(statements[0])
    except duckdb.Error as error:
        raise AssertionError(f"{where} fails on DuckDB: {error}\n--- Athena SQL ---\n{expanded}") from error
    return cursor.fetchall(), [column[0] for column in cursor.description]


def columns_used(panel: dict[str, Any]) -> set[str]:
    """Result columns a panel refers to: field overrides, data links, labels in display names, sort."""
    used = set()
    for override in panel.get("fieldConfig", {}).get("overrides", []):
        if override["matcher"]["id"] == "byName":
            used.add(override["matcher"]["options"])
    for text in strings_in(panel):
        used.update(re.findall(r"\$\{__data\.fields\.(\w+)\}", text))
        used.update(re.findall(r"\$\{__field\.labels\.(\w+)\}", text))
    for sort in panel.get("options", {}).get("sortBy", []):
        used.add(sort["displayName"])
    if panel["type"] in ("timeseries", "state-timeline"):
        used.add("time")
    return used


def time_range_of(jobs: list[dict[str, Any]], instances: list[dict[str, Any]]) -> TimeRange:
    """From an hour before the first time of these rows to an hour after the last."""
    times = [
        row[key]
        for rows, keys in (
            (jobs, ("created_at", "stopped_at", "last_event_time")),
            (instances, ("registered_at", "terminated_at")),
        )
        for row in rows
        for key in keys
        if row.get(key)
    ]
    parse = lambda text: datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)  # noqa: E731
    return TimeRange(min(map(parse, times)) - timedelta(hours=1), max(map(parse, times)) + timedelta(hours=1))


def simulated(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows of the simulated workload, not of the sample events."""
    samples = {
        json.loads(path.read_text()).get("account")
        for path in [*EVENTS_DIR.glob("*.json"), *EVENTS_DIR.glob("real/*.json")]
    }
    return [row for row in rows if row["account_id"] not in samples]


def whole_range(workload: Workload) -> TimeRange:
    """Years wide (the sample events are old): coarse intervals."""
    return time_range_of(workload.jobs, workload.instances)


def drilldown_job(workload: Workload) -> dict[str, Any]:
    """A job with the most to show: several attempts, an instance, a task and a log stream."""
    candidates = [
        job
        for job in simulated(workload.jobs)
        if job["instance_id"] and job["task_arn"] and job["log_stream"] and job["status"] in ("SUCCEEDED", "FAILED")
    ]
    assert candidates, "the simulated workload has no finished EC2 job with an instance and a log stream"
    return max(candidates, key=lambda job: (job["attempts"] or 0, job["status"] == "FAILED", job["job_id"]))


def scenarios(workload: Workload) -> dict[str, tuple[dict[str, str | list[str]], TimeRange]]:
    """Variable selections and time ranges to run every query under.

    "all": every variable on All over the whole range (coarse intervals); "one job": the drilldown
    job's own account, region, queue... over the simulated workload's hours (one-minute intervals).
    """
    job = drilldown_job(workload)
    one: dict[str, str | list[str]] = {
        "account": job["account_id"],
        "region": job["region"],
        "queue": job["queue"],
        "compute_environment": job["compute_environment"],
        "status": job["status"],
        "platform": job["platform"],
        "search": job["job_name"],
        "job_id": job["job_id"],
    }
    hours = time_range_of(simulated(workload.jobs), simulated(workload.instances))
    return {"all": ({"job_id": job["job_id"]}, whole_range(workload)), "one job": (one, hours)}


# ---------------------------------------------------------------------------------------------- structure


def test_every_template_renders_a_dashboard(dashboards: dict[str, dict[str, Any]]) -> None:
    assert set(dashboards) == {
        "batchops-overview",
        "batchops-jobs",
        "batchops-job-drilldown",
        "batchops-capacity",
        "batchops-cost",
    }
    for uid, dashboard in dashboards.items():
        assert dashboard["uid"] == uid and dashboard["title"].startswith("Batch · ")
        assert dashboard["schemaVersion"] == 39
        assert "id" not in dashboard and "version" not in dashboard, "Grafana assigns id and version"


def test_no_nulls_anywhere(dashboards: dict[str, dict[str, Any]]) -> None:
    def walk(value: Any, path: str) -> None:
        assert value is not None, f"null at {path}"
        if isinstance(value, dict):
            for key, item in value.items():
                walk(item, f"{path}.{key}")
        elif isinstance(value, list):
            for index, item in enumerate(value):
                walk(item, f"{path}[{index}]")

    for uid, dashboard in dashboards.items():
        walk(dashboard, uid)


def test_panel_ids_and_ref_ids_are_unique(dashboards: dict[str, dict[str, Any]]) -> None:
    for uid, dashboard in dashboards.items():
        ids = [panel["id"] for panel in panels_of(dashboard)]
        assert len(ids) == len(set(ids)), uid
        for panel in panels_of(dashboard):
            refs = [target["refId"] for target in panel.get("targets", [])]
            assert len(refs) == len(set(refs)), f"{uid} {panel['title']}"
            if panel["type"] not in ("row", "text"):
                assert refs, f"{uid} {panel['title']!r} has no query"


def test_grid_positions_fit_and_do_not_overlap(dashboards: dict[str, dict[str, Any]]) -> None:
    for uid, dashboard in dashboards.items():
        boxes = []
        for panel in panels_of(dashboard):
            pos = panel["gridPos"]
            assert all(isinstance(pos[k], int) for k in "xywh"), f"{uid} {panel['title']}"
            assert pos["x"] >= 0 and pos["y"] >= 0 and pos["w"] > 0 and pos["h"] > 0
            assert pos["x"] + pos["w"] <= 24, f"{uid} {panel['title']!r} is wider than the grid"
            boxes.append((panel["title"], pos))
        for (a_title, a), (b_title, b) in itertools.combinations(boxes, 2):
            overlap = (
                a["x"] < b["x"] + b["w"]
                and b["x"] < a["x"] + a["w"]
                and a["y"] < b["y"] + b["h"]
                and b["y"] < a["y"] + a["h"]
            )
            assert not overlap, f"{uid}: {a_title!r} overlaps {b_title!r}"


def test_every_referenced_variable_is_defined_before_use(dashboards: dict[str, dict[str, Any]]) -> None:
    for uid, dashboard in dashboards.items():
        names = [v["name"] for v in dashboard["templating"]["list"]]
        assert len(names) == len(set(names)), uid
        for index, variable in enumerate(dashboard["templating"]["list"]):
            for text in strings_in({k: v for k, v in variable.items() if k != "current"}):
                for name in referenced_variables(text) - GRAFANA_BUILTINS - ATHENA_MACROS - {"__all"}:
                    assert name in names[:index], f"{uid}: variable {variable['name']} uses ${name} before it"
        for panel in panels_of(dashboard):
            for text in strings_in(panel):
                for name in referenced_variables(text) - GRAFANA_BUILTINS - ATHENA_MACROS:
                    assert name in names, f"{uid} {panel['title']!r} uses undefined ${name}"
        for link in dashboard["links"]:
            assert referenced_variables(json.dumps(link)) <= set(names) | GRAFANA_BUILTINS


def test_every_data_source_is_a_declared_variable(dashboards: dict[str, dict[str, Any]]) -> None:
    builtin = {("grafana", "-- Grafana --"), ("datasource", "-- Mixed --")}

    def refs(value: Any) -> Iterator[dict[str, Any]]:
        if isinstance(value, dict):
            if isinstance(value.get("datasource"), dict):
                yield value["datasource"]
            for item in value.values():
                yield from refs(item)
        elif isinstance(value, list):
            for item in value:
                yield from refs(item)

    for uid, dashboard in dashboards.items():
        declared = {v["name"]: v["query"] for v in dashboard["templating"]["list"] if v["type"] == "datasource"}
        for ref in refs(dashboard):
            if (ref["type"], ref["uid"]) in builtin:
                continue
            name = re.fullmatch(r"\$\{(\w+)\}", ref["uid"])
            assert name, f"{uid}: data source {ref} is not a variable"
            assert declared.get(name.group(1)) == ref["type"], f"{uid}: {ref} has no matching data source variable"


def test_data_source_variables_default_to_the_provisioned_uids(dashboards: dict[str, dict[str, Any]]) -> None:
    expected = {"athena": "batchops-athena", "cloudwatch": "batchops-cloudwatch"}
    for dashboard in dashboards.values():
        for variable in dashboard["templating"]["list"]:
            if variable["type"] == "datasource":
                assert variable["current"]["value"] == expected[variable["name"]]


def test_drilldown_links_carry_the_job_account_and_region(dashboards: dict[str, dict[str, Any]]) -> None:
    drilldown = dashboards["batchops-job-drilldown"]
    drilldown_variables = {v["name"] for v in drilldown["templating"]["list"]}
    links = [
        link["url"]
        for dashboard in dashboards.values()
        for panel in panels_of(dashboard)
        for override in panel.get("fieldConfig", {}).get("overrides", [])
        for prop in override["properties"]
        if prop["id"] == "links"
        for link in prop["value"]
        if "/d/" in link["url"]
    ]
    assert len(links) >= 2, "the Jobs table and the blocked jobs table link to the drilldown"
    for url in links:
        path, _, query = url.partition("?")
        assert path.split("/")[2] == drilldown["uid"]
        params = dict(part.split("=", 1) for part in query.split("&") if "=" in part)
        assert {key.removeprefix("var-") for key in params if key.startswith("var-")} == {"job_id", "account", "region"}
        assert {key.removeprefix("var-") for key in params} <= drilldown_variables
        assert params["var-account"] == "${__data.fields.account_id}" and "${__url_time_range}" in query


def test_drilldown_reads_the_member_account(dashboards: dict[str, dict[str, Any]]) -> None:
    """Every CloudWatch query of the drilldown names the job's account and region (OAM cross-account)."""
    drilldown = {"batchops-job-drilldown": dashboards["batchops-job-drilldown"]}
    metrics = cloudwatch_targets(drilldown, "Metrics")
    logs = cloudwatch_targets(drilldown, "Logs")
    assert len(metrics) >= 6 and len(logs) == 3
    for where, target in metrics:
        assert target["accountId"] == "$account" and target["region"] == "$region", where
        assert target["dimensions"] == {"InstanceId": "$instance_id"}, where
    groups = {group["name"]: group for _, target in logs for group in target["logGroups"]}
    assert set(groups) == {"${log_group}", "/aws/ecs/containerinsights/${cluster}/performance"}
    for group in groups.values():
        assert group["arn"] == f"arn:aws:logs:$region:$account:log-group:{group['name']}:*"
        assert group["accountId"] == "$account"
    texts = [p["options"]["content"] for p in panels_of(drilldown["batchops-job-drilldown"]) if p["type"] == "text"]
    assert any("containerInsights,value=enabled" in text for text in texts), "how to enable Container Insights"


def test_render_writes_one_file_per_dashboard(tmp_path: Path, settings: DashboardSettings) -> None:
    paths = write_dashboards(tmp_path, settings)
    assert sorted(p.name for p in paths) == sorted(f"{uid}.json" for uid in render_dashboards(settings))
    for path in paths:
        assert json.loads(path.read_text())["uid"] == path.stem


def test_cli_render(tmp_path: Path) -> None:
    from batchops.cli import main

    assert (
        main(["dashboards", "render", "--out", str(tmp_path), "--namespace", "Ops", "--athena-database", "ops_db"]) == 0
    )
    overview = json.loads((tmp_path / "batchops-overview.json").read_text())
    namespaces = {t["namespace"] for p in overview["panels"] for t in p.get("targets", []) if "namespace" in t}
    assert namespaces == {"Ops", "AWS/SQS"}
    assert all('"ops_db".' in sql for _, _, sql in athena_queries(overview))


def test_settings_reject_identifiers_that_break_sql() -> None:
    with pytest.raises(ValueError, match="identifier"):
        DashboardSettings(athena_database='x"; DROP TABLE jobs; --')


# ---------------------------------------------------------------------------------------------- Athena SQL


def test_projection_rows_carry_the_columns_the_sql_reads(workload: Workload) -> None:
    for table in ATHENA_COLUMNS:
        rows = getattr(workload, table)
        assert rows, f"no {table} rows"
        missing = set(columns_of(table)) - set(rows[0])
        assert not missing, f"{table} rows lack {missing}"


@pytest.mark.parametrize(
    "uid", ["batchops-overview", "batchops-jobs", "batchops-job-drilldown", "batchops-capacity", "batchops-cost"]
)
def test_every_athena_query_runs_on_the_workload(
    uid: str, dashboards: dict[str, dict[str, Any]], workload: Workload, athena: duckdb.DuckDBPyConnection
) -> None:
    dashboard = dashboards[uid]
    for scenario, (chosen, time) in scenarios(workload).items():
        grafana = Grafana(dashboard, athena, time, chosen)
        for where, holder, sql in athena_queries(dashboard):
            where = f"{uid} [{scenario}] {where}"
            rows, columns = run_athena(athena, grafana.interpolate(sql, where), time, where)
            assert rows, f"{where} returns no rows on the workload"
            # An aggregate without GROUP BY always gives one row: it must count something, not only zeros.
            assert any(value not in (None, 0, False, "") for row in rows for value in row), (
                f"{where} returns only nulls and zeros on the workload: {rows[:3]}"
            )
            if "gridPos" in holder:
                missing = columns_used(holder) - set(columns)
                assert not missing, f"{where} lacks the columns {missing} its panel uses (has {columns})"
                for column in columns_used(holder):
                    index = columns.index(column)
                    assert any(row[index] is not None for row in rows), f"{where}: {column} is null in every row"
                target = next(t for t in holder["targets"] if t.get("rawSQL") == sql)
                if target["format"] == 0:
                    assert columns[0] == "time", f"{where}: a time series query starts with its time column"


@pytest.mark.parametrize("uid", ["batchops-overview", "batchops-jobs", "batchops-capacity", "batchops-cost"])
def test_partition_pruning_never_changes_a_result(
    uid: str, dashboards: dict[str, dict[str, Any]], workload: Workload, athena: duckdb.DuckDBPyConnection
) -> None:
    """Each query gives the same rows with and without its `dt >=` partition predicate."""
    dashboard = dashboards[uid]
    chosen, hours = scenarios(workload)["one job"]
    time = TimeRange(hours.start - timedelta(days=30), hours.end)  # older sample events fall before it
    before = f"dt < DATE '{time.start:%Y-%m-%d}'"
    assert athena.execute(f'SELECT count(*) FROM "batchops"."jobs" WHERE {before}').fetchone() != (0,)
    grafana = Grafana(dashboard, athena, time, {"job_id": chosen["job_id"]})
    pruned = 0
    for where, _, sql in athena_queries(dashboard):
        if not PRUNING.search(sql):
            continue
        pruned += 1
        with_pruning, _ = run_athena(athena, grafana.interpolate(sql, where), time, where)
        without, _ = run_athena(athena, grafana.interpolate(PRUNING.sub("TRUE", sql), where), time, where)
        assert sorted(map(repr, with_pruning)) == sorted(map(repr, without)), where
    assert pruned >= 3


def test_filters_select_what_they_say(
    dashboards: dict[str, dict[str, Any]], workload: Workload, athena: duckdb.DuckDBPyConnection
) -> None:
    """The Jobs table under one job's filters only lists jobs matching them, that job included."""
    dashboard = dashboards["batchops-jobs"]
    chosen, time = scenarios(workload)["one job"]
    grafana = Grafana(dashboard, athena, time, chosen)
    table = next(p for p in dashboard["panels"] if p["title"] == "Jobs")
    rows, columns = run_athena(athena, grafana.interpolate(table["targets"][0]["rawSQL"], "jobs"), time, "jobs")
    listed = [dict(zip(columns, row, strict=True)) for row in rows]
    assert chosen["job_id"] in {row["job_id"] for row in listed}
    for row in listed:
        for variable, column in (
            ("account", "account_id"),
            ("region", "region"),
            ("queue", "queue"),
            ("compute_environment", "compute_environment"),
            ("status", "status"),
        ):
            assert row[column] == chosen[variable], (variable, row)


def test_all_keeps_jobs_not_yet_placed(
    dashboards: dict[str, dict[str, Any]], workload: Workload, athena: duckdb.DuckDBPyConnection
) -> None:
    """'All' compute environments also lists jobs without one (RUNNABLE, blocked): no row is lost."""
    dashboard = dashboards["batchops-jobs"]
    time = whole_range(workload)
    grafana = Grafana(dashboard, athena, time, {})
    table = next(p for p in dashboard["panels"] if p["title"] == "Jobs")
    sql = table["targets"][0]["rawSQL"].replace("LIMIT 1000", "")
    rows, _ = run_athena(athena, grafana.interpolate(sql, "jobs"), time, "jobs")
    assert len(rows) == len(workload.jobs)


def test_jobs_table_keeps_the_jobs_whose_life_overlaps_the_time_range(
    dashboards: dict[str, dict[str, Any]], workload: Workload, athena: duckdb.DuckDBPyConnection
) -> None:
    """A range starting mid-workload drops the jobs that ended before it, keeps running and Fargate jobs."""
    dashboard = dashboards["batchops-jobs"]
    jobs = simulated(workload.jobs)
    parse = lambda text: datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)  # noqa: E731
    finished = ("SUCCEEDED", "FAILED")
    ended = lambda job: parse(job["stopped_at"] or job["last_event_time"])  # noqa: E731
    stops = sorted(ended(job) for job in jobs if job["status"] in finished)
    start = stops[len(stops) // 2].replace(second=0, microsecond=0)
    time = TimeRange(start, time_range_of(jobs, simulated(workload.instances)).end)
    grafana = Grafana(dashboard, athena, time, {})
    table = next(p for p in dashboard["panels"] if p["title"] == "Jobs")
    sql = table["targets"][0]["rawSQL"].replace("LIMIT 1000", "")
    rows, columns = run_athena(athena, grafana.interpolate(sql, "jobs"), time, "jobs")
    listed = [dict(zip(columns, row, strict=True)) for row in rows]

    def overlaps(job: dict[str, Any]) -> bool:
        if parse(job["created_at"] or job["last_event_time"]) > time.end:
            return False
        return job["status"] not in finished or ended(job) >= start

    key = lambda job: (job["account_id"], job["region"], job["job_id"])  # noqa: E731
    expected = {key(job) for job in workload.jobs if overlaps(job)}
    assert {key(job) for job in listed} == expected
    assert 0 < len(expected) < len(workload.jobs), "the range must drop some jobs and keep others"
    assert any(job["status"] == "RUNNING" for job in listed), "running jobs are listed"
    assert any(job["status"] == "RUNNABLE" for job in listed), "waiting jobs are listed"
    assert any(job["platform"] == "FARGATE" for job in listed), "Fargate jobs are listed"


def _end_ms(time: TimeRange) -> int:
    return int(time.end.timestamp() * 1000)


def test_waiting_per_queue_counts_the_jobs_batchops_jobs_waiting_lists(
    dashboards: dict[str, dict[str, Any]], waiting_case: tuple[Workload, duckdb.DuckDBPyConnection]
) -> None:
    """The overview's waiting panel gives, per account, region and queue, the count and oldest wait that
    `batchops.waiting` computes from the same rows at the range's end (`summary`'s waiting section)."""
    from batchops.waiting import waiting_jobs, waits_by_queue

    workload, athena = waiting_case

    dashboard = dashboards["batchops-overview"]
    time = whole_range(workload)
    grafana = Grafana(dashboard, athena, time, {})
    panel = next(p for p in panels_of(dashboard) if p["title"] == "Waiting jobs per queue")
    rows, columns = run_athena(athena, grafana.interpolate(panel["targets"][0]["rawSQL"], "waiting"), time, "waiting")
    shown = {
        (r["account_id"], r["region"], r["queue"]): r for r in (dict(zip(columns, row, strict=True)) for row in rows)
    }
    expected = waits_by_queue(row for row in waiting_jobs(workload.jobs, _end_ms(time)) if row["queue"] is not None)
    assert len(expected) >= 3, "the simulated workload leaves jobs waiting in several queues"
    assert set(shown) == {(q.account_id, q.region, q.queue) for q in expected}
    for queue in expected:
        row = shown[queue.account_id, queue.region, queue.queue]
        assert row["waiting"] == queue.waiting, queue
        assert abs(row["oldest_seconds"] - queue.oldest_seconds) < 1, queue  # date_diff counts whole seconds
    assert [r["oldest_seconds"] for r in shown.values()] == sorted(
        (r["oldest_seconds"] for r in shown.values()), reverse=True
    )


@pytest.mark.parametrize("threshold", [0, 1800])
def test_the_waiting_filter_keeps_the_jobs_waiting_at_least_that_long(
    threshold: int,
    dashboards: dict[str, dict[str, Any]],
    waiting_case: tuple[Workload, duckdb.DuckDBPyConnection],
) -> None:
    """The Jobs table with Waiting (or Waiting 30m+) lists exactly what `batchops jobs --waiting --older-than`
    lists at the range's end, each with its wait."""
    from batchops.waiting import waiting_jobs

    workload, athena = waiting_case

    dashboard = dashboards["batchops-jobs"]
    time = whole_range(workload)
    grafana = Grafana(dashboard, athena, time, {"waiting": str(threshold)})
    table = next(p for p in dashboard["panels"] if p["title"] == "Jobs")
    sql = table["targets"][0]["rawSQL"].replace("LIMIT 1000", "")
    rows, columns = run_athena(athena, grafana.interpolate(sql, "jobs"), time, "jobs")
    listed = {
        (r["account_id"], r["region"], r["job_id"]): r for r in (dict(zip(columns, row, strict=True)) for row in rows)
    }
    expected = {
        (w["account_id"], w["region"], w["job_id"]): w for w in waiting_jobs(workload.jobs, _end_ms(time), threshold)
    }
    assert expected and set(listed) == set(expected)
    assert len(expected) < len(workload.jobs)
    for key, waited in expected.items():
        assert abs(listed[key]["waited_seconds"] - waited["waiting_seconds"]) < 1, key
    everything = Grafana(dashboard, athena, time, {})
    assert everything.values["waiting"] == "-1", "the filter is off by default"
    every, _ = run_athena(athena, everything.interpolate(sql, "jobs"), time, "jobs")
    assert len(every) == len(workload.jobs)


def test_drilldown_follows_the_job(
    dashboards: dict[str, dict[str, Any]], workload: Workload, athena: duckdb.DuckDBPyConnection
) -> None:
    """From the job id alone the drilldown finds the job's account, region, instance, log stream and task."""
    job = drilldown_job(workload)
    grafana = Grafana(dashboards["batchops-job-drilldown"], athena, whole_range(workload), {"job_id": job["job_id"]})
    assert grafana.values["account"] == job["account_id"] and grafana.values["region"] == job["region"]
    assert grafana.values["instance_id"] == job["instance_id"]
    assert grafana.values["log_stream"] == job["log_stream"]
    assert grafana.values["task_id"] == job["task_arn"].split("/")[-1]
    assert grafana.values["cluster"] == job["task_arn"].split("/")[1]


def drilldown_attempts(
    dashboards: dict[str, dict[str, Any]], athena: duckdb.DuckDBPyConnection, job: dict[str, Any], time: TimeRange
) -> list[dict[str, Any]]:
    """The rows of the drilldown's Attempts table for one job (its SQL reads only the job id, account and region;
    the dashboard's other variables need not resolve, e.g. a job whose last attempt has no known instance)."""
    panel = next(p for p in panels_of(dashboards["batchops-job-drilldown"]) if p["title"] == "Attempts")
    sql = panel["targets"][0]["rawSQL"]
    assert referenced_variables(sql) == {"job_id", "account", "region"}
    for variable, column in (("job_id", "job_id"), ("account", "account_id"), ("region", "region")):
        sql = sql.replace(f"${{{variable}}}", job[column])
    rows, columns = run_athena(athena, sql, time, "attempts")
    return [dict(zip(columns, row, strict=True)) for row in rows]


def test_drilldown_attempts_show_every_attempts_instance_exit_code_and_reason(
    dashboards: dict[str, dict[str, Any]], workload: Workload, athena: duckdb.DuckDBPyConnection
) -> None:
    """One row per attempt (none for the wait before the first), each with its own instance, exit code, reason and
    log stream from job_attempts; the last one agrees with the job row."""
    job = drilldown_job(workload)
    assert job["attempts"] >= 2, "the drilldown job should have been retried"
    rows = drilldown_attempts(dashboards, athena, job, whole_range(workload))
    assert [row["attempt"] for row in rows] == list(range(1, job["attempts"] + 1))
    key = (job["account_id"], job["region"], job["job_id"])
    exported = {a["attempt"]: a for a in workload.job_attempts if (a["account_id"], a["region"], a["job_id"]) == key}
    for row in rows:
        attempt = exported[row["attempt"]]
        shown = (row["instance_id"], row["exit_code"], row["reason"], row["log_stream"], row["container_reason"])
        assert shown == (
            attempt["instance_id"],
            attempt["exit_code"],
            attempt["status_reason"],
            attempt["log_stream"],
            attempt["container_reason"],
        ), row
        assert row["states"], f"attempt {row['attempt']} has no state changes"
    last = rows[-1]
    assert (last["instance_id"], last["exit_code"], last["reason"], last["log_stream"]) == (
        job["instance_id"],
        job["exit_code"],
        job["status_reason"],
        job["log_stream"],
    )
    assert last["states"].endswith(job["status"])
    assert len({row["log_stream"] for row in rows}) == len(rows), "each attempt shows its own log stream"
    assert all(row["instance_id"] and row["instance_type"] for row in rows), "each attempt shows its instance"


def test_drilldown_attempts_of_the_sample_failed_job_each_show_their_own_exit_and_reason(
    dashboards: dict[str, dict[str, Any]], workload: Workload, athena: duckdb.DuckDBPyConnection
) -> None:
    """The sample job that failed after two attempts: the first lost its host (no exit code), the second exited 1."""
    job = next(j for j in workload.jobs if j["job_id"] == "4c7599ae-0a82-49aa-ba5a-4727fcce14a8")
    rows = drilldown_attempts(dashboards, athena, job, whole_range(workload))
    assert [row["attempt"] for row in rows] == [1, 2]
    first, second = rows
    assert (first["exit_code"], first["reason"], first["instance_id"]) == (
        None,
        "Host EC2 (instance i-0123456789abcdef0) terminated.",
        "i-0123456789abcdef0",
    )
    assert (second["exit_code"], second["reason"]) == (1, "Essential container in task exited")
    assert first["log_stream"] != second["log_stream"] and second["log_stream"] == job["log_stream"]
    assert second["states"].endswith("FAILED")


def test_drilldown_console_links_open_the_job_its_log_stream_task_and_instance(
    dashboards: dict[str, dict[str, Any]], workload: Workload, athena: duckdb.DuckDBPyConnection
) -> None:
    job = drilldown_job(workload)
    dashboard = dashboards["batchops-job-drilldown"]
    time = whole_range(workload)
    grafana = Grafana(dashboard, athena, time, {"job_id": job["job_id"]})
    panel = next(p for p in panels_of(dashboard) if p["title"] == "Console links")
    rows, _ = run_athena(athena, grafana.interpolate(panel["targets"][0]["rawSQL"], "links"), time, "links")
    urls = [url for _, url in rows]
    console = f"https://{job['region']}.console.aws.amazon.com"
    cluster, task = job["task_arn"].split("/")[1:3]
    stream = job["log_stream"].replace("/", "$252F")
    assert urls == [
        f"https://signin.aws.amazon.com/switchrole?account={job['account_id']}",
        f"{console}/batch/home?region={job['region']}#jobs/detail/{job['job_id']}",
        f"{console}/cloudwatch/home?region={job['region']}"
        f"#logsV2:log-groups/log-group/$252Faws$252Fbatch$252Fjob/log-events/{stream}",
        f"{console}/ecs/v2/clusters/{cluster}/tasks/{task}?region={job['region']}",
        f"{console}/ec2/home?region={job['region']}#InstanceDetails:instanceId={job['instance_id']}",
    ]


def test_the_issue_variables_are_offered(dashboards: dict[str, dict[str, Any]]) -> None:
    """Data sources, account (multi), region, queue, compute environment, status and job id."""
    variables = {uid: {v["name"]: v for v in d["templating"]["list"]} for uid, d in dashboards.items()}
    for uid, by_name in variables.items():
        assert "athena" in by_name and by_name["athena"]["type"] == "datasource", uid
        if uid != "batchops-job-drilldown":
            assert by_name["account"]["multi"] and by_name["region"]["multi"], uid
    assert variables["batchops-overview"]["cloudwatch"]["type"] == "datasource"
    assert {"account", "region", "queue", "compute_environment", "status"} <= set(variables["batchops-jobs"])
    assert {"account", "region", "compute_environment"} <= set(variables["batchops-capacity"])
    assert variables["batchops-job-drilldown"]["job_id"]["type"] == "textbox"


# ---------------------------------------------------------------------------------------------- CloudWatch


def test_every_emf_query_names_an_emitted_metric_and_dimension_set(
    dashboards: dict[str, dict[str, Any]], workload: Workload, settings: DashboardSettings
) -> None:
    emitted = emitted_metrics(workload.emf)
    queried = set()
    for where, target in cloudwatch_targets(dashboards, "Metrics"):
        key = (target["namespace"], target["metricName"])
        dimensions = frozenset(target["dimensions"])
        assert target["statistic"] in STATISTICS or re.fullmatch(r"p\d{1,2}(\.\d+)?", target["statistic"]), where
        if target["namespace"] == settings.namespace:
            assert target["matchExact"], f"{where}: EMF dimension sets are exact"
            assert dimensions in emitted.get(key, set()), (
                f"{where}: {key} with dimensions {sorted(dimensions)} is not in the emitted EMF "
                f"(emitted: {sorted(map(sorted, emitted.get(key, set())))})"
            )
            assert "accountId" not in target, f"{where}: EMF metrics live in the monitoring account"
            queried.add(key[1])
        else:
            assert AWS_METRICS.get(key) == set(dimensions), f"{where}: {key} is not a metric AWS publishes"
    names = {metric for namespace, metric in emitted if namespace == settings.namespace}
    assert names <= queried, f"emitted metrics no panel shows: {names - queried}"


def test_emf_dimension_values_match_the_projection_variables(workload: Workload) -> None:
    """The account, region and queue values the Athena variables offer are the EMF dimension values."""
    emitted: dict[str, set[str]] = {"AccountId": set(), "Region": set(), "JobQueue": set()}
    for document in workload.emf:
        for name, values in emitted.items():
            if name in document:
                values.add(document[name])
    jobs = simulated(workload.jobs)
    assert {job["account_id"] for job in jobs} <= emitted["AccountId"]
    assert {job["region"] for job in jobs} <= emitted["Region"]
    assert {job["queue"] for job in jobs if job["queue"]} <= emitted["JobQueue"]
