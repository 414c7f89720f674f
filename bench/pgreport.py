"""The PostgreSQL benchmark's rows and the markdown it prints from them."""

import argparse
import math
import os
import shlex
import sys
from dataclasses import dataclass, field

import pgdata
from pgservers import Target

NODE_RATE_IN_ISSUE = 350
"""Point queries per second the archived Node server did over stdio when the issue was written."""


@dataclass
class Row:
    """One server x scenario x client line of the table; None prints as a dash."""

    server: str
    scenario: str
    count: int = 0
    calls_per_s: float | None = None
    p50_ms: float | None = None
    p99_ms: float | None = None
    cpu_ms: float | None = None
    db_cpu_ms: float | None = None
    client_cpu_ms: float | None = None
    rss_mib: float | None = None
    note: str = ""


@dataclass
class Overhead:
    """In-process latencies (seconds) of one query, call by call, on the bare and the safety path."""

    query: str
    bare: list[float] = field(default_factory=list[float])
    guard: list[float] = field(default_factory=list[float])
    run: list[float] = field(default_factory=list[float])
    safety: list[float] = field(default_factory=list[float])


@dataclass
class WriteRow:
    """What the write attempts did through one server with one role."""

    server: str
    role: str
    through: list[int] = field(default_factory=list[int])
    errors: int = 0
    note: str = ""


def percentile(values: list[float], fraction: float) -> float:
    """The nearest-rank percentile (`fraction` 0..1) of `values`."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def fmt(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def ms(values: list[float], fraction: float) -> float:
    return percentile(values, fraction) * 1000


def report(
    args: argparse.Namespace,
    rows: list[Row],
    overheads: list[Overhead],
    writes: list[WriteRow],
    servers: list[Target],
    load_start: tuple[float, float, float],
) -> None:
    load_end = os.getloadavg()
    print(f"command: {shlex.join([sys.executable, *sys.argv])}")
    print(
        f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs; load average at start "
        f"{' '.join(f'{x:.2f}' for x in load_start)}, at end {' '.join(f'{x:.2f}' for x in load_end)}"
    )
    for target in servers:
        shown = [part if "postgresql://" not in part else "$DSN" for part in target.command]
        env = " (DATABASE_URI=$DSN)" if "DATABASE_URI" in target.env else ""
        print(f"- {target.name}: `{shlex.join(shown)}`{env}, tool `{target.tool}`")
    print(f"- $DSN: role {pgdata.READER} (LOGIN, SELECT on t), table t of {pgdata.ROWS:,} rows")
    print()
    calls_table(rows, overheads)
    print()
    overhead_table(overheads)
    if writes:
        print()
        writes_table(writes)
    print()
    goals(rows, overheads)
    print()
    print(
        "calls/s, p50, p99: one call at a time over stdio from this process, every result checked for its "
        f"rows (per round at most {args.calls} point / {args.big_calls} big calls or {args.seconds:g} s, "
        f"after {args.warmup} warm-up calls); mcp.Client is the SDK's client (it validates structured "
        "results against the tool's output schema), raw JSON-RPC a bare line-in/line-out client. server CPU: "
        "user+sys of the server's process tree / calls (10 ms ticks). DB CPU: the PostgreSQL backends of "
        "the server's role, likewise. client CPU: this process. Peak RSS: VmHWM of the server's process "
        "tree. Client, server and PostgreSQL share the machine's cores."
    )


def calls_table(rows: list[Row], overheads: list[Overhead]) -> None:
    print(
        "| server | scenario (client) | n | calls/s | p50 ms | p99 ms | server CPU ms/call "
        "| DB CPU ms/call | client CPU ms/call | peak RSS MiB | note |"
    )
    print("|" + "---|" * 11)
    for r in rows:
        print(
            f"| {r.server} | {r.scenario} | {r.count} | {fmt(r.calls_per_s, 0)} | {fmt(r.p50_ms, 2)} "
            f"| {fmt(r.p99_ms, 2)} | {fmt(r.cpu_ms, 2)} | {fmt(r.db_cpu_ms, 2)} | {fmt(r.client_cpu_ms, 2)} "
            f"| {fmt(r.rss_mib)} | {r.note} |"
        )
    for o in overheads:
        for name, values, note in (
            ("asyncpg, bare pool.fetch", o.bare, "in process, no MCP; interleaved with the next row"),
            ("bulkhead safety path: guard + Database.run", o.safety, "in process, no MCP"),
        ):
            print(
                f"| {name} | {o.query} | {len(values)} | {len(values) / sum(values):,.0f} "
                f"| {ms(values, 0.5):.2f} | {ms(values, 0.99):.2f} | - | - | - | - | {note} |"
            )


def overhead_table(overheads: list[Overhead]) -> None:
    print("Safety path against a bare asyncpg fetch of the same SQL (in process, interleaved call by call):")
    print()
    print(
        "| query | bare fetch p50 ms | check_read_only p50 ms | Database.run p50 ms | guard + run p50 ms "
        "| overhead p50 ms (guard + run - bare) | guard + run p99 ms |"
    )
    print("|" + "---|" * 7)
    for o in overheads:
        print(
            f"| {o.query} | {ms(o.bare, 0.5):.3f} | {ms(o.guard, 0.5):.3f} | {ms(o.run, 0.5):.3f} "
            f"| {ms(o.safety, 0.5):.3f} | {ms(o.safety, 0.5) - ms(o.bare, 0.5):.3f} "
            f"| {ms(o.safety, 0.99):.3f} |"
        )


def writes_table(writes: list[WriteRow]) -> None:
    attempts = len(pgdata.WRITE_ATTEMPTS)
    print(
        f"Write attempts ({attempts} per server and role, through mcp.Client; the database is compared "
        "before and after each):"
    )
    print()
    print("| server | role | changed the database | which | answered with an error | note |")
    print("|---|---|---|---|---|---|")
    for w in writes:
        changed = "-" if w.note else f"{len(w.through)} of {attempts}"
        which = ", ".join(f"#{n}" for n in w.through) or "-"
        print(f"| {w.server} | {w.role} | {changed} | {which} | {w.errors} | {w.note} |")
    print()
    for number, sql in enumerate(pgdata.WRITE_ATTEMPTS, 1):
        print(f"{number}. `{sql}`")


def goals(rows: list[Row], overheads: list[Overhead]) -> None:
    def rate(server: str, client: str) -> float | None:
        for r in rows:
            if r.server.startswith(server) and r.scenario == f"{POINT} ({client})":
                return r.calls_per_s
        return None

    print("Goals:")
    for client in ("mcp.Client", "raw JSON-RPC"):
        ours, node = rate("bulkhead", client), rate("server-postgres", client)
        if ours is None:
            continue
        against = f"{node:,.0f}/s measured in this run" if node is not None else "not measured in this run"
        met = ours >= NODE_RATE_IN_ISSUE and (node is None or ours >= node)
        print(
            f"- point queries with every safety layer on, {client}: {ours:,.0f}/s against the Node "
            f"server's {against} ({NODE_RATE_IN_ISSUE}/s in the issue): {'met' if met else 'NOT met'}"
        )
    point = next((o for o in overheads if o.query == POINT), None)
    if point is not None:
        layers = ms(point.safety, 0.5) - ms(point.bare, 0.5)
        print(
            f"- our safety layers at p50 (guard + Database.run - bare fetch, point lookup): {layers:.3f} ms "
            f"(< 1 ms wanted): {'met' if layers < 1 else 'NOT met'}; guard + Database.run alone "
            f"{ms(point.safety, 0.5):.3f} ms"
        )


POINT = "point lookup, literal SQL"
BIG = f"{pgdata.BIG:,} rows"
PARAMS = "point lookup, $1 + params"
