"""The reconciliation query (docs/sql/cost_reconciliation.sql) on DuckDB, transpiled from Athena with sqlglot: our
estimate per job from the projection of a simulated Organization against the CUR 2.0 split cost allocation sample
(tests/data/cur2_split_cost_sample.csv, made by tests/cur_sample.py from the same simulated work).

What must hold whatever the prices: every EC2 attempt's estimate is at least its split cost (the larger of the vCPU
and memory shares is at least their 9:1 weighted mean) and at most its split plus unused cost when it ran alone;
a Fargate attempt's estimate is its split cost but for the one-minute minimum.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import duckdb
import pytest
import sqlglot

from batchops.cost_report import with_costs
from batchops.prices import PriceBook, table_entries
from cur_sample import COLUMNS, SAMPLE, cur_rows, projection, write

QUERY = Path(__file__).resolve().parents[2] / "docs" / "sql" / "cost_reconciliation.sql"
START, END = "2025-11-01T00:00:00Z", "2025-12-01T00:00:00Z"
DOUBLE_COLUMNS = {c for c in COLUMNS if c.endswith(("_cost", "_usage", "_ratio", "_amount"))}


@pytest.fixture(scope="module")
def projected(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[dict[str, Any]], ...]:
    """The sample's simulated Organization as the projection holds it (jobs, attempts, instances)."""
    rows: tuple[list[dict[str, Any]], ...] = projection(tmp_path_factory.mktemp("cur"))
    return rows


@pytest.fixture(scope="module")
def athena(
    projected: tuple[list[dict[str, Any]], ...], tmp_path_factory: pytest.TempPathFactory
) -> duckdb.DuckDBPyConnection:
    """DuckDB standing in for Athena: the batchops tables with costs, the CUR 2.0 table from the sample."""
    jobs, attempts = with_costs(projected[0], projected[1], PriceBook(table_entries()))
    folder = tmp_path_factory.mktemp("athena")
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute('CREATE SCHEMA "batchops"')
    for table, rows in (("jobs", jobs), ("job_attempts", attempts)):
        path = folder / f"{table}.json"
        path.write_text(json.dumps(rows))
        con.execute(f"CREATE TABLE \"batchops\".\"{table}\" AS SELECT * FROM read_json('{path}', format = 'array', "
                    "columns = " + _columns(rows) + ")")  # fmt: skip
    types = {c: "DOUBLE" if c in DOUBLE_COLUMNS else "VARCHAR" for c in COLUMNS}
    types.update(line_item_usage_start_date="TIMESTAMP", line_item_usage_end_date="TIMESTAMP")
    con.execute(f"CREATE TABLE cur AS SELECT * FROM read_csv('{SAMPLE}', header = true, columns = {types})")
    return con


def _columns(rows: list[dict[str, Any]]) -> str:
    """read_json's columns: text, except the numbers (account ids stay text)."""
    numeric = {"attempt", "run_seconds", "exit_code", "cost_usd", "wasted_cost_usd", "vcpus", "memory_mib", "attempts"}
    names = dict.fromkeys(k for r in rows for k in r if k != "depends_on")
    return "{" + ", ".join(f"'{n}': '{'DOUBLE' if n in numeric else 'VARCHAR'}'" for n in names) + "}"


def reconciliation(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    """The query's rows, its placeholders filled in for the sample."""
    sql = QUERY.read_text()
    for name, value in {"database": "batchops", "cur_table": "cur", "start": START, "end": END}.items():
        sql = sql.replace("${" + name + "}", value)
    [statement] = sqlglot.transpile(sql, read="athena", write="duckdb")
    cursor = con.execute(statement)
    names = [c[0] for c in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def test_the_sample_is_what_the_generator_makes_of_todays_simulator(
    projected: tuple[list[dict[str, Any]], ...], tmp_path: Path
) -> None:
    made = tmp_path / "made.csv"
    write(cur_rows(*projected), made)
    assert made.read_text() == SAMPLE.read_text(), "the simulator changed: regenerate with python tests/cur_sample.py"


def test_every_attempt_on_ecs_is_found_in_the_cur_and_the_estimates_bracket_its_split_cost(
    athena: duckdb.DuckDBPyConnection,
) -> None:
    rows = reconciliation(athena)
    assert rows and all(r["attempts_in_cur"] == r["attempts"] for r in rows)
    estimated = [r for r in rows if r["estimated_cost_usd"] is not None]
    assert len(estimated) >= len(rows) // 3
    for row in estimated:  # ours is rounded to 1e-8 dollars: compare within 1e-7
        estimate, split = row["estimated_cost_usd"], row["cur_split_cost_usd"]
        assert estimate >= split - 1e-7, row
        if row["platform"] == "FARGATE":
            assert estimate <= split * 60 + 1e-7, row  # the minute minimum only raises a short task's estimate
    unknown = [r for r in rows if r["estimated_cost_usd"] is None]
    assert all(r["pricing"] == "unknown" for r in unknown)  # only a missing pricing model leaves a job unpriced


def test_the_query_reads_only_the_cur_columns_the_sample_has() -> None:
    parsed = sqlglot.parse_one(QUERY.read_text().replace("${", "__").replace("}", "__"), read="athena")
    used = {
        c.name for c in parsed.find_all(sqlglot.exp.Column) if c.name.startswith(("line_item", "split_line", "billing"))
    }
    header = next(csv.reader(io.StringIO(SAMPLE.read_text())))
    assert used and used <= set(header)
