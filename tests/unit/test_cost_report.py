"""Cost figures over a range: groups, unpriced jobs counted but never summed, wasted cost by failure kind, the
costliest jobs, the JobCost point; the same figures in any order of the rows."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from batchops.cost_report import cost_summary, job_cost_point, with_costs
from batchops.prices import PriceBook, entry

BOOK = PriceBook(
    [
        entry("shape", "*", "m5.xlarge", "2025-11-01", "t", vcpus=4, memory_mib=16384, gpus=0),
        entry("on-demand", "eu-west-1", "m5.xlarge", "2025-11-01", "t", usd_per_hour=0.2),
        entry("spot", "eu-west-1a", "m5.xlarge", "2025-11-01", "t", usd_per_hour=0.08),
    ]
)
RECLAIMED = "Host EC2 (instance i-0123456789abcdef0) terminated."


def _job(job_id: str, **fields: Any) -> dict[str, Any]:
    return {
        "account_id": "111111111111",
        "region": "eu-west-1",
        "job_id": job_id,
        "job_name": job_id,
        "queue": "q1",
        "compute_environment": "ce1",
        "job_definition": "def1",
        "platform": "EC2",
        "pricing": "on-demand",
        "status": "SUCCEEDED",
        "started_at": "2025-11-13T10:00:00.000Z",
        "vcpus": 4,
        "memory_mib": 8192,
        "gpus": None,
        "attempts": 1,
        "array_size": None,
        **fields,
    }


def _attempt(job_id: str, number: int = 1, seconds: float = 3600, **fields: Any) -> dict[str, Any]:
    return {
        "account_id": "111111111111",
        "region": "eu-west-1",
        "job_id": job_id,
        "attempt": number,
        "started_at": "2025-11-13T10:00:00.000Z",
        "run_seconds": seconds,
        "instance_type": "m5.xlarge",
        "availability_zone": "eu-west-1a",
        "status_reason": "Essential container in task exited",
        "exit_code": 0,
        **fields,
    }


def _rows() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    jobs = [
        _job("a"),
        _job("b", queue="q2", job_definition="def2", pricing="spot", attempts=2),
        _job("c", pricing="unknown"),
        _job("d", status="FAILED", queue="q2", exit_code=1),
        _job("parent", array_size=2),
        _job("late", started_at="2025-11-20T00:00:00.000Z"),
    ]
    attempts = [
        _attempt("a"),
        _attempt("b", 1, 1800, status_reason=RECLAIMED, exit_code=None),
        _attempt("b", 2, 3600),
        _attempt("c"),
        _attempt("d", 1, 900, exit_code=1),
        _attempt("late"),
    ]
    return with_costs(jobs, attempts, BOOK)


def test_costs_are_grouped_unpriced_jobs_counted_apart_and_the_range_keeps_its_jobs() -> None:
    jobs, attempts = _rows()
    figures = cost_summary(jobs, attempts, since="2025-11-13T00:00:00Z", until="2025-11-14T00:00:00Z")
    assert figures["total"] == pytest.approx(
        {"cost_usd": 0.2 + 0.08 * 1.5 + 0.05, "wasted_cost_usd": 0.04 + 0.05, "jobs": 4, "unpriced_jobs": 1}
    )
    by_queue = figures["by_queue"]
    assert list(by_queue) == ["111111111111/eu-west-1/q1", "111111111111/eu-west-1/q2"]  # the costliest first
    assert by_queue["111111111111/eu-west-1/q1"]["unpriced_jobs"] == 1
    assert figures["by_job_definition"]["def2"]["cost_usd"] == pytest.approx(0.12)
    assert figures["wasted_by_failure_kind"] == pytest.approx({"exit_nonzero": 0.05, "spot_reclaim": 0.04})
    assert [j["job_id"] for j in figures["top_jobs"]] == ["a", "b", "d"]
    everything = cost_summary(jobs, attempts)
    assert everything["total"]["jobs"] == 5  # the later job too; the array parent never


def test_a_finished_priced_job_gives_one_job_cost_point_per_account_region_and_queue() -> None:
    jobs, _ = _rows()
    by_id = {j["job_id"]: j for j in jobs}
    point = job_cost_point(by_id["a"], 1_000)
    assert point is not None and point.name == "JobCost" and point.value == pytest.approx(0.2)
    assert point.dimensions == (("AccountId", "111111111111"), ("Region", "eu-west-1"), ("JobQueue", "q1"))
    assert job_cost_point(by_id["c"], 1_000) is None  # unpriced
    assert job_cost_point({**by_id["a"], "status": "RUNNING"}, 1_000) is None


@given(st.randoms(use_true_random=False))
def test_the_figures_do_not_depend_on_the_order_of_the_rows(rng: Any) -> None:
    jobs, attempts = _rows()
    expected = cost_summary(jobs, attempts)
    rng.shuffle(jobs)
    rng.shuffle(attempts)
    shuffled_jobs, shuffled_attempts = with_costs(jobs, attempts, BOOK)
    assert cost_summary(shuffled_jobs, shuffled_attempts) == expected
