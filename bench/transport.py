"""Transport benchmark: our servers against the SDK floor, side by side, in one run.

For every server it measures, with the SDK's own client (`mcp.Client`, handshake era):

- cold start over stdio: spawn -> completed `initialize`, and spawn -> first tool result
  (median and fastest of `--spawns` spawns, after one discarded warm-up spawn per server);
- tool calls over stdio (one client) and over Streamable HTTP (1 and `--clients` concurrent
  clients, one server process per scenario and round): calls per second, p50 / p99 latency;
- server CPU time per call: user + system time of the server process (and any children) read
  from /proc before and after a fixed number of calls, divided by that number;
- peak RSS of the server process (VmHWM from /proc/PID/status, summed over the process tree).

Spawns and rounds alternate between servers, so a change in machine load hits each alike; call
scenarios run `--rounds` times and report medians. Servers get the SDK client's default
environment and write their stderr (logs, audit records) to files in a temporary directory.
Everything is bounded (fixed counts) and local (127.0.0.1). Linux only (/proc).

    .venv/bin/python bench/transport.py                  # bulkhead-users against the floor
    .venv/bin/python bench/transport.py \\
        --server users="python -m bulkhead_users" --call users='get_user {"user":"u00042"}' \\
        --http users="python -m bulkhead_users --transport http --port 0" \\
        --server floor="python bench/floor_server.py" --call floor='echo {"text":"hi"}' \\
        --http floor="python bench/floor_server.py --transport http --port {port}"

A leading `python` / `python3` in a command means this interpreter. In an http command,
`{port}` is replaced by a free port and readiness is a TCP connect; without it the server must
log a JSON line carrying "port" on stderr once listening (as Bulkhead's `serve` does).
"""

import argparse
import json
import os
import shlex
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO, TypeVar, cast

import anyio
from anyio.abc import Process
from mcp import Client
from mcp.client.stdio import StdioServerParameters, get_default_environment, stdio_client
from mcp.shared.exceptions import MCPError
from mcp_types import CallToolResult

from procfs import child_pids, cpu_seconds, own_cpu_seconds, peak_rss_mib
from tables import Row, median_rows, percentile, ratios, table

_T = TypeVar("_T")

REPO = Path(__file__).resolve().parent.parent
STARTUP_TIMEOUT = 60.0
CALL_TIMEOUT = 30.0


@dataclass(frozen=True)
class Target:
    """One server under test: how to start it, and which call to repeat."""

    name: str
    stdio: list[str]
    http: list[str] | None
    tool: str
    arguments: dict[str, Any]


DEFAULTS: dict[str, tuple[str, str | None, str]] = {
    "users": (
        "python -m bulkhead_users",
        "python -m bulkhead_users --transport http --port 0",
        'get_user {"user":"u00042"}',
    ),
    "floor": (
        "python bench/floor_server.py",
        "python bench/floor_server.py --transport http --port {port}",
        'echo {"text":"hi"}',
    ),
    "floor-bulkhead-stdio": (
        "python bench/floor_server.py --transport bulkhead-stdio",
        None,
        'echo {"text":"hi"}',
    ),
}
"""name -> (stdio command, http command, call). A --server with one of these names gets the rest."""


@dataclass
class Loop:
    """What a measured batch of calls produced."""

    latencies: list[float] = field(default_factory=list[float])
    wall: float = 0.0
    server_cpu: float = 0.0
    client_cpu: float = 0.0


def loop_row(target: Target, scenario: str, loop: Loop, rss: float) -> Row:
    calls = len(loop.latencies)
    return Row(
        server=target.name,
        scenario=scenario,
        count=calls,
        calls_per_s=calls / loop.wall,
        p50_ms=statistics.median(loop.latencies) * 1000,
        p99_ms=percentile(loop.latencies, 0.99) * 1000,
        cpu_ms_per_call=loop.server_cpu / calls * 1000,
        client_cpu_ms_per_call=loop.client_cpu / calls * 1000,
        rss_mib=rss,
    )


# --- clients ------------------------------------------------------------------------------------


async def call_once(client: Client, target: Target) -> float:
    """One tool call; its latency in seconds. A failed call stops the benchmark."""
    started = time.perf_counter()
    with anyio.fail_after(CALL_TIMEOUT):
        result: CallToolResult = await client.call_tool(target.tool, target.arguments)
    elapsed = time.perf_counter() - started
    if result.is_error:
        raise SystemExit(f"{target.name}: {target.tool} returned an error: {result.content}")
    return elapsed


async def measured(pid: int, work: Callable[[], Awaitable[list[float]]]) -> Loop:
    """Run `work`, bracketing it with server and client CPU readings."""
    cpu0, own0, t0 = cpu_seconds(pid), own_cpu_seconds(), time.perf_counter()
    latencies = await work()
    wall = time.perf_counter() - t0
    return Loop(latencies, wall, cpu_seconds(pid) - cpu0, own_cpu_seconds() - own0)


def stdio_transport(target: Target, errlog: TextIO) -> Any:
    params = StdioServerParameters(
        command=target.stdio[0], args=target.stdio[1:], env=server_env(), cwd=str(REPO)
    )
    return stdio_client(params, errlog=errlog)


def server_env() -> dict[str, str]:
    """What a desktop client passes: the SDK's safe default environment, nothing of ours."""
    return get_default_environment()


def spawned_child(before: set[int]) -> int:
    new = child_pids(os.getpid()) - before
    if len(new) != 1:
        raise SystemExit(f"expected one new server process, found {sorted(new)}")
    return new.pop()


def _leaf_errors(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        group = cast("BaseExceptionGroup[BaseException]", exc)
        return [leaf for inner in group.exceptions for leaf in _leaf_errors(inner)]
    return [exc]


async def guarded(target: Target, work: Awaitable[_T]) -> _T:
    """`work`, with a lost connection to the server turned into one line instead of a task-group dump."""
    try:
        return await work
    except Exception as exc:
        lost = [leaf for leaf in _leaf_errors(exc) if isinstance(leaf, MCPError)]
        if not lost:
            raise
        raise SystemExit(
            f"{target.name}: {lost[0]}. Run `{shlex.join(target.stdio)}` by hand to see its stderr."
        ) from None


# --- scenarios ----------------------------------------------------------------------------------


@dataclass
class ColdSample:
    init: float
    first: float
    start_cpu: float
    rss: float


async def cold_start_once(target: Target, errlog: TextIO) -> ColdSample:
    before = child_pids(os.getpid())
    started = time.perf_counter()
    with anyio.fail_after(STARTUP_TIMEOUT):
        async with Client(stdio_transport(target, errlog), mode="legacy") as client:
            initialized = time.perf_counter()
            pid = spawned_child(before)
            await call_once(client, target)
            first = time.perf_counter()
            sample = ColdSample(initialized - started, first - started, cpu_seconds(pid), peak_rss_mib(pid))
    return sample


async def cold_start(targets: list[Target], spawns: int, errlog: TextIO) -> list[Row]:
    for target in targets:  # warm-up: page cache, .pyc files, the client's own lazy imports
        await guarded(target, cold_start_once(target, errlog))
    samples: dict[str, list[ColdSample]] = {target.name: [] for target in targets}
    for _ in range(spawns):  # interleaved, so drifting machine load hits every server alike
        for target in targets:
            samples[target.name].append(await guarded(target, cold_start_once(target, errlog)))
    rows: list[Row] = []
    for target in targets:
        got = samples[target.name]
        rows.append(
            Row(
                server=target.name,
                scenario="cold start (stdio)",
                count=len(got),
                init_ms=statistics.median(s.init for s in got) * 1000,
                first_ms=statistics.median(s.first for s in got) * 1000,
                start_cpu_ms=statistics.median(s.start_cpu for s in got) * 1000,
                init_min_ms=min(s.init for s in got) * 1000,
                first_min_ms=min(s.first for s in got) * 1000,
                start_cpu_min_ms=min(s.start_cpu for s in got) * 1000,
                rss_mib=statistics.median(s.rss for s in got),
            )
        )
    return rows


async def stdio_calls(target: Target, calls: int, warmup: int, errlog: TextIO) -> Row:
    before = child_pids(os.getpid())
    async with Client(stdio_transport(target, errlog), mode="legacy") as client:
        pid = spawned_child(before)
        for _ in range(warmup):
            await call_once(client, target)

        async def work() -> list[float]:
            return [await call_once(client, target) for _ in range(calls)]

        loop = await measured(pid, work)
        rss = peak_rss_mib(pid)
    return loop_row(target, "stdio, 1 client", loop, rss)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def wait_for_tcp(port: int, process: Process) -> None:
    while True:
        if process.returncode is not None:
            raise SystemExit(f"http server exited with {process.returncode} before listening")
        try:
            stream = await anyio.connect_tcp("127.0.0.1", port)
        except OSError:
            await anyio.sleep(0.02)
        else:
            await stream.aclose()
            return


async def announced_port(log: Path, process: Process) -> int:
    """The port from the first JSON line on the server's stderr that carries one."""
    while True:
        for line in (await anyio.Path(log).read_text(errors="replace")).splitlines():
            if '"port"' not in line:
                continue
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict) and "port" in record:
                return int(record["port"])  # pyright: ignore[reportUnknownArgumentType] -- a JSON number
        if process.returncode is not None:
            raise SystemExit(f"http server exited with {process.returncode} before listening")
        await anyio.sleep(0.02)


@asynccontextmanager
async def http_server(target: Target, logdir: Path) -> AsyncGenerator[tuple[int, str]]:
    """Start `target`'s http command; yield (pid, Streamable HTTP url) once it listens; stop it."""
    assert target.http is not None
    command = list(target.http)
    announced = not any("{port}" in part for part in command)
    port = 0
    if not announced:
        port = free_port()
        command = [part.replace("{port}", str(port)) for part in command]
    log = logdir / f"{target.name}-http.log"
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        process = await anyio.open_process(
            command,
            cwd=REPO,
            env=server_env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=fd,
        )
    finally:
        os.close(fd)
    try:
        try:
            with anyio.fail_after(STARTUP_TIMEOUT):
                if announced:
                    port = await announced_port(log, process)
                else:
                    await wait_for_tcp(port, process)
        except TimeoutError:
            tail = (await anyio.Path(log).read_text(errors="replace")).splitlines()[-20:]
            raise SystemExit(f"{target.name}: http server did not start:\n" + "\n".join(tail)) from None
        yield process.pid, f"http://127.0.0.1:{port}/mcp"
        await _stop(process)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def http_calls(target: Target, clients: int, calls: int, warmup: int, logdir: Path) -> Row:
    """`calls` tool calls in all, spread over `clients` concurrent sessions on a fresh server."""
    row: Row | None = None
    async with http_server(target, logdir) as (pid, url):
        row = await _drive_http(target, url, pid, clients, calls, warmup)
    assert row is not None
    return row


async def _drive_http(target: Target, url: str, pid: int, clients: int, calls: int, warmup: int) -> Row:
    per_client = max(1, calls // clients)
    async with AsyncExitStack() as stack:
        sessions = [await stack.enter_async_context(Client(url, mode="legacy")) for _ in range(clients)]
        for client in sessions:
            for _ in range(max(1, warmup // clients)):
                await call_once(client, target)

        async def work() -> list[float]:
            latencies: list[float] = []

            async def run(client: Client) -> None:
                for _ in range(per_client):
                    latencies.append(await call_once(client, target))

            async with anyio.create_task_group() as tg:
                for client in sessions:
                    tg.start_soon(run, client)
            return latencies

        loop = await measured(pid, work)
        rss = peak_rss_mib(pid)
    label = "1 client" if clients == 1 else f"{clients} clients"
    return loop_row(target, f"HTTP, {label}", loop, rss)


async def _stop(process: Process) -> None:
    process.send_signal(signal.SIGTERM)
    with anyio.move_on_after(10):
        await process.wait()
        return
    process.kill()
    await process.wait()


# --- command line -------------------------------------------------------------------------------


def command(text: str) -> list[str]:
    parts = shlex.split(text)
    if parts and parts[0] in ("python", "python3"):
        parts[0] = sys.executable
    return parts


def pairs(values: list[str] | None, flag: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for value in values or []:
        name, sep, rest = value.partition("=")
        if not sep or not name:
            raise SystemExit(f"{flag} takes NAME=VALUE, got {value!r}")
        out[name] = rest
    return out


def targets_from(args: argparse.Namespace) -> list[Target]:
    servers = pairs(args.server, "--server") or {name: spec[0] for name, spec in DEFAULTS.items()}
    https = pairs(args.http, "--http")
    calls = pairs(args.call, "--call")
    targets: list[Target] = []
    for name, stdio in servers.items():
        default = DEFAULTS.get(name)
        http = https.get(name, default[1] if default else None)
        call = calls.get(name, default[2] if default else None)
        if call is None:
            raise SystemExit(f"--call {name}='TOOL {{json args}}' is needed for server {name!r}")
        tool, _, raw = call.strip().partition(" ")
        arguments: Any = json.loads(raw) if raw.strip() else {}
        if not isinstance(arguments, dict):
            raise SystemExit(f"--call {name}: the arguments must be a JSON object")
        targets.append(Target(name, command(stdio), command(http) if http else None, tool, arguments))  # pyright: ignore[reportUnknownArgumentType] -- a JSON object
    return targets


def parse(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Compare MCP servers' cold start, call rate, latency, CPU per call and RSS."
    )
    parser.add_argument("--server", action="append", metavar="NAME=CMD", help="stdio command (repeat)")
    parser.add_argument("--http", action="append", metavar="NAME=CMD", help="http command ({port} optional)")
    parser.add_argument("--call", action="append", metavar="NAME='TOOL {json}'", help="the call to repeat")
    parser.add_argument("--baseline", default="floor", help="server the ratios compare against")
    parser.add_argument("--spawns", type=int, default=10, help="cold starts per server (median)")
    parser.add_argument("--calls", type=int, default=2000, help="measured calls per call scenario")
    parser.add_argument("--warmup", type=int, default=50, help="unmeasured calls first")
    parser.add_argument("--clients", type=int, default=16, help="concurrent HTTP clients")
    parser.add_argument("--rounds", type=int, default=3, help="repeat call scenarios, report medians")
    parser.add_argument(
        "--scenarios",
        default="cold,stdio,http1,httpN",
        help="comma-separated subset of cold,stdio,http1,httpN",
    )
    return parser.parse_args(argv)


async def run(args: argparse.Namespace, logdir: Path, errlog: TextIO) -> None:
    targets = targets_from(args)
    chosen = {part.strip() for part in args.scenarios.split(",")}
    rows: list[Row] = []
    if "cold" in chosen:
        rows += await cold_start(targets, args.spawns, errlog)
    plans: list[tuple[str, Callable[[Target], Awaitable[Row]]]] = []
    if "stdio" in chosen:
        plans.append(("stdio", lambda t: stdio_calls(t, args.calls, args.warmup, errlog)))
    if "http1" in chosen:
        plans.append(("http1", lambda t: http_calls(t, 1, args.calls, args.warmup, logdir)))
    if "httpN" in chosen:
        plans.append(("httpN", lambda t: http_calls(t, args.clients, args.calls, args.warmup, logdir)))
    for name, plan in plans:
        eligible = [t for t in targets if name == "stdio" or t.http is not None]
        results: dict[str, list[Row]] = {t.name: [] for t in eligible}
        for _ in range(args.rounds):  # interleaved rounds, as for cold starts
            for target in eligible:
                results[target.name].append(await guarded(target, plan(target)))
        rows += [median_rows(results[t.name]) for t in eligible]
    order = {t.name: i for i, t in enumerate(targets)}
    scenario_order = {r.scenario: i for i, r in reversed(list(enumerate(rows)))}
    rows.sort(key=lambda r: (scenario_order[r.scenario], order[r.server]))
    report(args, targets, rows)


def report(args: argparse.Namespace, targets: list[Target], rows: list[Row]) -> None:
    load_end = os.getloadavg()
    print(f"command: {shlex.join([sys.executable, *sys.argv])}")
    for t in targets:
        print(f"- {t.name}: stdio `{shlex.join(t.stdio)}`")
        if t.http:
            print(f"  {'':{len(t.name)}}  http  `{shlex.join(t.http)}`")
        print(f"  {'':{len(t.name)}}  call  {t.tool} {json.dumps(t.arguments)}")
    print(
        f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs; load average at start "
        f"{' '.join(f'{x:.2f}' for x in args.load_start)}, at end {' '.join(f'{x:.2f}' for x in load_end)}"
    )
    print()
    print(table(rows))
    if any(r.server == args.baseline for r in rows):
        print()
        print(ratios(rows, args.baseline))
    print()
    print(
        "init / first result: spawn -> initialize answered / -> first tools/call answered (median of the "
        "spawns, fastest in brackets); start CPU: server CPU used by then. server CPU ms/call: user+sys "
        "time of the server's process tree over the measured calls / calls (10 ms tick resolution; with "
        "rounds, the median and the range). Peak RSS: VmHWM. Servers' stderr goes to files. The client "
        "runs in this process on the same cores, so calls/s and latency include client cost (and "
        "whatever else the machine is doing); server CPU does not."
    )


def main(argv: Sequence[str] | None = None) -> None:
    args = parse(argv)
    args.load_start = os.getloadavg()
    # Servers' stderr (logs, audit records) goes to files, as desktop clients keep it: written
    # for real by the server, never read back by this process during a measurement.
    with (
        tempfile.TemporaryDirectory(prefix="bulkhead-bench-") as tmp,
        (Path(tmp) / "stdio.log").open("w") as errlog,
    ):
        anyio.run(run, args, Path(tmp), errlog)


if __name__ == "__main__":
    main()
