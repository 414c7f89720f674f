"""A real, throwaway PostgreSQL cluster for the test session, and fresh databases in it.

A thin pytest layer over `bulkhead.pgcluster`, which holds the machinery (finding the server
programs, running them as the `postgres` OS user under root, the temp directory, the port).

`pg_cluster` (session) starts a `ThrowawayCluster` with trust authentication (superuser
`postgres`, TCP on 127.0.0.1) and at the end of the session stops it and removes its directory.
`pg_database` (function) is a new, empty database in that cluster, dropped afterwards;
`fresh_database` does the same for fixtures of a wider scope.

The server programs are found by `bulkhead.pgcluster.find_bindir`, first of all in
`BULKHEAD_TEST_PG_BINDIR` (a directory holding `initdb`, `pg_ctl` and `postgres`). That variable
is read once, when the session fixture starts: the per-test environment isolation strips
BULKHEAD_* variables from tests, not from the session.

Without PostgreSQL the tests that need it skip with the reason; under `CI=true` they fail instead,
so a green CI run always means the database tests ran.
"""

import os
import re
import secrets
import subprocess
from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import NoReturn

import anyio.to_thread
import asyncpg
import pytest

from bulkhead.pgcluster import PgClusterError, ThrowawayCluster, find_bindir

__all__ = [
    "BINDIR_VARIABLE",
    "PgCluster",
    "PgDatabase",
    "PgUnavailableError",
    "fresh_database",
    "icu_available",
    "pg_cluster",
    "pg_database",
    "start_cluster",
]

BINDIR_VARIABLE = "BULKHEAD_TEST_PG_BINDIR"
"""The environment variable that names the directory of the PostgreSQL server programs."""

PgCluster = ThrowawayCluster
"""The session cluster's type, under the name the tests have always used."""

PgUnavailableError = PgClusterError
"""PostgreSQL cannot be found or started here; the message says why."""


def start_cluster(explicit_bindir: str | None) -> ThrowawayCluster:
    """Find the programs, create a trust-authentication cluster in a new temp directory, and start it.

    Raises:
        PgClusterError: the programs are missing or the cluster would not start.
    """
    cluster = ThrowawayCluster(find_bindir(explicit_bindir, setting=BINDIR_VARIABLE))
    cluster.start()
    return cluster


def _unavailable(reason: str) -> NoReturn:
    message = f"PostgreSQL is not available: {reason}"
    if os.environ.get("CI") == "true":
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    """The session's throwaway PostgreSQL cluster (skips, or fails under CI=true, without one)."""
    try:
        cluster = start_cluster(os.environ.get(BINDIR_VARIABLE))
    except (PgClusterError, OSError, subprocess.SubprocessError) as exc:
        _unavailable(str(exc))
    try:
        yield cluster
    finally:
        cluster.destroy()


@dataclass(frozen=True)
class PgDatabase:
    """A database of its own inside the session's cluster."""

    cluster: PgCluster
    name: str

    @property
    def dsn(self) -> str:
        """A superuser connection string for this database."""
        return self.cluster.dsn(self.name)

    async def connect(self) -> asyncpg.Connection:
        """A new superuser connection to this database (close it when done)."""
        return await asyncpg.connect(self.dsn)


async def icu_available(cluster: PgCluster) -> bool:
    """Whether databases can be created with an ICU collation (PostgreSQL 15+ built with ICU)."""
    admin = await asyncpg.connect(cluster.dsn())
    try:
        if admin.get_server_version().major < 15:
            return False
        return bool(await admin.fetchval("SELECT count(*) FROM pg_collation WHERE collprovider = 'i'"))
    finally:
        await admin.close()


@asynccontextmanager
async def fresh_database(cluster: PgCluster, *, icu_locale: str | None = None) -> AsyncGenerator[PgDatabase]:
    """A new empty database for the duration of the block, dropped afterwards (connections and all).

    With `icu_locale` (for example `en-US`) its default collation is that ICU locale's, as on
    many production servers, instead of the cluster's byte-order "C" locale.
    """
    name = f"test_{secrets.token_hex(6)}"
    options = ""
    if icu_locale is not None:
        if not re.fullmatch(r"[A-Za-z0-9_-]+", icu_locale):
            raise ValueError(f"not an ICU locale name: {icu_locale!r}")
        options = f" TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE '{icu_locale}'"
    admin = await asyncpg.connect(cluster.dsn())
    try:
        await admin.execute(f'CREATE DATABASE "{name}"{options}')
    finally:
        await admin.close()
    try:
        yield PgDatabase(cluster, name)
    finally:
        if await anyio.to_thread.run_sync(cluster.is_running):
            admin = await asyncpg.connect(cluster.dsn())
            try:
                await admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = $1 AND pid <> pg_backend_pid()",
                    name,
                )
                await admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
            finally:
                await admin.close()


@pytest.fixture
async def pg_database(pg_cluster: PgCluster) -> AsyncIterator[PgDatabase]:
    """A new empty database for one test."""
    async with fresh_database(pg_cluster) as database:
        yield database
