"""bulkhead-http benchmark: the wrapper's cost over a bare pooled call, and a peer, in one run.

One demo tracker (`python -m bulkhead_http.demo_api`, 127.0.0.1, TCP_NODELAY) serves every
target the same endpoint, `GET /api/tickets/T-1001`:

- `httpx2 (bare, pooled)`: one `httpx2.AsyncClient` in this process, connection reused: the floor.
- `bulkhead-http path, in process`: the server's own work per call without MCP (argument
  validation, path encoding and check, the guarded pooled client, result building), in this
  process: what the wrapper adds, apart from the SDK's stdio transport.
- `bulkhead-http (stdio)`: `get_ticket` through the real server over stdio, driven by the SDK's
  `mcp.Client` (handshake era), with its default configuration of the tracker (address guard,
  argument validation, retries, audit records on).
- `mcp-server-fetch (stdio)`: the official fetch server (PyPI, `sh bench/peers/fetch/install.sh`),
  `fetch(url, raw=true)` with `--ignore-robots-txt --allow-private-ips` (the tracker is on
  127.0.0.1); a row says why when it is not installed.

Calls are sequential (one client); rounds alternate between targets so drifting load hits each
alike, and the table shows the median of the rounds: calls/s, p50 / p99 latency and the p50 added
over the bare call. Every result is checked for the ticket.

    .venv/bin/python bench/http_api.py
    .venv/bin/python bench/http_api.py --rounds 1 --calls 50     # a smoke run
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import anyio
import httpx2
import yaml
from mcp import Client
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp_types import TextContent

from bulkhead_http.netguard import SystemResolver
from bulkhead_http.operations import build_operations
from bulkhead_http.runtime import DATA_DIR, demo_config, load_documents
from bulkhead_http.server import operation_caller
from bulkhead_http.upstream import Upstream
from tables import fmt, percentile

PEER = Path(__file__).resolve().parent / "peers" / "fetch" / ".venv" / "bin" / "mcp-server-fetch"
TICKET = "T-1001"


@dataclass
class Result:
    name: str
    rounds: list[tuple[list[float], float]] = field(default_factory=list[tuple[list[float], float]])
    note: str = ""

    def calls_per_s(self) -> float | None:
        return statistics.median(len(lat) / wall for lat, wall in self.rounds) if self.rounds else None

    def p50(self) -> float | None:
        return (
            statistics.median(statistics.median(lat) * 1000 for lat, _ in self.rounds)
            if self.rounds
            else None
        )

    def p99(self) -> float | None:
        return (
            statistics.median(percentile(lat, 0.99) * 1000 for lat, _ in self.rounds) if self.rounds else None
        )


async def timed(call: Callable[[], Awaitable[None]], calls: int, warmup: int) -> tuple[list[float], float]:
    for _ in range(warmup):
        await call()
    latencies: list[float] = []
    started = time.perf_counter()
    for _ in range(calls):
        t0 = time.perf_counter()
        await call()
        latencies.append(time.perf_counter() - t0)
    return latencies, time.perf_counter() - started


async def bare_round(url: str, calls: int, warmup: int) -> tuple[list[float], float]:
    async with httpx2.AsyncClient(trust_env=False) as http:

        async def call() -> None:
            response = await http.get(url)
            if response.status_code != 200 or TICKET not in response.text:
                raise RuntimeError(f"bare call failed: {response.status_code}")

        return await timed(call, calls, warmup)


async def mcp_round(
    params: StdioServerParameters,
    tool: str,
    arguments: dict[str, object],
    calls: int,
    warmup: int,
    errlog: TextIO,
) -> tuple[list[float], float]:
    async with Client(stdio_client(params, errlog=errlog), mode="legacy") as client:

        async def call() -> None:
            result = await client.call_tool(tool, arguments)
            text = "".join(block.text for block in result.content if isinstance(block, TextContent))
            if result.is_error or TICKET not in text:
                raise RuntimeError(f"{tool} failed: {text[:200]}")

        return await timed(call, calls, warmup)


async def in_process_round(port: int, calls: int, warmup: int) -> tuple[list[float], float]:
    """bulkhead-http's own path without MCP: validation, URL check, guarded pooled call, result."""
    config = demo_config(port)
    documents = await load_documents(config, DATA_DIR, SystemResolver())
    [operation] = [op for op in build_operations(config, documents) if op.name == "get_ticket"]
    upstream = Upstream(config.apis[0], SystemResolver())
    try:
        wrapped = operation_caller(operation, upstream)

        async def call() -> None:
            result = await wrapped({"ticket_id": TICKET})
            if result.is_error:
                raise RuntimeError("in-process call failed")

        return await timed(call, calls, warmup)
    finally:
        await upstream.aclose()


def start_upstream() -> tuple[subprocess.Popen[bytes], int]:
    process = subprocess.Popen(
        [sys.executable, "-m", "bulkhead_http.demo_api", "--port", "0"],
        stdout=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
    )
    assert process.stdout is not None
    line = process.stdout.readline().decode()
    if not line.startswith("port "):
        process.kill()
        raise RuntimeError("the demo tracker did not start")
    return process, int(line.split()[1])


def config_file(port: int, directory: Path) -> Path:
    data = yaml.safe_load((DATA_DIR / "demo.yaml").read_text(encoding="utf-8"))
    data["apis"][0]["base_url"] = f"http://127.0.0.1:{port}/api"
    data["apis"][0]["openapi"]["source"] = str(DATA_DIR / "demo-openapi.json")
    path = directory / "bench.yaml"
    path.write_text(json.dumps(data), encoding="utf-8")  # JSON is YAML
    return path


def environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BULKHEAD_") and "proxy" not in k.lower()}
    env["NO_PROXY"] = "127.0.0.1,localhost"
    return env


def report(results: list[Result], bare: Result) -> str:
    base = bare.p50()
    lines = [
        "| target | calls/s | p50 ms | p99 ms | added p50 ms over bare httpx2 | note |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        p50 = r.p50()
        added = None if p50 is None or base is None or r is bare else p50 - base
        lines.append(
            f"| {r.name} | {fmt(r.calls_per_s(), 0)} | {fmt(r.p50(), 2)} | {fmt(r.p99(), 2)} "
            f"| {fmt(added, 2)} | {r.note} |"
        )
    return "\n".join(lines)


async def run(args: argparse.Namespace) -> None:
    upstream, port = start_upstream()
    url = f"http://127.0.0.1:{port}/api/tickets/{TICKET}"
    try:
        with tempfile.TemporaryDirectory() as tmp, open(Path(tmp) / "servers.log", "w") as errlog:  # noqa: ASYNC230
            config = config_file(port, Path(tmp))
            bare = Result("httpx2 (bare, pooled)")
            ours = Result("bulkhead-http (stdio)")
            path = Result("bulkhead-http path, in process (no MCP)")
            peer = Result("mcp-server-fetch (stdio)")
            ours_params = StdioServerParameters(
                command=sys.executable,
                args=["-m", "bulkhead_http", "--config", str(config), "--log-format", "json"],
                env=environment(),
            )
            peer_params = StdioServerParameters(
                command=str(PEER), args=["--ignore-robots-txt", "--allow-private-ips"], env=environment()
            )
            if not PEER.exists():
                peer.note = "not installed (sh bench/peers/fetch/install.sh)"
            for _ in range(args.rounds):
                bare.rounds.append(await bare_round(url, args.calls, args.warmup))
                path.rounds.append(await in_process_round(port, args.calls, args.warmup))
                ours.rounds.append(
                    await mcp_round(
                        ours_params, "get_ticket", {"ticket_id": TICKET}, args.calls, args.warmup, errlog
                    )
                )
                if not peer.note:
                    try:
                        peer.rounds.append(
                            await mcp_round(
                                peer_params, "fetch", {"url": url, "raw": True}, args.peer_calls, 2, errlog
                            )
                        )
                    except Exception as exc:
                        peer.note = f"failed: {type(exc).__name__}: {str(exc)[:120]}"
            results = [bare, path, ours, peer]
            for r in results:
                if len(r.rounds) > 1:
                    r.note = (r.note + "; " if r.note else "") + f"median of {len(r.rounds)} rounds"
            sys.stdout.write(
                f"GET /api/tickets/{TICKET} on the demo tracker, {args.calls} calls per round "
                f"({args.peer_calls} for the peer), {args.rounds} round(s)\n\n{report(results, bare)}\n"
            )
    finally:
        upstream.terminate()
        upstream.wait(10)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--peer-calls", type=int, default=100, help="calls per round for mcp-server-fetch")
    parser.add_argument("--warmup", type=int, default=20)
    anyio.run(run, parser.parse_args(argv))


if __name__ == "__main__":
    main()
