"""bulkhead.pgcluster: finding PostgreSQL's programs and running a throwaway cluster with them.

The session's `pg_cluster` fixture only lends its program directory here (and skips these tests,
or fails them under CI=true, where there is none); every test starts clusters of its own.
"""

import os
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import unquote, urlsplit

import anyio.to_thread
import asyncpg
import pytest

from bulkhead.pgcluster import PROGRAMS, PgClusterError, ThrowawayCluster, find_bindir
from tests.pg import PgCluster

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
async def cluster(pg_cluster: PgCluster) -> AsyncIterator[ThrowawayCluster]:
    """A trust-authentication cluster of this module's own (tests here stop and restart it)."""
    own = ThrowawayCluster(pg_cluster.bindir)
    await anyio.to_thread.run_sync(own.start)
    try:
        yield own
    finally:
        await anyio.to_thread.run_sync(own.destroy)


@pytest.fixture
def failing_bindir() -> Iterator[Path]:
    """A program directory whose `initdb` always fails (world-readable: root runs it as `postgres`)."""
    directory = Path(tempfile.mkdtemp(prefix="bulkhead-fake-bin-"))
    directory.chmod(0o755)
    for name in PROGRAMS:
        program = directory / name
        program.write_text(f'#!/bin/sh\necho "{name}: simulated failure" >&2\nexit 1\n')
        program.chmod(0o755)
    try:
        yield directory
    finally:
        for program in directory.iterdir():
            program.unlink()
        directory.rmdir()


# --------------------------------------------------------------------------------------------
# Finding the programs
# --------------------------------------------------------------------------------------------


def test_a_bogus_program_directory_is_a_clear_error_naming_it_and_its_setting() -> None:
    with pytest.raises(PgClusterError) as caught:
        find_bindir("/nonexistent/pg/bin", setting="EXAMPLE_BINDIR")
    message = str(caught.value)
    assert "EXAMPLE_BINDIR=/nonexistent/pg/bin" in message
    assert "initdb" in message


def test_a_cluster_refuses_a_program_directory_without_the_programs(tmp_path: Path) -> None:
    with pytest.raises(PgClusterError, match="initdb, pg_ctl, postgres"):
        ThrowawayCluster(tmp_path)


@pytest.mark.postgres
def test_the_program_directory_found_by_search_holds_every_program(pg_cluster: PgCluster) -> None:
    found = find_bindir()
    assert all(os.access(found / name, os.X_OK) for name in PROGRAMS)


# --------------------------------------------------------------------------------------------
# Starting, stopping and removing a cluster
# --------------------------------------------------------------------------------------------


@pytest.mark.postgres
async def test_a_started_cluster_accepts_the_superuser_over_tcp_and_over_its_socket(
    cluster: ThrowawayCluster,
) -> None:
    assert cluster.is_running()
    for dsn in (cluster.dsn(), cluster.socket_dsn()):
        connection = await asyncpg.connect(dsn)
        try:
            assert await connection.fetchval("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
        finally:
            await connection.close()
    assert "ready to accept connections" in cluster.log_file.read_text()


@pytest.mark.postgres
async def test_a_dsn_encodes_awkward_database_user_and_password_names(cluster: ThrowawayCluster) -> None:
    database, user, password = "my db/2024", "reader@example", "p:w/?#@ %"
    admin = await asyncpg.connect(cluster.dsn())
    try:
        await admin.execute(f'CREATE DATABASE "{database}"')
        await admin.execute(f"CREATE ROLE \"{user}\" LOGIN PASSWORD '{password}'")
    finally:
        await admin.close()
    dsn = cluster.dsn(database, user=user, password=password)
    parts = urlsplit(dsn)
    assert (unquote(parts.username or ""), unquote(parts.password or "")) == (user, password)
    assert unquote(parts.path[1:]) == database
    connection = await asyncpg.connect(dsn)
    try:
        assert tuple(await connection.fetchrow("SELECT current_user, current_database()") or ()) == (
            user,
            database,
        )
    finally:
        await connection.close()


@pytest.mark.postgres
async def test_a_stopped_cluster_starts_again_on_the_same_port_with_its_data(
    cluster: ThrowawayCluster,
) -> None:
    port = cluster.port
    admin = await asyncpg.connect(cluster.dsn())
    try:
        await admin.execute(
            "CREATE TABLE survives_restart (n integer); INSERT INTO survives_restart VALUES (7)"
        )
    finally:
        await admin.close()
    await anyio.to_thread.run_sync(cluster.stop)
    try:
        assert not cluster.is_running()
        with pytest.raises(OSError):  # noqa: PT011 -- the refusal's errno differs between platforms
            await asyncpg.connect(cluster.dsn())
    finally:
        await anyio.to_thread.run_sync(cluster.start)
    assert cluster.port == port
    admin = await asyncpg.connect(cluster.dsn())
    try:
        assert await admin.fetchval("SELECT n FROM survives_restart") == 7
    finally:
        await admin.close()


@pytest.mark.postgres
async def test_leaving_the_with_block_stops_the_cluster_and_removes_its_directory(
    pg_cluster: PgCluster,
) -> None:
    def run() -> ThrowawayCluster:
        with ThrowawayCluster(pg_cluster.bindir) as own:
            assert own.is_running()
            assert own.data_dir.is_dir()
            return own

    own = await anyio.to_thread.run_sync(run)
    assert not own.base_dir.exists()
    assert not own.is_running()
    own.destroy()
    with pytest.raises(PgClusterError, match="destroyed"):
        own.start()


@pytest.mark.postgres
async def test_password_auth_on_tcp_refuses_the_passwordless_superuser_but_the_socket_admits_it(
    pg_cluster: PgCluster,
) -> None:
    own = ThrowawayCluster(pg_cluster.bindir, host_auth="scram-sha-256")
    await anyio.to_thread.run_sync(own.start)
    try:
        with pytest.raises(asyncpg.InvalidAuthorizationSpecificationError):
            await asyncpg.connect(own.dsn())
        connection = await asyncpg.connect(own.socket_dsn())
        await connection.close()
    finally:
        await anyio.to_thread.run_sync(own.destroy)


def test_a_cluster_that_cannot_be_created_says_why_and_leaves_no_directory(failing_bindir: Path) -> None:
    own = ThrowawayCluster(failing_bindir)
    with pytest.raises(PgClusterError, match=r"initdb failed: initdb: simulated failure"):
        own.start()
    assert not own.base_dir.exists()
    assert not own.is_running()


def test_a_cluster_not_yet_started_has_no_port_or_directory(failing_bindir: Path) -> None:
    own = ThrowawayCluster(failing_bindir)
    assert not own.is_running()
    with pytest.raises(PgClusterError, match="not been started"):
        own.dsn()
    with pytest.raises(PgClusterError, match="not been started"):
        _ = own.base_dir
    own.destroy()
