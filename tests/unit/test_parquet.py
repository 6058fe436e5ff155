"""The stdlib Parquet writer: DuckDB reads what it writes (values, types, nulls), and it reads it back."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from batchops.parquet import ParquetError, read_parquet, schema_of, write_parquet

SCHEMA = schema_of("s string, n bigint, d double, b boolean")
DUCKDB_TYPES = {"string": "VARCHAR", "bigint": "BIGINT", "double": "DOUBLE", "boolean": "BOOLEAN"}
EDGE_ROWS: list[dict[str, Any]] = [
    {"s": "plain", "n": 1, "d": 1.5, "b": True},
    {"s": "", "n": 0, "d": 0.0, "b": False},  # empty string is not null
    {"s": None, "n": None, "d": None, "b": None},
    {},  # missing keys are nulls
    {"s": "ünïcødé ✓ 日本語 🚀", "n": -(2**63), "d": -1e308, "b": False},
    {"s": "x" * 100_000, "n": 2**63 - 1, "d": 5e-324, "b": True},
    {"s": "line\nbreak, 'quote' \"dq\" \x00 nul", "n": -1, "d": -0.0, "b": None},
]


def duckdb_rows(path: Path) -> tuple[list[tuple[Any, ...]], dict[str, str]]:
    con = duckdb.connect()
    rows = con.execute(f"SELECT * FROM read_parquet('{path}')").fetchall()
    types = {name: kind for name, kind, *_ in con.execute(f"DESCRIBE SELECT * FROM read_parquet('{path}')").fetchall()}
    return rows, types


def as_tuples(rows: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [tuple(row.get(c.name) for c in SCHEMA) for row in rows]


@pytest.mark.parametrize("codec", ["gzip", "uncompressed"])
@pytest.mark.parametrize("row_group_rows", [2, 100_000])
def test_duckdb_reads_every_edge_value_with_its_type(tmp_path: Path, codec: str, row_group_rows: int) -> None:
    path = tmp_path / "edge.parquet"
    path.write_bytes(write_parquet(SCHEMA, EDGE_ROWS, codec=codec, row_group_rows=row_group_rows))
    rows, types = duckdb_rows(path)
    assert types == {c.name: DUCKDB_TYPES[c.type] for c in SCHEMA}
    assert rows == as_tuples(EDGE_ROWS)
    assert math.copysign(1, rows[6][2]) == -1  # -0.0 kept
    assert read_parquet(path.read_bytes()).rows == [dict(zip("sndb", r, strict=True)) for r in as_tuples(EDGE_ROWS)]


def test_an_empty_file_has_the_schema_and_no_rows(tmp_path: Path) -> None:
    path = tmp_path / "empty.parquet"
    path.write_bytes(write_parquet(SCHEMA, []))
    rows, types = duckdb_rows(path)
    assert rows == []
    assert types == {c.name: DUCKDB_TYPES[c.type] for c in SCHEMA}
    back = read_parquet(path.read_bytes())
    assert back.rows == [] and back.columns == SCHEMA


def test_hive_partitioned_files_keep_account_ids_as_strings(tmp_path: Path) -> None:
    folder = tmp_path / "jobs" / "account_id=012345678901" / "dt=9999-12-31"
    folder.mkdir(parents=True)
    (folder / "part-0.parquet").write_bytes(write_parquet(SCHEMA, [{"s": "a", "n": 3}]))
    con = duckdb.connect()
    got = con.execute(
        f"SELECT s, n, account_id, dt FROM read_parquet('{tmp_path}/jobs/**/*.parquet', hive_partitioning = true, "
        "hive_types = {'account_id': 'VARCHAR', 'dt': 'DATE'})"
    ).fetchall()
    assert [(s, n, a, str(d)) for s, n, a, d in got] == [("a", 3, "012345678901", "9999-12-31")]


def test_key_value_metadata_is_in_the_footer(tmp_path: Path) -> None:
    path = tmp_path / "meta.parquet"
    path.write_bytes(write_parquet(SCHEMA, [{"n": 1}], metadata={"batchops.generation": "7"}))
    assert read_parquet(path.read_bytes()).metadata == {"batchops.generation": "7"}
    found = duckdb.connect().execute(f"SELECT key, value FROM parquet_kv_metadata('{path}')").fetchall()
    assert found == [(b"batchops.generation", b"7")]


def test_many_columns_and_rows_past_the_compact_protocol_short_forms(tmp_path: Path) -> None:
    # 40 columns (a list longer than 14 elements, field ids > 15 apart are not used but long lists are)
    schema = schema_of([(f"c{i}", ("string", "bigint", "double", "boolean")[i % 4]) for i in range(40)])
    values = {"string": "v", "bigint": 7, "double": 2.5, "boolean": True}
    rows = [{c.name: values[c.type] if (i + j) % 3 else None for j, c in enumerate(schema)} for i in range(300)]
    path = tmp_path / "wide.parquet"
    path.write_bytes(write_parquet(schema, rows, row_group_rows=128))
    got = duckdb.connect().execute(f"SELECT * FROM read_parquet('{path}')").fetchall()
    assert got == [tuple(r[c.name] for c in schema) for r in rows]


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"n": "1"}, "bigint"),
        ({"n": True}, "bigint"),
        ({"n": 2**63}, "64 bits"),
        ({"d": "1.0"}, "double"),
        ({"b": 1}, "boolean"),
        ({"s": 3}, "string"),
        ({"s": "\ud800"}, "UTF-8"),
        ({"other": 1}, "outside the schema"),
    ],
)
def test_values_that_do_not_fit_their_column_are_refused(row: dict[str, Any], message: str) -> None:
    with pytest.raises(ParquetError, match=message):
        write_parquet(SCHEMA, [row])


def test_integers_are_accepted_in_double_columns() -> None:
    assert read_parquet(write_parquet(SCHEMA, [{"d": 12}])).rows[0]["d"] == 12.0


def test_a_truncated_file_is_refused() -> None:
    data = write_parquet(SCHEMA, EDGE_ROWS)
    with pytest.raises(ParquetError):
        read_parquet(data[:-3])
    with pytest.raises(ParquetError):
        read_parquet(b"PAR1" + data[100:])


cell = {
    "string": st.none() | st.text(),
    "bigint": st.none() | st.integers(min_value=-(2**63), max_value=2**63 - 1),
    "double": st.none() | st.floats(allow_nan=False),
    "boolean": st.none() | st.booleans(),
}
rows_strategy = st.lists(st.fixed_dictionaries({c.name: cell[c.type] for c in SCHEMA}), max_size=40)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=rows_strategy, codec=st.sampled_from(["gzip", "uncompressed"]), group=st.integers(1, 50))
def test_any_rows_round_trip_through_this_reader_and_duckdb(
    tmp_path: Path, rows: list[dict[str, Any]], codec: str, group: int
) -> None:
    data = write_parquet(SCHEMA, rows, codec=codec, row_group_rows=group)
    assert read_parquet(data).rows == rows
    path = tmp_path / "prop.parquet"
    path.write_bytes(data)
    assert duckdb_rows(path)[0] == as_tuples(rows)
