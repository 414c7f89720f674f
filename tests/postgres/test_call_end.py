"""A call's answer comes before its ROLLBACK; the connection goes back to the pool only after it."""

import itertools

import anyio
import asyncpg
import pytest

from bulkhead_postgres.database import Database, Limits
from bulkhead_postgres.guard import check_read_only
from tests.pg import PgDatabase

pytestmark = [pytest.mark.anyio, pytest.mark.postgres]

LIMITS = Limits(5000, 1000, 10_000, max_rows=100, max_bytes=100_000, max_cell_chars=100)


async def _states(admin: asyncpg.Connection, application: str) -> list[str]:
    rows = await admin.fetch(
        "SELECT state FROM pg_stat_activity WHERE application_name = $1 AND pid <> pg_backend_pid()",
        application,
    )
    return [str(row["state"]) for row in rows]


async def test_back_to_back_calls_on_one_connection_each_start_after_the_last_one_ended(
    pg_database: PgDatabase,
) -> None:
    database = Database(pg_database.dsn + "?application_name=call_end_one", LIMITS, pool_size=1)
    try:
        results = [await database.run(check_read_only(f"SELECT {n} AS n")) for n in range(20)]
        # A call that starts while the previous one is still rolling back waits for it; none fails.
        async with anyio.create_task_group() as tg:
            for n in range(10):
                tg.start_soon(database.run, check_read_only(f"SELECT {n} AS again"))
    finally:
        await database.close()
    assert [result.rows for result in results] == [[[n]] for n in range(20)]


async def test_every_call_ends_in_an_idle_connection_and_close_waits_for_the_last_one(
    pg_database: PgDatabase,
) -> None:
    application = "call_end_idle"
    database = Database(pg_database.dsn + f"?application_name={application}", LIMITS, pool_size=2)
    admin = await pg_database.connect()
    try:
        for n in range(5):
            await database.run(check_read_only(f"SELECT {n}"))
        with anyio.fail_after(10):
            for _ in itertools.count():
                states = await _states(admin, application)
                if states and all(state == "idle" for state in states):
                    break
                await anyio.sleep(0.01)
        await database.run(check_read_only("SELECT 'last'"))
        await database.close()
        with anyio.fail_after(10):
            for _ in itertools.count():
                if not await _states(admin, application):
                    break
                await anyio.sleep(0.01)
    finally:
        await admin.close()
        await database.close()
