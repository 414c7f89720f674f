"""Column-wise conversion: each column's converter gives the same exact JSON as the value-by-value one.

Through `Database.run` against a real PostgreSQL, so the values are what asyncpg really decodes.
"""

import json
from collections.abc import AsyncIterator

import pytest

from bulkhead_postgres.database import BATCH_ROWS, Database, Limits
from bulkhead_postgres.guard import check_read_only
from bulkhead_postgres.values import JsonValue, to_json_value
from tests.pg import PgDatabase

pytestmark = [pytest.mark.anyio, pytest.mark.postgres]

CELL = 20


@pytest.fixture
async def database(pg_database: PgDatabase) -> AsyncIterator[Database]:
    connection = await pg_database.connect()
    try:
        # A type in another schema that shares a built-in's name must not get the built-in's converter.
        await connection.execute("CREATE SCHEMA other; CREATE TYPE other.int4 AS (a int, b text)")
    finally:
        await connection.close()
    limits = Limits(5000, 1000, 10_000, max_rows=1000, max_bytes=1_000_000, max_cell_chars=CELL)
    database = Database(pg_database.dsn, limits, pool_size=1)
    try:
        yield database
    finally:
        await database.close()


async def run(database: Database, sql: str) -> dict[str, JsonValue]:
    result = await database.run(check_read_only(sql))
    return dict(zip([c.name for c in result.columns], result.rows[0], strict=True))


async def test_built_in_columns_convert_exactly(database: Database) -> None:
    row = await run(
        database,
        f"""SELECT
            repeat('t', {CELL + 5}) AS long_text,
            'short'::varchar AS short,
            NULL::text AS no_text,
            9007199254740993::int8 AS huge,
            -9007199254740993::int8 AS huge_negative,
            7::int8 AS small,
            NULL::int8 AS no_int,
            'NaN'::float8 AS nan,
            '-Infinity'::float4 AS minus_inf,
            2.5::float8 AS real,
            NULL::float8 AS no_float,
            1::int2 AS tiny,
            false AS flag,
            ARRAY[ARRAY['a', NULL], ARRAY[repeat('u', {CELL + 1}), 'b']] AS grid,
            ARRAY['NaN', '1.5']::float8[] AS floats,
            ARRAY[9007199254740993]::int8[] AS huge_ints,
            NULL::text[] AS no_array,
            ROW(1, 'x')::other.int4 AS lookalike""",
    )
    assert row["long_text"] == "t" * CELL + "...[cut: 5 more characters]"
    assert row["short"] == "short"
    assert row["no_text"] is None
    assert row["huge"] == "9007199254740993"
    assert row["huge_negative"] == "-9007199254740993"
    assert row["small"] == 7
    assert row["no_int"] is None
    assert row["nan"] == "NaN"
    assert row["minus_inf"] == "-Infinity"
    assert row["real"] == 2.5
    assert row["no_float"] is None
    assert row["tiny"] == 1
    assert row["flag"] is False
    assert row["grid"] == [["a", None], ["u" * CELL + "...[cut: 1 more characters]", "b"]]
    assert row["floats"] == ["NaN", 1.5]
    assert row["huge_ints"] == ["9007199254740993"]
    assert row["no_array"] is None
    assert row["lookalike"] == {"a": 1, "b": "x"}


async def test_column_wise_and_value_wise_conversion_agree_over_several_batches(database: Database) -> None:
    sql = (
        "SELECT g AS n, g::int8 * 4294967296 * 4096 AS big, 'x' || repeat('y', g % 30) AS label, "
        "g / 3.0::float8 AS ratio, ARRAY[g::text, NULL] AS pair, g % 2 = 0 AS even, "
        # Mostly finite floats and short-text arrays (kept as decoded), now and then one to change.
        "CASE g % 50 WHEN 0 THEN 'Infinity'::float8 WHEN 1 THEN 'NaN' WHEN 2 THEN NULL ELSE -g END AS odd, "
        "ARRAY['a' || g, repeat('z', g % 25)] AS tags, "
        "CASE WHEN g % 40 = 0 THEN ARRAY[ARRAY['p', 'q']] END AS grid, "
        "(g * 1.5)::numeric AS exact, '{\"k\": 1}'::jsonb AS doc "
        f"FROM generate_series(1, {BATCH_ROWS * 2 + 7}) g"
    )
    result = await database.run(check_read_only(sql))
    connection = await database.pool()
    async with connection.acquire() as raw:
        records = await raw.fetch(sql)
    expected = [[to_json_value(value, CELL) for value in record.values()] for record in records]
    assert result.rows == expected
    assert not result.truncated


@pytest.mark.parametrize("budget", [1, 40, 3_000, 5_000, 8_000, 100_000])
async def test_the_byte_budget_cuts_at_the_same_row_whether_it_falls_in_the_first_batch_or_a_later_one(
    pg_database: PgDatabase, budget: int
) -> None:
    limits = Limits(5000, 1000, 10_000, max_rows=1000, max_bytes=budget, max_cell_chars=CELL)
    database = Database(pg_database.dsn, limits, pool_size=1)
    try:
        result = await database.run(check_read_only("SELECT g, 'row ' || g FROM generate_series(1, 600) g"))
    finally:
        await database.close()
    # Row by row: a row costs its compact JSON and one byte; the first row over the budget is not kept.
    left, kept = budget, 0
    for n in range(1, 601):
        left -= len(f'[{n},"row {n}"]') + 1
        if left < 0:
            break
        kept += 1
    assert len(result.rows) == kept
    # The rows' JSON made while measuring them is exactly the kept rows, whole batches or cut.
    assert result.rows_json == json.dumps(result.rows, ensure_ascii=False, separators=(",", ":"))
    assert result.truncated is (kept < 600)
    if kept < 600:
        assert result.truncated_reason == f"more than {budget} bytes of row data"


async def test_a_lone_surrogate_in_a_json_value_becomes_the_replacement_character(database: Database) -> None:
    # PostgreSQL's json keeps its text as written; a lone surrogate has no UTF-8 form for the wire.
    sql = (
        """SELECT g, CASE WHEN g = 250 THEN '{"k\\udc00": ["a\\ud800b", 1]}'::json END AS doc, """
        """'"\\ud83d\\ude00"'::json AS pair FROM generate_series(1, 300) g"""
    )
    result = await database.run(check_read_only(sql))
    assert len(result.rows) == 300
    assert result.rows[249] == [250, {"k\ufffd": ["a\ufffdb", 1]}, "\U0001f600"]
    assert result.rows[0] == [1, None, "\U0001f600"]
    assert json.loads(result.rows_json) == result.rows
