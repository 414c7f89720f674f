"""Fixtures for the bulkhead-postgres tests.

The cluster itself (`pg_cluster`, `pg_database`, `fresh_database`) comes from `tests/pg.py`.
"""

import secrets
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from importlib.resources import files

import asyncpg
import pytest

from tests.pg import PgCluster, PgDatabase, fresh_database

# --------------------------------------------------------------------------------------------
# The demo database
# --------------------------------------------------------------------------------------------

DEMO_SQL = files("bulkhead_postgres").joinpath("sql", "demo.sql").read_text(encoding="utf-8")
"""The demo schema and its rows (`bulkhead_postgres/sql/demo.sql`)."""


@pytest.fixture(scope="session")
async def demo_database(pg_cluster: PgCluster) -> AsyncIterator[PgDatabase]:
    """A database of the session cluster loaded with demo.sql: shared, so never write to it."""
    async with fresh_database(pg_cluster) as database:
        connection = await database.connect()
        try:
            # Our own trusted script: a multi-statement execute() is fine for it.
            await connection.execute(DEMO_SQL)
        finally:
            await connection.close()
        yield database


# --------------------------------------------------------------------------------------------
# A database of its own with a read-only login role
# --------------------------------------------------------------------------------------------


@dataclass
class Shop:
    """A fresh database and the login role (`reader`) that may only read its `shop` schema."""

    database: PgDatabase
    reader: str

    @property
    def reader_dsn(self) -> str:
        return self.database.cluster.dsn(self.database.name, user=self.reader)

    async def admin(self) -> asyncpg.Connection:
        return await self.database.connect()


@asynccontextmanager
async def shop_database(
    pg_cluster: PgCluster, schema: str, extra_grants: Sequence[str] = ()
) -> AsyncGenerator[Shop]:
    """`schema` (which creates schema `shop`) in a fresh database, read by a new role.

    `extra_grants` run after the standard ones, with `{reader}` standing for the role's name. At
    the end the role's sessions are ended, so the database can be dropped.
    """
    async with fresh_database(pg_cluster) as database:
        reader = f"reader_{secrets.token_hex(4)}"
        connection = await database.connect()
        try:
            await connection.execute(schema)
            await connection.execute(f"CREATE ROLE {reader} LOGIN")
            await connection.execute(f'GRANT CONNECT ON DATABASE "{database.name}" TO {reader}')
            await connection.execute(f"GRANT USAGE ON SCHEMA shop TO {reader}")
            await connection.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA shop TO {reader}")
            await connection.execute(f"REVOKE CREATE ON SCHEMA public FROM PUBLIC, {reader}")
            for grant in extra_grants:
                await connection.execute(grant.format(reader=reader))
        finally:
            await connection.close()
        yield Shop(database, reader)
        admin = await asyncpg.connect(pg_cluster.dsn())
        try:
            await admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1", reader
            )
        finally:
            await admin.close()
