"""A cancelled call stops its statement on the server, whatever the call was doing at that moment.

Every test holds the statement where it can be seen (waiting on a lock the test holds, or running
a query that would take hours), cancels the MCP call, and then checks in `pg_stat_activity` that
the reader's backend is no longer running it within a bounded wait far shorter than the
statement and lock timeouts, and that the audit record says `cancelled`. In process (both
protocol eras), over stdio and over Streamable HTTP (both eras: handshake-era clients send
notifications/cancelled, 2026-07-28 clients drop the request's response stream).
"""

import contextlib
import itertools
import json
import logging
import secrets
import sys
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Generator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import anyio
import asyncpg
import pytest
from anyio.streams.buffered import BufferedByteReceiveStream
from mcp import Client
from mcp_types import CONNECTION_CLOSED, CallToolResult

from bulkhead.testing import connect, http_server, server_environment, stdio_parameters
from bulkhead_postgres.database import BATCH_ROWS, Database, Limits
from bulkhead_postgres.guard import check_read_only
from bulkhead_postgres.runtime import running
from bulkhead_postgres.server import build_server
from bulkhead_postgres.settings import PostgresSettings
from tests.pg import PgCluster
from tests.postgres.conftest import Shop, shop_database

pytestmark = [pytest.mark.anyio, pytest.mark.postgres]

ERAS = ["legacy", "2026-07-28"]

LONG_MS = 120_000
"""Statement and lock timeouts: only the cancellation can end a statement within `STOPPED_WITHIN`."""

STOPPED_WITHIN = 10.0
"""Seconds a cancelled statement may take to leave `pg_stat_activity`'s active rows."""

SCHEMA = """
CREATE SCHEMA shop;
CREATE TABLE shop.big AS SELECT g AS id FROM generate_series(1, 100000) g;
CREATE TABLE shop.locked (id integer);
ANALYZE;
"""


@pytest.fixture(scope="module")
async def shop(pg_cluster: PgCluster) -> AsyncIterator[Shop]:
    async with shop_database(pg_cluster, SCHEMA) as shop:
        yield shop


@pytest.fixture
async def admin(shop: Shop) -> AsyncIterator[asyncpg.Connection]:
    connection = await shop.database.connect()
    try:
        yield connection
    finally:
        await connection.close()


def _tag() -> str:
    """A literal that makes a statement unique, to find it in pg_stat_activity."""
    return f"cancel-{secrets.token_hex(6)}"


def running_sql(tag: str) -> str:
    """A statement that runs for hours (5 billion row pairs) without waiting on anything."""
    return f"SELECT '{tag}' AS tag, count(*) FROM shop.big a, shop.big b WHERE a.id < b.id"


def parse_sql(tag: str) -> str:
    """A statement whose Parse waits for the lock on shop.locked (parse analysis opens the table)."""
    return f"SELECT '{tag}' AS tag, id FROM shop.locked"


def later_batch_sql(tag: str) -> str:
    """A statement whose first batch of rows comes at once and whose next batch waits for the lock."""
    return (
        f"SELECT '{tag}' AS tag, g.id, "
        f"CASE WHEN g.id > {BATCH_ROWS + 50} THEN pg_relation_size('shop.locked') END AS size "
        "FROM generate_series(1, 1000) AS g(id)"
    )


async def _backend(admin: asyncpg.Connection, shop: Shop, tag: str) -> asyncpg.Record | None:
    return await admin.fetchrow(
        "SELECT state, wait_event_type FROM pg_stat_activity "
        "WHERE usename = $1 AND state = 'active' AND position($2 in query) > 0",
        shop.reader,
        tag,
    )


async def wait_until_running(admin: asyncpg.Connection, shop: Shop, tag: str, *, waiting: bool) -> None:
    """Poll (bounded) until the reader runs the tagged statement (`waiting`: blocked on a lock)."""
    with anyio.fail_after(20):
        while True:
            row = await _backend(admin, shop, tag)
            if row is not None and (not waiting or row["wait_event_type"] == "Lock"):
                return
            await anyio.sleep(0.01)


async def wait_until_stopped(admin: asyncpg.Connection, shop: Shop, tag: str) -> None:
    """Poll (bounded, far below the timeouts) until the reader no longer runs the tagged statement."""
    with anyio.fail_after(STOPPED_WITHIN):
        for _ in itertools.count():
            if await _backend(admin, shop, tag) is None:
                return
            await anyio.sleep(0.01)


async def audit_record(path: Path, tag: str) -> dict[str, Any]:
    """The audit record of the query call whose SQL carries `tag`, once it is written (bounded)."""
    with anyio.fail_after(STOPPED_WITHIN):
        while True:
            if await anyio.Path(path).exists():
                for line in (await anyio.Path(path).read_text(encoding="utf-8")).splitlines():
                    record = json.loads(line)
                    if tag in str(record.get("arguments", {}).get("sql", "")):
                        return record
            await anyio.sleep(0.01)


@asynccontextmanager
async def table_locked(shop: Shop) -> AsyncGenerator[None]:
    """shop.locked held in ACCESS EXCLUSIVE mode, so whoever opens it waits.

    On a connection of its own: pg_stat_activity is a snapshot per transaction, so the connection
    that watches it must not sit in this one.
    """
    locker = await shop.database.connect()
    try:
        async with locker.transaction():
            await locker.execute("LOCK TABLE shop.locked IN ACCESS EXCLUSIVE MODE")
            yield
    finally:
        await locker.close()


def make_settings(shop: Shop, audit: Path, **overrides: Any) -> PostgresSettings:
    return PostgresSettings.model_validate(
        {
            "dsn": shop.reader_dsn,
            "audit": str(audit),
            "schemas": ["shop"],
            "statement_timeout_ms": LONG_MS,
            "lock_timeout_ms": LONG_MS,
            **overrides,
        }
    )


@asynccontextmanager
async def in_process(shop: Shop, audit: Path, era: str, **overrides: Any) -> AsyncGenerator[Client]:
    settings = make_settings(shop, audit, **overrides)
    database = Database(shop.reader_dsn, Limits.from_settings(settings), pool_size=settings.pool_size)
    async with running(settings, database):
        server = build_server(settings, database)
        try:
            async with connect(server, era) as client:
                yield client
        finally:
            server.audit.close()


async def cancel_once_running(
    client: Client, sql: str, until_running: Callable[[], Awaitable[None]]
) -> list[CallToolResult]:
    """Call query(sql), wait until `until_running` returns, then cancel the call."""
    results: list[CallToolResult] = []

    async def call() -> None:
        results.append(await client.call_tool("query", {"sql": sql}))

    async with anyio.create_task_group() as tg:
        tg.start_soon(call)
        await until_running()
        tg.cancel_scope.cancel()
    return results


async def assert_still_serves(client: Client) -> None:
    result = await client.call_tool("query", {"sql": "SELECT 2 AS two"})
    assert not result.is_error, result
    assert result.structured_content is not None
    assert result.structured_content["rows"] == [[2]]


@pytest.mark.parametrize("era", ERAS)
async def test_a_call_cancelled_while_its_statement_runs_stops_it(
    shop: Shop, admin: asyncpg.Connection, tmp_path: Path, era: str
) -> None:
    audit, tag = tmp_path / "audit.jsonl", _tag()
    async with in_process(shop, audit, era) as client:
        results = await cancel_once_running(
            client, running_sql(tag), lambda: wait_until_running(admin, shop, tag, waiting=False)
        )
        await wait_until_stopped(admin, shop, tag)
        await assert_still_serves(client)
    assert results == []
    assert (await audit_record(audit, tag))["outcome"] == "cancelled"


@pytest.mark.parametrize("era", ERAS)
async def test_a_call_cancelled_during_parse_stops_it(
    shop: Shop, admin: asyncpg.Connection, tmp_path: Path, era: str
) -> None:
    audit, tag = tmp_path / "audit.jsonl", _tag()
    async with in_process(shop, audit, era) as client:
        async with table_locked(shop):
            await cancel_once_running(
                client, parse_sql(tag), lambda: wait_until_running(admin, shop, tag, waiting=True)
            )
            # Still locked: the statement left because it was cancelled, not because it got the lock.
            await wait_until_stopped(admin, shop, tag)
        await assert_still_serves(client)
    assert (await audit_record(audit, tag))["outcome"] == "cancelled"


@pytest.mark.parametrize("era", ERAS)
async def test_a_call_cancelled_after_its_first_batch_of_rows_stops_the_statement(
    shop: Shop, admin: asyncpg.Connection, tmp_path: Path, era: str
) -> None:
    audit, tag = tmp_path / "audit.jsonl", _tag()
    async with in_process(shop, audit, era, max_rows=1000) as client:
        async with table_locked(shop):
            # The lock is only asked for from row BATCH_ROWS + 51 on, in the second batch.
            await cancel_once_running(
                client, later_batch_sql(tag), lambda: wait_until_running(admin, shop, tag, waiting=True)
            )
            await wait_until_stopped(admin, shop, tag)
        await assert_still_serves(client)
    assert (await audit_record(audit, tag))["outcome"] == "cancelled"


class _Seen(logging.Handler):
    """Sets `event` when a log record's message starts with `prefix`."""

    def __init__(self, prefix: str) -> None:
        super().__init__(logging.DEBUG)
        self.prefix = prefix
        self.event = anyio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage().startswith(self.prefix):
            self.event.set()


@contextmanager
def log_watch(name: str, prefix: str) -> Generator[_Seen]:
    logger = logging.getLogger(name)
    handler, level = _Seen(prefix), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


async def test_a_call_cancelled_while_waiting_for_a_pool_connection_leaves_the_others_alone(
    shop: Shop, admin: asyncpg.Connection, tmp_path: Path
) -> None:
    audit, holder, queued = tmp_path / "audit.jsonl", _tag(), _tag()
    async with in_process(shop, audit, "legacy", pool_size=1) as client, table_locked(shop):
        async with anyio.create_task_group() as outer:
            outer.start_soon(client.call_tool, "query", {"sql": parse_sql(holder)})
            # The only connection is now busy with the first call, so the second one queues.
            await wait_until_running(admin, shop, holder, waiting=True)
            with log_watch("bulkhead_postgres.database", "every connection is busy") as busy:
                await cancel_once_running(client, f"SELECT '{queued}' AS tag", busy.event.wait)
            assert (await audit_record(audit, queued))["outcome"] == "cancelled"
            # The first call is untouched by the second one's cancellation.
            assert await _backend(admin, shop, holder) is not None
            outer.cancel_scope.cancel()
        await wait_until_stopped(admin, shop, holder)
    assert (await audit_record(audit, holder))["outcome"] == "cancelled"


async def test_a_cancel_at_any_moment_of_a_call_stops_its_statement(
    shop: Shop, admin: asyncpg.Connection
) -> None:
    # PostgreSQL drops a cancel request that arrives while the backend is still reading the
    # command (between Parse and Bind, say); one of these cancel points lands there on most
    # machines, and the statement must stop all the same.
    limits = Limits(LONG_MS, LONG_MS, LONG_MS, max_rows=10, max_bytes=100_000, max_cell_chars=100)
    database = Database(shop.reader_dsn, limits, pool_size=1)
    tags: list[str] = []
    try:
        # Connected first: a call cancelled while asyncpg is still connecting is another story.
        await database.run(check_read_only("SELECT 1"))
        for step in range(40):
            tag = _tag()
            tags.append(tag)
            with anyio.move_on_after(step * 0.0005):
                await database.run(check_read_only(running_sql(tag)))
            await wait_until_stopped(admin, shop, tag)
        result = await database.run(check_read_only("SELECT 2"))
    finally:
        await database.close()
    assert result.rows == [[2]]


@pytest.mark.parametrize("era", ERAS)
async def test_a_call_cancelled_over_stdio_stops_its_statement(
    shop: Shop, admin: asyncpg.Connection, tmp_path: Path, era: str
) -> None:
    audit, tag = tmp_path / "audit.jsonl", _tag()
    parameters = stdio_parameters(
        "bulkhead_postgres",
        ["--schemas", "shop", "--audit", str(audit)],
        {
            "BULKHEAD_POSTGRES_DSN": shop.reader_dsn,
            "BULKHEAD_POSTGRES_STATEMENT_TIMEOUT_MS": str(LONG_MS),
        },
    )
    async with Client(parameters, mode=era) as client:
        await cancel_once_running(
            client, running_sql(tag), lambda: wait_until_running(admin, shop, tag, waiting=False)
        )
        await wait_until_stopped(admin, shop, tag)
        await assert_still_serves(client)
    assert (await audit_record(audit, tag))["outcome"] == "cancelled"


@pytest.mark.parametrize("era", ERAS)
async def test_a_call_cancelled_over_http_stops_its_statement(
    shop: Shop, admin: asyncpg.Connection, tmp_path: Path, era: str
) -> None:
    audit, tag = tmp_path / "audit.jsonl", _tag()
    async with (
        http_server(
            "bulkhead_postgres",
            ["--schemas", "shop", "--audit", str(audit)],
            {
                "BULKHEAD_POSTGRES_DSN": shop.reader_dsn,
                "BULKHEAD_POSTGRES_STATEMENT_TIMEOUT_MS": str(LONG_MS),
            },
        ) as server,
        Client(server.mcp_url, mode=era) as client,
    ):
        await cancel_once_running(
            client, running_sql(tag), lambda: wait_until_running(admin, shop, tag, waiting=False)
        )
        await wait_until_stopped(admin, shop, tag)
        await assert_still_serves(client)
    assert (await audit_record(audit, tag))["outcome"] == "cancelled"


@pytest.mark.parametrize("direct", [True, False], ids=["direct calls", "sdk session"])
async def test_a_call_still_running_when_stdin_ends_is_answered_connection_closed_and_stopped(
    shop: Shop, admin: asyncpg.Connection, tmp_path: Path, direct: bool
) -> None:
    tag = _tag()
    flags = [] if direct else ["--no-direct-calls"]
    env = server_environment(
        {"BULKHEAD_POSTGRES_DSN": shop.reader_dsn, "BULKHEAD_POSTGRES_STATEMENT_TIMEOUT_MS": str(LONG_MS)}
    )
    command = [sys.executable, "-m", "bulkhead_postgres", "--schemas", "shop", "--log-level", "debug", *flags]
    with (tmp_path / "stderr.log").open("wb") as stderr:
        process = await anyio.open_process(command, env=env, stderr=stderr)
    assert process.stdin is not None
    assert process.stdout is not None
    initialize = {
        "protocolVersion": "2025-11-25",
        "capabilities": {},
        "clientInfo": {"name": "t", "version": "1"},
    }
    call = {"name": "query", "arguments": {"sql": running_sql(tag)}}
    stdout = BufferedByteReceiveStream(process.stdout)
    opening = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": initialize}
    await process.stdin.send(json.dumps(opening).encode() + b"\n")
    with anyio.fail_after(STOPPED_WITHIN):
        assert json.loads(await stdout.receive_until(b"\n", 1 << 20))["id"] == 1
    lines = [
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": call},
    ]
    await process.stdin.send(b"".join(json.dumps(line).encode() + b"\n" for line in lines))
    await wait_until_running(admin, shop, tag, waiting=False)
    await process.stdin.aclose()
    output = b""
    with anyio.fail_after(STOPPED_WITHIN):
        with contextlib.suppress(anyio.EndOfStream):
            while True:
                output += await stdout.receive()
        assert await process.wait() == 0
    await wait_until_stopped(admin, shop, tag)
    answers = {message.get("id"): message for message in map(json.loads, output.splitlines())}
    assert answers[2]["error"] == {"code": CONNECTION_CLOSED, "message": "Connection closed"}
    log = (tmp_path / "stderr.log").read_text()
    assert ("tools/call 2 (query) is answered directly" in log) == direct


async def test_a_cancel_at_any_moment_of_a_lifted_call_stops_its_statement(
    shop: Shop, admin: asyncpg.Connection
) -> None:
    # The same, for a repeated query shape: it runs as a named prepared statement with its
    # integers bound, so a cancel can also land in its Parse, or between prepare and execute.
    limits = Limits(LONG_MS, LONG_MS, LONG_MS, max_rows=10, max_bytes=100_000, max_cell_chars=100)
    database = Database(shop.reader_dsn, limits, pool_size=1)
    shape = "SELECT count(*) FROM shop.big a, shop.big b WHERE a.id < b.id AND a.id > {}"
    lifted = "a.id > $1::pg_catalog.int4"
    try:
        first = await database.run(check_read_only(shape.format(100_000)))
        for step in range(40):
            with anyio.move_on_after(step * 0.0005):
                await database.run(check_read_only(shape.format(-step)))
            await wait_until_stopped(admin, shop, lifted)
        last = await database.run(check_read_only(shape.format(99_999)))
        prepared = await database.run(check_read_only("SELECT count(*) FROM pg_prepared_statements"))
    finally:
        await database.close()
    assert first.rows == last.rows == [[0]]
    assert prepared.rows in ([[1]], [[2]]), prepared.rows
