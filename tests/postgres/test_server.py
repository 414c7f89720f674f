"""bulkhead-postgres through the in-memory client against a real PostgreSQL, as a read-only role."""

import itertools
import json
import secrets
import tracemalloc
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import anyio
import pytest
from mcp_types import CallToolResult
from pydantic import ValidationError

from bulkhead.app import BulkheadServer
from bulkhead.testing import connect
from bulkhead_postgres.database import Database, Limits
from bulkhead_postgres.models import QueryOutput
from bulkhead_postgres.runtime import running
from bulkhead_postgres.server import build_server
from bulkhead_postgres.settings import PostgresSettings
from tests.pg import PgCluster
from tests.postgres.conftest import Shop as BaseShop
from tests.postgres.conftest import shop_database

pytestmark = [pytest.mark.anyio, pytest.mark.postgres]

SCHEMA = """
CREATE SCHEMA shop;
COMMENT ON SCHEMA shop IS 'A small shop';
CREATE TABLE shop.customers (
    id integer PRIMARY KEY,
    name text NOT NULL,
    email text UNIQUE,
    created timestamptz DEFAULT now()
);
COMMENT ON TABLE shop.customers IS 'People who buy things';
COMMENT ON COLUMN shop.customers.email IS 'Where receipts go';
CREATE TABLE shop.orders (
    id integer PRIMARY KEY,
    customer_id integer NOT NULL REFERENCES shop.customers (id),
    total numeric(12, 2) NOT NULL,
    note text
);
CREATE INDEX orders_customer ON shop.orders (customer_id);
INSERT INTO shop.customers (id, name, email)
    SELECT g, 'customer ' || g, 'c' || g || '@example.com' FROM generate_series(1, 50) g;
INSERT INTO shop.orders (id, customer_id, total, note)
    SELECT g, 1 + g % 50, (g * 1.25)::numeric(12, 2), repeat('x', g % 7) FROM generate_series(1, 2000) g;
CREATE TABLE shop.big AS SELECT g AS id, md5(g::text) AS digest FROM generate_series(1, 1000000) g;
ANALYZE;
CREATE SEQUENCE shop.counter;
CREATE SCHEMA secret;
CREATE TABLE secret.keys (k text);
-- A function that writes, executable by the reader: the guard cannot know, the read-only
-- transaction must stop it.
CREATE FUNCTION public.sneaky_write() RETURNS integer LANGUAGE sql
    AS 'INSERT INTO shop.customers (id, name) VALUES (999, ''sneaky'') RETURNING id';
"""


class Shop(BaseShop):
    async def snapshot(self) -> tuple[Any, ...]:
        """A fingerprint of the data, sequences and tables, to prove an attack changed nothing."""
        connection = await self.admin()
        try:
            return (
                await connection.fetchval("SELECT count(*) FROM shop.customers"),
                await connection.fetchval("SELECT count(*) FROM shop.orders"),
                await connection.fetchval(
                    "SELECT md5(string_agg(id || ':' || name, ',' ORDER BY id)) FROM shop.customers"
                ),
                await connection.fetchval("SELECT last_value FROM shop.counter"),
                await connection.fetchval("SELECT is_called FROM shop.counter"),
                await connection.fetchval(
                    "SELECT string_agg(relname, ',' ORDER BY relname) FROM pg_class "
                    "WHERE relnamespace = 'shop'::regnamespace"
                ),
                await connection.fetchval("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"),
            )
        finally:
            await connection.close()


@pytest.fixture(scope="module")
async def shop(pg_cluster: PgCluster) -> AsyncIterator[Shop]:
    # Enough rights for the attacks to matter: only the server may stop them.
    grants = (
        "GRANT USAGE, UPDATE ON SEQUENCE shop.counter TO {reader}",
        "ALTER ROLE {reader} SET default_transaction_read_only = on",
    )
    async with shop_database(pg_cluster, SCHEMA, grants) as shop:
        yield Shop(shop.database, shop.reader)


def make_settings(**overrides: Any) -> PostgresSettings:
    return PostgresSettings.model_validate({"audit": "off", "schemas": ["shop", "public"], **overrides})


@dataclass
class Running:
    server: BulkheadServer
    database: Database


async def start(dsn: str, **overrides: Any) -> tuple[Running, Any]:
    settings = make_settings(dsn=dsn, **overrides)
    database = Database(dsn, Limits.from_settings(settings), pool_size=settings.pool_size)
    context = running(settings, database)
    await context.__aenter__()
    return Running(build_server(settings, database), database), context


@pytest.fixture(scope="module")
async def served(shop: Shop) -> AsyncIterator[Running]:
    runtime, context = await start(shop.reader_dsn)
    try:
        yield runtime
    finally:
        await context.__aexit__(None, None, None)


def data(result: CallToolResult) -> dict[str, Any]:
    assert not result.is_error, result.content
    assert result.structured_content is not None
    return result.structured_content


def text(result: CallToolResult) -> str:
    return "".join(getattr(block, "text", "") for block in result.content)


ERAS = ["legacy", "2026-07-28"]


@pytest.mark.parametrize("era", ERAS)
async def test_every_tool_is_read_only_with_an_output_schema(served: Running, era: str) -> None:
    async with connect(served.server, era) as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
    assert set(tools) == {
        "query",
        "explain",
        "list_schemas",
        "list_tables",
        "describe_table",
        "sample_rows",
        "check_role",
    }
    for tool in tools.values():
        assert tool.annotations is not None
        assert tool.annotations.read_only_hint is True
        assert tool.output_schema is not None


async def test_query_rows_and_columns_are_published_without_a_per_item_schema_but_the_model_checks_them(
    served: Running,
) -> None:
    async with connect(served.server) as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
    for name in ("query", "explain", "sample_rows"):
        schema = tools[name].output_schema
        assert schema is not None
        rows, columns = schema["properties"]["rows"], schema["properties"]["columns"]
        assert rows["type"] == columns["type"] == "array"
        assert "items" not in rows
        assert "items" not in columns
        assert "column order" in rows["description"]
        assert "{name, type}" in columns["description"]
        assert schema["properties"]["truncated_reason"]["type"] == ["string", "null"]
    fields: dict[str, Any] = {"columns": [], "row_count": 1, "truncated": False, "elapsed_ms": 0.1}
    assert QueryOutput.model_validate({**fields, "rows": [[1, "a", None]]}).rows == [[1, "a", None]]
    with pytest.raises(ValidationError):
        QueryOutput.model_validate({**fields, "rows": [1]})
    with pytest.raises(ValidationError):
        QueryOutput.model_validate({**fields, "rows": [], "columns": [{"name": 1}]})
    with pytest.raises(ValidationError):
        QueryOutput.model_validate({**fields, "rows": [], "truncated_reason": 5})


@pytest.mark.parametrize(
    ("sql", "arguments"),
    [
        ("SELECT g, 'é ☃ \"' || g AS t, NULL AS n FROM generate_series(1, 450) g", {}),
        ("SELECT g, 'é ☃ \"' || g AS t FROM generate_series(1, 450) g", {"max_rows": 301}),
        ("SELECT 1 WHERE false", {}),
    ],
)
async def test_a_query_result_text_is_the_compact_json_of_its_structured_content(
    served: Running, sql: str, arguments: dict[str, Any]
) -> None:
    # The text copy is put together from the rows' JSON made for the byte budget, batch by batch.
    async with connect(served.server, "legacy") as client:
        result = await client.call_tool("query", {"sql": sql, **arguments})
    content = data(result)
    assert text(result) == json.dumps(content, ensure_ascii=False, separators=(",", ":"))
    assert json.loads(text(result)) == content


async def test_floats_in_the_text_copy_are_the_same_numbers_as_in_the_structured_content(
    served: Running,
) -> None:
    # Tiny floats are written 0.00001 and 1e-7 (not 1e-05, 1e-07), as the wire writes the structured content.
    sql = (
        "SELECT g / 7.0::float8 AS f, 1e-7::float8 * g AS tiny, 1e300::float8 * g AS huge, "
        "-1e-5::float8 AS neg, 0::float8 AS zero FROM generate_series(1, 300) g"
    )
    async with connect(served.server, "legacy") as client:
        result = await client.call_tool("query", {"sql": sql})
    content = data(result)
    assert json.loads(text(result)) == content
    assert content["rows"][0] == [1 / 7, 1e-7, 1e300, -1e-5, 0.0]


@pytest.mark.parametrize("era", ERAS)
async def test_a_query_returns_typed_columns_and_rows_as_arrays(served: Running, era: str) -> None:
    async with connect(served.server, era) as client:
        result = data(
            await client.call_tool(
                "query",
                {
                    "sql": "SELECT id, name, 1 AS id FROM shop.customers WHERE id <= $1 ORDER BY 1",
                    "params": [3],
                },
            )
        )
    assert result["columns"] == [
        {"name": "id", "type": "int4"},
        {"name": "name", "type": "text"},
        {"name": "id", "type": "int4"},
    ]
    assert result["rows"] == [[1, "customer 1", 1], [2, "customer 2", 1], [3, "customer 3", 1]]
    assert result["row_count"] == 3
    assert result["truncated"] is False


async def test_row_cap_and_byte_budget_cut_results_and_say_so(served: Running) -> None:
    async with connect(served.server) as client:
        capped = data(
            await client.call_tool(
                "query", {"sql": "SELECT * FROM generate_series(1, 100000)", "max_rows": 10}
            )
        )
        default_cap = data(await client.call_tool("query", {"sql": "SELECT id FROM shop.big"}))
        wide = data(
            await client.call_tool(
                "query", {"sql": "SELECT repeat('y', 1900), repeat('z', 1900) FROM generate_series(1, 5000)"}
            )
        )
    assert capped["row_count"] == 10
    assert capped["truncated"] is True
    assert "10 rows" in capped["truncated_reason"]
    assert default_cap["row_count"] == 500
    assert wide["truncated"] is True
    assert "bytes" in wide["truncated_reason"]
    assert 0 < wide["row_count"] < 5000


async def test_long_values_are_cut_with_a_marker(served: Running) -> None:
    async with connect(served.server) as client:
        result = data(await client.call_tool("query", {"sql": "SELECT repeat('z', 5000)"}))
    value = result["rows"][0][0]
    assert value.startswith("z" * 2000)
    assert value.endswith("[cut: 3000 more characters]")


async def test_values_come_out_as_exact_json(served: Running) -> None:
    sql = """SELECT
        12345678901234567890.123456789::numeric AS big_numeric,
        'NaN'::numeric AS nan_numeric,
        'Infinity'::float8 AS inf_float,
        0.1::float8 AS float,
        9007199254740993::int8 AS huge_int,
        42::int8 AS small_int,
        '2024-02-29 13:14:15.123456+02'::timestamptz AS ts,
        'infinity'::timestamptz AS ts_inf,
        '2024-02-29'::date AS d,
        '1 year 2 months 3 days 04:05:06'::interval AS iv,
        '\\xdeadbeef'::bytea AS raw,
        'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid AS id,
        '{"a": [1, 2.5, "x"], "b": null}'::jsonb AS doc,
        ARRAY[1, 2, NULL]::int[] AS arr,
        '[1,10)'::int4range AS rng,
        '10.1.2.3/24'::inet AS addr,
        true AS flag"""
    async with connect(served.server) as client:
        result = data(await client.call_tool("query", {"sql": sql}))
    row = dict(zip([c["name"] for c in result["columns"]], result["rows"][0], strict=True))
    assert row["big_numeric"] == "12345678901234567890.123456789"
    assert row["nan_numeric"] == "NaN"
    assert row["inf_float"] == "Infinity"
    assert row["float"] == 0.1
    assert row["huge_int"] == "9007199254740993"
    assert row["small_int"] == 42
    assert row["ts"] == "2024-02-29 11:14:15.123456+00"
    assert row["ts_inf"] == "infinity"
    assert row["d"] == "2024-02-29"
    assert row["iv"] == "P1Y2M3DT4H5M6S"
    assert row["raw"] == "\\xdeadbeef"
    assert row["id"] == "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"
    assert row["doc"] == {"a": [1, 2.5, "x"], "b": None}
    assert row["arr"] == [1, 2, None]
    assert row["rng"] == {"lower": 1, "upper": 10, "lower_inc": True, "upper_inc": False, "empty": False}
    assert row["addr"] == "10.1.2.3/24"
    assert row["flag"] is True


ATTACKS = [
    # multi-statement strings
    "SELECT 1; DELETE FROM shop.customers",
    "SELECT 1; COMMIT; DROP TABLE shop.orders",
    "/* c */ SELECT 1;; UPDATE shop.customers SET name = 'x'",
    # statements that leave the transaction or change the session
    "COMMIT",
    "ROLLBACK",
    "SET TRANSACTION READ WRITE",
    "SET default_transaction_read_only = off",
    "RESET ALL",
    "PREPARE p AS DELETE FROM shop.customers",
    "DEALLOCATE ALL",
    "LISTEN channel",
    "DECLARE c CURSOR WITH HOLD FOR SELECT * FROM shop.customers",
    "LOCK TABLE shop.customers",
    "DO $$ BEGIN DELETE FROM shop.customers; END $$",
    # writes in disguise
    "DELETE FROM shop.customers",
    "UPDATE shop.customers SET name = 'x'",
    "WITH gone AS (DELETE FROM shop.customers RETURNING *) SELECT count(*) FROM gone",
    "SELECT * FROM (WITH x AS (UPDATE shop.customers SET name = 'y' RETURNING 1) SELECT * FROM x) s",
    "SELECT * INTO shop.copy FROM shop.customers",
    "SELECT * FROM shop.customers FOR UPDATE",
    "SELECT * FROM (SELECT * FROM shop.customers FOR SHARE) s",
    "EXPLAIN ANALYZE DELETE FROM shop.customers",
    "COPY shop.customers TO PROGRAM 'id'",
    "COPY shop.customers TO '/tmp/bulkhead-leak'",
    "TRUNCATE shop.orders",
    "DROP TABLE shop.orders",
    # side-effect and escape-hatch functions, wherever they appear
    "SELECT set_config('default_transaction_read_only', 'off', false)",
    "SELECT * FROM set_config('statement_timeout', '0', false)",
    "SELECT nextval('shop.counter')",
    "SELECT id FROM shop.customers WHERE setval('shop.counter', 99) > 0",
    "SELECT PG_CATALOG.NEXTVAL('shop.counter')",
    "SELECT ('shop.counter'::regclass).nextval",
    "SELECT pg_advisory_lock(1)",
    "SELECT pg_notify('x', 'y')",
    "SELECT pg_sleep(10)",
    "SELECT * FROM pg_read_file('/etc/passwd')",
    "SELECT lo_import('/etc/passwd')",
    "SELECT query_to_xml('DELETE FROM shop.customers RETURNING 1', true, true, '')",
    "SELECT dblink_exec('dbname=postgres', 'DROP TABLE shop.orders')",
    "SELECT txid_current()",
    "SELECT pg_terminate_backend(pg_backend_pid())",
    "SELECT CASE WHEN true THEN pg_switch_wal() END",
]


@pytest.mark.parametrize("sql", ATTACKS)
async def test_writes_and_escapes_are_rejected_and_change_nothing(
    shop: Shop, served: Running, sql: str
) -> None:
    before = await shop.snapshot()
    async with connect(served.server) as client:
        result = await client.call_tool("query", {"sql": sql})
        healthy = await client.call_tool("query", {"sql": "SELECT count(*) FROM shop.customers"})
    assert result.is_error
    assert text(result).count("Query rejected") == 1 or "PostgreSQL error" in text(result)
    assert not healthy.is_error
    assert await shop.snapshot() == before


async def test_a_write_hidden_in_a_function_is_stopped_by_the_read_only_transaction(
    shop: Shop, served: Running
) -> None:
    admin = await shop.admin()
    try:
        await admin.execute(f"GRANT EXECUTE ON FUNCTION public.sneaky_write() TO {shop.reader}")
        await admin.execute(f"GRANT INSERT ON shop.customers TO {shop.reader}")
    finally:
        await admin.close()
    before = await shop.snapshot()
    try:
        async with connect(served.server) as client:
            result = await client.call_tool("query", {"sql": "SELECT public.sneaky_write()"})
    finally:
        admin = await shop.admin()
        try:
            await admin.execute(f"REVOKE INSERT ON shop.customers FROM {shop.reader}")
        finally:
            await admin.close()
    assert result.is_error
    assert "25006" in text(result)
    assert "only reads" in text(result)
    assert await shop.snapshot() == before


async def test_a_slow_query_hits_the_statement_timeout_and_the_pool_stays_healthy(shop: Shop) -> None:
    runtime, context = await start(shop.reader_dsn, statement_timeout_ms=200, pool_size=1)
    try:
        async with connect(runtime.server) as client:
            slow = await client.call_tool(
                "query", {"sql": "SELECT count(*) FROM shop.big a, shop.big b WHERE a.id < b.id"}
            )
            after = await client.call_tool("query", {"sql": "SELECT 1"})
    finally:
        await context.__aexit__(None, None, None)
    assert slow.is_error
    assert "57014" in text(slow)
    assert "time limit" in text(slow)
    assert data(after)["rows"] == [[1]]


async def test_postgres_errors_carry_sqlstate_message_and_position(served: Running) -> None:
    async with connect(served.server) as client:
        missing = await client.call_tool("query", {"sql": "SELECT nope FROM shop.customers"})
        bad_param = await client.call_tool(
            "query", {"sql": "SELECT * FROM shop.customers WHERE id = $1", "params": ["not a number"]}
        )
    assert "42703" in text(missing)
    assert "At character 8" in text(missing)
    assert bad_param.is_error
    assert "Internal error" not in text(bad_param)


@pytest.mark.parametrize(
    ("sql", "params", "expected"),
    [
        ("SELECT $1::int + $2::int", None, "uses $1 to $2, so params needs 2 values, in order; 0 were given"),
        ("SELECT $1::int", [1, 2], "uses $1, so params needs 1 value, in order; 2 were given"),
        ("SELECT 1", [1], "has no $1, $2 ... placeholders, but 1 params were given"),
    ],
)
async def test_params_that_do_not_match_the_placeholders_say_so_and_the_pool_stays_healthy(
    served: Running, sql: str, params: list[int] | None, expected: str
) -> None:
    async with connect(served.server) as client:
        arguments: dict[str, object] = {"sql": sql} if params is None else {"sql": sql, "params": params}
        failed = await client.call_tool("query", arguments)
        after = await client.call_tool("query", {"sql": "SELECT $1::int + $2::int", "params": [1, 2]})
    assert failed.is_error
    assert expected in text(failed)
    assert "connection" not in text(failed).lower()
    assert data(after)["rows"] == [[3]]


async def test_catalog_tools_describe_the_visible_schemas_only(served: Running) -> None:
    async with connect(served.server) as client:
        schemas = data(await client.call_tool("list_schemas", {}))
        tables = data(await client.call_tool("list_tables", {"schema": "shop"}))
        described = data(await client.call_tool("describe_table", {"table": "shop.orders"}))
        unqualified = data(await client.call_tool("describe_table", {"table": "customers"}))
        hidden = await client.call_tool("describe_table", {"table": "secret.keys"})
        hidden_schema = await client.call_tool("list_tables", {"schema": "secret"})
        sample = data(await client.call_tool("sample_rows", {"table": "shop.customers", "n": 3}))
    assert [s["name"] for s in schemas["schemas"]] == ["public", "shop"]
    assert {t["name"] for t in tables["tables"]} == {"customers", "orders", "big"}
    customers = next(t for t in tables["tables"] if t["name"] == "customers")
    assert customers["comment"] == "People who buy things"
    assert customers["row_estimate"] == 50
    assert described["primary_key"] == ["id"]
    assert described["foreign_keys"][0]["ref_table"] == "shop.customers"
    assert {i["name"] for i in described["indexes"]} == {"orders_pkey", "orders_customer"}
    assert next(c for c in described["columns"] if c["name"] == "total")["type"] == "numeric(12,2)"
    assert next(c for c in unqualified["columns"] if c["name"] == "email")["comment"] == "Where receipts go"
    assert hidden.is_error
    assert "list_tables" in text(hidden)
    assert hidden_schema.is_error
    assert sample["row_count"] == 3


async def test_explain_returns_a_plan_and_analyze_needs_the_setting(shop: Shop, served: Running) -> None:
    async with connect(served.server) as client:
        plan = data(
            await client.call_tool("explain", {"sql": "SELECT * FROM shop.orders WHERE customer_id = 3"})
        )
        refused = await client.call_tool("explain", {"sql": "SELECT 1", "analyze": True})
        write = await client.call_tool("explain", {"sql": "DELETE FROM shop.orders"})
    assert plan["columns"][0]["name"] == "QUERY PLAN"
    assert "Plan" in plan["rows"][0][0][0]
    assert refused.is_error
    assert write.is_error
    runtime, context = await start(shop.reader_dsn, allow_explain_analyze=True)
    try:
        async with connect(runtime.server) as client:
            analyzed = data(
                await client.call_tool(
                    "explain", {"sql": "SELECT count(*) FROM shop.orders", "analyze": True}
                )
            )
            analyzed_write = await client.call_tool(
                "explain", {"sql": "DELETE FROM shop.orders", "analyze": True}
            )
    finally:
        await context.__aexit__(None, None, None)
    assert "Actual Rows" in analyzed["rows"][0][0][0]["Plan"]
    assert analyzed_write.is_error


async def test_check_role_reports_a_clean_reader(served: Running) -> None:
    async with connect(served.server) as client:
        report = data(await client.call_tool("check_role", {}))
    assert report["read_only"] is True
    assert [f for f in report["findings"] if f["severity"] in ("critical", "high")] == []


async def test_a_superuser_is_refused_at_start_unless_allowed(
    shop: Shop, caplog: pytest.LogCaptureFixture
) -> None:
    with pytest.raises(SystemExit) as stopped:
        await start(shop.database.dsn)
    assert stopped.value.code == 2
    runtime, context = await start(shop.database.dsn, allow_privileged_role=True)
    try:
        async with connect(runtime.server) as client:
            report = data(await client.call_tool("check_role", {}))
            await client.call_tool("query", {"sql": "SELECT 1"})
    finally:
        await context.__aexit__(None, None, None)
    assert report["read_only"] is False
    assert report["findings"][0]["severity"] == "critical"
    assert "superuser" in report["findings"][0]["issue"]
    assert "privileged role" in caplog.text


async def test_a_role_that_can_write_is_found_with_the_fix(shop: Shop) -> None:
    admin = await shop.admin()
    writer = f"writer_{secrets.token_hex(4)}"
    try:
        await admin.execute(f"CREATE ROLE {writer} LOGIN")
        await admin.execute(f"GRANT USAGE ON SCHEMA shop TO {writer}")
        await admin.execute(f"GRANT SELECT, INSERT, DELETE ON shop.orders TO {writer}")
        await admin.execute(f"GRANT pg_signal_backend TO {writer}")
        dsn = shop.database.cluster.dsn(shop.database.name, user=writer)
        with pytest.raises(SystemExit):
            await start(dsn)
        runtime, context = await start(dsn, allow_privileged_role=True)
        try:
            async with connect(runtime.server) as client:
                report = data(await client.call_tool("check_role", {}))
        finally:
            await context.__aexit__(None, None, None)
    finally:
        await admin.execute(f"REVOKE ALL ON shop.orders FROM {writer}")
        await admin.execute(f"REVOKE ALL ON SCHEMA shop FROM {writer}")
        await admin.execute(f"DROP ROLE {writer}")
        await admin.close()
    issues = " | ".join(f["issue"] + " => " + f["fix"] for f in report["findings"])
    assert "can write 1 tables (shop.orders)" in issues
    assert "REVOKE INSERT, UPDATE, DELETE, TRUNCATE" in issues
    assert "pg_signal_backend" in issues


async def test_resources_give_an_overview_and_one_description_per_table(served: Running) -> None:
    async with connect(served.server) as client:
        overview = await client.read_resource("postgres://overview")
        table = await client.read_resource("postgres://shop/orders")
        with pytest.raises(Exception, match="No table"):
            await client.read_resource("postgres://secret/keys")
    assert "postgres://shop/customers" in getattr(overview.contents[0], "text", "")
    assert '"primary_key": ["id"]' in getattr(table.contents[0], "text", "")


async def _wait_until_active(shop: Shop, sql: str, active: bool) -> None:
    """Poll (bounded) until the reader is, or is no longer, running `sql`."""
    admin = await shop.admin()
    try:
        with anyio.fail_after(5):
            for _ in itertools.count():
                running = await admin.fetchval(
                    "SELECT EXISTS (SELECT FROM pg_stat_activity "
                    "WHERE usename = $1 AND state = 'active' AND query = $2)",
                    shop.reader,
                    sql,
                )
                if running == active:
                    return
                await anyio.sleep(0.02)
    finally:
        await admin.close()


async def test_a_cancelled_call_cancels_the_query_on_the_server(shop: Shop) -> None:
    # Ten seconds of statement timeout: only the cancellation can end the query within the 5 s wait.
    runtime, context = await start(shop.reader_dsn, statement_timeout_ms=10_000)
    sql = "SELECT count(*) FROM shop.big a, shop.big b WHERE a.id < b.id"
    try:
        async with connect(runtime.server) as client:
            async with anyio.create_task_group() as tg:
                tg.start_soon(client.call_tool, "query", {"sql": sql})
                await _wait_until_active(shop, sql, active=True)
                tg.cancel_scope.cancel()
            await _wait_until_active(shop, sql, active=False)
            after = await client.call_tool("query", {"sql": "SELECT 2"})
    finally:
        await context.__aexit__(None, None, None)
    assert data(after)["rows"] == [[2]]


async def test_a_database_restart_is_a_clear_error_and_then_calls_succeed(
    shop: Shop, pg_cluster: PgCluster
) -> None:
    runtime, context = await start(shop.reader_dsn)
    try:
        async with connect(runtime.server) as client:
            assert data(await client.call_tool("query", {"sql": "SELECT 1"}))["rows"] == [[1]]
            await anyio.to_thread.run_sync(pg_cluster.stop)
            try:
                down = await client.call_tool("query", {"sql": "SELECT 1"})
            finally:
                await anyio.to_thread.run_sync(pg_cluster.start)
            results = [await client.call_tool("query", {"sql": "SELECT 2"}) for _ in range(3)]
    finally:
        await context.__aexit__(None, None, None)
    assert down.is_error
    assert "try" in text(down)
    assert "Internal error" not in text(down)
    assert shop.reader_dsn not in text(down)
    # The pool replaces the dead connections: at most the first call after the restart fails.
    assert not results[-1].is_error
    assert data(results[-1])["rows"] == [[2]]


async def test_a_million_row_table_is_read_with_bounded_memory(shop: Shop) -> None:
    runtime, context = await start(shop.reader_dsn, max_rows=100_000, max_bytes=2_000_000)
    try:
        async with connect(runtime.server) as client:
            tracemalloc.start()
            try:
                result = data(await client.call_tool("query", {"sql": "SELECT * FROM shop.big"}))
                _, peak = tracemalloc.get_traced_memory()
            finally:
                tracemalloc.stop()
    finally:
        await context.__aexit__(None, None, None)
    assert result["truncated"] is True
    assert "bytes" in result["truncated_reason"]
    # Two megabytes of row data, a few copies of it on the way out, and nothing like 1M rows.
    assert peak < 40_000_000
