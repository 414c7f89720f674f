"""The PostgreSQL benchmark's servers, and two ways to talk to them over stdio.

`sdk` is the SDK's own client (`mcp.Client`, handshake era): what the issue asks for, and what a
Python agent runs. It validates every structured result against the tool's output schema (with
`jsonschema`), so a server that returns structured content costs its client more than one that
returns text alone. `raw` is a bare JSON-RPC client (one line out, lines in until the answer): it
shows what the server itself can do, with almost nothing on the client side.
"""

import os
import subprocess
import sys
from collections.abc import AsyncGenerator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol, TextIO, cast

import anyio
from anyio.abc import Process
from mcp import Client
from mcp.client.stdio import StdioServerParameters, get_default_environment, stdio_client
from mcp_types import TextContent

import pgdata
from procfs import child_pids
from rawrpc import RawRpc, stop

REPO = Path(__file__).resolve().parent.parent
PEERS = REPO / "bench" / "peers"
NODE_SERVER = PEERS / "node_modules" / "@modelcontextprotocol" / "server-postgres" / "dist" / "index.js"
POSTGRES_MCP = PEERS / ".venv" / "bin" / "postgres-mcp"
INSTALL = "sh bench/peers/install.sh"
STARTUP_TIMEOUT = 60.0
CALL_TIMEOUT = 30.0
STOP_TIMEOUT = 5.0

Mode = Literal["sdk", "raw"]
MODES: dict[Mode, str] = {"sdk": "mcp.Client", "raw": "raw JSON-RPC"}


@dataclass(frozen=True)
class Target:
    """One server under test, started with one database role."""

    key: str
    """Its short name for --servers."""
    name: str
    command: list[str]
    env: dict[str, str]
    tool: str
    params: bool
    """Whether its query tool takes bind parameters."""
    big_arguments: dict[str, Any] = field(default_factory=dict[str, Any])
    missing: str | None = None
    """Why it cannot run here, if it cannot."""


def targets(dsn: Callable[[str], str], role: str) -> list[Target]:
    """The three servers, each connecting as `role` (`dsn(role)` is its connection string)."""
    base = get_default_environment()
    role_dsn = dsn(role)
    bulkhead = [sys.executable, "-m", "bulkhead_postgres", "--dsn", role_dsn, "--max-rows", str(pgdata.BIG)]
    if role != pgdata.READER:
        bulkhead.append("--allow-privileged-role")  # it refuses a role that can write, unless told
    node_missing = None
    if not NODE_SERVER.is_file():
        node_missing = f"not installed: run `{INSTALL}`"
    elif not any((Path(p) / "node").is_file() for p in os.get_exec_path()):
        node_missing = "node is not on PATH"
    return [
        Target(
            "bulkhead",
            "bulkhead-postgres",
            bulkhead,
            base,
            "query",
            params=True,
            big_arguments={"max_rows": pgdata.BIG},
        ),
        Target(
            "node",
            "server-postgres (npm)",
            ["node", str(NODE_SERVER), role_dsn],
            base,
            "query",
            params=False,
            missing=node_missing,
        ),
        Target(
            "postgres-mcp",
            "postgres-mcp restricted (PyPI)",
            [str(POSTGRES_MCP), "--access-mode=restricted"],
            {**base, "DATABASE_URI": role_dsn},
            "execute_sql",
            params=False,
            missing=None if POSTGRES_MCP.is_file() else f"not installed: run `{INSTALL}`",
        ),
    ]


class Caller(Protocol):
    """One open session with a server: call its query tool, get the text and the error flag."""

    async def call(self, arguments: dict[str, Any]) -> tuple[str, bool]: ...


class CallFailedError(Exception):
    """A call did not return what it should have; the text says what came back."""


def _leaves(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        group = cast("BaseExceptionGroup[BaseException]", exc)
        return [leaf for inner in group.exceptions for leaf in _leaves(inner)]
    return [exc]


def reason(exc: BaseException) -> str:
    """One short line for a row's note, from the most telling exception in `exc`."""
    leaves = _leaves(exc)
    leaf = next((x for x in leaves if isinstance(x, CallFailedError)), leaves[0])
    text = str(leaf) or type(leaf).__name__
    return " ".join(text.split())[:160]


@asynccontextmanager
async def session(target: Target, mode: Mode, errlog: TextIO) -> AsyncGenerator[tuple[Caller, int]]:
    """A session with a fresh server process, and that process's pid."""
    if mode == "sdk":
        async with _sdk(target, errlog) as opened:
            yield opened
    else:
        async with _raw(target, errlog) as opened:
            yield opened


# --- the SDK's client ---------------------------------------------------------------------------


class SdkCaller:
    def __init__(self, client: Client, tool: str) -> None:
        self.client = client
        self.tool = tool

    async def call(self, arguments: dict[str, Any]) -> tuple[str, bool]:
        with anyio.fail_after(CALL_TIMEOUT):
            result = await self.client.call_tool(self.tool, arguments)
        text = "".join(part.text for part in result.content if isinstance(part, TextContent))
        return text, result.is_error


@asynccontextmanager
async def _sdk(target: Target, errlog: TextIO) -> AsyncGenerator[tuple[Caller, int]]:
    params = StdioServerParameters(command=target.command[0], args=target.command[1:], env=target.env)
    before = child_pids(os.getpid())
    # The read timeout bounds the handshake; calls are bounded on their own (CALL_TIMEOUT).
    transport = stdio_client(params, errlog=errlog)
    async with Client(transport, mode="legacy", read_timeout_seconds=STARTUP_TIMEOUT) as client:
        new = child_pids(os.getpid()) - before
        if len(new) != 1:
            raise RuntimeError(f"expected one new server process, found {sorted(new)}")
        yield SdkCaller(client, target.tool), new.pop()


# --- a bare JSON-RPC client ---------------------------------------------------------------------


class RawCaller(RawRpc):
    def __init__(self, process: Process, tool: str) -> None:
        super().__init__(process)
        self.tool = tool

    async def call(self, arguments: dict[str, Any]) -> tuple[str, bool]:
        with anyio.fail_after(CALL_TIMEOUT):
            response = await self.request("tools/call", {"name": self.tool, "arguments": arguments})
        text, is_error, _ = self.tool_text(response)
        return text, is_error


@asynccontextmanager
async def _raw(target: Target, errlog: TextIO) -> AsyncGenerator[tuple[Caller, int]]:
    process = await anyio.open_process(
        target.command, env=target.env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=errlog
    )
    try:
        caller = RawCaller(process, target.tool)
        with anyio.fail_after(STARTUP_TIMEOUT):
            await caller.initialize("2024-11-05")
        yield caller, process.pid
    finally:
        # Every server here exits when its stdin closes; one that does not is killed.
        await stop(process, STOP_TIMEOUT)
