"""Helpers for the servers' tests: in-memory clients, and real server subprocesses.

Nothing here mocks a boundary: `http_server` starts the real console script on a free port and
waits (bounded) until it logs the port it bound; `stdio_parameters` is what the SDK client needs
to spawn the server and speak to it over its stdin/stdout.
"""

import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncGenerator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio
from anyio.abc import Process
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp.server.mcpserver import MCPServer

__all__ = ["HttpServer", "connect", "http_server", "server_environment", "stdio_parameters"]

MODERN_ERA = "2026-07-28"


def connect(server: MCPServer[Any], era: str = "legacy") -> Client:
    """An in-memory client for `server`: `legacy` (initialize handshake) or a modern version."""
    return Client(server, mode=era, raise_exceptions=False)


def server_environment(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The test process's environment without any BULKHEAD_* variables, plus `extra`."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("BULKHEAD_")}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


def stdio_parameters(
    module: str, args: Sequence[str] = (), env: Mapping[str, str] | None = None
) -> StdioServerParameters:
    """Parameters that make the SDK client spawn `python -m <module> <args>` over stdio."""
    return StdioServerParameters(
        command=sys.executable, args=["-m", module, *args], env=server_environment(env)
    )


@dataclass
class HttpServer:
    """A running server subprocess in http mode."""

    process: Process
    port: int
    stderr_lines: list[str] = field(default_factory=list[str])

    @property
    def base_url(self) -> str:
        """`http://127.0.0.1:<port>`."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def mcp_url(self) -> str:
        """The Streamable HTTP endpoint."""
        return f"{self.base_url}/mcp"

    @property
    def sse_url(self) -> str:
        """The legacy SSE endpoint."""
        return f"{self.base_url}/sse"

    def stderr_records(self) -> list[dict[str, Any]]:
        """Every stderr line that is a JSON object (log and audit records)."""
        records: list[dict[str, Any]] = []
        for line in self.stderr_lines:
            try:
                value = json.loads(line)
            except ValueError:
                continue
            if isinstance(value, dict):
                records.append(value)  # pyright: ignore[reportUnknownArgumentType] -- a JSON object
        return records


@asynccontextmanager
async def http_server(
    module: str,
    args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    *,
    startup_timeout: float = 30,
) -> AsyncGenerator[HttpServer]:
    """Start `python -m <module> --transport http --port 0 <args>` and yield once it listens.

    On exit the process gets SIGTERM and must be gone within a few seconds.
    """
    command = [
        sys.executable,
        "-m",
        module,
        "--transport",
        "http",
        "--port",
        "0",
        "--log-format",
        "json",
        *args,
    ]
    process = await anyio.open_process(
        command, env=server_environment(env), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL
    )
    lines: list[str] = []
    port_seen = anyio.Event()
    found: list[int] = []

    async def read_stderr() -> None:
        assert process.stderr is not None
        buffer = b""
        async for chunk in process.stderr:
            buffer += chunk
            *complete, buffer = buffer.split(b"\n")
            for raw in complete:
                line = raw.decode("utf-8", "replace")
                lines.append(line)
                if not found and '"port"' in line:
                    record = json.loads(line)
                    if "port" in record:
                        found.append(int(record["port"]))
                        port_seen.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(read_stderr)
        try:
            with anyio.fail_after(startup_timeout):
                await port_seen.wait()
        except TimeoutError:
            process.kill()
            await process.wait()
            raise RuntimeError("server did not start:\n" + "\n".join(lines[-20:])) from None
        try:
            yield HttpServer(process=process, port=found[0], stderr_lines=lines)
        finally:
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
                try:
                    with anyio.fail_after(10):
                        await process.wait()
                except TimeoutError:
                    process.kill()
                    await process.wait()
            tg.cancel_scope.cancel()
