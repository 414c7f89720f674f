"""PostgreSQL benchmark: bulkhead-postgres against its peers, on one database, in one run.

One throwaway cluster, one database (`t`: 100,000 rows of a few typed columns), one read-only role
(`bench_reader`: LOGIN and SELECT, nothing else), the same queries for every server:

- over stdio, one fresh server process per server, client and round: a point lookup
  (`SELECT * FROM t WHERE id = <k>`, k varying; for bulkhead also with `$1` and `params`) and a
  1,000-row query, first through the SDK's own client (`mcp.Client`, handshake era), then through
  a bare JSON-RPC client (see `pgservers`). Calls per second, p50 / p99 latency, server CPU per
  call (user + system time of the server's process tree, from /proc), CPU per call of the
  PostgreSQL backends serving it and of the client, and peak RSS. Rounds alternate between
  servers; the table shows the median of the rounds. Every result is checked for its rows.
- in this process, without MCP: the same queries on a bare pooled asyncpg connection, and
  bulkhead's own safety path (`check_read_only` + `Database.run`: read-only transaction,
  set_config, prepare, portal fetch, JSON values, rollback), interleaved call by call.
- ten write attempts per server against a scratch table, with a role that could write it
  (`bench_writer`, owner of `t2`, not a superuser: only the server's own layers are in the way)
  and with the read-only role; an attempt counts when the database changed (checked before and
  after each one).

Peers are installed from the registries by name (`sh bench/peers/install.sh`):
`@modelcontextprotocol/server-postgres` (npm, archived; started with the DSN as its argument) and
`postgres-mcp` (PyPI, in its own venv, `--access-mode=restricted`, `DATABASE_URI`). A peer that is
not installed or cannot run gets a row saying why.

    .venv/bin/python bench/postgres.py
    .venv/bin/python bench/postgres.py --rounds 1 --calls 300 --servers bulkhead,node

Everything is bounded (fixed counts and a time cap per scenario) and local (127.0.0.1). Linux only.
"""

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import anyio
import asyncpg

import pgdata
from bulkhead.pgcluster import ThrowawayCluster
from bulkhead_postgres.database import Database, Limits
from bulkhead_postgres.guard import check_read_only
from bulkhead_postgres.settings import PostgresSettings
from pgreport import BIG, PARAMS, POINT, Overhead, Row, WriteRow, percentile, report
from pgservers import MODES, Caller, CallFailedError, Mode, Target, reason, session, targets
from procfs import cpu_seconds, own_cpu_seconds, peak_rss_mib

# --- timed scenarios ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    arguments: dict[str, Any]
    present: tuple[str, ...]
    absent: tuple[str, ...] = ()


@dataclass(frozen=True)
class Scenario:
    name: str
    make: Callable[[Target, int], Request]
    big: bool = False
    needs_params: bool = False


def point_literal(target: Target, i: int) -> Request:
    del target
    key = pgdata.point_key(i)
    return Request({"sql": pgdata.POINT_SQL.format(key=key)}, (pgdata.label(key),))


def point_param(target: Target, i: int) -> Request:
    del target
    key = pgdata.point_key(i)
    return Request({"sql": pgdata.POINT_PARAM_SQL, "params": [key]}, (pgdata.label(key),))


def big(target: Target, i: int) -> Request:
    del i
    return Request(
        {"sql": pgdata.BIG_SQL, **target.big_arguments},
        (pgdata.label(1), pgdata.label(pgdata.BIG)),
        (pgdata.label(pgdata.BIG + 1),),
    )


SCENARIOS = (
    Scenario(POINT, point_literal),
    Scenario(PARAMS, point_param, needs_params=True),
    Scenario(BIG, big, big=True),
)


@dataclass
class Measured:
    latencies: list[float]
    wall: float
    server_cpu: float
    client_cpu: float
    db_cpu: float
    rss: float


class Backends:
    """CPU time of the PostgreSQL backends a role has open (the server's connections)."""

    def __init__(self, monitor: asyncpg.Connection, role: str) -> None:
        self.monitor = monitor
        self.role = role

    async def cpu(self) -> float:
        rows = await self.monitor.fetch(
            "SELECT pid FROM pg_stat_activity WHERE usename = $1 AND backend_type = 'client backend'",
            self.role,
        )
        return sum(cpu_seconds(int(row["pid"])) for row in rows)


async def checked_call(caller: Caller, request: Request) -> float:
    started = time.perf_counter()
    text, is_error = await caller.call(request.arguments)
    elapsed = time.perf_counter() - started
    if is_error or not all(p in text for p in request.present) or any(a in text for a in request.absent):
        raise CallFailedError(f"unexpected result{' (error)' if is_error else ''}: {text[:200]}")
    return elapsed


async def scenario_run(
    caller: Caller, pid: int, target: Target, scenario: Scenario, args: argparse.Namespace, db: Backends
) -> Measured:
    calls = args.big_calls if scenario.big else args.calls
    for i in range(args.warmup):
        await checked_call(caller, scenario.make(target, calls + i))
    cpu0, db0, own0 = cpu_seconds(pid), await db.cpu(), own_cpu_seconds()
    started = time.perf_counter()
    deadline = started + args.seconds
    latencies: list[float] = []
    for i in range(calls):
        latencies.append(await checked_call(caller, scenario.make(target, i)))
        if time.perf_counter() > deadline:
            break
    wall = time.perf_counter() - started
    server_cpu, client_cpu = cpu_seconds(pid) - cpu0, own_cpu_seconds() - own0
    return Measured(latencies, wall, server_cpu, client_cpu, await db.cpu() - db0, peak_rss_mib(pid))


def row_from(target: Target, label: str, rounds: list[Measured]) -> Row:
    def per_call(values: list[tuple[float, int]]) -> float:
        return statistics.median(v / n * 1000 for v, n in values)

    calls = [len(m.latencies) for m in rounds]
    return Row(
        server=target.name,
        scenario=label,
        count=sum(calls),
        calls_per_s=statistics.median(len(m.latencies) / m.wall for m in rounds),
        p50_ms=statistics.median(statistics.median(m.latencies) * 1000 for m in rounds),
        p99_ms=statistics.median(percentile(m.latencies, 0.99) * 1000 for m in rounds),
        cpu_ms=per_call([(m.server_cpu, n) for m, n in zip(rounds, calls, strict=True)]),
        db_cpu_ms=per_call([(m.db_cpu, n) for m, n in zip(rounds, calls, strict=True)]),
        client_cpu_ms=per_call([(m.client_cpu, n) for m, n in zip(rounds, calls, strict=True)]),
        rss_mib=max(m.rss for m in rounds),
        note=f"median of {len(rounds)} rounds" if len(rounds) > 1 else "",
    )


Key = tuple[str, Mode, str]
"""(server, client mode, scenario)."""


@dataclass
class Tally:
    results: dict[Key, list[Measured]]
    failed: dict[Key, str]


async def timed(
    servers: list[Target], modes: list[Mode], args: argparse.Namespace, errlog: TextIO, db: Backends
) -> list[Row]:
    tally = Tally({}, {})
    for target in (t for t in servers if t.missing):
        for mode in modes:
            tally.failed.update(
                {(target.name, mode, s.name): str(target.missing) for s in SCENARIOS if usable(target, s)}
            )
    for mode in modes:
        for _ in range(args.rounds):  # rounds alternate servers, so drifting load hits each alike
            for target in servers:
                todo = [
                    s
                    for s in SCENARIOS
                    if usable(target, s) and (target.name, mode, s.name) not in tally.failed
                ]
                if todo:
                    await one_round(target, mode, todo, args, errlog, db, tally)
    rows: list[Row] = []
    for mode in modes:
        for scenario in SCENARIOS:
            for target in servers:
                key = (target.name, mode, scenario.name)
                label = f"{scenario.name} ({MODES[mode]})"
                if key in tally.failed:
                    rows.append(Row(target.name, label, note=tally.failed[key]))
                elif key in tally.results:
                    rows.append(row_from(target, label, tally.results[key]))
    return rows


async def one_round(
    target: Target,
    mode: Mode,
    todo: list[Scenario],
    args: argparse.Namespace,
    errlog: TextIO,
    db: Backends,
    tally: Tally,
) -> None:
    """One fresh server process running each scenario of `todo` once."""
    try:
        async with session(target, mode, errlog) as (caller, pid):
            for scenario in todo:
                key = (target.name, mode, scenario.name)
                try:
                    measured = await scenario_run(caller, pid, target, scenario, args, db)
                except (CallFailedError, TimeoutError) as exc:
                    tally.failed[key] = reason(exc)
                    continue
                tally.results.setdefault(key, []).append(measured)
    except Exception as exc:  # a peer that cannot start gets a row saying why
        for scenario in todo:
            tally.failed.setdefault((target.name, mode, scenario.name), f"cannot run: {reason(exc)}")


def usable(target: Target, scenario: Scenario) -> bool:
    return target.params or not scenario.needs_params


# --- in process: bare asyncpg against bulkhead's safety path -----------------------------------


def point_sql(i: int) -> str:
    return pgdata.POINT_SQL.format(key=pgdata.point_key(i))


def big_sql(i: int) -> str:
    del i
    return pgdata.BIG_SQL


async def in_process(dsn: str, calls: int, warmup: int) -> list[Overhead]:
    """Interleaved, call by call: bare `pool.fetch(sql)`; `check_read_only(sql)`; `Database.run`."""
    limits = Limits.from_settings(PostgresSettings(max_rows=pgdata.BIG))
    database = Database(dsn, limits, pool_size=1)
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=1)
    found: list[Overhead] = []
    try:
        plans: list[tuple[str, Callable[[int], str], int]] = [
            (POINT, point_sql, calls),
            (BIG, big_sql, max(1, calls // 10)),
        ]
        for name, make, n in plans:
            overhead = Overhead(name)
            for i in range(-warmup, n):
                sql = make(i + n)
                t0 = time.perf_counter()
                await pool.fetch(sql)
                t1 = time.perf_counter()
                checked = check_read_only(sql)
                t2 = time.perf_counter()
                result = await database.run(checked, (), pgdata.BIG)
                t3 = time.perf_counter()
                if not result.rows:
                    raise CallFailedError(f"Database.run returned no rows for {sql}")
                if i >= 0:
                    overhead.bare.append(t1 - t0)
                    overhead.guard.append(t2 - t1)
                    overhead.run.append(t3 - t2)
                    overhead.safety.append(t3 - t1)
            found.append(overhead)
    finally:
        await pool.close()
        await database.close()
    return found


# --- write attempts -----------------------------------------------------------------------------


async def write_attempts(target: Target, role: str, admin_dsn: str, errlog: TextIO) -> WriteRow:
    row = WriteRow(target.name, role)
    if target.missing:
        row.note = target.missing
        return row
    await pgdata.reset_scratch(admin_dsn)
    try:
        async with session(target, "sdk", errlog) as (caller, _):
            for number, sql in enumerate(pgdata.WRITE_ATTEMPTS, 1):
                before = await pgdata.snapshot(admin_dsn)
                try:
                    text, is_error = await caller.call({"sql": sql})
                    # postgres-mcp reports failures as ordinary text results.
                    row.errors += is_error or text.lower().startswith("error")
                except Exception:  # a JSON-RPC error is an error answer too; the database decides
                    row.errors += 1
                if await pgdata.snapshot(admin_dsn) != before:
                    row.through.append(number)
                    await pgdata.reset_scratch(admin_dsn)
    except Exception as exc:  # a peer that cannot start gets a row saying why
        row.note = f"cannot run: {reason(exc)}"
    return row


# --- main ---------------------------------------------------------------------------------------


def parse(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="bulkhead-postgres against @modelcontextprotocol/server-postgres and postgres-mcp."
    )
    parser.add_argument("--calls", type=int, default=1000, help="measured point lookups per round")
    parser.add_argument("--big-calls", type=int, default=200, help="measured 1,000-row queries per round")
    parser.add_argument("--seconds", type=float, default=5.0, help="time cap per scenario and round")
    parser.add_argument("--warmup", type=int, default=20, help="unmeasured calls first, per scenario")
    parser.add_argument("--rounds", type=int, default=3, help="rounds (fresh server each); medians shown")
    parser.add_argument("--overhead-calls", type=int, default=2000, help="in-process point lookups")
    parser.add_argument(
        "--servers", default="bulkhead,node,postgres-mcp", help="comma-separated subset of the default"
    )
    parser.add_argument("--clients", default="sdk,raw", help="comma-separated subset of sdk,raw")
    parser.add_argument("--no-writes", action="store_true", help="skip the write attempts")
    return parser.parse_args(argv)


async def run(args: argparse.Namespace, errlog: TextIO) -> None:
    load_start = os.getloadavg()
    chosen = {part.strip() for part in args.servers.split(",")}
    wanted = {part.strip() for part in args.clients.split(",")}
    modes: list[Mode] = [mode for mode in MODES if mode in wanted]
    with ThrowawayCluster() as cluster:
        admin_dsn = cluster.dsn(pgdata.DATABASE)
        await pgdata.build(cluster.dsn(), admin_dsn)

        def dsn(role: str) -> str:
            return cluster.dsn(pgdata.DATABASE, user=role)

        servers = [t for t in targets(dsn, pgdata.READER) if t.key in chosen]
        monitor = await asyncpg.connect(admin_dsn)
        try:
            rows = await timed(servers, modes, args, errlog, Backends(monitor, pgdata.READER))
        finally:
            await monitor.close()
        overheads = await in_process(dsn(pgdata.READER), args.overhead_calls, args.warmup)
        writes: list[WriteRow] = []
        if not args.no_writes:
            for role in (pgdata.WRITER, pgdata.READER):
                for target in (t for t in targets(dsn, role) if t.key in chosen):
                    writes.append(await write_attempts(target, role, admin_dsn, errlog))
            pgdata.MARKER.unlink(missing_ok=True)
    report(args, rows, overheads, writes, servers, load_start)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse(argv)
    # Servers' stderr (logs, audit records) goes to a file, as desktop clients keep it.
    with (
        tempfile.TemporaryDirectory(prefix="bulkhead-bench-pg-") as tmp,
        (Path(tmp) / "stderr.log").open("w") as errlog,
    ):
        anyio.run(run, args, errlog)


if __name__ == "__main__":
    main()
