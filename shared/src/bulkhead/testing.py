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
from collections.abc import AsyncGenerator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio
from anyio.abc import Process
from mcp import Client
from mcp.client.session import IncomingMessage
from mcp.client.stdio import StdioServerParameters
from mcp.server.mcpserver import MCPServer
from mcp_types import ServerNotification

__all__ = ["HttpServer", "Inbox", "connect", "http_server", "server_environment", "stdio_parameters"]

MODERN_ERA = "2026-07-28"


class Inbox:
    """The notifications a client received (pass it as the client's message handler).

    The waits are bounded: a notification that never comes fails the test, never hangs it.
    """

    def __init__(self, timeout: float = 10) -> None:
        self.items: list[ServerNotification] = []
        self.timeout = timeout
        self._changed = anyio.Event()

    async def __call__(self, message: IncomingMessage) -> None:
        """Keep `message` if it is a notification (the client also hands over exceptions)."""
        if not isinstance(message, Exception):
            self.items.append(message)
            self._changed.set()
            self._changed = anyio.Event()

    def count(self, kind: type[ServerNotification]) -> int:
        """How many notifications of `kind` arrived so far."""
        return sum(isinstance(item, kind) for item in self.items)

    async def next_of(self, kind: type[ServerNotification], seen: int = 0) -> ServerNotification:
        """The first notification of `kind` after the first `seen` items, waiting for it."""
        with anyio.fail_after(self.timeout):
            while True:
                for item in self.items[seen:]:
                    if isinstance(item, kind):
                        return item
                await self._changed.wait()

    async def wait_for(self, kind: type[ServerNotification], count: int) -> None:
        """Wait until `count` notifications of `kind` have arrived."""
        with anyio.fail_after(self.timeout):
            while self.count(kind) < count:
                await self._changed.wait()


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


def _json_object(line: str) -> dict[str, Any] | None:
    try:
        value = json.loads(line)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None  # pyright: ignore[reportUnknownVariableType] -- a JSON object


class _StderrLog:
    """The lines a subprocess wrote to stderr so far, and a way to wait for the next one."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.closed = False
        self._changed = anyio.Event()

    def append(self, line: str) -> None:
        self.lines.append(line)
        self._changed.set()
        self._changed = anyio.Event()

    def close(self) -> None:
        self.closed = True
        self._changed.set()

    async def wait_for(self, predicate: Callable[[str], bool]) -> str:
        seen = 0
        while True:
            for line in self.lines[seen:]:
                if predicate(line):
                    return line
            seen = len(self.lines)
            if self.closed:
                raise RuntimeError("stderr closed before the line appeared")
            await self._changed.wait()


@dataclass
class HttpServer:
    """A running server subprocess in http mode."""

    process: Process
    port: int
    stderr_lines: list[str] = field(default_factory=list[str])
    _log: _StderrLog = field(default_factory=_StderrLog, repr=False)

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
        return [record for line in self.stderr_lines if (record := _json_object(line)) is not None]

    async def wait_for_record(self, predicate: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        """The first stderr JSON record, already written or still to come, that `predicate` accepts.

        Unbounded: wrap the call in `anyio.fail_after`. Raises `RuntimeError` if stderr closes first.
        """

        def matches(line: str) -> bool:
            record = _json_object(line)
            return record is not None and predicate(record)

        line = await self._log.wait_for(matches)
        record = _json_object(line)
        assert record is not None
        return record


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
    log = _StderrLog()
    port_seen = anyio.Event()
    found: list[int] = []

    async def read_stderr() -> None:
        assert process.stderr is not None
        buffer = b""
        try:
            async for chunk in process.stderr:
                buffer += chunk
                *complete, buffer = buffer.split(b"\n")
                for raw in complete:
                    line = raw.decode("utf-8", "replace")
                    log.append(line)
                    record = None if found else _json_object(line)
                    if record is not None and "port" in record:
                        found.append(int(record["port"]))
                        port_seen.set()
        finally:
            log.close()
            port_seen.set()  # a server that exits early fails the start at once, not at the timeout

    async with anyio.create_task_group() as tg:
        tg.start_soon(read_stderr)
        with anyio.move_on_after(startup_timeout):
            await port_seen.wait()
        if not found:
            if process.returncode is None:
                process.kill()
            await process.wait()
            raise RuntimeError("server did not start:\n" + "\n".join(log.lines[-20:]))
        try:
            yield HttpServer(process=process, port=found[0], stderr_lines=log.lines, _log=log)
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
