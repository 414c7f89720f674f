"""bulkhead-postgres as a real subprocess: start-up errors are one line, the DSN never leaks."""

import secrets
import subprocess
import sys
from collections.abc import AsyncIterator

import anyio
import pytest
from mcp import Client

from bulkhead.testing import http_server, server_environment
from tests.pg import PgCluster, PgDatabase, fresh_database

pytestmark = [pytest.mark.anyio, pytest.mark.postgres, pytest.mark.e2e]

PASSWORD = "Pa55-" + secrets.token_hex(8)


@pytest.fixture
async def reader_database(pg_cluster: PgCluster) -> AsyncIterator[tuple[PgDatabase, str]]:
    async with fresh_database(pg_cluster) as database:
        role = f"cli_{secrets.token_hex(4)}"
        admin = await database.connect()
        try:
            await admin.execute("CREATE TABLE public.t (id int PRIMARY KEY, v text)")
            await admin.execute("INSERT INTO public.t SELECT g, 'v' || g FROM generate_series(1, 10) g")
            await admin.execute(f"CREATE ROLE {role} LOGIN PASSWORD '{PASSWORD}'")
            await admin.execute(f"GRANT SELECT ON public.t TO {role}")
            await admin.execute(f"REVOKE CREATE ON SCHEMA public FROM PUBLIC, {role}")
        finally:
            await admin.close()
        yield database, database.cluster.dsn(database.name, user=role, password=PASSWORD)


async def _refused(args: list[str]) -> str:
    with anyio.fail_after(60):
        done = await anyio.run_process(
            [sys.executable, "-m", "bulkhead_postgres", *args],
            env=server_environment(),
            stdin=subprocess.DEVNULL,
            check=False,
        )
    assert done.returncode == 2
    assert done.stdout == b""
    lines = done.stderr.decode().strip().splitlines()
    assert "Traceback" not in done.stderr.decode()
    return lines[-1]


async def test_the_server_answers_over_http_and_its_dsn_never_appears(
    reader_database: tuple[PgDatabase, str],
) -> None:
    _, dsn = reader_database
    async with (
        http_server("bulkhead_postgres", ["--dsn", dsn], startup_timeout=60) as server,
        Client(server.mcp_url, mode="legacy") as client,
    ):
        ok = await client.call_tool("query", {"sql": "SELECT count(*) FROM t"})
        failed = await client.call_tool("query", {"sql": "SELECT * FROM missing_table"})
        rejected = await client.call_tool("query", {"sql": "DROP TABLE t"})
    assert ok.structured_content is not None
    assert ok.structured_content["rows"] == [[10]]
    assert failed.is_error
    assert rejected.is_error
    everything = "\n".join(server.stderr_lines) + str(failed.content) + str(rejected.content)
    assert PASSWORD not in everything


@pytest.mark.parametrize(
    "dsn",
    [
        f"postgresql://reader:{PASSWORD}@127.0.0.1:1/db",
        f"postgresql://reader:{PASSWORD}@127.0.0.1:99999/db",
        f"postgresql://reader:{PASSWORD}/with/slash@127.0.0.1/db",
        f"not a dsn {PASSWORD}",
    ],
)
async def test_an_unusable_dsn_stops_the_start_with_one_line_and_no_password(dsn: str) -> None:
    line = await _refused(["--dsn", dsn])
    assert line.startswith("bulkhead-postgres: ")
    assert "dsn" in line
    assert PASSWORD not in line


async def test_a_superuser_dsn_is_refused_with_the_fix(pg_cluster: PgCluster) -> None:
    line = await _refused(["--dsn", pg_cluster.dsn()])
    assert "superuser" in line
    assert "--print-setup-sql" in line


async def test_print_setup_sql_prints_the_role_recipe_and_exits() -> None:
    with anyio.fail_after(30):
        done = await anyio.run_process(
            [sys.executable, "-m", "bulkhead_postgres", "--print-setup-sql"], env=server_environment()
        )
    assert b"default_transaction_read_only" in done.stdout
    assert b"GRANT SELECT ON ALL TABLES" in done.stdout
