"""`bulkhead.direct` against the SDK's own session, in this process, over real pipes.

Each test runs the same server twice on Bulkhead's wire (`bulkhead.wire.fd_wire`), once with the
direct-call tap (as `serve_stdio` does by default) and once without it, and checks that a client
sees the same thing: which calls a `notifications/cancelled` reaches, that a cancelled call is
never answered, and that a tool's shielded clean-up runs to its end however often it is cancelled.
The byte-for-byte comparison of answers over a real subprocess is tests/e2e/test_direct_calls.py.
"""

import json
import os
from collections.abc import AsyncGenerator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp_types import CallToolResult

from bulkhead.app import BulkheadServer
from bulkhead.direct import DirectCalls
from bulkhead.settings import ServerSettings
from bulkhead.wire import fd_wire

pytestmark = pytest.mark.anyio

MODES = [True, False]
MODE_IDS = ["direct calls", "sdk session"]


@dataclass
class Gate:
    """What the `hold` tool went through; every wait on it is bounded."""

    started: anyio.Event = field(default_factory=anyio.Event)
    cleaning: anyio.Event = field(default_factory=anyio.Event)
    release: anyio.Event = field(default_factory=anyio.Event)
    ended: anyio.Event = field(default_factory=anyio.Event)
    cleaned: list[str] = field(default_factory=list[str])

    async def wait(self, event: anyio.Event) -> None:
        with anyio.fail_after(10):
            await event.wait()


@pytest.fixture
def gate() -> Gate:
    return Gate()


@pytest.fixture
def server(tmp_path: Path, gate: Gate) -> Iterator[BulkheadServer]:
    server = BulkheadServer(ServerSettings(audit=str(tmp_path / "audit.jsonl")))

    @server.tool()
    async def hold() -> str:
        """Runs until cancelled, then cleans up under a shield until the test releases it."""
        try:
            gate.started.set()
            await anyio.sleep_forever()
        finally:
            try:
                with anyio.CancelScope(shield=True):
                    gate.cleaning.set()
                    await gate.release.wait()
                    gate.cleaned.append("done")
            finally:
                gate.ended.set()
        return "never"  # pragma: no cover -- sleep_forever only ends by cancellation

    @server.tool()
    async def wait_for_release() -> str:
        """Answers once the test releases it."""
        gate.started.set()
        await gate.release.wait()
        return "released"

    @server.tool()
    async def unshapeable() -> CallToolResult:
        """Returns a result that cannot be turned into JSON."""
        return CallToolResult(content=[], structured_content={"value": object()})

    yield server
    server.audit.close()


class Client:
    """The client's ends of two pipes, speaking JSON-RPC line by line."""

    def __init__(self, to_server: int, from_server: int) -> None:
        self.to_server = to_server
        self.from_server = from_server
        self.lines: list[dict[str, Any]] = []
        self.session_over = anyio.Event()
        """Set when the SDK's session has returned (with direct calls, before the tap closes)."""
        self._buffer = bytearray()
        self._pings = 0

    def end_input(self) -> None:
        """Close the server's stdin: the session ends."""
        if self.to_server >= 0:
            os.close(self.to_server)
            self.to_server = -1

    def send(self, message: dict[str, Any]) -> None:
        os.write(self.to_server, json.dumps(message).encode() + b"\n")

    def cancel(self, request_id: object) -> None:
        self.send(
            {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": request_id}}
        )

    async def receive(self) -> dict[str, Any]:
        with anyio.fail_after(10):
            while (end := self._buffer.find(b"\n")) < 0:
                try:
                    chunk = os.read(self.from_server, 1 << 16)
                except BlockingIOError:
                    await anyio.wait_readable(self.from_server)
                    continue
                assert chunk, "the server closed its output"
                self._buffer += chunk
        line = bytes(self._buffer[:end])
        del self._buffer[: end + 1]
        message: dict[str, Any] = json.loads(line)
        self.lines.append(message)
        return message

    async def response(self, request_id: object) -> dict[str, Any]:
        while True:
            message = await self.receive()
            if "method" not in message and message.get("id") == request_id:
                return message

    async def round_trip(self) -> None:
        """A ping and its answer: every line sent before it has been read and handled."""
        self._pings += 1
        ping = f"ping-{self._pings}"
        self.send({"jsonrpc": "2.0", "id": ping, "method": "ping"})
        await self.response(ping)

    def answered(self, request_id: object) -> bool:
        return any("method" not in line and line.get("id") == request_id for line in self.lines)


@asynccontextmanager
async def serving(server: BulkheadServer, *, direct: bool) -> AsyncGenerator[Client]:
    """`server` on Bulkhead's wire over pipes, as `serve_stdio` runs it, after the handshake."""
    server_in, to_server = os.pipe()
    from_server, server_out = os.pipe()
    os.set_blocking(from_server, False)
    tap = DirectCalls(server) if direct else None
    lowlevel = server._lowlevel_server  # pyright: ignore[reportPrivateUsage] -- what serve_stdio runs
    client = Client(to_server, from_server)

    async def run() -> None:
        async with fd_wire(server_in, server_out, tap) as (read, write):
            try:
                await lowlevel.run(read, write, lowlevel.create_initialization_options())
            finally:
                client.session_over.set()
                if tap is not None:
                    with anyio.CancelScope(shield=True):
                        await tap.close()

    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(run)
            initialize = {
                "protocolVersion": "2025-11-25",
                "capabilities": {},
                "clientInfo": {"name": "t", "version": "1"},
            }
            client.send({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": initialize})
            await client.response(0)
            client.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
            assert tap is None or tap.ready
            yield client
            client.end_input()
    finally:
        client.end_input()
        for fd in (server_in, from_server, server_out):
            os.close(fd)


def _call(request_id: object, tool: str) -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "id": request_id,
        "method": "tools/call",
        "params": {"name": tool, "arguments": {}},
    }


@pytest.mark.parametrize("direct", MODES, ids=MODE_IDS)
async def test_a_second_cancel_does_not_cut_short_a_tools_shielded_clean_up(
    server: BulkheadServer, gate: Gate, direct: bool
) -> None:
    async with serving(server, direct=direct) as client:
        client.send(_call(2, "hold"))
        await gate.wait(gate.started)
        client.cancel(2)
        await gate.wait(gate.cleaning)
        client.cancel(2)  # a client that cancels again while the tool still cleans up
        await client.round_trip()
        gate.release.set()
        await gate.wait(gate.ended)
        await client.round_trip()
    assert gate.cleaned == ["done"]
    assert not client.answered(2)


@pytest.mark.parametrize("direct", MODES, ids=MODE_IDS)
async def test_the_end_of_input_does_not_cut_short_a_tools_shielded_clean_up(
    server: BulkheadServer, gate: Gate, direct: bool
) -> None:
    async with serving(server, direct=direct) as client:
        client.send(_call(2, "hold"))
        await gate.wait(gate.started)
        client.cancel(2)
        await gate.wait(gate.cleaning)
        client.end_input()  # the client goes while the cancelled call still cleans up
        if direct:
            # The session is over and the tap cancels the calls it still runs; the SDK's session
            # instead waits for its handlers before it returns.
            await gate.wait(client.session_over)
        gate.release.set()
        await gate.wait(gate.ended)
    assert gate.cleaned == ["done"]


@pytest.mark.parametrize("direct", MODES, ids=MODE_IDS)
@pytest.mark.parametrize(("request_id", "cancelled_id"), [(2, "02"), (2, " 2"), ("2", 2), (7, "7")])
async def test_a_cancel_reaches_the_calls_the_sdk_would_cancel(
    server: BulkheadServer, gate: Gate, direct: bool, request_id: object, cancelled_id: object
) -> None:
    async with serving(server, direct=direct) as client:
        client.send(_call(request_id, "hold"))
        await gate.wait(gate.started)
        client.cancel(cancelled_id)
        await gate.wait(gate.cleaning)
        gate.release.set()
        await gate.wait(gate.ended)
        await client.round_trip()
    assert not client.answered(request_id)


@pytest.mark.parametrize("direct", MODES, ids=MODE_IDS)
@pytest.mark.parametrize(("request_id", "cancelled_id"), [("True", True), ("2.0", 2.0), ("x", "X")])
async def test_a_cancel_leaves_alone_the_calls_the_sdk_would_not_cancel(
    server: BulkheadServer, gate: Gate, direct: bool, request_id: object, cancelled_id: object
) -> None:
    async with serving(server, direct=direct) as client:
        client.send(_call(request_id, "wait_for_release"))
        await gate.wait(gate.started)
        client.cancel(cancelled_id)
        await client.round_trip()
        gate.release.set()
        answer = await client.response(request_id)
    assert answer["result"]["structuredContent"] == {"result": "released"}


async def test_a_result_that_cannot_be_shaped_is_answered_as_the_sdk_answers_it(
    server: BulkheadServer,
) -> None:
    answers: list[dict[str, Any]] = []
    for direct in MODES:
        async with serving(server, direct=direct) as client:
            client.send(_call(3, "unshapeable"))
            answers.append(await client.response(3))
    assert answers[0] == answers[1]
    assert answers[0]["error"]["code"] == 0


@pytest.mark.parametrize("direct", MODES, ids=MODE_IDS)
@pytest.mark.parametrize("later", ["tools/list", "tools/call"])
async def test_a_cancel_for_a_reused_id_reaches_only_the_latest_request_as_in_the_sdk(
    server: BulkheadServer, gate: Gate, direct: bool, later: str
) -> None:
    # The SDK keys its requests in flight by id and a later request with the same id replaces
    # the earlier one there: a cancel for that id never reaches the earlier call.
    async with serving(server, direct=direct) as client:
        client.send(_call(2, "wait_for_release"))
        await gate.wait(gate.started)
        reused = {"jsonrpc": "2.0", "id": 2, "method": later}
        client.send(_call(2, "list_nothing") if later == "tools/call" else reused)
        await client.response(2)
        client.cancel(2)
        await client.round_trip()
        gate.release.set()
        answer = await client.response(2)
    assert answer["result"]["structuredContent"] == {"result": "released"}


@pytest.mark.parametrize("direct", MODES, ids=MODE_IDS)
async def test_a_cancel_for_an_id_a_later_call_took_over_leaves_the_earlier_request_alone(
    server: BulkheadServer, gate: Gate, direct: bool
) -> None:
    # The reverse: the SDK runs a request (with `_meta`, so never direct) and a later direct call
    # reuses its id; the SDK would have replaced the earlier one in its table, so the cancel
    # reaches the later call only, and the earlier one is answered.
    async with serving(server, direct=direct) as client:
        earlier = _call(2, "wait_for_release")
        earlier["params"]["_meta"] = {}
        client.send(earlier)
        await gate.wait(gate.started)
        client.send(_call(2, "hold"))
        await client.round_trip()
        client.cancel(2)
        await client.round_trip()
        gate.release.set()
        answer = await client.response(2)
        await gate.wait(gate.ended)
        client.cancel(2)  # the SDK's request was answered: nothing is left to take over
        await client.round_trip()
    assert answer["result"]["structuredContent"] == {"result": "released"}
    assert sum(1 for line in client.lines if line.get("id") == 2) == 1
