"""bulkhead-users over a real PostgreSQL table, driven through the server with the in-memory client.

The file backend is the reference: over the same data every tool must answer exactly as it does
(same people, same order, same totals, same cursors, same errors). Both servers share one cursor
secret, so even their cursors must be equal.
"""

import json
import logging
import secrets
import socket
import sys
import traceback
from collections import Counter
from collections.abc import AsyncGenerator, Generator, Sequence
from contextlib import asynccontextmanager, contextmanager
from datetime import date
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import asyncpg
import pytest
from mcp import Client, MCPError
from mcp.client.stdio import stdio_client
from mcp_types import CallToolResult

from bulkhead.app import BulkheadServer
from bulkhead.errors import UnavailableError
from bulkhead.testing import connect, server_environment, stdio_parameters
from bulkhead_users.backend import create_directory, opened
from bulkhead_users.directory import Query, Record
from bulkhead_users.fields import ALL_FIELDS, DEFAULT_FIELDS
from bulkhead_users.filedir import FileDirectory, parse_records
from bulkhead_users.pgdir import PostgresDirectory
from bulkhead_users.server import build_server
from bulkhead_users.settings import BUNDLED_DIRECTORY, UsersSettings
from bulkhead_users.sqlnames import quote_identifier
from tests.pg import PgCluster, PgDatabase, fresh_database, icu_available

pytestmark = [pytest.mark.anyio, pytest.mark.postgres]

CURSOR_SECRET = "the-same-cursor-key-for-both-backends"
RECORDS = parse_records(BUNDLED_DIRECTORY.read_bytes(), BUNDLED_DIRECTORY)
BUSIEST_MANAGER = Counter(record["manager_id"] for record in RECORDS if record["manager_id"]).most_common(1)[
    0
][0]
PRIVATE_FIELDS = [name for name in DEFAULT_FIELDS if name not in {"email", "location"}]
UNAVAILABLE = "The user directory database"

_COLUMN_TYPES = {"id": "text PRIMARY KEY", "groups": "text[] NOT NULL DEFAULT '{}'", "start_date": "date"}


async def load_table(
    connection: asyncpg.Connection,
    records: Sequence[Record],
    *,
    table: str = "users",
    columns: dict[str, str] | None = None,
    omit: Sequence[str] = (),
) -> None:
    """Create `table` (columns renamed by `columns`, fields in `omit` left out) and copy `records` in."""
    rename = columns or {}
    fields = [name for name in ALL_FIELDS if name not in omit]
    schema, _, name = table.rpartition(".")
    if schema:
        await connection.execute(f"CREATE SCHEMA IF NOT EXISTS {quote_identifier(schema)}")
    definitions = ", ".join(
        f"{quote_identifier(rename.get(field, field))} {_COLUMN_TYPES.get(field, 'text')}" for field in fields
    )
    await connection.execute(f"CREATE TABLE {quote_identifier(table)} ({definitions})")
    rows = [
        tuple(
            date.fromisoformat(record[field]) if field == "start_date" and record[field] else record[field]
            for field in fields
        )
        for record in records
    ]
    await connection.copy_records_to_table(
        name,
        schema_name=schema or "public",
        columns=[rename.get(field, field) for field in fields],
        records=rows,
    )


def make_settings(**overrides: Any) -> UsersSettings:
    return UsersSettings.model_validate({"audit": "off", "cursor_secret": CURSOR_SECRET, **overrides})


@asynccontextmanager
async def serving(settings: UsersSettings) -> AsyncGenerator[BulkheadServer]:
    """A server over the backend `settings` choose, opened as the CLI would open it."""
    directory = create_directory(settings)
    await directory.open()
    try:
        yield build_server(settings, directory)
    finally:
        await directory.aclose()


def error_text(result: CallToolResult) -> str:
    assert result.is_error, result.structured_content
    return "".join(getattr(block, "text", "") for block in result.content)


def outcome(result: CallToolResult) -> dict[str, Any]:
    """What a caller learns from one result: its structured content, or its error text."""
    if result.is_error:
        return {"error": error_text(result)}
    assert result.structured_content is not None
    return result.structured_content


async def every_page(client: Client, tool: str, arguments: dict[str, Any]) -> list[dict[str, Any]]:
    """The outcome of `tool`, then of each following page until next_cursor runs out."""
    pages: list[dict[str, Any]] = []
    cursor: str | None = None
    for _ in range(1000):
        result = await client.call_tool(tool, {**arguments, "cursor": cursor} if cursor else arguments)
        pages.append(outcome(result))
        cursor = pages[-1].get("next_cursor")
        if cursor is None:
            return pages
    raise AssertionError(f"{tool} {arguments} kept returning a next_cursor")


@contextmanager
def closed_port() -> Generator[int]:
    """A 127.0.0.1 port that refuses connections (bound, never listening) while the block runs."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as holder:
        holder.bind(("127.0.0.1", 0))
        yield int(holder.getsockname()[1])


@pytest.fixture(scope="module")
async def directory_db(pg_cluster: PgCluster) -> AsyncGenerator[PgDatabase]:
    """A database whose `users` table holds the bundled directory (read-only for the tests).

    Its default collation is linguistic (ICU en-US, where the server has ICU), where "josé" sorts
    before "josh": parity with the file backend then shows the backend orders by code point itself.
    """
    icu_locale = "en-US" if await icu_available(pg_cluster) else None
    async with fresh_database(pg_cluster, icu_locale=icu_locale) as database:
        connection = await database.connect()
        try:
            await load_table(connection, RECORDS)
        finally:
            await connection.close()
        yield database


@asynccontextmanager
async def login_role(
    database: PgDatabase, *, can_read: bool = True, columns: Sequence[str] | None = None
) -> AsyncGenerator[tuple[str, str]]:
    """A new login role with a password, (name, password); dropped afterwards.

    It may read the whole users table, or with `columns` only those columns of it.
    """
    name, password = f"reader_{secrets.token_hex(4)}", f"pw-{secrets.token_hex(12)}"
    admin = await database.connect()
    try:
        await admin.execute(f"CREATE ROLE {name} LOGIN PASSWORD '{password}'")
        if columns is not None:
            listed = ", ".join(quote_identifier(column) for column in columns)
            await admin.execute(f"GRANT SELECT ({listed}) ON users TO {name}")
        elif can_read:
            await admin.execute(f"GRANT SELECT ON users TO {name}")
        yield name, password
    finally:
        await admin.execute(f"DROP OWNED BY {name}")
        await admin.execute(f"DROP ROLE {name}")
        await admin.close()


PARITY_CALLS = [
    pytest.param("search_users", {"page_size": 100}, id="everyone-page-by-page"),
    pytest.param("search_users", {"query": "fischer"}, id="text"),
    pytest.param("search_users", {"query": "ENGINEER", "page_size": 25}, id="upper-case-text-paged"),
    pytest.param("search_users", {"query": "zoë"}, id="non-ascii-text"),
    pytest.param(
        "search_users",
        {"query": "@example.com", "sort": "start_date", "page_size": 100},
        id="text-in-email-by-start-date",
    ),
    pytest.param("search_users", {"department": "engineering", "location": "BERLIN"}, id="two-filters"),
    pytest.param(
        "search_users",
        {"group": "On-Call", "employment_type": "employee", "sort": "family_name", "page_size": 9},
        id="group-filter-by-family-name-paged",
    ),
    pytest.param("search_users", {"title": "software engineer", "sort": "location"}, id="title-by-location"),
    pytest.param(
        "search_users",
        {"employment_type": "contractor", "sort": "department", "page_size": 7},
        id="contractors-by-department-paged",
    ),
    pytest.param("search_users", {"sort": "title", "page_size": 100}, id="everyone-by-title"),
    pytest.param("search_users", {"sort": "id", "page_size": 100}, id="everyone-by-id"),
    pytest.param("search_users", {"query": "no such person"}, id="no-match"),
    pytest.param("search_users", {"sort": "phone"}, id="hidden-sort-refused"),
    pytest.param("search_users", {"cursor": "forged.cursor"}, id="forged-cursor-refused"),
    pytest.param("get_user", {"user": "u00001"}, id="user-by-id"),
    pytest.param("get_user", {"user": "IVAN.FISCHER@example.com"}, id="user-by-email"),
    pytest.param("get_user", {"user": "anika.santos"}, id="user-by-username"),
    pytest.param("get_user", {"user": "U00001"}, id="ids-are-case-sensitive"),
    pytest.param("get_user", {"user": "u99999"}, id="unknown-user"),
    pytest.param("get_manager_chain", {"user": "u00300"}, id="manager-chain"),
    pytest.param("get_manager_chain", {"user": "u00001"}, id="manager-chain-of-the-top"),
    pytest.param("get_manager_chain", {"user": "nobody@example.com"}, id="manager-chain-of-nobody"),
    pytest.param("list_direct_reports", {"user": "u00001", "page_size": 3}, id="direct-reports-paged"),
    pytest.param(
        "list_direct_reports",
        {"user": BUSIEST_MANAGER, "sort": "start_date", "page_size": 10},
        id="many-direct-reports-by-start-date",
    ),
    pytest.param("list_groups", {"page_size": 5}, id="groups-paged"),
    pytest.param("get_group_members", {"group": "Leadership", "page_size": 30}, id="group-members-paged"),
    pytest.param(
        "get_group_members",
        {"group": "all-hands", "sort": "start_date", "page_size": 100},
        id="everyone-in-a-group-by-start-date",
    ),
    pytest.param("get_group_members", {"group": "no-such-group"}, id="unknown-group"),
]


@pytest.mark.parametrize(("tool", "arguments"), PARITY_CALLS)
async def test_postgres_answers_exactly_as_the_file_backend_over_the_same_data(
    directory_db: PgDatabase, tool: str, arguments: dict[str, Any]
) -> None:
    async with (
        serving(make_settings(dsn=directory_db.dsn)) as pg_server,
        serving(make_settings()) as file_server,
        connect(pg_server) as pg_client,
        connect(file_server) as file_client,
    ):
        expected = await every_page(file_client, tool, arguments)
        actual = await every_page(pg_client, tool, arguments)
    assert actual == expected


async def test_paging_through_everyone_lists_every_row_of_the_table_once(directory_db: PgDatabase) -> None:
    async with serving(make_settings(dsn=directory_db.dsn)) as server, connect(server) as client:
        pages = await every_page(client, "search_users", {"page_size": 100})
    ids = [user["id"] for page in pages for user in page["users"]]
    assert len(pages) == 6
    assert sorted(ids) == sorted(record["id"] for record in RECORDS)


async def test_pages_past_the_end_still_report_the_real_totals(directory_db: PgDatabase) -> None:
    # Reachable through a cursor made before the data shrank; the file backend is the reference.
    pg_directory = PostgresDirectory(directory_db.dsn)
    file_directory = FileDirectory(BUNDLED_DIRECTORY)
    await pg_directory.open()
    await file_directory.open()
    try:
        everyone = Query(None, (), (), "display_name")
        assert await pg_directory.groups(1000, 5) == await file_directory.groups(1000, 5)
        assert await pg_directory.search(everyone, 1000, 5) == await file_directory.search(everyone, 1000, 5)
        assert (await pg_directory.groups(1000, 5))[1] == 12
    finally:
        await pg_directory.aclose()
        await file_directory.aclose()


async def test_null_entries_in_a_groups_array_are_left_out(pg_database: PgDatabase) -> None:
    connection = await pg_database.connect()
    try:
        await load_table(connection, RECORDS[:3])
        await connection.execute(
            "UPDATE users SET groups = ARRAY[NULL, 'solo', NULL]::text[] WHERE id = 'u00001'"
        )
    finally:
        await connection.close()
    async with serving(make_settings(dsn=pg_database.dsn)) as server, connect(server) as client:
        person = outcome(await client.call_tool("get_user", {"user": "u00001"}))
        groups = outcome(await client.call_tool("list_groups", {}))
        members = outcome(await client.call_tool("get_group_members", {"group": "solo"}))
    assert person["groups"] == ["solo"]
    assert None not in [group["name"] for group in groups["groups"]]
    assert {"name": "solo", "members": 1} in groups["groups"]
    assert [user["id"] for user in members["users"]] == ["u00001"]


async def test_a_table_in_another_schema_with_renamed_columns_is_read_through_the_column_map(
    pg_database: PgDatabase, tmp_path: Path
) -> None:
    connection = await pg_database.connect()
    try:
        await load_table(
            connection,
            RECORDS,
            table="hr.people",
            columns={"email": "mail", "display_name": "cn"},
            omit=("location",),
        )
    finally:
        await connection.close()
    reference = tmp_path / "directory.json"
    reference.write_text(json.dumps([{**record, "location": None} for record in RECORDS]))
    mapped = make_settings(dsn=pg_database.dsn, table="hr.people", columns=["email=mail", "display_name=cn"])
    calls: list[tuple[str, dict[str, Any]]] = [
        ("get_user", {"user": "Ivan.Fischer@example.com"}),
        ("search_users", {"query": "fischer", "sort": "display_name"}),
        ("search_users", {"location": "Berlin"}),
        ("search_users", {"sort": "location", "page_size": 100}),
        ("get_manager_chain", {"user": "u00300"}),
    ]
    async with (
        serving(mapped) as pg_server,
        serving(make_settings(directory=reference)) as file_server,
        connect(pg_server) as pg_client,
        connect(file_server) as file_client,
    ):
        person = outcome(await pg_client.call_tool("get_user", {"user": "u00001"}))
        for tool, arguments in calls:
            assert await every_page(pg_client, tool, arguments) == await every_page(
                file_client, tool, arguments
            ), (tool, arguments)
        in_berlin = outcome(await pg_client.call_tool("search_users", {"location": "Berlin"}))
    assert person["email"] == RECORDS[0]["email"]
    assert person["display_name"] == RECORDS[0]["display_name"]
    assert person["location"] is None
    assert in_berlin["total"] == 0


@pytest.mark.parametrize(
    ("table", "columns", "reason"),
    [
        pytest.param("nobody", [], 'table "nobody" does not exist', id="no-such-table"),
        pytest.param("hr.people", [], 'table "hr"."people" does not exist', id="no-such-schema"),
        pytest.param("users", ["id=uid"], 'has no id column "uid"', id="no-id-column"),
    ],
)
async def test_a_table_that_cannot_be_used_stops_the_start_with_one_line_naming_it(
    directory_db: PgDatabase,
    capsys: pytest.CaptureFixture[str],
    table: str,
    columns: list[str],
    reason: str,
) -> None:
    directory = create_directory(make_settings(dsn=directory_db.dsn, table=table, columns=columns))
    with pytest.raises(SystemExit) as exited:
        async with opened(directory):
            pytest.fail("the directory opened")
    stderr = capsys.readouterr().err
    assert exited.value.code == 2
    assert stderr.startswith("bulkhead-users: cannot open the directory (dsn): ")
    assert reason in stderr
    assert stderr.count("\n") == 1


async def test_a_role_without_read_access_stops_the_start_with_the_reason(
    pg_cluster: PgCluster, directory_db: PgDatabase, capsys: pytest.CaptureFixture[str]
) -> None:
    async with login_role(directory_db, can_read=False) as (role, password):
        dsn = f"postgresql://{role}:{password}@{pg_cluster.host}:{pg_cluster.port}/{directory_db.name}"
        with pytest.raises(SystemExit):
            async with opened(create_directory(make_settings(dsn=dsn))):
                pytest.fail("the directory opened")
    stderr = capsys.readouterr().err
    assert "permission denied for table users" in stderr
    assert password not in stderr


async def test_a_hidden_email_finds_nobody_and_reads_like_an_address_nobody_has(
    directory_db: PgDatabase,
) -> None:
    email = RECORDS[0]["email"]
    async with (
        serving(make_settings(dsn=directory_db.dsn, fields=PRIVATE_FIELDS)) as server,
        connect(server) as client,
    ):
        real = error_text(await client.call_tool("get_user", {"user": email}))
        made_up = error_text(await client.call_tool("get_user", {"user": "made.up@example.org"}))
    assert real.replace(email, "ADDRESS") == made_up.replace("made.up@example.org", "ADDRESS")
    assert "No user has the id or username" in real


async def test_filtering_or_sorting_by_a_hidden_field_is_refused_like_a_field_the_table_lacks(
    directory_db: PgDatabase, pg_database: PgDatabase
) -> None:
    connection = await pg_database.connect()
    try:
        await load_table(connection, RECORDS, omit=("email", "location"))
    finally:
        await connection.close()
    calls: list[dict[str, Any]] = [{"location": "Berlin"}, {"location": "Atlantis"}, {"sort": "location"}]
    texts: dict[str, list[str]] = {}
    for label, dsn in (("hidden", directory_db.dsn), ("absent", pg_database.dsn)):
        async with (
            serving(make_settings(dsn=dsn, fields=PRIVATE_FIELDS)) as server,
            connect(server) as client,
        ):
            texts[label] = [error_text(await client.call_tool("search_users", call)) for call in calls]
    assert texts["hidden"] == texts["absent"]
    assert texts["hidden"][0] == texts["hidden"][1].replace("Atlantis", "Berlin")
    assert "search_users has no argument 'location'" in texts["hidden"][0]
    assert not any("Berlin" in text or "Atlantis" in text for text in texts["hidden"])


async def test_no_result_of_any_tool_carries_a_hidden_value(directory_db: PgDatabase) -> None:
    calls: list[tuple[str, dict[str, Any]]] = [
        ("search_users", {"page_size": 100}),
        ("search_users", {"query": "example.com"}),
        ("search_users", {"query": "berlin"}),
        ("get_user", {"user": "u00001"}),
        ("get_user", {"user": "ivan.fischer"}),
        ("get_manager_chain", {"user": "u00300"}),
        ("list_direct_reports", {"user": BUSIEST_MANAGER, "page_size": 100}),
        ("get_group_members", {"group": "leadership", "page_size": 100}),
    ]
    outcomes: list[dict[str, Any]] = []
    async with (
        serving(make_settings(dsn=directory_db.dsn, fields=PRIVATE_FIELDS)) as server,
        connect(server) as client,
    ):
        for tool, arguments in calls:
            outcomes += await every_page(client, tool, arguments)
        resource = await client.read_resource("users://u00001")
    dumped = json.dumps(outcomes, ensure_ascii=False) + "".join(
        getattr(item, "text", "") for item in resource.contents
    )
    people: list[dict[str, Any]] = [
        person
        for page in outcomes
        for key in ("users", "managers", "reports")
        for person in page.get(key, [])
    ] + [page[key] for page in outcomes for key in ("user", "manager") if key in page]
    assert not any("error" in page for page in outcomes)
    assert len(people) > 600
    assert all(set(person) == {"id", *PRIVATE_FIELDS} for person in people)
    assert outcomes[6]["total"] == outcomes[7]["total"] == 0
    assert "example.com" not in dumped
    for location in {record["location"] for record in RECORDS}:
        assert location not in dumped


INJECTIONS = [
    "'",
    "''",
    '"',
    "'; DROP TABLE users; --",
    "Robert'); DROP TABLE users;--",
    "' OR '1'='1",
    '" OR ""="',
    "%",
    "%%",
    "_",
    "e_",
    "\\",
    "\\'",
    "a\\%b",
    "$1",
    "users.id",
    "ünïcødé ☃ 名前 🐘",
    "ZOË",
]


@pytest.mark.parametrize("value", INJECTIONS)
async def test_quotes_wildcards_backslashes_and_unicode_are_matched_literally(
    directory_db: PgDatabase, value: str
) -> None:
    calls: list[tuple[str, dict[str, Any]]] = [
        ("search_users", {"query": value}),
        ("search_users", {"query": f"fischer{value}"}),
        ("search_users", {"department": value}),
        ("search_users", {"group": value, "title": value}),
        ("get_group_members", {"group": value}),
        ("get_user", {"user": value}),
    ]
    async with (
        serving(make_settings(dsn=directory_db.dsn)) as pg_server,
        serving(make_settings()) as file_server,
        connect(pg_server) as pg_client,
        connect(file_server) as file_client,
    ):
        for tool, arguments in calls:
            assert await every_page(pg_client, tool, arguments) == await every_page(
                file_client, tool, arguments
            ), (tool, arguments)
        found = outcome(await pg_client.call_tool("search_users", {"query": value}))
    if not any(character.isalpha() for character in value):
        assert found["total"] == 0
    connection = await directory_db.connect()
    try:
        assert await connection.fetchval("SELECT count(*) FROM users") == len(RECORDS)
    finally:
        await connection.close()


async def test_a_database_restart_is_a_clear_error_and_then_calls_succeed_again(
    pg_cluster: PgCluster, directory_db: PgDatabase
) -> None:
    during: list[CallToolResult] = []
    after: list[CallToolResult] = []
    try:
        async with serving(make_settings(dsn=directory_db.dsn)) as server, connect(server) as client:
            before = await client.call_tool("get_user", {"user": "u00001"})
            await anyio.to_thread.run_sync(pg_cluster.stop)
            # The first call meets the pool's dead connection, the second a refused reconnect.
            during = [await client.call_tool("get_user", {"user": "u00001"}) for _ in range(2)]
            await anyio.to_thread.run_sync(pg_cluster.start)
            with anyio.fail_after(30):
                while len(after) < 2:
                    after.append(await client.call_tool("get_user", {"user": "u00001"}))
                    if not after[-1].is_error:
                        break
    finally:
        await anyio.to_thread.run_sync(pg_cluster.ensure_running)
    assert not before.is_error
    for result in during:
        text = error_text(result)
        assert UNAVAILABLE in text
        assert "try the request again" in text
        for leak in ("Traceback", "asyncpg", "postgresql://", directory_db.name, str(pg_cluster.port)):
            assert leak not in text
    assert not after[-1].is_error
    assert outcome(after[-1]) == outcome(before)


async def test_a_dsn_password_appears_in_no_result_error_text_or_log_record(
    pg_cluster: PgCluster,
    directory_db: PgDatabase,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)
    texts: list[str] = []
    async with login_role(directory_db) as (role, password):
        where = f"{pg_cluster.host}:{pg_cluster.port}"
        dsn = f"postgresql://{role}:{password}@{where}/{directory_db.name}"
        async with serving(make_settings(dsn=dsn, audit="stderr")) as server, connect(server) as client:
            for tool, arguments in [
                ("get_user", {"user": "u00001"}),
                ("get_user", {"user": "u99999"}),
                ("search_users", {"query": "fischer", "location": "nowhere"}),
                ("search_users", {"sort": "phone"}),
                ("search_users", {"cursor": "forged.cursor"}),
                ("get_group_members", {"group": "no-such-group"}),
            ]:
                texts.append((await client.call_tool(tool, arguments)).model_dump_json())
        with closed_port() as port:
            failing = [
                f"postgresql://{role}:{password}@127.0.0.1:{port}/{directory_db.name}",
                f"postgresql://{role}:{password}@{where}/no_such_database",
                f"postgresql://{role}:{password}/x@{where}/{directory_db.name}",
                f"postgresql://{role}:{password}@{where}:{password}/{directory_db.name}",
            ]
            for bad in failing:
                directory = create_directory(make_settings(dsn=bad))
                with pytest.raises((ValueError, UnavailableError)) as caught:
                    await directory.open()
                texts.append("".join(traceback.format_exception(caught.value)))
                with pytest.raises(SystemExit):
                    async with opened(create_directory(make_settings(dsn=bad))):
                        pytest.fail("the directory opened")
    stderr = capsys.readouterr().err
    texts += [stderr, caplog.text, *(repr(vars(record)) for record in caplog.records)]
    assert len(stderr.splitlines()) == len(failing)
    assert all(
        line.startswith("bulkhead-users: cannot open the directory (dsn): ") for line in stderr.splitlines()
    )
    assert any("audit" in vars(record) for record in caplog.records)
    for text in texts:
        assert password not in text
        assert password[:8] not in text


async def test_the_cli_with_an_unreachable_database_exits_with_one_stderr_line_without_the_password(
    tmp_path: Path,
) -> None:
    password = f"pw-{secrets.token_hex(12)}"
    errors = tmp_path / "stderr.txt"
    with closed_port() as port:
        arguments = ["--dsn", f"postgresql://reader:{password}@127.0.0.1:{port}/directory"]
        with errors.open("w", encoding="utf-8") as errlog, anyio.fail_after(60):
            transport = stdio_client(stdio_parameters("bulkhead_users", arguments), errlog=errlog)
            # The client fails with "Connection closed" (inside task-group exception groups).
            refused: list[ExceptionGroup[MCPError]] = []
            try:
                async with Client(transport) as client:
                    await client.list_tools()
            except* MCPError as group:
                refused.append(group)
            exited = await anyio.run_process(
                [sys.executable, "-m", "bulkhead_users", *arguments],
                check=False,
                env=server_environment(),
            )
    assert refused
    lines = errors.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("bulkhead-users: cannot open the directory (dsn): ")
    assert "cannot be reached" in lines[0]
    assert password not in lines[0]
    assert exited.returncode == 2
    assert exited.stdout == b""
    assert exited.stderr.decode().splitlines() == lines
