"""Where bulkhead-postgres spends its CPU on a point lookup, layer by layer.

One throwaway cluster with the benchmark table of `bench/postgres.py` (`pgdata`), then N point
lookups (`SELECT * FROM t WHERE id = <k>`, or with `$1` and `params` under `--sql param`), or
the 1,000-row query of the benchmark under `--sql big`:

- `stdio`: the real console script over stdio, driven by a bare JSON-RPC client (so the client
  costs the server nothing). First unprofiled: the server's CPU per call from /proc (user +
  system, the honest figure). Then under cProfile (CPU clock), for the table by layer.
- `inproc`: the server in this process through the SDK's in-memory client, under cProfile. The
  client's own work (and its output-schema validation) is in the total but not in the server rows.

The table by layer is inclusive CPU per call (a row contains the rows indented under it):
transport (stdin/stdout), the SDK's dispatch or a direct call (`bulkhead.direct`), the tool
call (`BulkheadServer.call_tool`) and, inside it, the guard, `Database.run` (asyncpg and the
round trips' event-loop work), value conversion, building the result, and the audit record.
With py-spy installed, `--py-spy` adds a sampled profile of the stdio server (a speedscope file;
no cProfile overhead).

`--ab DIR` runs the same measurement with another checkout's interpreter and code (its `.venv`),
alternating the two sides `--rounds` times, and prints both side by side with the medians.

    .venv/bin/python bench/pgprofile.py --calls 2000
    .venv/bin/python bench/pgprofile.py --calls 1000 --rounds 3 --ab /work/main

Linux only; everything is local and bounded.
"""

import argparse
import cProfile
import json
import os
import pstats
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, cast

import anyio

import pgdata
from bulkhead.pgcluster import ThrowawayCluster
from pgservers import Caller, Target, session
from procfs import cpu_seconds

CHECKOUT = str(Path(__file__).resolve().parent.parent)

LAYERS: list[tuple[str, str, tuple[tuple[str, str], ...]]] = [
    # (label, indent, (file suffix, function) entry points whose inclusive times add up)
    (
        "transport (stdio)",
        "",
        (("bulkhead/wire.py", "_on_readable"), ("bulkhead/wire.py", "pump"), ("bulkhead/wire.py", "send")),
    ),
    ("SDK dispatch", "", (("mcp/shared/jsonrpc_dispatcher.py", "_handle_request"),)),
    ("direct call (bulkhead.direct)", "", (("bulkhead/direct.py", "_run"),)),
    ("tool call (call_tool)", "  ", (("bulkhead/app.py", "call_tool"),)),
    ("guard", "    ", (("bulkhead_postgres/guard.py", "check_read_only"),)),
    ("Database.run", "    ", (("bulkhead_postgres/database.py", "run"),)),
    (
        "values",
        "      ",
        (("bulkhead_postgres/values.py", "to_json_value"), ("bulkhead_postgres/values.py", "convert_rows")),
    ),
    ("result", "    ", (("bulkhead/results.py", "structured"), ("bulkhead_postgres/server.py", "_output"))),
    ("audit", "    ", (("bulkhead/audit.py", "record"),)),
]


Table = dict[tuple[str, int, str], tuple[Any, ...]]


def _table(stats: pstats.Stats) -> tuple[Table, float]:
    """pstats' table of (file, line, function) -> (calls, calls, own time, inclusive time, callers)."""
    loose: Any = stats
    return cast("Table", loose.stats), float(loose.total_tt)


def layer_times(stats: pstats.Stats, calls: int) -> dict[str, float]:
    """Inclusive ms per call of each layer, and of the whole profile (`total`)."""
    table, total_tt = _table(stats)
    found: dict[str, float] = {}
    for label, _, entries in LAYERS:
        total = 0.0
        for (filename, _, name), row in table.items():
            if any(filename.endswith(suffix) and name == fn for suffix, fn in entries):
                total += float(row[3])
            if label == "values" and filename.endswith("values.py") and name == "convert_rows":
                # Column-wise conversion calls to_json_value itself: count only the outer one.
                total = float(row[3])
                break
        found[label] = total * 1000 / calls
    found["total"] = total_tt * 1000 / calls
    return found


def top_functions(stats: pstats.Stats, calls: int, count: int) -> list[tuple[float, str]]:
    table, _ = _table(stats)
    rows = [
        (float(row[2]) * 1000 / calls, f"{Path(filename).name}:{line} {name}")
        for (filename, line, name), row in table.items()
    ]
    return sorted(rows, reverse=True)[:count]


def arguments(kind: str, i: int) -> dict[str, Any]:
    if kind == "big":
        return {"sql": pgdata.BIG_SQL}
    key = pgdata.point_key(i)
    if kind == "param":
        return {"sql": pgdata.POINT_PARAM_SQL, "params": [key]}
    return {"sql": pgdata.POINT_SQL.format(key=key)}


async def drive(
    call: Callable[[dict[str, Any]], Awaitable[tuple[str, bool]]], kind: str, start: int, n: int
) -> None:
    for i in range(start, start + n):
        text, is_error = await call(arguments(kind, i))
        present = pgdata.label(pgdata.BIG if kind == "big" else pgdata.point_key(i))
        if is_error or present not in text:
            raise RuntimeError(f"unexpected answer: {text[:200]}")


def server_target(dsn: str) -> Target:
    # Audit records on, to stderr (a file here), as a server runs by default.
    command = [sys.executable, "-m", "bulkhead_postgres", "--dsn", dsn, "--max-rows", str(pgdata.BIG)]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return Target("bulkhead", "bulkhead-postgres", command, env, "query", params=True)


async def measure_stdio(dsn: str, args: argparse.Namespace, tmp: Path, result: dict[str, Any]) -> None:
    errlog = (tmp / "stderr.log").open("w")
    try:
        # Unprofiled: the server's CPU per call from /proc.
        caller: Caller
        async with session(server_target(dsn), "raw", errlog) as (caller, pid):
            await drive(caller.call, args.sql, 0, args.warmup)
            cpu0, t0 = cpu_seconds(pid), time.perf_counter()
            await drive(caller.call, args.sql, args.warmup, args.calls)
            cpu1, t1 = cpu_seconds(pid), time.perf_counter()
        result["stdio_cpu_ms"] = (cpu1 - cpu0) * 1000 / args.calls
        result["stdio_calls_per_s"] = args.calls / (t1 - t0)
        # Profiled (cProfile on the CPU clock), written when the server exits on end of input.
        profile = tmp / "stdio.prof"
        wrapper = tmp / "profiled.py"
        wrapper.write_text(
            "import cProfile, runpy, sys, time\n"
            "profile = cProfile.Profile(time.process_time)\n"
            "sys.argv = ['bulkhead-postgres', *sys.argv[1:]]\n"
            "profile.enable()\n"
            "try:\n"
            "    runpy.run_module('bulkhead_postgres', run_name='__main__')\n"
            "except SystemExit:\n"
            "    pass\n"
            "finally:\n"
            "    profile.disable()\n"
            f"    profile.dump_stats({str(profile)!r})\n"
        )
        target = server_target(dsn)
        target.command[1:3] = [str(wrapper)]
        async with session(target, "raw", errlog) as (caller, _):
            await drive(caller.call, args.sql, 0, args.warmup + args.calls)
        stats = pstats.Stats(str(profile))
        # The warm-up calls are in the profile too: divide by everything that ran.
        result["stdio_layers"] = layer_times(stats, args.warmup + args.calls)
        result["stdio_top"] = top_functions(stats, args.warmup + args.calls, args.top)
        if args.py_spy and shutil.which("py-spy"):
            target = server_target(dsn)
            target.command[:0] = ["py-spy", "record", "--format", "speedscope", "-o", str(args.py_spy), "--"]
            async with session(target, "raw", errlog) as (caller, _):
                await drive(caller.call, args.sql, 0, args.warmup + args.calls)
            result["py_spy"] = str(args.py_spy)
    finally:
        errlog.close()


async def measure_inproc(dsn: str, args: argparse.Namespace, tmp: Path, result: dict[str, Any]) -> None:
    from mcp import Client  # noqa: PLC0415 -- only this mode needs the server in process
    from mcp_types import TextContent  # noqa: PLC0415

    from bulkhead_postgres.database import Database, Limits  # noqa: PLC0415
    from bulkhead_postgres.server import build_server  # noqa: PLC0415
    from bulkhead_postgres.settings import PostgresSettings  # noqa: PLC0415

    settings = PostgresSettings.model_validate(
        {"dsn": dsn, "audit": str(tmp / "audit.jsonl"), "max_rows": pgdata.BIG}
    )
    database = Database(dsn, Limits.from_settings(settings), pool_size=settings.pool_size)
    server = build_server(settings, database)
    try:
        async with Client(server, mode="legacy") as client:

            async def call(arguments: dict[str, Any]) -> tuple[str, bool]:
                answer = await client.call_tool("query", arguments)
                text = "".join(part.text for part in answer.content if isinstance(part, TextContent))
                return text, answer.is_error

            await drive(call, args.sql, 0, args.warmup)
            profile = cProfile.Profile(time.process_time)
            profile.enable()
            await drive(call, args.sql, args.warmup, args.calls)
            profile.disable()
    finally:
        await database.close()
        server.audit.close()
    stats = pstats.Stats(profile)
    result["inproc_layers"] = layer_times(stats, args.calls)
    result["inproc_top"] = top_functions(stats, args.calls, args.top)


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    result: dict[str, Any] = {"checkout": CHECKOUT, "python": sys.executable}
    with ThrowawayCluster() as cluster, tempfile.TemporaryDirectory(prefix="bulkhead-pgprofile-") as tmp:
        await pgdata.build(cluster.dsn(), cluster.dsn(pgdata.DATABASE))
        dsn = cluster.dsn(pgdata.DATABASE, user=pgdata.READER)
        modes = {m.strip() for m in args.modes.split(",")}
        if "stdio" in modes:
            await measure_stdio(dsn, args, Path(tmp), result)
        if "inproc" in modes:
            await measure_inproc(dsn, args, Path(tmp), result)
    return result


# --- output -------------------------------------------------------------------------------------


def print_single(result: dict[str, Any]) -> None:
    if "stdio_cpu_ms" in result:
        print(
            f"stdio, unprofiled: server CPU {result['stdio_cpu_ms']:.3f} ms per call, "
            f"{result['stdio_calls_per_s']:.0f} calls/s (bare JSON-RPC client)"
        )
    for mode in ("stdio", "inproc"):
        layers = result.get(f"{mode}_layers")
        if not layers:
            continue
        print(f"\n{mode}, cProfile (CPU clock), inclusive ms per call")
        print(f"  {'whole profile':<30} {layers['total']:8.3f}")
        for label, indent, _ in LAYERS:
            print(f"  {indent + label:<30} {layers[label]:8.3f}")
        print(f"\n{mode}, top functions by own time (ms per call)")
        for ms, name in result[f"{mode}_top"]:
            print(f"  {ms:8.4f}  {name}")


def print_ab(sides: dict[str, list[dict[str, Any]]]) -> None:
    names = list(sides)
    print("median over rounds; A =", names[0], "(this checkout), B =", names[1])
    print(f"{'':<32} {'A':>9} {'B':>9} {'B/A':>6}")

    def row(label: str, pick: Callable[[dict[str, Any]], float | None]) -> None:
        values: list[float] = []
        for name in names:
            picked = [v for r in sides[name] if (v := pick(r)) is not None]
            values.append(statistics.median(picked) if picked else float("nan"))
        ratio = values[1] / values[0] if values[0] else float("nan")
        print(f"{label:<32} {values[0]:9.3f} {values[1]:9.3f} {ratio:6.2f}")

    def picker(key: str, layer: str | None = None) -> Callable[[dict[str, Any]], float | None]:
        def pick(result: dict[str, Any]) -> float | None:
            value: Any = result.get(key)
            if layer is not None:
                value = cast("dict[str, Any]", value).get(layer) if isinstance(value, dict) else None
            return float(value) if isinstance(value, int | float) else None

        return pick

    row("stdio server CPU ms/call", picker("stdio_cpu_ms"))
    row("stdio calls/s", picker("stdio_calls_per_s"))
    for mode in ("stdio", "inproc"):
        row(f"{mode}: whole profile", picker(f"{mode}_layers", "total"))
        for label, indent, _ in LAYERS:
            row(f"{mode}: {indent}{label}", picker(f"{mode}_layers", label))


def parse(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="bulkhead-postgres CPU per point lookup, by layer.")
    parser.add_argument("--calls", type=int, default=2000, help="measured point lookups per mode")
    parser.add_argument("--warmup", type=int, default=100, help="unmeasured calls first")
    parser.add_argument(
        "--sql",
        choices=["literal", "param", "big"],
        default="literal",
        help="point lookup with the key as literal or $1, or the 1,000-row query (big)",
    )
    parser.add_argument("--modes", default="stdio,inproc", help="subset of stdio,inproc")
    parser.add_argument("--top", type=int, default=15, help="functions listed by own time")
    parser.add_argument(
        "--py-spy", type=Path, default=None, help="also record the stdio server with py-spy here"
    )
    parser.add_argument("--ab", type=Path, default=None, help="another checkout to compare with (its .venv)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds per side with --ab")
    parser.add_argument("--json", action="store_true", help="print one JSON object (used by --ab)")
    return parser.parse_args(argv)


def run_side(python: str, cwd: Path, argv: Sequence[str]) -> dict[str, Any]:
    done = subprocess.run(
        [python, str(Path(__file__).resolve()), *argv, "--json"],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
    )
    answer: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return answer


def main(argv: Sequence[str] | None = None) -> None:
    args = parse(argv)
    if args.ab is None:
        result = anyio.run(measure, args)
        if args.json:
            print(json.dumps(result))
        else:
            print_single(result)
        return
    here = Path(__file__).resolve().parent.parent
    other = args.ab.resolve()
    passed = [a for a in (argv if argv is not None else sys.argv[1:])]
    index = passed.index("--ab")
    side_argv = passed[:index] + passed[index + 2 :]
    side_argv = [a for a in side_argv if a != "--json"]
    sides: dict[str, list[dict[str, Any]]] = {str(here): [], str(other): []}
    for _ in range(args.rounds):
        for checkout in (here, other):
            python = str(checkout / ".venv" / "bin" / "python")
            sides[str(checkout)].append(run_side(python, checkout, side_argv))
    print_ab(sides)


if __name__ == "__main__":
    main()
