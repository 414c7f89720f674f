"""Fixtures for the bulkhead-postgres tests.

The cluster itself (`pg_cluster`, `pg_database`, `fresh_database`) comes from `tests/pg.py`.
"""

from collections.abc import AsyncIterator
from importlib.resources import files

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
