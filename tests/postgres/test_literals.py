"""Integer comparands lifted into parameters: only where meaning cannot change, proven, and invisible.

A lifted statement must return exactly what its literal text returns (rows, column names and
types, errors and their positions), and a refused statement stays refused.
"""

import json

import pytest
from pglast.parser import parse_sql_json

from bulkhead_postgres import guard
from bulkhead_postgres.database import Column, Database, Limits, QueryFailedError
from bulkhead_postgres.guard import QueryRejectedError, check_read_only
from bulkhead_postgres.literals import MAX_LIFTED, integer_shape, lift_integers
from tests.pg import PgDatabase

LIMITS = Limits(5000, 1000, 10_000, max_rows=100, max_bytes=100_000, max_cell_chars=100)
CAST = "::pg_catalog.int4"


def _select(sql: str) -> dict[str, object]:
    return json.loads(parse_sql_json(sql))["stmts"][0]["stmt"]["SelectStmt"]


# --- what is lifted, and what is not ------------------------------------------------------------


@pytest.mark.parametrize(
    ("sql", "lifted", "values"),
    [
        ("SELECT * FROM t WHERE id = 42", f"SELECT * FROM t WHERE id = $1{CAST}", (42,)),
        ("SELECT * FROM t WHERE 42 < id", f"SELECT * FROM t WHERE $1{CAST} < id", (42,)),
        ("SELECT * FROM t WHERE id=-7", f"SELECT * FROM t WHERE id=$1{CAST}", (-7,)),
        ("SELECT * FROM t WHERE id = - 7", f"SELECT * FROM t WHERE id = $1{CAST}", (-7,)),
        (
            "SELECT a FROM t WHERE a IN (1, 16, 1000) AND b BETWEEN 0 AND 017",
            f"SELECT a FROM t WHERE a IN ($1{CAST}, $2{CAST}, $3{CAST}) AND b BETWEEN $4{CAST} AND $5{CAST}",
            (1, 16, 1000, 0, 17),
        ),
        (
            "SELECT * FROM t WHERE NOT (a <> 3) OR t.b >= 4",
            f"SELECT * FROM t WHERE NOT (a <> $1{CAST}) OR t.b >= $2{CAST}",
            (3, 4),
        ),
        (
            "SELECT * FROM t WHERE name = 'héllo ✓ ü' AND id = 5",
            f"SELECT * FROM t WHERE name = 'héllo ✓ ü' AND id = $1{CAST}",
            (5,),
        ),
        (
            "SELECT 1, x FROM t WHERE x > 2 GROUP BY 1, x ORDER BY 1 LIMIT 3",
            f"SELECT 1, x FROM t WHERE x > $1{CAST} GROUP BY 1, x ORDER BY 1 LIMIT 3",
            (2,),
        ),
    ],
)
def test_integer_comparands_in_the_where_clause_become_typed_parameters(
    sql: str, lifted: str, values: tuple[int, ...]
) -> None:
    result = lift_integers(sql, _select(sql))
    assert result is not None
    assert (result.sql, result.values) == (lifted, values)


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT 1",  # no WHERE clause
        "SELECT * FROM t WHERE id = 1 + 1",  # an expression, not a bare literal
        "SELECT * FROM t WHERE id + 1 = 2",  # no plain column on either side
        "SELECT * FROM t WHERE 1 = 1",
        "SELECT * FROM t WHERE id = 99999999999",  # an int8 literal
        "SELECT * FROM t WHERE price = 1.5",
        "SELECT * FROM t WHERE name = '1'",
        "SELECT * FROM t WHERE id = (SELECT 1)",
        "SELECT * FROM t WHERE id IN (SELECT id FROM u WHERE u.x = 1)",  # subquery: left alone
        "SELECT * FROM t WHERE id IN (1, 2.5)",  # one item is not an int4 literal
        "SELECT * FROM t WHERE id = ANY('{1,2}')",
        "SELECT * FROM t WHERE id IS DISTINCT FROM 1",
        "SELECT * FROM t WHERE id LIKE 1",
        "SELECT a FROM t WHERE a = 1 UNION SELECT 2",  # a set operation
        "SELECT * FROM t WHERE id = $1",
        "SELECT * FROM t WHERE id = 1 AND x = $1",  # the caller's $1 would be bound to our value
        "SELECT * FROM t WHERE id = 1 AND x = $2",
        "SELECT * FROM t WHERE id = -\v1",  # white space to pglast, a syntax error to PostgreSQL 15
        "SELECT * FROM t WHERE id = 0x10",  # PostgreSQL 16 spellings: an older server refuses them
        "SELECT * FROM t WHERE id IN (1, 1_000)",
        "SELECT * FROM t WHERE id BETWEEN SYMMETRIC 5 AND 1",
    ],
)
def test_nothing_is_lifted_where_meaning_could_change(sql: str) -> None:
    assert lift_integers(sql, _select(sql)) is None


def test_a_statement_with_too_many_integers_runs_as_written() -> None:
    many = ", ".join(str(n) for n in range(MAX_LIFTED + 1))
    sql = f"SELECT * FROM t WHERE id IN ({many})"
    assert lift_integers(sql, _select(sql)) is None
    fewer = ", ".join(str(n) for n in range(MAX_LIFTED))
    assert lift_integers(
        f"SELECT * FROM t WHERE id IN ({fewer})", _select(f"SELECT * FROM t WHERE id IN ({fewer})")
    )


def test_error_positions_in_the_lifted_text_map_back_to_the_original() -> None:
    sql = "SELECT * FROM t WHERE a = 10 AND b IN (200, 3) AND c = 'x'"
    lifted = lift_integers(sql, _select(sql))
    assert lifted is not None
    for original_index, character in enumerate(sql):
        if not character.isdigit():
            where = lifted.sql.index(sql[original_index:]) if sql[original_index:] in lifted.sql else None
            if where is not None and lifted.sql[where:] == sql[original_index:]:
                assert lifted.original_position(where + 1) == original_index + 1
    # Inside a parameter: the position of the literal it replaced.
    second = lifted.sql.index("$2")
    assert lifted.original_position(second + 3) == sql.index("200") + 1


def test_the_guard_lifts_only_what_it_accepted() -> None:
    accepted = check_read_only("SELECT * FROM t WHERE id = 7")
    assert accepted.lifted is not None
    assert check_read_only("SHOW search_path").lifted is None
    assert check_read_only("EXPLAIN SELECT * FROM t WHERE id = 7").lifted is None
    with pytest.raises(QueryRejectedError):
        check_read_only("SELECT pg_sleep(1) FROM t WHERE id = 7")
    with pytest.raises(QueryRejectedError):
        check_read_only("DELETE FROM t WHERE id = 7")


# --- against PostgreSQL: the same answers, the same errors --------------------------------------

SAME_ANSWERS = [
    "SELECT n, n::int8 AS big, n::int2 AS small, n::numeric AS exact "
    "FROM generate_series(-3, 30) AS n WHERE n = 7",
    "SELECT * FROM (SELECT n::int8 AS big FROM generate_series(1, 20) AS n) AS s WHERE big >= 18",
    "SELECT * FROM (SELECT n::int2 AS small FROM generate_series(1, 20) AS n) AS s WHERE small < 3",
    "SELECT * FROM (SELECT n::numeric AS exact FROM generate_series(1, 20) AS n) AS s "
    "WHERE exact BETWEEN 4 AND 6",
    "SELECT * FROM (SELECT n::float8 AS f FROM generate_series(1, 20) AS n) AS s WHERE f IN (2, 3, 5)",
    "SELECT n FROM generate_series(-10, 10) AS n WHERE NOT (n <> -4) OR n > 8",
    "SELECT n % 3 AS k, count(*) FROM generate_series(1, 30) AS n WHERE n > 4 GROUP BY 1 ORDER BY 1",
]


@pytest.mark.anyio
@pytest.mark.postgres
async def test_a_lifted_statement_answers_exactly_as_its_literal_text(pg_database: PgDatabase) -> None:
    database = Database(pg_database.dsn, LIMITS, pool_size=1)
    try:
        for sql in SAME_ANSWERS:
            statement = check_read_only(sql)
            assert statement.lifted is not None, sql
            first = await database.run(statement)  # a new shape runs as written
            second = await database.run(statement)  # a repeated shape runs prepared
            assert (second.columns, second.rows, second.rows_json) == (
                first.columns,
                first.rows,
                first.rows_json,
            )
        prepared = await database.run(check_read_only("SELECT statement FROM pg_prepared_statements"))
    finally:
        await database.close()
    texts = [str(row[0]) for row in prepared.rows]
    assert any(CAST in text and "generate_series(-10, 10)" in text for text in texts), texts


@pytest.mark.anyio
@pytest.mark.postgres
async def test_a_lifted_statement_fails_with_the_literal_texts_error_and_position(
    pg_database: PgDatabase,
) -> None:
    database = Database(pg_database.dsn, LIMITS, pool_size=1)
    sql = "SELECT * FROM (SELECT 'a'::text AS name, 1 AS id) AS s WHERE id = 100000 AND name = 5"
    statement = check_read_only(sql)
    assert statement.lifted is not None
    errors: list[str] = []
    try:
        for _ in range(3):
            with pytest.raises(QueryFailedError) as failed:
                await database.run(statement)
            errors.append(str(failed.value))
    finally:
        await database.close()
    assert len(set(errors)) == 1, errors
    assert "42883" in errors[0]
    assert f"At character {sql.index('name = 5') + 6}" in errors[0]


async def _outcome(database: Database, sql: str) -> tuple[str, object]:
    """What running `sql` gives: its columns and rows, or the type and text of its error."""
    try:
        result = await database.run(check_read_only(sql))
    except Exception as error:  # any failure is an outcome to compare
        return type(error).__name__, str(error)
    return "rows", (result.columns, result.rows)


@pytest.mark.anyio
@pytest.mark.postgres
@pytest.mark.parametrize(
    "sql",
    [
        # Without params, the caller's $1 has no value: lifted, it would get the lifted one.
        "SELECT n FROM generate_series(1, 3) AS n WHERE n = 2 AND n = $1",
        "SELECT n FROM generate_series(1, 3) AS n WHERE n > 0 AND n < $2",
        # A vertical tab is white space to pglast's scanner, not to PostgreSQL 15's.
        "SELECT n FROM generate_series(-2, 2) AS n WHERE n = -\v1",
    ],
)
async def test_a_repeated_shape_gives_what_its_first_run_gave(pg_database: PgDatabase, sql: str) -> None:
    database = Database(pg_database.dsn, LIMITS, pool_size=1)
    try:
        outcomes = [await _outcome(database, sql) for _ in range(3)]
    finally:
        await database.close()
    if "$" in sql:
        assert outcomes[0][0] != "rows", outcomes[0]
    assert outcomes[1:] == outcomes[:1] * 2


@pytest.mark.anyio
@pytest.mark.postgres
async def test_a_prepared_shape_follows_its_table_when_the_table_changes(pg_database: PgDatabase) -> None:
    admin = await pg_database.connect()
    database = Database(pg_database.dsn, LIMITS, pool_size=1)
    lifted = check_read_only("SELECT * FROM reshaped WHERE id = 1")
    with_params = check_read_only("SELECT * FROM reshaped WHERE id = $1")
    assert lifted.lifted is not None
    try:
        await admin.execute(
            "CREATE TABLE reshaped (id integer, name text); INSERT INTO reshaped VALUES (1, 'a')"
        )
        for _ in range(2):  # the second run of each is a prepared statement in asyncpg's cache
            await database.run(lifted)
            await database.run(with_params, [1])
        await admin.execute("ALTER TABLE reshaped ADD COLUMN extra integer DEFAULT 7")
        results = [
            await database.run(lifted),
            await database.run(with_params, [1]),
            await database.run(lifted),
        ]
    finally:
        await database.close()
        await admin.close()
    for result in results:
        assert [column.name for column in result.columns] == ["id", "name", "extra"]
        assert result.rows == [[1, "a", 7]]


# --- integer shapes: a repeated shape skips the parse, and proves nothing it should not ---------


def test_the_shape_masks_plain_decimal_integers_only() -> None:
    shape = integer_shape("SELECT a, 10 FROM t WHERE id = -42 AND b = 0x1F AND c = 1.5 LIMIT 5")
    assert shape is not None
    assert shape.key == "SELECT a, \x00 FROM t WHERE id = -\x00 AND b = 0x1F AND c = 1.5 LIMIT \x00"
    assert integer_shape("SELECT * FROM t WHERE name = 'x'") is None
    assert integer_shape("SELECT 1\x00") is None
    assert integer_shape("SELECT '\ud800', 1") is None


@pytest.fixture
def parses(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The texts the guard really parses from now on, with its caches emptied first."""
    seen: list[str] = []
    real = guard._check  # pyright: ignore[reportPrivateUsage] -- counted, not replaced
    guard._cached_check.cache_clear()  # pyright: ignore[reportPrivateUsage] -- a clean start
    guard._SHAPES.clear()  # pyright: ignore[reportPrivateUsage]

    def counted(sql: str, **options: bool) -> guard.CheckedStatement:
        seen.append(sql)
        return real(sql, **options)

    monkeypatch.setattr(guard, "_check", counted)
    return seen


SHAPED = [
    ("SELECT * FROM t WHERE id = 41", "SELECT * FROM t WHERE id = 1234567"),
    (
        "SELECT * FROM t WHERE id = - 3 AND n IN (1, 2) LIMIT 10",
        "SELECT * FROM t WHERE id = - 99 AND n IN (7, 8) LIMIT 1",
    ),
    (
        "SELECT x FROM t WHERE a BETWEEN 1 AND 2 ORDER BY 1",
        "SELECT x FROM t WHERE a BETWEEN 30 AND 40 ORDER BY 2",
    ),
    ("SELECT 1, 'é' FROM t WHERE 5 < id", "SELECT 22, 'é' FROM t WHERE 777 < id"),
    ("SELECT a[1] FROM t LIMIT 3", "SELECT a[2] FROM t LIMIT 4"),
]


@pytest.mark.parametrize(("template", "variant"), SHAPED)
def test_a_text_of_a_known_shape_is_accepted_without_parsing_exactly_as_a_parse_would(
    parses: list[str], template: str, variant: str
) -> None:
    check_read_only(template)
    by_shape = check_read_only(variant)
    assert parses == [template]
    by_parse = guard._check(variant, allow_explain_analyze=False, explainable=False, lift=True)  # pyright: ignore[reportPrivateUsage]
    assert by_shape == by_parse


@pytest.mark.parametrize(
    ("template", "variant"),
    [
        (
            "EXPLAIN (ANALYZE 0) SELECT * FROM t WHERE id = 1",
            "EXPLAIN (ANALYZE 1) SELECT * FROM t WHERE id = 1",
        ),
        ("SELECT * FROM t WHERE id = 16", "SELECT * FROM t WHERE id = 0x10"),
        ("SELECT * FROM t WHERE id = 1;", "SELECT * FROM t WHERE id = 2;"),
        (" SELECT * FROM t WHERE id = 1", " SELECT * FROM t WHERE id = 2"),
        # Digits inside identifiers, strings, escapes and comments are not integer literals.
        ('SELECT * FROM t WHERE "t1" = 1', 'SELECT * FROM t WHERE "t2" = 1'),
        ("SELECT 'a1' FROM t WHERE id = 1", "SELECT 'a2' FROM t WHERE id = 1"),
        ("SELECT $$1$$, $q$1$q$ FROM t WHERE id = 1", "SELECT $$1$$, $q$2$q$ FROM t WHERE id = 1"),
        ("SELECT E'\\x31' FROM t WHERE id = 1", "SELECT E'\\x32' FROM t WHERE id = 1"),
        ("SELECT U&'\\0031' FROM t WHERE id = 1", "SELECT U&'\\0032' FROM t WHERE id = 1"),
        ("SELECT /* 1 */ * FROM t WHERE id = 1", "SELECT /* 2 */ * FROM t WHERE id = 1"),
        ("SELECT * FROM t1 WHERE id = 1", "SELECT * FROM t2 WHERE id = 1"),
    ],
)
def test_explain_other_integer_spellings_and_trimmed_texts_are_always_parsed(
    parses: list[str], template: str, variant: str
) -> None:
    check_read_only(template)
    try:
        check_read_only(variant)
    except QueryRejectedError:
        assert variant.startswith("EXPLAIN (ANALYZE 1)")
    assert parses == [template, variant]


def test_a_refused_text_of_an_accepted_shape_is_still_refused(parses: list[str]) -> None:
    check_read_only("SELECT * FROM t WHERE id = 1")
    for refused in ("SELECT * FROM t WHERE id = 1; DELETE FROM t", "SELECT pg_sleep(1) FROM t WHERE id = 1"):
        with pytest.raises(QueryRejectedError):
            check_read_only(refused)
    assert len(parses) == 3


@pytest.mark.anyio
@pytest.mark.postgres
@pytest.mark.parametrize(
    "sql", ["SELECT * FROM retyped WHERE id = 1", "SELECT * FROM retyped WHERE id = 1 + 0"]
)
async def test_a_composite_type_that_gains_an_attribute_is_read_with_its_new_layout(
    pg_database: PgDatabase, sql: str
) -> None:
    # asyncpg caches a composite type's layout per pool; its public executor reloads that cache
    # when a row no longer matches it. `_collect` goes around that executor, lifted or not.
    admin = await pg_database.connect()
    database = Database(pg_database.dsn, LIMITS, pool_size=1)
    try:
        await admin.execute(
            "DROP TABLE IF EXISTS retyped; DROP TYPE IF EXISTS retyped_pair; "
            "CREATE TYPE retyped_pair AS (a integer, b text); "
            "CREATE TABLE retyped (id integer, pair retyped_pair); "
            "INSERT INTO retyped VALUES (1, ROW(1, 'x'))"
        )
        for _ in range(2):
            await database.run(check_read_only(sql))
        await admin.execute("ALTER TYPE retyped_pair ADD ATTRIBUTE c integer")
        outcomes = [await _outcome(database, sql) for _ in range(3)]
    finally:
        await database.close()
        await admin.close()
    columns = [Column("id", "int4"), Column("pair", "retyped_pair")]
    assert outcomes == [("rows", (columns, [[1, {"a": 1, "b": "x", "c": None}]]))] * 3


@pytest.mark.anyio
@pytest.mark.postgres
@pytest.mark.parametrize("lifted", [True, False])
async def test_a_connection_ended_while_idle_is_reported_as_lost_and_replaced(
    pg_database: PgDatabase, lifted: bool
) -> None:
    # asyncpg hands a lost connection back to its pool by itself: ending the call must not call
    # the released proxy (InterfaceError), and a BEGIN that races asyncpg reading the server's
    # last message ("another operation is in progress") means lost too.
    admin = await pg_database.connect()
    database = Database(pg_database.dsn, LIMITS, pool_size=1)
    sql = "SELECT n, pg_backend_pid() FROM generate_series(1, 3) AS n WHERE n = 1" + (
        "" if lifted else " + 0"
    )
    try:
        first = [await database.run(check_read_only(sql)) for _ in range(2)]
        await admin.execute("SELECT pg_terminate_backend($1)", first[0].rows[0][1])
        outcomes = [await _outcome(database, sql) for _ in range(3)]
    finally:
        await database.close()
        await admin.close()
    lost = (
        "UnavailableError",
        "The database connection was lost (the server may be restarting); try the call again.",
    )
    assert outcomes[0] == lost or outcomes[0][0] == "rows", outcomes[0]  # or the pool noticed first
    assert [outcome[0] for outcome in outcomes[1:]] == ["rows", "rows"], outcomes


OPERATOR_SETUP = """
DROP TABLE IF EXISTS typed; DROP DOMAIN IF EXISTS positive;
DROP OPERATOR IF EXISTS public.= (text, integer);
DROP FUNCTION IF EXISTS public.text_is_tenfold(text, integer);
CREATE DOMAIN positive AS integer CHECK (VALUE > 0);
CREATE TABLE typed (id integer, small smallint, big bigint, exact numeric, word text, ref oid, pos positive);
INSERT INTO typed SELECT n, n, n, n, (n * 10)::text, n, n FROM generate_series(1, 5) AS n;
INSERT INTO typed (id, ref) VALUES (-1, 4294967295);
CREATE FUNCTION public.text_is_tenfold(text, integer) RETURNS boolean
    LANGUAGE sql IMMUTABLE AS 'SELECT $1 = ($2 * 10)::text';
CREATE OPERATOR public.= (leftarg = text, rightarg = integer, function = public.text_is_tenfold);
"""


@pytest.mark.anyio
@pytest.mark.postgres
async def test_a_lifted_comparand_picks_the_literals_operator_whatever_the_columns_type(
    pg_database: PgDatabase,
) -> None:
    # The literal is an int4 constant, and so is `$n::pg_catalog.int4`: the same operator, also a
    # user's own one in public, the same implicit casts (int2 = int4 with 40000, int8, numeric,
    # oid from -1, a domain), the same errors.
    admin = await pg_database.connect()
    try:
        await admin.execute(OPERATOR_SETUP)
    finally:
        await admin.close()
    texts = [
        "SELECT id FROM typed WHERE word = 3",  # the user's text = integer operator
        "SELECT id FROM typed WHERE small = 40000 OR small = 2",
        "SELECT id FROM typed WHERE big = 2147483647 OR big BETWEEN -3 AND 1",
        "SELECT id FROM typed WHERE exact IN (2, 4)",
        "SELECT id FROM typed WHERE ref = -1",
        "SELECT id FROM typed WHERE pos NOT IN (1, 2, 3)",
        "SELECT id FROM typed WHERE id = 1 AND ref = 2 AND pos = 'x'",
    ]
    database = Database(pg_database.dsn, LIMITS, pool_size=1)
    try:
        for sql in texts:
            assert check_read_only(sql).lifted is not None, sql
            outcomes = [await _outcome(database, sql) for _ in range(3)]
            assert outcomes[1:] == outcomes[:1] * 2, sql
            if sql.startswith("SELECT id FROM typed WHERE word"):
                assert outcomes[0] == ("rows", ([Column("id", "int4")], [[3]]))
    finally:
        await database.close()


@pytest.mark.anyio
@pytest.mark.postgres
async def test_a_catalog_query_on_a_connection_ended_while_idle_is_reported_as_lost(
    pg_database: PgDatabase,
) -> None:
    admin = await pg_database.connect()
    database = Database(pg_database.dsn, LIMITS, pool_size=1)
    outcomes: list[str] = []
    try:
        pid = (await database.catalog("SELECT pg_backend_pid()"))[0][0]
        await admin.execute("SELECT pg_terminate_backend($1)", pid)
        for _ in range(3):
            try:
                await database.catalog("SELECT 1")
                outcomes.append("rows")
            except Exception as error:  # any failure is an outcome to compare
                outcomes.append(f"{type(error).__name__}: {error}")
    finally:
        await database.close()
        await admin.close()
    lost = (
        "UnavailableError: The database connection was lost (the server may be restarting); "
        "try the call again."
    )
    assert outcomes[0] in (lost, "rows")  # or the pool noticed first
    assert outcomes[1:] == ["rows", "rows"]


@pytest.mark.anyio
@pytest.mark.postgres
@pytest.mark.parametrize(("max_rows", "max_bytes"), [(3, 100_000), (500, 600)])
async def test_a_lifted_statement_is_cut_where_its_literal_text_is(
    pg_database: PgDatabase, max_rows: int, max_bytes: int
) -> None:
    limits = Limits(5000, 1000, 10_000, max_rows=max_rows, max_bytes=max_bytes, max_cell_chars=100)
    database = Database(pg_database.dsn, limits, pool_size=1)
    sql = "SELECT n, repeat('x', 40) AS pad FROM generate_series(1, 1000) AS n WHERE n > 2 AND n <= 900"
    statement = check_read_only(sql)
    assert statement.lifted is not None
    try:
        results = [await database.run(statement) for _ in range(3)]  # literal, then prepared
    finally:
        await database.close()
    seen = {(repr(result.rows), result.rows_json, result.truncated_reason) for result in results}
    assert len(seen) == 1, seen
    assert results[0].truncated
