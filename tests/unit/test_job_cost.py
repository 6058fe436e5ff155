"""Cost per attempt and job: the instance share times run time at the price of the day, Fargate by size, the wasted
part, and unknown inputs left null; invariants drawn with hypothesis (sum of attempts, never negative, null
propagation, order independence)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from batchops.job_cost import attempt_cost_fields, job_cost
from batchops.prices import PriceBook, entry, table_entries

DAY = "2025-11-13"
BOOK = PriceBook(
    [
        entry("shape", "*", "m5.xlarge", "2025-11-01", "t", vcpus=4, memory_mib=16384, gpus=0),
        entry("shape", "*", "g4dn.xlarge", "2025-11-01", "t", vcpus=4, memory_mib=16384, gpus=1),
        entry("on-demand", "eu-west-1", "m5.xlarge", "2025-11-01", "t", usd_per_hour=0.2),
        entry("on-demand", "eu-west-1", "m5.xlarge", "2025-12-01", "t", usd_per_hour=0.3),
        entry("spot", "eu-west-1a", "m5.xlarge", "2025-11-01", "t", usd_per_hour=0.08),
        entry("spot", "eu-west-1a", "g4dn.xlarge", "2025-11-01", "t", usd_per_hour=0.2),
        entry("fargate", "eu-west-1", "", "2025-11-01", "t", usd_per_vcpu_hour=0.04, usd_per_gb_hour=0.004),
    ]
)


def _job(**fields: Any) -> dict[str, Any]:
    return {
        "region": "eu-west-1",
        "platform": "EC2",
        "pricing": "on-demand",
        "status": "SUCCEEDED",
        "vcpus": 2,
        "memory_mib": 4096,
        "gpus": None,
        **fields,
    }


def _attempt(number: int, seconds: float | None = 3600, **fields: Any) -> dict[str, Any]:
    return {
        "attempt": number,
        "started_at": f"{DAY}T10:00:00.000Z",
        "run_seconds": seconds,
        "instance_type": "m5.xlarge",
        "availability_zone": "eu-west-1a",
        **fields,
    }


def test_an_ec2_attempt_pays_the_larger_of_its_vcpu_and_memory_shares_of_the_instance() -> None:
    by_vcpu = job_cost(_job(), [_attempt(1)], BOOK)  # 2 of 4 vCPUs beats 4 of 16 GiB
    assert by_vcpu.cost_usd == pytest.approx(0.2 * 0.5)
    assert "vCPU share" in by_vcpu.cost_basis and "on-demand m5.xlarge eu-west-1" in by_vcpu.cost_basis
    by_memory = job_cost(_job(vcpus=1, memory_mib=12288), [_attempt(1, 1800)], BOOK)
    assert by_memory.cost_usd == pytest.approx(0.2 * 0.75 * 0.5)
    assert "memory share" in by_memory.cost_basis
    whole = job_cost(_job(vcpus=8, memory_mib=4096), [_attempt(1)], BOOK)
    assert whole.cost_usd == pytest.approx(0.2)  # never more than the instance


def test_a_gpu_job_pays_its_gpu_share_and_spot_pays_its_zone_price() -> None:
    gpu = job_cost(_job(pricing="spot", gpus="1"), [_attempt(1, instance_type="g4dn.xlarge")], BOOK)
    assert gpu.cost_usd == pytest.approx(0.2)
    assert "GPU share 1/1" in gpu.cost_basis and "spot g4dn.xlarge eu-west-1a" in gpu.cost_basis


def test_fargate_pays_vcpu_hours_and_gb_hours_with_a_one_minute_minimum() -> None:
    fargate = _job(platform="FARGATE", pricing="fargate", vcpus=0.5, memory_mib=1024)
    hour = job_cost(fargate, [_attempt(1, instance_type=None)], BOOK)
    assert hour.cost_usd == pytest.approx(0.5 * 0.04 + 1 * 0.004)
    brief = job_cost(fargate, [_attempt(1, 5, instance_type=None)], BOOK)
    assert brief.cost_usd == pytest.approx((0.5 * 0.04 + 0.004) / 60)
    assert "fargate eu-west-1" in hour.cost_basis
    spot = job_cost({**fargate, "pricing": "spot"}, [_attempt(1, instance_type=None)], BOOK)
    assert spot.cost_usd is None and "no fargate-spot price" in spot.cost_basis


def test_the_price_in_effect_on_the_day_the_attempt_started_is_used() -> None:
    december = job_cost(_job(), [_attempt(1, started_at="2025-12-02T00:00:00.000Z")], BOOK)
    assert december.cost_usd == pytest.approx(0.3 * 0.5)
    assert "2025-12-01" in december.cost_basis
    before_any = job_cost(_job(), [_attempt(1, started_at="2025-10-02T00:00:00.000Z")], BOOK)
    assert before_any.cost_usd == pytest.approx(0.2 * 0.5) and "2025-11-01" in before_any.cost_basis


@pytest.mark.parametrize(
    ("job", "attempt", "why"),
    [
        (_job(pricing="unknown"), _attempt(1), "pricing model"),
        (_job(), _attempt(1, instance_type=None), "instance type not known"),
        (_job(), _attempt(1, instance_type="x9.huge"), "no size for x9.huge"),
        (_job(region="ap-south-1"), _attempt(1), "no on-demand m5.xlarge ap-south-1 price"),
        (_job(pricing="spot"), _attempt(1, availability_zone="eu-west-1b"), "no spot m5.xlarge eu-west-1b"),
        (_job(vcpus=None), _attempt(1), "vCPUs or memory not known"),
        (_job(gpus=1), _attempt(1), "GPUs requested but m5.xlarge has none"),
        (_job(status="RUNNING"), _attempt(1, None), "still running"),
    ],
)
def test_an_unknown_input_leaves_the_cost_null_with_the_reason(job: Any, attempt: Any, why: str) -> None:
    cost = job_cost(job, [attempt], BOOK)
    assert cost.cost_usd is None and cost.wasted_cost_usd in (None, 0.0)
    assert why in cost.cost_basis


def test_a_reclaimed_attempt_counts_in_the_cost_and_is_wasted() -> None:
    cost = job_cost(_job(pricing="spot"), [_attempt(1, 1800), _attempt(2, 3600)], BOOK)
    assert cost.cost_usd == pytest.approx(0.08 * 0.5 * 1.5)
    assert cost.wasted_cost_usd == pytest.approx(0.08 * 0.5 * 0.5)
    assert attempt_cost_fields(cost, 1)["wasted_cost_usd"] == pytest.approx(0.02)
    assert attempt_cost_fields(cost, 2)["wasted_cost_usd"] == 0.0
    failed = job_cost(_job(status="FAILED"), [_attempt(1, 1800), _attempt(2, 1800)], BOOK)
    assert failed.wasted_cost_usd == failed.cost_usd == pytest.approx(0.1)
    retrying = job_cost(_job(status="RUNNABLE"), [_attempt(1, 1800)], BOOK)
    assert retrying.wasted_cost_usd == retrying.cost_usd


def test_a_job_that_never_ran_costs_nothing_and_every_table_price_is_positive() -> None:
    assert job_cost(_job(status="RUNNABLE"), [], BOOK).cost_usd == 0.0
    parent = job_cost(_job(array_size=10), [], BOOK)  # summed over jobs, the children are not counted twice
    assert (parent.cost_usd, parent.cost_basis) == (0.0, "array parent: its children carry the cost")
    book = PriceBook(table_entries())
    assert len(book) > 300
    assert all(v > 0 for e in book.entries() for k, v in e.values if k != "gpus")


_attempts = st.lists(
    st.fixed_dictionaries(
        {
            "run_seconds": st.one_of(st.none(), st.floats(0, 86_400)),
            "instance_type": st.sampled_from(["m5.xlarge", "g4dn.xlarge", None]),
            "availability_zone": st.sampled_from(["eu-west-1a", "eu-west-1b"]),
            "started_at": st.sampled_from([f"{DAY}T00:00:00.000Z", "2025-12-05T00:00:00.000Z", None]),
        }
    ),
    max_size=6,
)
_jobs = st.fixed_dictionaries(
    {
        "pricing": st.sampled_from(["on-demand", "spot", "unknown"]),
        "status": st.sampled_from(["SUCCEEDED", "FAILED", "RUNNING", "RUNNABLE"]),
        "vcpus": st.one_of(st.none(), st.floats(0.25, 16)),
        "memory_mib": st.sampled_from([512, 4096, 30720]),
        "gpus": st.sampled_from([None, 0, 1]),
    }
)


@given(_jobs, _attempts, st.randoms(use_true_random=False))
def test_a_job_costs_the_sum_of_its_attempts_in_any_order_never_negative_and_null_once_any_is(
    fields: dict[str, Any], drawn: list[dict[str, Any]], rng: Any
) -> None:
    job = _job(**fields)
    attempts = [{"attempt": n + 1, **a} for n, a in enumerate(drawn)]
    cost = job_cost(job, attempts, BOOK)
    shuffled = list(attempts)
    rng.shuffle(shuffled)
    assert job_cost(job, shuffled, BOOK) == cost
    parts = [attempt_cost_fields(cost, a["attempt"]) for a in attempts]
    if any(p["cost_usd"] is None for p in parts):
        assert cost.cost_usd is None
    else:
        total, wasted = cost.cost_usd, cost.wasted_cost_usd
        assert total == pytest.approx(sum(p["cost_usd"] for p in parts), abs=1e-7)
        assert total is not None and wasted is not None and 0 <= wasted <= total + 1e-9
    assert all(p["cost_usd"] is None or p["cost_usd"] >= 0 for p in parts)
