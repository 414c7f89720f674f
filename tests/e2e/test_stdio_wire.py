"""Bulkhead's stdio transport under a real subprocess and real pipes: order, size, stray output, exit.

The server is tests/e2e/stdio_server.py: a bare MCPServer on `bulkhead.serve.serve_stdio`, so
what is tested here is the wire, not a server's tools. Garbage input, huge lines and signals
against a full server are in test_stdio.py.
"""

import itertools
import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import mcp_types
import pytest
from anyio.abc import Process, TaskGroup
from anyio.streams.text import TextReceiveStream
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp_types import CallToolResult, TextContent

from bulkhead.testing import server_environment

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

SERVER = Path(__file__).with_name("stdio_server.py")
HANDSHAKE_VERSION = "2025-11-25"
FIVE_MIB = 5 * 1024 * 1024


def _text(result: CallToolResult) -> str:
    return "".join(block.text for block in result.content if isinstance(block, TextContent))


class WirePeer:
    """The server as a subprocess, spoken to in raw JSON lines; its stderr is read as it comes."""

    def __init__(self, process: Process, stdout_fd: int, tg: TaskGroup) -> None:
        self.process = process
        self.stdout_fd = stdout_fd
        """Our end of the server's stdout: a plain pipe that nothing reads unless a test does."""
        self._stdout_buffer = bytearray()
        self.stdout_closed = False
        self.stderr_lines: list[str] = []
        self._stderr_changed = anyio.Event()
        self._ids = itertools.count(1)
        tg.start_soon(self._read_stderr)

    async def _read_stderr(self) -> None:
        assert self.process.stderr is not None
        pending = ""
        async for text in TextReceiveStream(self.process.stderr, errors="replace"):
            pending += text
            *lines, pending = pending.split("\n")
            self.stderr_lines += lines
            self._stderr_changed.set()
            self._stderr_changed = anyio.Event()

    async def wait_for_stderr(self, fragment: str) -> None:
        with anyio.fail_after(20):
            while not any(fragment in line for line in self.stderr_lines):
                await self._stderr_changed.wait()

    async def send_bytes(self, raw: bytes) -> None:
        assert self.process.stdin is not None
        await self.process.stdin.send(raw)

    async def request(self, method: str, params: dict[str, Any] | None = None) -> int:
        request_id = next(self._ids)
        message: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id, "method": method}
        if params is not None:
            message["params"] = params
        await self.send_bytes(json.dumps(message).encode() + b"\n")
        return request_id

    async def call(self, tool: str, arguments: dict[str, Any]) -> int:
        return await self.request("tools/call", {"name": tool, "arguments": arguments})

    async def _read_stdout(self) -> bytes:
        while True:
            try:
                return os.read(self.stdout_fd, 1 << 16)
            except BlockingIOError:
                await anyio.wait_readable(self.stdout_fd)

    async def receive(self) -> dict[str, Any]:
        """The next line on stdout, which must be one whole JSON-RPC message."""
        with anyio.fail_after(30):
            while (end := self._stdout_buffer.find(b"\n")) < 0:
                chunk = await self._read_stdout()
                assert chunk, "the server closed stdout"
                self._stdout_buffer += chunk
        line = bytes(self._stdout_buffer[:end])
        del self._stdout_buffer[: end + 1]
        mcp_types.jsonrpc_message_adapter.validate_json(line)
        message: dict[str, Any] = json.loads(line)
        return message

    async def handshake(self) -> None:
        request_id = await self.request(
            "initialize",
            {
                "protocolVersion": HANDSHAKE_VERSION,
                "capabilities": {},
                "clientInfo": {"name": "wire", "version": "1"},
            },
        )
        assert (await self.receive())["id"] == request_id
        await self.send_bytes(b'{"jsonrpc": "2.0", "method": "notifications/initialized"}\n')

    async def rest_of_stdout(self) -> list[bytes]:
        """Every line still to come, until the server closes stdout."""
        with anyio.fail_after(20):
            while chunk := await self._read_stdout():
                self._stdout_buffer += chunk
        rest = bytes(self._stdout_buffer)
        self._stdout_buffer.clear()
        return rest.splitlines()

    async def exit_code(self) -> int:
        with anyio.fail_after(10):
            return await self.process.wait()

    def close_stdout(self) -> None:
        """Hang up our end of the server's stdout, as a client that exits does."""
        os.close(self.stdout_fd)
        self.stdout_closed = True

    def stderr_text(self) -> str:
        return "\n".join(self.stderr_lines)


@asynccontextmanager
async def started(*args: str) -> AsyncGenerator[WirePeer]:
    """The server with `args`, after the handshake; killed at the end if it is still running."""
    ours, theirs = os.pipe()
    try:
        process = await anyio.open_process(
            [sys.executable, str(SERVER), *args],
            env=server_environment(),
            stdout=theirs,
            stderr=subprocess.PIPE,
        )
    finally:
        os.close(theirs)
    os.set_blocking(ours, False)
    peer: WirePeer | None = None
    try:
        async with process, anyio.create_task_group() as tg:
            peer = WirePeer(process, ours, tg)
            await peer.handshake()
            try:
                yield peer
            finally:
                if process.returncode is None:
                    process.kill()
                await process.wait()
    finally:
        if peer is None or not peer.stdout_closed:
            os.close(ours)


@pytest.fixture
async def peer() -> AsyncIterator[WirePeer]:
    async with started() as peer:
        yield peer


@pytest.mark.parametrize("era", ["legacy", "2026-07-28"])
async def test_many_concurrent_calls_each_get_their_own_answer(era: str) -> None:
    params = StdioServerParameters(command=sys.executable, args=[str(SERVER)], env=server_environment())
    answers: dict[int, str] = {}
    async with Client(params, mode=era) as client:

        async def call(number: int) -> None:
            result = await client.call_tool("echo", {"text": f"message {number} " + "x" * (number % 7)})
            answers[number] = _text(result)

        with anyio.fail_after(60):
            async with anyio.create_task_group() as tg:
                for number in range(100):
                    tg.start_soon(call, number)
        assert _text(await client.call_tool("echo", {"text": "still here"})) == "still here"
    assert answers == {number: f"message {number} " + "x" * (number % 7) for number in range(100)}


async def test_pipelined_requests_are_all_answered_once_with_their_own_ids(peer: WirePeer) -> None:
    lines = [
        json.dumps(
            {
                "jsonrpc": "2.0",
                "id": 100 + number,
                "method": "tools/call",
                "params": {"name": "echo", "arguments": {"text": str(number)}},
            }
        )
        for number in range(200)
    ]
    await peer.send_bytes(("\n".join(lines) + "\n").encode())  # one write: many lines per read
    replies = [await peer.receive() for _ in range(200)]
    assert sorted(reply["id"] for reply in replies) == [100 + number for number in range(200)]
    for reply in replies:
        assert reply["result"]["content"][0]["text"] == str(reply["id"] - 100)


async def test_a_request_written_a_byte_at_a_time_is_read_as_one_line(peer: WirePeer) -> None:
    line = json.dumps(
        {
            "jsonrpc": "2.0",
            "id": 7,
            "method": "tools/call",
            "params": {"name": "echo", "arguments": {"text": "piecemeal"}},
        }
    ).encode()
    for byte in line:
        await peer.send_bytes(bytes([byte]))
    await peer.send_bytes(b"\n")
    reply = await peer.receive()
    assert reply["id"] == 7
    assert reply["result"]["content"][0]["text"] == "piecemeal"


async def test_a_5_mib_reply_reaches_a_reader_that_is_slow_whole_and_in_order(peer: WirePeer) -> None:
    big = await peer.call("blob", {"size": FIVE_MIB})
    # Nothing reads stdout until the server says the pipe is full: its writes then met EAGAIN.
    await peer.wait_for_stderr("stdout is full")
    small = await peer.call("echo", {"text": "after the blob"})
    replies = {reply["id"]: reply for reply in [await peer.receive(), await peer.receive()]}
    text = replies[big]["result"]["content"][0]["text"]
    assert len(text) == FIVE_MIB
    assert text.startswith("abcdefghijklmnopqrstuvwxyzabc")
    assert text.endswith("$")
    assert replies[small]["result"]["content"][0]["text"] == "after the blob"
    assert peer.process.returncode is None


async def test_stray_output_from_a_tool_goes_to_stderr_and_never_to_the_protocol(peer: WirePeer) -> None:
    marker = "stray-output-8c1f"
    request_id = await peer.call("chatter", {"text": marker})
    reply = await peer.receive()
    assert reply["id"] == request_id
    assert reply["result"]["content"][0]["text"] == marker
    follow_up = await peer.call("echo", {"text": "clean"})
    assert (await peer.receive())["id"] == follow_up
    assert peer.process.stdin is not None
    await peer.process.stdin.aclose()
    rest = await peer.rest_of_stdout()
    assert await peer.exit_code() == 0
    for line in rest:  # whatever else reached stdout is protocol too (there should be nothing)
        mcp_types.jsonrpc_message_adapter.validate_json(line)
    assert sum(line.strip() == marker for line in peer.stderr_lines) == 4  # print, write, os.write, a child


async def test_end_of_stdin_with_a_reply_pending_exits_0_without_a_traceback(peer: WirePeer) -> None:
    await peer.call("blob", {"size": FIVE_MIB})
    assert peer.process.stdin is not None
    await peer.process.stdin.aclose()
    for line in await peer.rest_of_stdout():  # the reply may be cut off by EOF, never by half
        mcp_types.jsonrpc_message_adapter.validate_json(line)
    assert await peer.exit_code() == 0
    assert "Traceback" not in peer.stderr_text()


async def test_a_client_that_stops_reading_and_goes_away_ends_the_server_cleanly(peer: WirePeer) -> None:
    await peer.call("blob", {"size": FIVE_MIB})
    await peer.wait_for_stderr("stdout is full")
    peer.close_stdout()  # the server's next write meets EPIPE
    assert await peer.exit_code() == 0
    assert "Traceback" not in peer.stderr_text()


async def test_a_signal_while_stdout_is_full_ends_the_server_promptly(peer: WirePeer) -> None:
    await peer.call("blob", {"size": FIVE_MIB})
    await peer.wait_for_stderr("stdout is full")
    peer.process.send_signal(signal.SIGTERM)
    assert await peer.exit_code() == 0
    assert "Traceback" not in peer.stderr_text()


async def test_stdin_and_stdout_are_the_wire_again_and_blocking_once_serving_ends() -> None:
    script = (
        "import os, anyio\n"
        "from mcp.server.mcpserver import MCPServer\n"
        "from bulkhead.serve import serve_stdio\n"
        "print('before', flush=True)\n"
        "anyio.run(serve_stdio, MCPServer('x'))\n"
        "print('after', os.get_blocking(0), os.get_blocking(1), flush=True)\n"
    )
    with anyio.fail_after(30):
        done = await anyio.run_process(
            [sys.executable, "-c", script], input=b"", env=server_environment(), check=False
        )
    assert done.returncode == 0, done.stderr
    assert done.stdout.decode().splitlines() == ["before", "after True True"]


async def test_a_cancelled_call_stops_its_tool_gets_no_reply_and_is_audited_as_cancelled() -> None:
    async with started("--bulkhead") as peer:
        request_id = await peer.call("hold", {})
        await peer.wait_for_stderr("hold is holding")
        cancel = {"requestId": request_id, "reason": "the user gave up"}
        await peer.send_bytes(
            json.dumps({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": cancel}).encode()
            + b"\n"
        )
        await peer.wait_for_stderr("hold was cancelled")
        await peer.wait_for_stderr('"target": "hold"')
        ping = await peer.request("ping")
        assert (await peer.receive())["id"] == ping  # the cancelled call is never answered (spec)
        [record] = [json.loads(line) for line in peer.stderr_lines if '"target": "hold"' in line]
        assert record["outcome"] == "cancelled"
