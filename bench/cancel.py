"""How reliably a cancelled bulkhead-postgres call stops its statement on the server, and how fast.

One throwaway cluster, a table of 100,000 rows, a read-only role. Each round calls `query` with a
statement that would run for hours (a cross join counted), cancels the call, and watches
`pg_stat_activity` until the reader's backend no longer runs it. Two cancel points:

- `active`: as soon as the statement shows up as active in `pg_stat_activity`, the moment at which
  a single cancel request is most often lost (the backend is still handling Parse / Bind);
- `random`: after a random delay of 0-30 ms from the start of the call, anywhere in its life
  (some of these calls are cancelled before their statement reaches the server at all).

A round counts as "stopped" when the backend went idle before `--stop-limit` seconds (far below the
statement timeout); the time to stop runs from the cancel to the first poll that sees it idle (5 ms
polls). Transports: the real console script over stdio or Streamable HTTP (handshake era or
2026-07-28), or in process (`Database.run` without MCP).

    .venv/bin/python bench/cancel.py --rounds 20
    .venv/bin/python bench/cancel.py --rounds 5 --transports inproc,stdio --eras legacy

Linux only (the throwaway cluster); everything is local (127.0.0.1) and bounded.
"""

import argparse
import itertools
import random
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncGenerator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import anyio
import asyncpg
from mcp import Client

from bulkhead.pgcluster import ThrowawayCluster
from bulkhead.testing import http_server, stdio_parameters
from bulkhead_postgres.database import Database, Limits
from bulkhead_postgres.guard import check_read_only

DATABASE = "cancelbench"
READER = "cancel_reader"
STATEMENT_TIMEOUT_MS = 120_000
POLL = 0.005
CANCEL_POINTS = ("active", "random")


@dataclass
class Tally:
    """The outcome of the rounds of one transport, era and cancel point."""

    label: str
    stopped: list[float] = field(default_factory=list[float])
    ran_on: int = 0

    def line(self) -> str:
        rounds = len(self.stopped) + self.ran_on
        if not self.stopped:
            times = "-"
        else:
            p50 = statistics.median(self.stopped) * 1000
            times = f"{p50:8.1f} {max(self.stopped) * 1000:8.1f}"
        return f"{self.label:<34} {len(self.stopped):>3}/{rounds:<3} {times}"


class Caller(Protocol):
    async def __call__(self, sql: str) -> object: ...


async def build(cluster: ThrowawayCluster) -> None:
    admin = await asyncpg.connect(cluster.dsn())
    try:
        await admin.execute(f"CREATE DATABASE {DATABASE}")
        await admin.execute(f"CREATE ROLE {READER} LOGIN")
    finally:
        await admin.close()
    connection = await asyncpg.connect(cluster.dsn(DATABASE))
    try:
        await connection.execute("CREATE TABLE big AS SELECT g AS id FROM generate_series(1, 100000) g")
        await connection.execute("ANALYZE big")
        await connection.execute(f"GRANT SELECT ON big TO {READER}")
        await connection.execute(f"REVOKE CREATE ON SCHEMA public FROM PUBLIC, {READER}")
    finally:
        await connection.close()


def statement(tag: str) -> str:
    return f"SELECT '{tag}' AS tag, count(*) FROM big a, big b WHERE a.id < b.id"


async def active(monitor: asyncpg.Connection, tag: str) -> bool:
    found = await monitor.fetchval(
        "SELECT EXISTS (SELECT FROM pg_stat_activity WHERE usename = $1 AND state = 'active' "
        "AND position($2 in query) > 0)",
        READER,
        tag,
    )
    return bool(found)


async def one_round(
    call: Caller, monitor: asyncpg.Connection, point: str, stop_limit: float, tally: Tally
) -> None:
    tag = f"cancel-{random.getrandbits(48):012x}"
    cancelled_at = 0.0
    async with anyio.create_task_group() as tg:
        tg.start_soon(call, statement(tag))
        if point == "active":
            with anyio.fail_after(30):
                for _ in itertools.count():
                    if await active(monitor, tag):
                        break
                    await anyio.sleep(POLL)
        else:
            await anyio.sleep(random.uniform(0, 0.03))
        cancelled_at = time.perf_counter()
        tg.cancel_scope.cancel()
    while time.perf_counter() - cancelled_at < stop_limit:
        if not await active(monitor, tag):
            tally.stopped.append(time.perf_counter() - cancelled_at)
            return
        await anyio.sleep(POLL)
    tally.ran_on += 1
    # Let it go before the next round: a statement that ran on would skew the next one.
    await monitor.execute(
        "SELECT pg_cancel_backend(pid) FROM pg_stat_activity "
        "WHERE usename = $1 AND position($2 in query) > 0",
        READER,
        tag,
    )


@asynccontextmanager
async def caller(transport: str, era: str, dsn: str, audit: Path) -> AsyncGenerator[Caller]:
    args = ["--audit", str(audit), "--statement-timeout-ms", str(STATEMENT_TIMEOUT_MS)]
    env = {"BULKHEAD_POSTGRES_DSN": dsn}
    if transport == "inproc":
        limits = Limits(
            STATEMENT_TIMEOUT_MS, 1000, 10_000, max_rows=10, max_bytes=100_000, max_cell_chars=100
        )
        database = Database(dsn, limits, pool_size=2)

        async def run(sql: str) -> object:
            return await database.run(check_read_only(sql))

        try:
            yield run
        finally:
            await database.close()
        return
    if transport == "stdio":
        async with Client(stdio_parameters("bulkhead_postgres", args, env), mode=era) as client:
            yield _tool_caller(client)
        return
    async with (
        http_server("bulkhead_postgres", args, env) as server,
        Client(server.mcp_url, mode=era) as client,
    ):
        yield _tool_caller(client)


def _tool_caller(client: Client) -> Caller:
    async def run(sql: str) -> object:
        return await client.call_tool("query", {"sql": sql})

    return run


async def run(args: argparse.Namespace) -> None:
    transports = [t.strip() for t in args.transports.split(",")]
    eras = [e.strip() for e in args.eras.split(",")]
    tallies: list[Tally] = []
    with ThrowawayCluster() as cluster, tempfile.TemporaryDirectory(prefix="bulkhead-cancel-") as tmp:
        await build(cluster)
        dsn = cluster.dsn(DATABASE, user=READER)
        monitor = await asyncpg.connect(cluster.dsn(DATABASE))
        try:
            for transport in transports:
                for era in ["-"] if transport == "inproc" else eras:
                    async with caller(transport, era, dsn, Path(tmp) / "audit.jsonl") as call:
                        await call("SELECT 1")  # connected, warm
                        for point in CANCEL_POINTS:
                            tally = Tally(f"{transport} {era} cancel@{point}")
                            for _ in range(args.rounds):
                                await one_round(call, monitor, point, args.stop_limit, tally)
                            tallies.append(tally)
                            print(tally.line(), file=sys.stderr, flush=True)
        finally:
            await monitor.close()
    print(
        f"cancelled calls whose statement stopped within {args.stop_limit:g} s (statement timeout "
        f"{STATEMENT_TIMEOUT_MS // 1000} s); time from the cancel to an idle backend, ms"
    )
    print(f"{'transport era cancel point':<34} {'stopped':<7} {'p50':>8} {'max':>8}")
    for tally in tallies:
        print(tally.line())


def parse(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=20, help="cancelled calls per transport, era and point")
    parser.add_argument("--transports", default="inproc,stdio,http", help="subset of inproc,stdio,http")
    parser.add_argument("--eras", default="legacy,2026-07-28", help="protocol eras for stdio and http")
    parser.add_argument(
        "--stop-limit", type=float, default=10.0, help="seconds after which a statement counts as running on"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args: Any = parse(argv)
    anyio.run(run, args)


if __name__ == "__main__":
    main()
