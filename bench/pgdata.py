"""The PostgreSQL benchmark's database: the table, the roles, and the write attempts with their check.

Everything here talks to the throwaway cluster as its superuser (over TCP, trusted on loopback):
it builds the database once and, around every write attempt, takes a snapshot of what a write
could change, so an attempt counts as "through" only when the database really changed.
"""

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import asyncpg

DATABASE = "bench"
READER = "bench_reader"
"""A plain login with SELECT on the benchmark table: what every server gets for the timed runs."""
WRITER = "bench_writer"
"""Not a superuser, but it owns the scratch table and may create tables in `public`: with it, only a
server's own layers stand between a write attempt and the data."""

ROWS = 100_000
BIG = 1000
"""Rows of the big query."""

MARKER = Path(tempfile.gettempdir()) / f"bulkhead-bench-copy-{os.getpid()}"
"""The file `COPY ... TO PROGRAM` would create if a server let it run."""

WRITE_ATTEMPTS: tuple[str, ...] = (
    "DELETE FROM t2",
    "UPDATE t2 SET v = 'changed'",
    "WITH gone AS (DELETE FROM t2 RETURNING id) SELECT count(*) FROM gone",
    "CREATE TABLE t3 (x int)",
    "SELECT * INTO t4 FROM t2",
    "COMMIT; DELETE FROM t2",
    "COMMIT; DROP TABLE t2",
    "ROLLBACK; INSERT INTO t2 VALUES (99, 'injected')",
    "SET TRANSACTION READ WRITE; UPDATE t2 SET v = 'changed'; COMMIT",
    f"COPY (SELECT 1) TO PROGRAM 'touch {MARKER}'",
)
"""Ten ways to write through a "read-only" query tool, each against the scratch table `t2`."""

POINT_SQL = "SELECT * FROM t WHERE id = {key}"
POINT_PARAM_SQL = "SELECT * FROM t WHERE id = $1"
BIG_SQL = f"SELECT * FROM t WHERE id <= {BIG} ORDER BY id"


def label(key: int) -> str:
    """The `name` of row `key`: unique text a result must contain."""
    return f"item {key:06d}"


def point_key(i: int) -> int:
    """The i-th key of the point lookups: spread over the whole table, repeating only after ROWS."""
    return (i * 7919) % ROWS + 1


async def build(admin_dsn: str, database_dsn: str) -> None:
    """Create the database, the table of `ROWS` rows, and both roles."""
    admin = await asyncpg.connect(admin_dsn)
    try:
        await admin.execute(f"CREATE DATABASE {DATABASE}")
        await admin.execute(f"CREATE ROLE {READER} LOGIN")
        await admin.execute(f"CREATE ROLE {WRITER} LOGIN")
    finally:
        await admin.close()
    connection = await asyncpg.connect(database_dsn)
    try:
        await connection.execute(
            "CREATE TABLE t (id int PRIMARY KEY, name text NOT NULL, amount numeric(12, 2), "
            "score double precision, active boolean, created timestamptz, tags text[])"
        )
        await connection.execute(
            "INSERT INTO t SELECT g, 'item ' || lpad(g::text, 6, '0'), (g * 37 % 100000) / 100.0, "
            "g / 7.0, g % 3 = 0, timestamptz '2024-01-01 00:00+00' + g * interval '1 minute', "
            "ARRAY['a' || g % 10, 'b' || g % 7] FROM generate_series(1, $1) g",
            ROWS,
        )
        await connection.execute("VACUUM ANALYZE t")
        await connection.execute(f"GRANT SELECT ON t TO {READER}, {WRITER}")
        await connection.execute(f"GRANT CREATE ON SCHEMA public TO {WRITER}")
    finally:
        await connection.close()


async def reset_scratch(database_dsn: str) -> None:
    """Drop whatever the write attempts made and recreate `t2` (owned by the writer) with 10 rows."""
    MARKER.unlink(missing_ok=True)
    connection = await asyncpg.connect(database_dsn)
    try:
        await connection.execute("DROP TABLE IF EXISTS t2, t3, t4")
        await connection.execute("CREATE TABLE t2 (id int PRIMARY KEY, v text)")
        await connection.execute("INSERT INTO t2 SELECT g, 'row ' || g FROM generate_series(1, 10) g")
        await connection.execute(f"ALTER TABLE t2 OWNER TO {WRITER}")
        await connection.execute(f"GRANT SELECT ON t2 TO {READER}")
        await connection.execute(f"ALTER ROLE {READER} RESET ALL")
        await connection.execute(f"ALTER ROLE {WRITER} RESET ALL")
    finally:
        await connection.close()


@dataclass(frozen=True)
class Snapshot:
    """What a write attempt could change: the tables, `t2`'s rows, role settings, the marker file."""

    tables: tuple[str, ...]
    scratch: tuple[tuple[int, str], ...]
    role_settings: tuple[str, ...]
    marker: bool


async def snapshot(database_dsn: str) -> Snapshot:
    connection = await asyncpg.connect(database_dsn)
    try:
        tables = await connection.fetch(
            "SELECT relname FROM pg_class WHERE relnamespace = 'public'::regnamespace ORDER BY 1"
        )
        names = tuple(str(row["relname"]) for row in tables)
        scratch = await connection.fetch("SELECT id, v FROM t2 ORDER BY id") if "t2" in names else []
        settings = await connection.fetch("SELECT setconfig::text AS c FROM pg_db_role_setting ORDER BY 1")
    finally:
        await connection.close()
    return Snapshot(
        tables=names,
        scratch=tuple((int(row["id"]), str(row["v"])) for row in scratch),
        role_settings=tuple(str(row["c"]) for row in settings),
        marker=MARKER.exists(),
    )
