"""bulkhead-users over PostgreSQL as operators run it: column privileges, their session settings,
slow queries, and data the file backend must answer for in exactly the same way."""

import json
from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import asyncpg
import pytest

from bulkhead.errors import UnavailableError
from bulkhead.testing import connect
from bulkhead_users.directory import Record
from bulkhead_users.fields import DEFAULT_FIELDS
from bulkhead_users.filedir import parse_records
from bulkhead_users.pgdir import PostgresDirectory
from bulkhead_users.server import build_server
from tests.pg import PgCluster, PgDatabase, fresh_database, icu_available
from tests.users.test_postgres import (
    RECORDS,
    error_text,
    every_page,
    load_table,
    login_role,
    make_settings,
    outcome,
    serving,
)

pytestmark = [pytest.mark.anyio, pytest.mark.postgres]


def _records(people: list[dict[str, Any]]) -> list[Record]:
    return parse_records(json.dumps(people).encode(), Path("people.json"))


async def _load(database: PgDatabase, records: list[Record]) -> None:
    connection = await database.connect()
    try:
        await load_table(connection, records)
    finally:
        await connection.close()


@asynccontextmanager
async def _same_data_in_a_file(
    tmp_path: Path, records: list[Record], dsn: str
) -> AsyncGenerator[tuple[Any, Any]]:
    """(PostgreSQL client, file client): two servers over `records`, as table and as file."""
    path = tmp_path / "people.json"
    path.write_text(json.dumps(records))
    async with (
        serving(make_settings(dsn=dsn)) as pg_server,
        serving(make_settings(directory=path)) as file_server,
        connect(pg_server) as pg_client,
        connect(file_server) as file_client,
    ):
        yield pg_client, file_client


async def test_a_role_that_may_not_read_the_hidden_columns_starts_and_answers_as_the_file_does(
    pg_cluster: PgCluster, pg_database: PgDatabase, tmp_path: Path
) -> None:
    await _load(pg_database, RECORDS)
    calls: list[tuple[str, dict[str, Any]]] = [
        ("search_users", {"page_size": 100}),
        ("search_users", {"query": "example.com", "sort": "start_date", "page_size": 100}),
        ("search_users", {"department": "engineering", "group": "on-call"}),
        ("get_user", {"user": "ivan.fischer@example.com"}),
        ("get_manager_chain", {"user": "u00300"}),
        ("list_direct_reports", {"user": "u00001", "page_size": 3}),
        ("list_groups", {"page_size": 5}),
        ("get_group_members", {"group": "Leadership", "page_size": 30}),
    ]
    async with login_role(pg_database, columns=DEFAULT_FIELDS) as (role, password):
        dsn = f"postgresql://{role}:{password}@{pg_cluster.host}:{pg_cluster.port}/{pg_database.name}"
        probe = await asyncpg.connect(dsn)
        try:
            # The operator's GRANT really withholds the phone numbers from this role.
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await probe.fetch("SELECT phone FROM users LIMIT 1")
        finally:
            await probe.close()
        async with _same_data_in_a_file(tmp_path, RECORDS, dsn) as (pg_client, file_client):
            for tool, arguments in calls:
                expected = await every_page(file_client, tool, arguments)
                assert await every_page(pg_client, tool, arguments) == expected, (tool, arguments)
                assert not any("error" in page for page in expected), (tool, arguments)
            resource = await pg_client.read_resource("users://u00001")
    assert '"id": "u00001"' in getattr(resource.contents[0], "text", "")


async def test_hidden_columns_are_not_read_even_when_the_role_may_read_them(pg_database: PgDatabase) -> None:
    await _load(pg_database, RECORDS)
    directory = PostgresDirectory(pg_database.dsn, fields=DEFAULT_FIELDS)
    await directory.open()
    try:
        person = await directory.get("u00001", ("id",))
    finally:
        await directory.aclose()
    assert RECORDS[0]["phone"]
    assert person is not None
    assert person["display_name"] == RECORDS[0]["display_name"]
    assert person["phone"] is None
    assert person["personal_address"] is None


async def test_dates_read_as_year_month_day_whatever_the_date_style_of_the_database(
    pg_database: PgDatabase,
) -> None:
    await _load(pg_database, RECORDS[:5])
    admin = await pg_database.connect()
    try:
        await admin.execute(f"ALTER DATABASE \"{pg_database.name}\" SET DateStyle = 'SQL, DMY'")
    finally:
        await admin.close()
    probe = await pg_database.connect()
    try:
        native = await probe.fetchval("SELECT start_date::text FROM users WHERE id = 'u00001'")
    finally:
        await probe.close()
    async with serving(make_settings(dsn=pg_database.dsn)) as server, connect(server) as client:
        person = outcome(await client.call_tool("get_user", {"user": "u00001"}))
        page = outcome(await client.call_tool("search_users", {"sort": "start_date"}))
    assert native != RECORDS[0]["start_date"]
    assert person["start_date"] == RECORDS[0]["start_date"]
    assert [user["start_date"] for user in page["users"]] == sorted(
        record["start_date"] for record in RECORDS[:5]
    )


async def test_a_shared_email_or_username_finds_the_lowest_id_in_byte_order_in_both_backends(
    pg_cluster: PgCluster, tmp_path: Path
) -> None:
    # "B1" < "a9" in byte order; a linguistic collation (ICU en-US) and the file order say "a9".
    records = _records(
        [
            {"id": "a9", "username": "dup", "email": "dup@example.com", "display_name": "First in the file"},
            {"id": "B1", "username": "DUP", "email": "Dup@Example.com", "display_name": "Lowest id"},
        ]
    )
    icu_locale = "en-US" if await icu_available(pg_cluster) else None
    async with fresh_database(pg_cluster, icu_locale=icu_locale) as database:
        await _load(database, records)
        async with _same_data_in_a_file(tmp_path, records, database.dsn) as (pg_client, file_client):
            answers = {
                (backend, key): outcome(await client.call_tool("get_user", {"user": key}))["id"]
                for key in ("DUP@example.com", "dup")
                for backend, client in (("pg", pg_client), ("file", file_client))
            }
    assert set(answers.values()) == {"B1"}, answers


async def test_direct_reports_match_the_manager_id_exactly_in_both_backends(
    pg_database: PgDatabase, tmp_path: Path
) -> None:
    records = _records(
        [
            {"id": "a1", "display_name": "Lower-case boss"},
            {"id": "A1", "display_name": "Upper-case boss"},
            {"id": "r1", "display_name": "Reports to a1", "manager_id": "a1"},
            {"id": "r2", "display_name": "Reports to A1", "manager_id": "A1"},
        ]
    )
    await _load(pg_database, records)
    async with _same_data_in_a_file(tmp_path, records, pg_database.dsn) as (pg_client, file_client):
        reports = {}
        for boss in ("a1", "A1"):
            expected = outcome(await file_client.call_tool("list_direct_reports", {"user": boss}))
            assert outcome(await pg_client.call_tool("list_direct_reports", {"user": boss})) == expected
            reports[boss] = [user["id"] for user in expected["reports"]]
    assert reports == {"a1": ["r1"], "A1": ["r2"]}


async def test_a_query_that_takes_too_long_says_so_and_later_calls_succeed(pg_database: PgDatabase) -> None:
    await _load(pg_database, RECORDS[:5])
    directory = PostgresDirectory(pg_database.dsn, timeout=0.5)
    await directory.open()
    locker = await pg_database.connect()
    try:
        server = build_server(make_settings(), directory)
        async with connect(server) as client:
            with anyio.fail_after(30):
                transaction = locker.transaction()
                await transaction.start()
                # Every read of the table now waits for this transaction, past the timeout.
                await locker.execute("LOCK TABLE users IN ACCESS EXCLUSIVE MODE")
                slow = await client.call_tool("get_user", {"user": "u00001"})
                await transaction.rollback()
                after = await client.call_tool("get_user", {"user": "u00001"})
    finally:
        await locker.close()
        await directory.aclose()
    text = error_text(slow)
    assert "did not answer within 0.5 seconds" in text
    assert "connection was lost" not in text
    assert outcome(after)["id"] == "u00001"


async def test_a_table_too_slow_to_check_at_start_stops_the_start_saying_so(pg_database: PgDatabase) -> None:
    await _load(pg_database, RECORDS[:5])
    locker = await pg_database.connect()
    try:
        with anyio.fail_after(30):
            async with locker.transaction():
                await locker.execute("LOCK TABLE users IN ACCESS EXCLUSIVE MODE")
                with pytest.raises(UnavailableError) as raised:
                    await PostgresDirectory(pg_database.dsn, timeout=0.5).open()
    finally:
        await locker.close()
    assert 'did not answer within 0.5 seconds while checking table "users"' in str(raised.value)
