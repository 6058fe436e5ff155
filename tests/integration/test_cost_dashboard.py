"""The cost dashboard's figures are `batchops summary`'s cost figures: its Athena SQL run in DuckDB (macros expanded,
sqlglot-transpiled) on the projections of a simulated Organization, compared with the CLI's JSON on the same store."""

from __future__ import annotations

import json
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from test_dashboards import (  # the dashboards' DuckDB stand-in for Athena and Grafana's interpolation
    Grafana,
    TimeRange,
    Workload,
    _cli,
    athena_of,
    panels_of,
    run_athena,
    whole_range,
    workload,  # noqa: F401 (the session fixture)
)

from batchops.cost_report import cost_summary
from batchops.dashboards import DashboardSettings, render_dashboards

USD = pytest.approx  # the CLI rounds to 6 decimals; the SQL sums doubles


@pytest.fixture(scope="module")
def cost_dashboard() -> dict[str, Any]:
    return render_dashboards(DashboardSettings())["batchops-cost"]


@pytest.fixture(scope="module")
def athena(workload: Workload) -> duckdb.DuckDBPyConnection:  # noqa: F811
    return athena_of(workload.files)


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _summary_cost(workload: Workload, time: TimeRange) -> dict[str, Any]:  # noqa: F811
    """`batchops summary --format json`'s cost section over the time range, on the workload's store."""
    span = ["--since", _iso(time.start), "--until", _iso(time.end)]
    out = _cli(["--store", "sqlite:///store.db", "summary", "--format", "json", *span], workload.files["jobs"].parent)
    cost: dict[str, Any] = json.loads(out)["cost"]
    return cost


def _panel_rows(
    dashboard: dict[str, Any], con: duckdb.DuckDBPyConnection, time: TimeRange, title: str
) -> list[dict[str, Any]]:
    """The rows a panel shows, every variable on All."""
    panel = next(p for p in panels_of(dashboard) if p["title"] == title)
    grafana = Grafana(dashboard, con, time, {})
    rows, columns = run_athena(con, grafana.interpolate(panel["targets"][0]["rawSQL"], title), time, title)
    return [dict(zip(columns, row, strict=True)) for row in rows]


def _figures(row: dict[str, Any]) -> dict[str, Any]:
    """A panel row as cost_report's figures: a group with no priced job sums to null, the CLI's to 0."""
    return {
        "cost_usd": USD(row["cost_usd"] or 0.0, abs=1e-6),
        "wasted_cost_usd": USD(row["wasted_cost_usd"] or 0.0, abs=1e-6),
        "jobs": row["jobs"],
        "unpriced_jobs": row["unpriced_jobs"],
    }


def _ranges(workload: Workload) -> dict[str, TimeRange]:  # noqa: F811
    """The whole range, and one starting at the median start so that about half of the jobs fall out of it."""
    whole = whole_range(workload)
    starts = sorted(job["started_at"] for job in workload.jobs if job["started_at"])
    middle = datetime.strptime(starts[len(starts) // 2][:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)
    return {"whole": whole, "second half": TimeRange(middle, whole.end)}


@pytest.mark.parametrize("span", ["whole", "second half"])
def test_cost_panels_show_the_figures_batchops_summary_gives(
    span: str,
    cost_dashboard: dict[str, Any],
    workload: Workload,  # noqa: F811
    athena: duckdb.DuckDBPyConnection,
) -> None:
    time = _ranges(workload)[span]
    expected = _summary_cost(workload, time)
    assert expected["total"]["jobs"] > expected["total"]["unpriced_jobs"] > 0, "priced and unpriced jobs both"

    [total] = _panel_rows(cost_dashboard, athena, time, "Estimated cost")
    assert (
        _figures(
            {
                "cost_usd": total["Estimated cost"],
                "wasted_cost_usd": total["Wasted"],
                "jobs": total["Jobs"],
                "unpriced_jobs": total["Unpriced jobs"],
            }
        )
        == expected["total"]
    )

    groups = {
        "Cost per account": ("by_account", lambda r: r["account_id"]),
        "Cost per queue": ("by_queue", lambda r: f"{r['account_id']}/{r['region']}/{r['queue']}"),
        "Cost per compute environment": (
            "by_compute_environment",
            lambda r: f"{r['account_id']}/{r['region']}/{r['compute_environment']}",
        ),
        "Cost per job definition": ("by_job_definition", lambda r: str(r["job_definition"])),
    }
    for title, (section, key) in groups.items():
        rows = _panel_rows(cost_dashboard, athena, time, title)
        assert {key(r): _figures(r) for r in rows} == expected[section], title
        assert all((r["cost_usd"] is None) == (r["unpriced_jobs"] == r["jobs"]) for r in rows), (
            f"{title}: a group is null exactly when none of its jobs had a price"
        )
        costs = [r["cost_usd"] for r in rows if r["cost_usd"] is not None]
        assert costs == sorted(costs, reverse=True), f"{title}: the costliest first"

    wasted = _panel_rows(cost_dashboard, athena, time, "Wasted cost by failure kind")
    assert {r["failure_kind"]: USD(r["wasted_cost_usd"], abs=1e-6) for r in wasted} == expected[
        "wasted_by_failure_kind"
    ]
    assert {"spot_reclaim", "exit_nonzero"} <= {r["failure_kind"] for r in wasted}

    top = _panel_rows(cost_dashboard, athena, time, "Top 20 jobs by cost")
    assert len(top) == 20
    fields = ("account_id", "region", "job_id", "job_name", "queue", "status", "attempts", "cost_basis")
    assert [{f: r[f] for f in fields} for r in top] == [{f: r[f] for f in fields} for r in expected["top_jobs"]]
    assert [USD(r["cost_usd"], abs=1e-9) for r in expected["top_jobs"]] == [r["cost_usd"] for r in top]


def test_the_second_half_drops_the_jobs_that_started_before_it(workload: Workload) -> None:  # noqa: F811
    """The mid-range case really filters: it keeps some jobs and drops others."""
    ranges = _ranges(workload)
    whole, half = (_summary_cost(workload, ranges[s])["total"]["jobs"] for s in ("whole", "second half"))
    assert 0 < half < whole


def test_the_overview_total_is_the_cost_dashboards(
    cost_dashboard: dict[str, Any],
    workload: Workload,  # noqa: F811
    athena: duckdb.DuckDBPyConnection,
) -> None:
    overview = render_dashboards(DashboardSettings())["batchops-overview"]
    for time in _ranges(workload).values():
        [shown] = _panel_rows(overview, athena, time, "Estimated cost")
        [total] = _panel_rows(cost_dashboard, athena, time, "Estimated cost")
        assert shown == {"Estimated cost": total["Estimated cost"], "Wasted": total["Wasted"]}
        assert total["Estimated cost"] == USD(_summary_cost(workload, time)["total"]["cost_usd"], abs=1e-6)


def test_the_top_jobs_open_the_drilldown(cost_dashboard: dict[str, Any]) -> None:
    panel = next(p for p in panels_of(cost_dashboard) if p["title"] == "Top 20 jobs by cost")
    links = [
        link["url"]
        for override in panel["fieldConfig"]["overrides"]
        if override["matcher"]["options"] == "job_id"
        for prop in override["properties"]
        if prop["id"] == "links"
        for link in prop["value"]
    ]
    assert links == [
        "/d/batchops-job-drilldown/batch-job-drilldown?var-job_id=${__data.fields.job_id}"
        "&var-account=${__data.fields.account_id}&var-region=${__data.fields.region}&${__url_time_range}"
    ]


# ------------------------------------------------------------------ every failure kind, on rows made for it

REASONS = [
    None,
    "",
    "Host EC2 (instance i-0abc) terminated.",
    "OutOfMemoryError: Container killed due to memory usage",
    "Essential container in task exited",
    "container killed: oom",
    "zoom meeting",
    "Job attempt duration exceeded timeout",
    "timeout waiting",
    "Cancelled by user",
    "Job terminated by the user",
    "exited: memory limit",
]
ATTEMPT = {
    "started_at": "2025-11-13T01:00:00.000Z",
    "stopped_at": "2025-11-13T01:10:00.000Z",
    "run_seconds": 600.0,
    "container_reason": None,
    "instance_id": None,
    "instance_type": None,
    "availability_zone": None,
    "container_instance_arn": None,
    "task_arn": None,
    "log_group": None,
    "log_stream": None,
    "cost_basis": "made for the test",
}

Made = tuple[str, str | None, bool, list[tuple[str | None, int | None, float]], str, int | None]
lost_attempts = st.lists(
    st.tuples(st.sampled_from(REASONS), st.sampled_from([None, 0, 1, 137]), st.sampled_from([0.0, 0.25, 1.5])),
    min_size=1,
    max_size=4,
)
# Starts just before, at, inside and at the end of the range [2025-11-13, 2025-11-14): only the middle two count.
STARTS = [
    "2025-11-12T23:59:59.999Z",
    "2025-11-13T00:00:00.000Z",
    "2025-11-13T01:00:00.000Z",
    "2025-11-14T00:00:00.000Z",
]
made_jobs = st.lists(
    st.tuples(
        st.sampled_from(["SUCCEEDED", "FAILED", "RUNNING", "RUNNABLE"]),
        st.sampled_from(["spot", "on-demand", None]),
        st.booleans(),  # priced
        lost_attempts,
        st.sampled_from(STARTS),
        st.sampled_from([None, None, 3]),  # array_size: 3 makes it an array parent
    ),
    min_size=1,
    max_size=6,
)


def _made_rows(template: dict[str, Any], made: list[Made]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    jobs, attempts = [], []
    for number, (status, pricing, priced, lost, started_at, array_size) in enumerate(made):
        job_id = f"made-{number}"
        cost = sum(w for *_, w in lost) + 1.0 if priced else None
        wasted = sum(w for *_, w in lost) if priced else None
        jobs.append(
            dict(
                template,
                job_id=job_id,
                status=status,
                pricing=pricing,
                attempts=len(lost),
                array_size=array_size,
                array_parent_id=None,
                started_at=started_at,
                stopped_at="2025-11-13T02:00:00.000Z" if status in ("SUCCEEDED", "FAILED") else None,
                last_event_time="2025-11-13T02:00:00.000Z",
                cost_usd=cost,
                wasted_cost_usd=wasted,
            )
        )
        for attempt, (reason, exit_code, lost_usd) in enumerate(lost, start=1):
            attempts.append(
                dict(
                    ATTEMPT,
                    account_id=template["account_id"],
                    region=template["region"],
                    job_id=job_id,
                    attempt=attempt,
                    status_reason=reason,
                    exit_code=exit_code,
                    cost_usd=lost_usd if priced else None,
                    wasted_cost_usd=lost_usd if priced else None,
                )
            )
    return jobs, attempts


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(made=made_jobs)
@example(  # every reason with every exit code, on spot and on-demand jobs, ended and still going
    made=[
        (
            status,
            pricing,
            True,
            [(r, c, 0.25 + (c or 0) / 1000) for r in REASONS for c in (None, 0, 1, 137)],
            STARTS[2],
            None,
        )
        for status, pricing in (("FAILED", "spot"), ("RUNNING", "on-demand"))
    ]
)
def test_the_total_and_wasted_cost_by_failure_kind_are_the_clis_on_any_rows(
    made: list[Made],
    cost_dashboard: dict[str, Any],
    workload: Workload,  # noqa: F811
) -> None:
    """Any status reason, exit code, pricing, job state, start at the range's edges and array parents: the total
    and the wasted cost per failure kind are cost_report's."""
    template = next(job for job in workload.jobs if job["array_size"] is None and job["queue"])
    jobs, attempts = _made_rows(template, made)
    with tempfile.TemporaryDirectory() as folder:
        files = {table: Path(folder) / f"{table}.json" for table in ("jobs", "instances", "job_events")}
        files["job_attempts"] = Path(folder) / "job_attempts.json"
        for path, rows in ((files["jobs"], jobs), (files["job_attempts"], attempts)):
            path.write_text(json.dumps(rows))
        for table in ("instances", "job_events"):
            files[table].write_text(json.dumps([]))
        con = athena_of(files)
        time = TimeRange(datetime(2025, 11, 13, tzinfo=UTC), datetime(2025, 11, 14, tzinfo=UTC))
        shown = _panel_rows(cost_dashboard, con, time, "Wasted cost by failure kind")
        [total] = _panel_rows(cost_dashboard, con, time, "Estimated cost")
    expected = cost_summary(jobs, attempts, since=_iso(time.start), until=_iso(time.end))
    assert {r["failure_kind"]: USD(r["wasted_cost_usd"], abs=1e-9) for r in shown} == expected["wasted_by_failure_kind"]
    assert (total["Jobs"], total["Unpriced jobs"]) == (expected["total"]["jobs"], expected["total"]["unpriced_jobs"])
    assert (total["Estimated cost"] or 0.0) == USD(expected["total"]["cost_usd"], abs=1e-6)
