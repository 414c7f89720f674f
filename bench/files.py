"""Filesystem benchmark: bulkhead-files against @modelcontextprotocol/server-filesystem, one tree, one run.

One generated tree in a temporary directory, the same four calls for both servers, over stdio:

- read a 17-byte file (bulkhead `read_file`, node `read_text_file`);
- read a 1 MiB text file (the same tools);
- list a directory of 1,000 files (`list_directory` on both);
- a name search over 10,000 files in 100 directories (bulkhead `find_files`, node `search_files`,
  both with the glob `**/*needle*`, which matches 10 files).

Each round starts a fresh server process per server and client (the SDK's `mcp.Client`, and a
bare JSON-RPC client that shows what the server itself can do), measures cold start (spawn to
initialize answered, and to the first result), then each scenario: calls per second, p50/p99
latency, server CPU per call (user + system of the process tree, from /proc) and peak RSS. Rounds
alternate between servers; the table shows medians over rounds. Every answer is checked.

The peer is installed from npm by name and pinned version (`sh bench/peers/install.sh`, or
`npm ci` in bench/peers); a peer that is missing gets a row saying why.

    .venv/bin/python bench/files.py
    .venv/bin/python bench/files.py --rounds 1 --calls 50 --seconds 2   # a smoke run

Everything is bounded (fixed counts and a time cap per scenario) and local. Linux only.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncGenerator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol, TextIO

import anyio
from mcp import Client
from mcp.client.stdio import StdioServerParameters, get_default_environment, stdio_client
from mcp_types import TextContent

from procfs import child_pids, cpu_seconds, own_cpu_seconds, peak_rss_mib
from rawrpc import RawRpc, stop
from tables import Row, percentile, table

REPO = Path(__file__).resolve().parent.parent
PEERS = REPO / "bench" / "peers"
NODE_SERVER = PEERS / "node_modules" / "@modelcontextprotocol" / "server-filesystem" / "dist" / "index.js"
INSTALL = "sh bench/peers/install.sh"
STARTUP_TIMEOUT = 60.0
CALL_TIMEOUT = 60.0
STOP_TIMEOUT = 5.0

SMALL_TEXT = "hello, bulkhead!\n"  # 17 bytes
BIG_BYTES = 1 << 20
WIDE = 1000
DEEP_DIRS, DEEP_FILES = 100, 100
NEEDLES = 10
GLOB = "**/*needle*"

Mode = Literal["sdk", "raw"]
MODES: dict[Mode, str] = {"sdk": "mcp.Client", "raw": "raw JSON-RPC"}


# --- the tree ------------------------------------------------------------------------------------


def build_tree(base: Path) -> None:
    """small.txt (17 bytes), big.txt (1 MiB of text lines), wide/ (1,000 files), deep/ (10,000 files)."""
    (base / "small.txt").write_text(SMALL_TEXT)
    line = "The quick brown fox jumps over the lazy dog; 0123456789 abcdefghijklmnopqrstuv\n"
    big = (line * (BIG_BYTES // len(line) + 1))[: BIG_BYTES - 4] + "END\n"
    (base / "big.txt").write_text(big)
    wide = base / "wide"
    wide.mkdir()
    for i in range(WIDE):
        (wide / f"f{i:04d}.txt").write_text("x")
    deep = base / "deep"
    for d in range(DEEP_DIRS):
        folder = deep / f"dir{d:03d}"
        folder.mkdir(parents=True)
        for i in range(DEEP_FILES):
            needle = i == 50 and d % (DEEP_DIRS // NEEDLES) == 0
            (folder / (f"needle{d:03d}.txt" if needle else f"file{i:03d}.txt")).write_text("")


# --- servers ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Call:
    tool: str
    arguments: dict[str, Any]
    present: tuple[str, ...]
    size: int = 0
    """Least number of characters the answer must have."""


@dataclass(frozen=True)
class Target:
    key: str
    name: str
    command: list[str]
    calls: dict[str, Call]
    missing: str | None = None


SCENARIOS = ("read 17 B", "read 1 MiB", "list 1,000", "find in 10,000")


def targets(base: Path) -> list[Target]:
    root = str(base)
    needle = "needle000.txt"
    bulkhead = {
        "read 17 B": Call("read_file", {"path": f"{root}/small.txt"}, ("hello, bulkhead!",)),
        "read 1 MiB": Call("read_file", {"path": f"{root}/big.txt"}, ("END",), BIG_BYTES - 1),
        "list 1,000": Call("list_directory", {"path": f"{root}/wide"}, ("f0000.txt", "f0999.txt")),
        "find in 10,000": Call("find_files", {"glob": GLOB, "path": f"{root}/deep"}, (needle, "needle090")),
    }
    node = {
        "read 17 B": Call("read_text_file", {"path": f"{root}/small.txt"}, ("hello, bulkhead!",)),
        "read 1 MiB": Call("read_text_file", {"path": f"{root}/big.txt"}, ("END",), BIG_BYTES - 1),
        "list 1,000": Call("list_directory", {"path": f"{root}/wide"}, ("f0000.txt", "f0999.txt")),
        "find in 10,000": Call(
            "search_files", {"path": f"{root}/deep", "pattern": GLOB}, (needle, "needle090")
        ),
    }
    node_missing = None
    if not NODE_SERVER.is_file():
        node_missing = f"not installed: run `{INSTALL}`"
    elif not any((Path(p) / "node").is_file() for p in os.get_exec_path()):
        node_missing = "node is not on PATH"
    return [
        Target(
            "bulkhead",
            "bulkhead-files",
            [sys.executable, "-m", "bulkhead_files", root, "--audit", "off", "--log-level", "warning"],
            bulkhead,
        ),
        Target("node", "server-filesystem (npm)", ["node", str(NODE_SERVER), root], node, node_missing),
    ]


class CallFailedError(Exception):
    """A call did not return what it should have."""


class Caller(Protocol):
    async def call(self, tool: str, arguments: dict[str, Any]) -> tuple[str, bool]: ...


class SdkCaller:
    def __init__(self, client: Client) -> None:
        self.client = client

    async def call(self, tool: str, arguments: dict[str, Any]) -> tuple[str, bool]:
        with anyio.fail_after(CALL_TIMEOUT):
            result = await self.client.call_tool(tool, arguments)
        text = "".join(part.text for part in result.content if isinstance(part, TextContent))
        if result.structured_content is not None:
            text += json.dumps(result.structured_content)
        return text, result.is_error


class RawCaller(RawRpc):
    async def call(self, tool: str, arguments: dict[str, Any]) -> tuple[str, bool]:
        with anyio.fail_after(CALL_TIMEOUT):
            response = await self.request("tools/call", {"name": tool, "arguments": arguments})
        text, is_error, fields = self.tool_text(response)
        if fields is not None and fields.get("structuredContent") is not None:
            text += json.dumps(fields["structuredContent"])
        return text, is_error


@dataclass
class Started:
    caller: Caller
    pid: int
    init_s: float
    started_at: float
    start_cpu_s: float = 0.0


@asynccontextmanager
async def session(target: Target, mode: Mode, errlog: TextIO) -> AsyncGenerator[Started]:
    """A fresh server process, initialized, with the time it took."""
    env = get_default_environment()
    started_at = time.perf_counter()
    if mode == "sdk":
        params = StdioServerParameters(command=target.command[0], args=target.command[1:], env=env)
        before = child_pids(os.getpid())
        async with Client(
            stdio_client(params, errlog=errlog), mode="legacy", read_timeout_seconds=STARTUP_TIMEOUT
        ) as client:
            init = time.perf_counter() - started_at
            new = child_pids(os.getpid()) - before
            if len(new) != 1:
                raise RuntimeError(f"expected one new server process, found {sorted(new)}")
            yield Started(SdkCaller(client), new.pop(), init, started_at)
        return
    process = await anyio.open_process(
        target.command, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=errlog
    )
    try:
        caller = RawCaller(process)
        with anyio.fail_after(STARTUP_TIMEOUT):
            await caller.initialize("2025-06-18")
        yield Started(caller, process.pid, time.perf_counter() - started_at, started_at)
    finally:
        await stop(process, STOP_TIMEOUT)


async def checked(caller: Caller, call: Call) -> float:
    t0 = time.perf_counter()
    text, is_error = await caller.call(call.tool, call.arguments)
    elapsed = time.perf_counter() - t0
    if is_error or len(text) < call.size or not all(p in text for p in call.present):
        raise CallFailedError(f"unexpected answer{' (error)' if is_error else ''}: {text[:160]!r}")
    return elapsed


# --- measuring ----------------------------------------------------------------------------------


@dataclass
class Measured:
    latencies: list[float]
    wall: float
    server_cpu: float
    client_cpu: float
    rss: float


@dataclass
class Cold:
    init_s: float
    first_s: float
    cpu_s: float
    rss: float


@dataclass
class Tally:
    runs: dict[tuple[str, Mode, str], list[Measured]] = field(
        default_factory=dict[tuple[str, Mode, str], list[Measured]]
    )
    cold: dict[tuple[str, Mode], list[Cold]] = field(default_factory=dict[tuple[str, Mode], list[Cold]])
    failed: dict[tuple[str, Mode, str], str] = field(default_factory=dict[tuple[str, Mode, str], str])


def calls_for(scenario: str, args: argparse.Namespace) -> int:
    if scenario == "find in 10,000":
        return args.search_calls
    if scenario == "read 1 MiB":
        return args.big_calls
    return args.calls


async def one_round(
    target: Target, mode: Mode, args: argparse.Namespace, errlog: TextIO, tally: Tally
) -> None:
    try:
        async with session(target, mode, errlog) as started:
            first = target.calls["read 17 B"]
            await checked(started.caller, first)
            first_s = time.perf_counter() - started.started_at
            tally.cold.setdefault((target.key, mode), []).append(
                Cold(started.init_s, first_s, cpu_seconds(started.pid), peak_rss_mib(started.pid))
            )
            for scenario in SCENARIOS:
                key = (target.key, mode, scenario)
                if key in tally.failed or scenario not in args.only:
                    continue
                call = target.calls[scenario]
                try:
                    for _ in range(args.warmup):
                        await checked(started.caller, call)
                    cpu0, own0 = cpu_seconds(started.pid), own_cpu_seconds()
                    t0 = time.perf_counter()
                    deadline = t0 + args.seconds
                    latencies: list[float] = []
                    for _ in range(calls_for(scenario, args)):
                        latencies.append(await checked(started.caller, call))
                        if time.perf_counter() > deadline:
                            break
                    wall = time.perf_counter() - t0
                    tally.runs.setdefault(key, []).append(
                        Measured(
                            latencies,
                            wall,
                            cpu_seconds(started.pid) - cpu0,
                            own_cpu_seconds() - own0,
                            peak_rss_mib(started.pid),
                        )
                    )
                except (CallFailedError, TimeoutError) as exc:
                    tally.failed[key] = str(exc)[:160]
    except Exception as exc:  # a peer that cannot start gets a row saying why
        for scenario in SCENARIOS:
            tally.failed.setdefault((target.key, mode, scenario), f"cannot run: {str(exc)[:140]}")


def rows(targets_: list[Target], modes: list[Mode], tally: Tally) -> list[Row]:
    found: list[Row] = []
    for mode in modes:
        for target in targets_:
            colds = tally.cold.get((target.key, mode), [])
            if colds:
                found.append(
                    Row(
                        target.name,
                        f"cold start ({MODES[mode]})",
                        len(colds),
                        init_ms=statistics.median(c.init_s for c in colds) * 1000,
                        first_ms=statistics.median(c.first_s for c in colds) * 1000,
                        start_cpu_ms=statistics.median(c.cpu_s for c in colds) * 1000,
                        rss_mib=max(c.rss for c in colds),
                        init_min_ms=min(c.init_s for c in colds) * 1000,
                        first_min_ms=min(c.first_s for c in colds) * 1000,
                    )
                )
        for scenario in SCENARIOS:
            for target in targets_:
                key = (target.key, mode, scenario)
                label = f"{scenario} ({MODES[mode]})"
                if target.missing:
                    found.append(Row(target.name, f"{label}: {target.missing}", 0))
                    continue
                if key in tally.failed:
                    found.append(Row(target.name, f"{label}: {tally.failed[key]}", 0))
                    continue
                measured = tally.runs.get(key, [])
                if not measured:
                    continue
                counts = [len(m.latencies) for m in measured]
                cpus = [m.server_cpu / n * 1000 for m, n in zip(measured, counts, strict=True)]
                found.append(
                    Row(
                        target.name,
                        label,
                        sum(counts),
                        calls_per_s=statistics.median(len(m.latencies) / m.wall for m in measured),
                        p50_ms=statistics.median(statistics.median(m.latencies) * 1000 for m in measured),
                        p99_ms=statistics.median(percentile(m.latencies, 0.99) * 1000 for m in measured),
                        cpu_ms_per_call=statistics.median(cpus),
                        cpu_range=(min(cpus), max(cpus)) if len(cpus) > 1 else None,
                        client_cpu_ms_per_call=statistics.median(
                            m.client_cpu / n * 1000 for m, n in zip(measured, counts, strict=True)
                        ),
                        rss_mib=max(m.rss for m in measured),
                    )
                )
    return found


def parse(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="bulkhead-files against @modelcontextprotocol/server-filesystem."
    )
    parser.add_argument("--calls", type=int, default=1000, help="measured small reads and listings per round")
    parser.add_argument("--big-calls", type=int, default=200, help="measured 1 MiB reads per round")
    parser.add_argument("--search-calls", type=int, default=50, help="measured name searches per round")
    parser.add_argument("--seconds", type=float, default=10.0, help="time cap per scenario and round")
    parser.add_argument("--warmup", type=int, default=5, help="unmeasured calls first, per scenario")
    parser.add_argument("--rounds", type=int, default=3, help="rounds (fresh server each); medians shown")
    parser.add_argument("--servers", default="bulkhead,node", help="comma-separated subset of the default")
    parser.add_argument("--clients", default="raw,sdk", help="comma-separated subset of raw,sdk")
    parser.add_argument(
        "--scenarios",
        default=",".join(SCENARIOS),
        help="comma-separated subset of the scenarios, by name (such as 'list 1,000' -> list); default all",
    )
    args = parser.parse_args(argv)
    words = [w.strip().lower() for w in args.scenarios.split(",") if w.strip()]
    args.only = {s for s in SCENARIOS if any(s.lower().startswith(w) for w in words)}
    if not args.only:
        parser.error(f"--scenarios: none of {SCENARIOS} starts with {args.scenarios!r}")
    return args


async def run(args: argparse.Namespace, base: Path, errlog: TextIO) -> None:
    load = os.getloadavg()
    build_tree(base)
    chosen = {s.strip() for s in args.servers.split(",")}
    servers = [t for t in targets(base) if t.key in chosen]
    modes: list[Mode] = [m for m in ("raw", "sdk") if m in {c.strip() for c in args.clients.split(",")}]
    tally = Tally()
    for mode in modes:
        for _ in range(args.rounds):  # rounds alternate servers, so drifting load hits each alike
            for target in servers:
                if not target.missing:
                    await one_round(target, mode, args, errlog, tally)
    print(f"# bulkhead-files vs server-filesystem, {args.rounds} round(s), load at start {load[0]:.2f}\n")
    print(table(rows(servers, modes, tally)))
    print(f"\nload average at end {os.getloadavg()[0]:.2f}; peak RSS is the server's process tree")


def main(argv: Sequence[str] | None = None) -> None:
    args = parse(argv)
    with (
        tempfile.TemporaryDirectory(prefix="bulkhead-bench-files-") as tmp,
        (Path(tmp) / "stderr.log").open("w") as errlog,
    ):
        tree = Path(tmp) / "tree"
        tree.mkdir()
        anyio.run(run, args, tree.resolve(), errlog)


if __name__ == "__main__":
    main()
