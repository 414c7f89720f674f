"""Where a server's CPU goes on one trivial tool call over stdio, by layer (cProfile).

The server runs under cProfile twice, driven by the SDK client over stdio: once with `--warmup`
calls and once with `--warmup` + `--calls`. The difference between the two profiles is the cost
of `--calls` calls alone (start-up, imports and the handshake cancel out). Each function's own
time (cProfile's tottime) is credited to the layer its file belongs to:

    transport      bulkhead/wire.py, stdio.py, serve.py; mcp/server/stdio.py
    event loop     asyncio, anyio, selectors, contextvars plumbing
    SDK dispatch   mcp/shared (dispatcher, streams, messages), mcp/server (runner, lowlevel, session)
    SDK tools      mcp/server/mcpserver (tool lookup, argument models, result conversion)
    pydantic       pydantic and pydantic_core (validation and serialisation of every message)
    bulkhead app   bulkhead/app.py, audit.py, results.py, errors.py, validation.py
    logging        logging, json (audit records go to stderr through logging)
    server code    the server's own package (bulkhead_users, ...)

    .venv/bin/python bench/profile_call.py                       # bulkhead-users get_user
    .venv/bin/python bench/profile_call.py --server floor        # bare MCPServer, Bulkhead's stdio
    .venv/bin/python bench/profile_call.py --server floor-sdk    # bare MCPServer, the SDK's stdio

The profiler times CPU (`time.process_time`), not wall clock, so waiting for the client costs
nothing. cProfile slows small Python functions more than C code, so the µs figures are inflated;
the shares are what to read. Linux and macOS; the servers' stderr goes to a temporary file.
"""

import argparse
import cProfile
import json
import pstats
import runpy
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, cast

import anyio
from mcp import Client
from mcp.client.stdio import StdioServerParameters, get_default_environment, stdio_client

REPO = Path(__file__).resolve().parent.parent

SERVERS: dict[str, tuple[list[str], str, dict[str, Any]]] = {
    "users": (["-m", "bulkhead_users"], "get_user", {"user": "u00042"}),
    "floor": (["bench/floor_server.py", "--transport", "bulkhead-stdio"], "echo", {"text": "hi"}),
    "floor-sdk": (["bench/floor_server.py"], "echo", {"text": "hi"}),
}

LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("transport", ("bulkhead/wire.py", "bulkhead/stdio.py", "bulkhead/serve.py", "mcp/server/stdio.py")),
    ("bulkhead app", ("bulkhead/",)),
    ("SDK tools", ("mcp/server/mcpserver/",)),
    ("SDK dispatch", ("mcp/", "mcp_types/")),
    ("pydantic", ("pydantic", "<built-in method pydantic", "<method 'validate_", "<method 'to_json")),
    ("logging", ("logging/", "json/", "<built-in method time.", "<built-in method _json")),
    ("event loop", ("asyncio/", "anyio/", "selectors.py", "contextvars", "<method 'run' of '_contextvars")),
    ("syscalls", ("<built-in method posix.", "<method 'poll' of", "<method 'control' of")),
]

Key = tuple[str, int, str]


def layer_of(key: Key, server_package: str | None) -> str:
    filename, _, function = key
    where = filename if filename != "~" else function
    where = where.replace("\\", "/")
    if server_package and f"/{server_package}/" in where:
        return "server code"
    for layer, markers in LAYERS:
        if any(marker in where for marker in markers):
            return layer
    return "other"


class Profile:
    """One cProfile dump: own time and calls per function, and who called each."""

    def __init__(self, path: Path) -> None:
        raw: Any = getattr(pstats.Stats(str(path)), "stats")  # noqa: B009 -- untyped internals
        stats = cast(
            "dict[Key, tuple[int, int, float, float, dict[Key, tuple[int, int, float, float]]]]", raw
        )
        self.own: dict[Key, tuple[int, float]] = {key: (value[1], value[2]) for key, value in stats.items()}
        self.callers: dict[Key, dict[Key, float]] = {
            key: {caller: times[2] for caller, times in value[4].items()} for key, value in stats.items()
        }


def layers_of(key: Key, profile: Profile, package: str | None, depth: int = 0) -> dict[str, float]:
    """Shares of `key`'s own time by layer: a builtin's own time goes to the layers of its callers."""
    layer = layer_of(key, package)
    if layer != "other" or key[0] != "~" or depth > 3:
        return {layer: 1.0}
    callers = profile.callers.get(key, {})
    total = sum(callers.values())
    if total <= 0:
        return {layer: 1.0}
    shares: dict[str, float] = {}
    for caller, seconds in callers.items():
        for name, share in layers_of(caller, profile, package, depth + 1).items():
            shares[name] = shares.get(name, 0.0) + share * seconds / total
    return shares


async def drive(name: str, calls: int, profile: Path, errlog: Any) -> None:
    args, tool, arguments = SERVERS[name]
    params = StdioServerParameters(
        command=sys.executable,
        args=[__file__, "--profile-to", str(profile), "--", *args],
        env=get_default_environment(),
        cwd=str(REPO),
    )
    async with Client(stdio_client(params, errlog=errlog), mode="legacy") as client:
        for _ in range(calls):
            result = await client.call_tool(tool, arguments)
            if result.is_error:
                raise SystemExit(f"{tool} failed: {result.content}")
    # Leaving the client waited for the server to exit, and it wrote its profile on the way out.
    if not await anyio.Path(profile).exists():
        raise SystemExit(f"{name} wrote no profile (see its stderr)")


def profiled(out: str, argv: list[str]) -> None:
    """Run a server (`-m module ...` or `script ...`) under cProfile timed by CPU, not wall clock.

    Wall-clock profiles charge the time spent waiting for the client to `epoll` and the time the
    process was descheduled to whatever ran at that moment; CPU time charges only work done.
    """
    profiler = cProfile.Profile(time.process_time)
    sys.argv = argv[1:] if argv[0] == "-m" else argv
    sys.path.insert(0, str(REPO) if argv[0] == "-m" else str(Path(argv[0]).resolve().parent))
    profiler.enable()
    try:
        if argv[0] == "-m":
            runpy.run_module(argv[1], run_name="__main__", alter_sys=True)
        else:
            runpy.run_path(argv[0], run_name="__main__")
    finally:
        profiler.disable()
        profiler.dump_stats(out)


def main() -> None:
    if len(sys.argv) > 3 and sys.argv[1] == "--profile-to" and sys.argv[3] == "--":
        profiled(sys.argv[2], sys.argv[4:])
        return
    parser = argparse.ArgumentParser(description="Per-call CPU of a trivial tool call, by layer.")
    parser.add_argument("--server", choices=sorted(SERVERS), default="users")
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--top", type=int, default=25, help="functions to list")
    parser.add_argument("--json", action="store_true", help="print the layer table as JSON too")
    args = parser.parse_args()
    package = "bulkhead_users" if args.server == "users" else None
    with (
        tempfile.TemporaryDirectory(prefix="bulkhead-profile-") as tmp,
        (Path(tmp) / "err.log").open("w") as err,
    ):
        base, full = Path(tmp) / "base.prof", Path(tmp) / "full.prof"
        anyio.run(drive, args.server, args.warmup, base, err)
        anyio.run(drive, args.server, args.warmup + args.calls, full, err)
        before, after = Profile(base), Profile(full)
    delta: dict[Key, tuple[int, float]] = {}
    for key, (count, seconds) in after.own.items():
        count0, seconds0 = before.own.get(key, (0, 0.0))
        if count > count0 and seconds > seconds0:  # start-up (imports, compiles) cancels out
            delta[key] = (count - count0, seconds - seconds0)
    total = sum(seconds for _, seconds in delta.values())
    layers: dict[str, float] = {}
    for key, (_, seconds) in delta.items():
        for layer, share in layers_of(key, after, package).items():
            layers[layer] = layers.get(layer, 0.0) + seconds * share
    print(f"{args.server}: {args.calls} calls, {total / args.calls * 1e6:.0f} µs/call under cProfile\n")
    print("| layer | µs/call | share |\n|---|---|---|")
    for layer, seconds in sorted(layers.items(), key=lambda item: -item[1]):
        print(f"| {layer} | {seconds / args.calls * 1e6:.1f} | {seconds / total:.0%} |")
    print("\nBuiltins (dict.get, isinstance, ...) count in the layer that called them.")
    print("\n| function (own time) | layer | calls/call | µs/call |\n|---|---|---|---|")
    for key, (count, seconds) in sorted(delta.items(), key=lambda item: -item[1][1])[: args.top]:
        filename, line, function = key
        short = "/".join(filename.split("/")[-3:]) if filename != "~" else ""
        label = f"{short}:{line} {function}" if short else function
        per_call = seconds / args.calls * 1e6
        print(f"| `{label}` | {layer_of(key, package)} | {count / args.calls:.1f} | {per_call:.1f} |")
    if args.json:
        print(json.dumps({layer: seconds / args.calls * 1e6 for layer, seconds in layers.items()}))


if __name__ == "__main__":
    main()
