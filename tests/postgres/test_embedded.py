"""The embedded demo database, demo.sql, and the read-only role recipe setup-role.sql.

One embedded database serves the module; `pg_cluster` lends it the session's program directory
(and skips these tests, or fails them under CI=true, when there is none).
"""

import logging
import secrets
import shutil
import subprocess
from collections.abc import AsyncIterator
from importlib.resources import files

import anyio.to_thread
import asyncpg
import pytest

from bulkhead_postgres.embedded import (
    DATABASE,
    ROLE,
    SCHEMAS,
    EmbeddedDatabase,
    render_psql_script,
    start_embedded,
    start_embedded_async,
)
from tests.pg import PgCluster, PgDatabase, fresh_database

pytestmark = pytest.mark.anyio

SETUP_ROLE = files("bulkhead_postgres").joinpath("sql", "setup-role.sql")

ROW_COUNTS = {
    "shop.customers": 500,
    "shop.products": 120,
    "shop.orders": 2000,
    "shop.order_items": 6000,
    "shop.promotions": 12,
    "shop.order_totals": 2000,
    "support.tickets": 600,
    "support.ticket_messages": 1800,
}

WRITES = [
    "INSERT INTO shop.customers (public_id, email, full_name, country_code, signed_up_at) "
    "VALUES (gen_random_uuid(), 'x@example.com', 'X', 'DE', now())",
    "UPDATE shop.products SET unit_price = 0.01",
    "DELETE FROM support.ticket_messages",
    "TRUNCATE shop.order_items",
    "CREATE TABLE shop.intruder (n integer)",
    "CREATE TABLE public.intruder (n integer)",
    "CREATE TEMPORARY TABLE intruder (n integer)",
]


@pytest.fixture(scope="module")
async def embedded(pg_cluster: PgCluster) -> AsyncIterator[EmbeddedDatabase]:
    database = await start_embedded_async(bindir=str(pg_cluster.bindir))
    async with database:
        yield database


async def _fetch(dsn: str, query: str) -> list[asyncpg.Record]:
    connection = await asyncpg.connect(dsn, server_settings={"TimeZone": "UTC"})
    try:
        return await connection.fetch(query)
    finally:
        await connection.close()


async def _relations(embedded: EmbeddedDatabase) -> list[str]:
    rows = await _fetch(
        embedded.admin_dsn,
        "SELECT format('%I.%I', table_schema, table_name) AS name FROM information_schema.tables "
        "WHERE table_schema IN ('shop', 'support') ORDER BY 1",
    )
    return [row["name"] for row in rows]


# --------------------------------------------------------------------------------------------
# The demo data
# --------------------------------------------------------------------------------------------


@pytest.mark.postgres
async def test_the_demo_schemas_hold_thousands_of_rows_in_related_tables(embedded: EmbeddedDatabase) -> None:
    assert embedded.database == DATABASE
    assert embedded.schemas == SCHEMAS
    counts = {
        name: (await _fetch(embedded.admin_dsn, f"SELECT count(*) AS n FROM {name}"))[0]["n"]
        for name in await _relations(embedded)
    }
    assert counts == ROW_COUNTS
    foreign_keys = await _fetch(
        embedded.admin_dsn,
        "SELECT conrelid::regclass::text AS child, confrelid::regclass::text AS parent FROM pg_constraint "
        "WHERE contype = 'f' ORDER BY 1, 2",
    )
    assert {(row["child"], row["parent"]) for row in foreign_keys} >= {
        ("shop.orders", "shop.customers"),
        ("shop.order_items", "shop.orders"),
        ("shop.order_items", "shop.products"),
        ("support.tickets", "shop.customers"),
        ("support.tickets", "shop.orders"),
        ("support.ticket_messages", "support.tickets"),
    }


@pytest.mark.postgres
async def test_every_demo_table_and_every_table_column_carries_a_comment(embedded: EmbeddedDatabase) -> None:
    missing = await _fetch(
        embedded.admin_dsn,
        """
        SELECT format('%s.%s', c.oid::regclass, a.attname) AS name
        FROM pg_class AS c
        JOIN pg_namespace AS n ON n.oid = c.relnamespace
        LEFT JOIN pg_attribute AS a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
        WHERE n.nspname IN ('shop', 'support') AND c.relkind IN ('r', 'v')
          AND (obj_description(c.oid, 'pg_class') IS NULL
               OR (c.relkind = 'r' AND col_description(c.oid, a.attnum) IS NULL))
        """,
    )
    assert [row["name"] for row in missing] == []


@pytest.mark.postgres
async def test_the_demo_covers_the_types_whose_json_form_is_easy_to_get_wrong(
    embedded: EmbeddedDatabase,
) -> None:
    rows = await _fetch(
        embedded.admin_dsn,
        "SELECT DISTINCT format_type(a.atttypid, NULL) AS type FROM pg_attribute AS a "
        "JOIN pg_class AS c ON c.oid = a.attrelid JOIN pg_namespace AS n ON n.oid = c.relnamespace "
        "WHERE n.nspname IN ('shop', 'support') AND c.relkind = 'r' AND a.attnum > 0",
    )
    assert {row["type"] for row in rows} >= {
        "bigint",
        "boolean",
        "bytea",
        "character",
        "date",
        "double precision",
        "inet",
        "int4range",
        "integer",
        "interval",
        "jsonb",
        "numeric",
        "shop.order_status",
        "smallint",
        "text",
        "text[]",
        "timestamp with time zone",
        "tstzrange",
        "uuid",
    }
    special = await _fetch(
        embedded.admin_dsn,
        "SELECT count(*) FILTER (WHERE valid_until = 'infinity') AS endless, "
        "count(*) FILTER (WHERE valid_from = '-infinity') AS ageless, "
        "count(*) FILTER (WHERE conversion_rate = 'NaN') AS numeric_nan, "
        "count(*) FILTER (WHERE max_discount = 'Infinity') AS numeric_infinity, "
        "count(*) FILTER (WHERE click_through = 'NaN') AS float_nan, "
        "(SELECT min(external_ref) > 2^53 FROM shop.orders) AS beyond_double "
        "FROM shop.promotions",
    )
    assert all(special[0].values())


@pytest.mark.postgres
async def test_demo_sql_gives_the_same_rows_on_every_load(
    embedded: EmbeddedDatabase, demo_database: PgDatabase
) -> None:
    for name in await _relations(embedded):
        query = f"SELECT md5(string_agg(t::text, '|' ORDER BY t::text)) AS sum FROM {name} AS t"
        here = await _fetch(embedded.admin_dsn, query)
        there = await _fetch(demo_database.dsn, query)
        assert here[0]["sum"] == there[0]["sum"], name


# --------------------------------------------------------------------------------------------
# The read-only role
# --------------------------------------------------------------------------------------------


@pytest.mark.postgres
async def test_the_reader_can_select_from_every_demo_table(embedded: EmbeddedDatabase) -> None:
    reader = await asyncpg.connect(embedded.dsn)
    try:
        assert await reader.fetchval("SELECT current_user") == ROLE
        for name in await _relations(embedded):
            assert await reader.fetchval(f"SELECT count(*) FROM {name}") == ROW_COUNTS[name]
    finally:
        await reader.close()


@pytest.mark.postgres
@pytest.mark.parametrize("statement", WRITES)
async def test_the_reader_cannot_write_by_default_nor_in_a_read_write_transaction(
    embedded: EmbeddedDatabase, statement: str
) -> None:
    reader = await asyncpg.connect(embedded.dsn)
    try:
        with pytest.raises(asyncpg.ReadOnlySQLTransactionError):
            await reader.execute(statement)
        # The read-only default is the second wall: privileges stop a session that lowers it.
        # Temporary tables too, because the demo database revokes TEMPORARY from PUBLIC.
        await reader.execute("BEGIN READ WRITE")
        try:
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await reader.execute(statement)
        finally:
            await reader.execute("ROLLBACK")
    finally:
        await reader.close()


@pytest.mark.postgres
async def test_the_reader_is_a_plain_login_with_read_only_defaults(embedded: EmbeddedDatabase) -> None:
    role = (
        await _fetch(
            embedded.admin_dsn,
            f"SELECT rolcanlogin, rolsuper, rolcreatedb, rolcreaterole, rolreplication, rolbypassrls, "
            f"rolpassword IS NOT NULL AS has_password FROM pg_authid WHERE rolname = '{ROLE}'",
        )
    )[0]
    assert dict(role) == {
        "rolcanlogin": True,
        "rolsuper": False,
        "rolcreatedb": False,
        "rolcreaterole": False,
        "rolreplication": False,
        "rolbypassrls": False,
        "has_password": True,
    }
    settings = await _fetch(
        embedded.dsn,
        "SELECT current_setting('default_transaction_read_only') AS read_only, "
        "current_setting('statement_timeout') AS timeout, "
        "current_setting('idle_in_transaction_session_timeout') AS idle",
    )
    assert dict(settings[0]) == {"read_only": "on", "timeout": "30s", "idle": "1min"}


@pytest.mark.postgres
async def test_tcp_logins_need_a_password_so_only_the_reader_dsn_gets_in(embedded: EmbeddedDatabase) -> None:
    cluster = embedded.cluster
    assert embedded.dsn.startswith(f"postgresql://{ROLE}:")
    assert f"@127.0.0.1:{cluster.port}/{DATABASE}" in embedded.dsn
    for dsn in (
        cluster.dsn(DATABASE, user=ROLE),
        cluster.dsn(DATABASE),
        cluster.dsn(DATABASE, password="guess"),
    ):
        with pytest.raises(asyncpg.InvalidAuthorizationSpecificationError):
            await asyncpg.connect(dsn)


@pytest.mark.postgres
async def test_starting_logs_where_the_demo_runs_and_stopping_removes_every_trace(
    pg_cluster: PgCluster, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.INFO, logger="bulkhead_postgres.embedded")
    # The blocking entry point, run the way the server's start-up runs it: in a worker thread.
    database = await anyio.to_thread.run_sync(lambda: start_embedded(bindir=str(pg_cluster.bindir)))
    base = database.cluster.base_dir
    try:
        assert base.is_dir()
        (started,) = [record.getMessage() for record in caplog.records if "started" in record.getMessage()]
        assert str(database.cluster.port) in started
        assert str(base) in started
        assert database.dsn.split("@")[0].split(":")[-1] not in started
    finally:
        await database.aclose()
    assert not base.exists()
    assert not database.cluster.is_running()
    with pytest.raises(OSError):  # noqa: PT011 -- the refusal's errno differs between platforms
        await asyncpg.connect(database.dsn)
    await database.aclose()
    assert capsys.readouterr().out == ""


# --------------------------------------------------------------------------------------------
# setup-role.sql as operators run it: through psql
# --------------------------------------------------------------------------------------------


def _psql(cluster: PgCluster) -> str:
    psql = cluster.bindir / "psql"
    found = str(psql) if psql.is_file() else shutil.which("psql")
    if found is None:
        pytest.skip("psql is not installed")
    return found


async def _run_psql(
    cluster: PgCluster, database: PgDatabase, variables: dict[str, str], stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    arguments = [_psql(cluster), "-X", "-q", "-d", database.dsn, "-f", str(SETUP_ROLE)]
    for name, value in variables.items():
        arguments += ["-v", f"{name}={value}"]

    def run() -> subprocess.CompletedProcess[str]:
        # A session of its own has no terminal, so \password reads the test's stdin.
        return subprocess.run(
            arguments,
            input=stdin,
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
            start_new_session=True,
        )

    return await anyio.to_thread.run_sync(run)


@pytest.mark.postgres
async def test_setup_role_sql_runs_under_psql_twice_and_makes_a_reader_of_the_chosen_schemas(
    pg_cluster: PgCluster,
) -> None:
    role = f"reader_{secrets.token_hex(4)}"
    async with fresh_database(pg_cluster) as database:
        admin = await database.connect()
        try:
            await admin.execute(
                'CREATE SCHEMA sales; CREATE SCHEMA "Mixed"; CREATE SCHEMA hidden;'
                'CREATE TABLE sales.deals (n integer); CREATE TABLE "Mixed"."Things" (n integer);'
                "CREATE TABLE hidden.secrets (n integer); CREATE TABLE public.open (n integer)"
            )
            variables = {"role": role, "password": "s3cret 'quoted'", "schemas": 'sales, "Mixed"'}
            for _ in range(2):
                done = await _run_psql(pg_cluster, database, variables)
                assert done.returncode == 0, done.stderr
                assert done.stderr == ""
            await admin.execute("CREATE TABLE sales.later (n integer)")
            reader = await asyncpg.connect(pg_cluster.dsn(database.name, user=role))
            try:
                for readable in ("sales.deals", '"Mixed"."Things"', "sales.later"):
                    assert await reader.fetchval(f"SELECT count(*) FROM {readable}") == 0
                for unreadable in ("hidden.secrets", "public.open"):
                    with pytest.raises(asyncpg.InsufficientPrivilegeError):
                        await reader.fetchval(f"SELECT count(*) FROM {unreadable}")
                assert await reader.fetchval("SHOW default_transaction_read_only") == "on"
                assert await reader.fetchval("SHOW statement_timeout") == "30s"
                async with reader.transaction(readonly=False):
                    await reader.execute("SET TRANSACTION READ WRITE")
                    with pytest.raises(asyncpg.InsufficientPrivilegeError):
                        await reader.execute("CREATE TABLE public.intruder (n integer)")
                # Without revoke_temp, PUBLIC keeps TEMPORARY: only the read-only default stops it.
                async with reader.transaction(readonly=False):
                    await reader.execute("SET TRANSACTION READ WRITE")
                    await reader.execute("CREATE TEMPORARY TABLE scratch (n integer)")
            finally:
                await reader.close()
        finally:
            await admin.execute(f'DROP OWNED BY "{role}"; DROP ROLE "{role}"')
            await admin.close()


@pytest.mark.postgres
async def test_setup_role_sql_asks_for_the_password_when_none_is_given(pg_cluster: PgCluster) -> None:
    role = f"reader_{secrets.token_hex(4)}"
    async with fresh_database(pg_cluster) as database:
        admin = await database.connect()
        try:
            done = await _run_psql(pg_cluster, database, {"role": role}, stdin="typed-secret\ntyped-secret\n")
            assert done.returncode == 0, done.stderr
            stored = await admin.fetchval("SELECT rolpassword FROM pg_authid WHERE rolname = $1", role)
            assert stored.startswith("SCRAM-SHA-256$")
            assert await admin.fetchval("SELECT has_schema_privilege($1, 'public', 'USAGE')", role)
        finally:
            await admin.execute(f'DROP OWNED BY "{role}"; DROP ROLE "{role}"')
            await admin.close()


# --------------------------------------------------------------------------------------------
# render_psql_script: setup-role.sql without psql
# --------------------------------------------------------------------------------------------


def test_psql_variables_become_literals_identifiers_or_raw_sql_outside_quotes_and_comments() -> None:
    script = (
        "SELECT :'value', :\"name\", :raw, '{}'::jsonb, ':value', \":name\"; -- :'value'\n"
        "DO $$ BEGIN PERFORM :'value'; END $$; /* :raw */ SELECT :unknown;\n"
    )
    rendered = render_psql_script(script, {"value": "it's", "name": 'a "b"', "raw": "1 + 1"})
    assert rendered == (
        "SELECT 'it''s', \"a \"\"b\"\"\", 1 + 1, '{}'::jsonb, ':value', \":name\"; -- :'value'\n"
        "DO $$ BEGIN PERFORM :'value'; END $$; /* :raw */ SELECT :unknown;\n"
    )


def test_psql_conditionals_keep_only_the_branches_taken_and_set_defaults() -> None:
    script = (
        "\\if :{?role}\n\\else\n\\set role fallback\n\\endif\n"
        "\\if :flag\nSELECT :'role';\n\\else\n\\password\n\\endif\n"
    )
    assert render_psql_script(script, {"flag": "on"}) == "SELECT 'fallback';\n"
    assert render_psql_script(script, {"flag": "on", "role": "given"}) == "SELECT 'given';\n"
    with pytest.raises(ValueError, match=r"\\password needs psql"):
        render_psql_script(script, {"flag": "off"})
    with pytest.raises(ValueError, match="not a psql boolean"):
        render_psql_script(script, {"flag": "maybe"})


@pytest.mark.parametrize(
    ("script", "message"),
    [
        ("SELECT :'missing';\n", "'missing', which has no value"),
        ("\\if :{?x}\nSELECT 1;\n", "ends inside an \\\\if"),
        ("\\endif\n", "without \\\\if"),
        ("\\if :x = 1\n\\endif\n", "cannot evaluate"),
    ],
)
def test_a_script_beyond_the_supported_psql_subset_is_refused_with_the_reason(
    script: str, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        render_psql_script(script, {})


def test_the_packaged_setup_role_sql_renders_with_every_variable_given() -> None:
    rendered = render_psql_script(
        SETUP_ROLE.read_text(encoding="utf-8"),
        {
            "role": "r",
            "password": "pw",
            "database": "d",
            "schemas": "s",
            "owner": "o",
            "statement_timeout": "5s",
            "revoke_temp": "off",
        },
    )
    assert not [line for line in rendered.splitlines() if line.lstrip().startswith("\\")]
    assert "ALTER ROLE \"r\" WITH PASSWORD 'pw';" in rendered
    assert 'GRANT SELECT ON ALL TABLES IN SCHEMA s TO "r";' in rendered
    assert "REVOKE TEMPORARY" not in rendered
