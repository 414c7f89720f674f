"""bulkhead-users as a real subprocess over stdio: both protocol eras, a clean stdout, garbage, signals.

THREATS.md, all servers: malformed JSON-RPC, invalid UTF-8, huge strings, deep nesting, unknown
methods and tools, wrong/missing/extra arguments get a clear error and the process survives; in
stdio mode nothing but protocol messages reaches stdout.
"""

import itertools
import json
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import mcp_types
import pytest
from anyio.abc import Process
from anyio.streams.buffered import BufferedByteReceiveStream
from mcp import Client
from mcp_types import CallToolResult, TextResourceContents

from bulkhead.testing import server_environment, stdio_parameters

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

MODULE = "bulkhead_users"
ERAS = ["legacy", "2026-07-28"]
HANDSHAKE_VERSION = "2025-11-25"
PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602


def _text(result: CallToolResult) -> str:
    return "".join(getattr(block, "text", "") for block in result.content)


class StdioPeer:
    """A server subprocess spoken to line by line over its own pipes (stderr goes to a file)."""

    def __init__(self, process: Process, stderr_path: Path) -> None:
        assert process.stdin is not None
        assert process.stdout is not None
        self.process = process
        self.stderr_path = stderr_path
        self.stdout_lines: list[bytes] = []
        self._stdout = BufferedByteReceiveStream(process.stdout)
        self._ids = itertools.count(1000)

    @classmethod
    async def start(cls, stderr_path: Path, *args: str) -> "StdioPeer":
        with stderr_path.open("wb") as stderr:
            process = await anyio.open_process(
                [sys.executable, "-m", MODULE, *args], env=server_environment(), stderr=stderr
            )
        return cls(process, stderr_path)

    async def send_line(self, raw: bytes) -> None:
        assert self.process.stdin is not None
        await self.process.stdin.send(raw + b"\n")

    async def send(self, message: dict[str, Any]) -> None:
        await self.send_line(json.dumps(message).encode())

    async def receive(self) -> dict[str, Any]:
        """The next message on stdout, which must be one line of JSON-RPC."""
        with anyio.fail_after(20):
            line = await self._stdout.receive_until(b"\n", 64 * 1024 * 1024)
        self.stdout_lines.append(line)
        mcp_types.jsonrpc_message_adapter.validate_json(line)
        message: dict[str, Any] = json.loads(line)
        return message

    async def response(self, request_id: int | None) -> dict[str, Any]:
        """The response to `request_id` (None: an error about an unparseable line)."""
        while True:
            message = await self.receive()
            if "method" not in message and message.get("id") == request_id:
                return message

    async def request(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        request_id = next(self._ids)
        message: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id, "method": method}
        if params is not None:
            message["params"] = params
        await self.send(message)
        return await self.response(request_id)

    async def call(self, tool: str, arguments: Any) -> dict[str, Any]:
        """The result of a tools/call (which must not be a JSON-RPC error)."""
        reply = await self.request("tools/call", {"name": tool, "arguments": arguments})
        assert "error" not in reply, reply
        result: dict[str, Any] = reply["result"]
        return result

    async def handshake(self) -> None:
        reply = await self.request(
            "initialize",
            {
                "protocolVersion": HANDSHAKE_VERSION,
                "capabilities": {},
                "clientInfo": {"name": "e2e", "version": "1"},
            },
        )
        assert reply["result"]["serverInfo"]["name"] == "bulkhead-users"
        await self.send({"jsonrpc": "2.0", "method": "notifications/initialized"})

    async def assert_healthy(self) -> None:
        """The process still runs and answers a real tool call."""
        assert self.process.returncode is None
        result = await self.call("get_user", {"user": "u00001"})
        assert not result.get("isError"), result
        assert result["structuredContent"]["id"] == "u00001"

    async def close_stdin_and_wait(self) -> int:
        assert self.process.stdin is not None
        await self.process.stdin.aclose()
        rest = b""
        with anyio.fail_after(10):
            while True:
                try:
                    rest += await self._stdout.receive()
                except anyio.EndOfStream:
                    break
            returncode = await self.process.wait()
        self.stdout_lines.extend(rest.splitlines())
        return returncode

    def stderr_records(self) -> list[dict[str, Any]]:
        records: list[dict[str, Any]] = []
        for line in self.stderr_path.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                value = json.loads(line)
            except ValueError:
                continue
            if isinstance(value, dict):
                records.append(value)  # pyright: ignore[reportUnknownArgumentType] -- a JSON object
        return records


@pytest.fixture(scope="module")
async def peer(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[StdioPeer]:
    """One stdio server for every garbage test: surviving them all, in turn, is the point."""
    peer = await StdioPeer.start(tmp_path_factory.mktemp("stdio") / "stderr.log")
    await peer.handshake()
    yield peer
    assert await peer.close_stdin_and_wait() == 0


# --- the SDK client, both eras ------------------------------------------------------------------


@pytest.mark.parametrize("era", ERAS)
async def test_the_sdk_client_calls_tools_and_reads_a_user_over_stdio(era: str) -> None:
    async with Client(stdio_parameters(MODULE), mode=era) as client:
        assert client.protocol_version == (HANDSHAKE_VERSION if era == "legacy" else era)
        tools = {tool.name for tool in (await client.list_tools()).tools}
        person = await client.call_tool("get_user", {"user": "u00001"})
        page = await client.call_tool("search_users", {"department": "Engineering", "page_size": 3})
        missing = await client.call_tool("get_user", {"user": "u99999"})
        resource = await client.read_resource("users://u00001")
    assert {"get_user", "search_users", "list_groups"} <= tools
    assert not person.is_error
    assert person.structured_content is not None
    assert person.structured_content["title"] == "Chief Executive Officer"
    assert page.structured_content is not None
    assert len(page.structured_content["users"]) == 3
    assert page.structured_content["next_cursor"]
    assert missing.is_error
    assert "No user" in _text(missing)
    [contents] = resource.contents
    assert isinstance(contents, TextResourceContents)
    assert json.loads(contents.text) == person.structured_content


# --- stdout is the protocol channel ------------------------------------------------------------


async def test_stdout_carries_only_json_rpc_and_every_log_line_goes_to_stderr(tmp_path: Path) -> None:
    peer = await StdioPeer.start(tmp_path / "stderr.log", "--log-level", "debug")
    await peer.handshake()
    await peer.request("tools/list")
    await peer.call("get_user", {"user": "u00001"})
    await peer.call("get_user", {"user": "u99999"})
    await peer.request("tools/call", {"name": "no_such_tool", "arguments": {}})
    await peer.call("search_users", {"page_size": "lots"})
    await peer.request("resources/read", {"uri": "users://u00001"})
    await peer.request("resources/read", {"uri": "users://nobody"})
    await peer.request("no/such/method")
    await peer.send_line(b"this is not JSON")
    await peer.response(None)
    await peer.send_line(b'{"jsonrpc": "2.0", "id": ')
    await peer.response(None)
    await peer.assert_healthy()
    assert await peer.close_stdin_and_wait() == 0

    assert len(peer.stdout_lines) >= 12
    for line in peer.stdout_lines:
        mcp_types.jsonrpc_message_adapter.validate_json(line)
        assert json.loads(line)["jsonrpc"] == "2.0"
    records = peer.stderr_records()
    assert any(record.get("logger") == "bulkhead.audit" for record in records)
    assert any(record.get("level") == "debug" for record in records)
    assert any("not a JSON-RPC message" in record.get("message", "") for record in records)


@pytest.mark.parametrize(("choice", "loop"), [("uvloop", "uvloop.Loop"), ("asyncio", "asyncio.unix_events")])
async def test_the_server_runs_on_the_event_loop_the_setting_names(
    tmp_path: Path, choice: str, loop: str
) -> None:
    peer = await StdioPeer.start(tmp_path / "stderr.log", "--log-level", "debug", "--event-loop", choice)
    await peer.handshake()
    await peer.call("get_user", {"user": "u00001"})
    await peer.assert_healthy()
    assert await peer.close_stdin_and_wait() == 0
    messages = [record.get("message", "") for record in peer.stderr_records()]
    assert any(message.startswith(f"event loop: {loop}") for message in messages), messages


# --- garbage in, a clear error out, the process survives ----------------------------------------

NOT_JSON = [
    b"this is not JSON",
    b"{",
    b'{"jsonrpc": "2.0", "id": 1, "method": "ping"',
    b"{'jsonrpc': '2.0', 'id': 1, 'method': 'ping'}",
    b'{"jsonrpc": "2.0", "id": 1, "method": "ping"}}',
    b"\x00\x01\x02",
    b"}{",
    b"undefined",
]


@pytest.mark.parametrize("line", NOT_JSON)
async def test_a_line_that_is_not_json_gets_a_parse_error(peer: StdioPeer, line: bytes) -> None:
    await peer.send_line(line)
    reply = await peer.response(None)
    assert reply["error"]["code"] == PARSE_ERROR
    assert "not valid JSON" in reply["error"]["message"]
    await peer.assert_healthy()


@pytest.mark.parametrize("size_mib", [5, 12])
async def test_a_line_over_four_mib_is_discarded_and_answered(peer: StdioPeer, size_mib: int) -> None:
    padding = b"a" * (size_mib * 1024 * 1024)
    await peer.send_line(
        b'{"jsonrpc": "2.0", "id": 9, "method": "ping", "params": {"x": "' + padding + b'"}}'
    )
    reply = await peer.response(None)
    assert reply["error"]["code"] == INVALID_REQUEST
    assert "longer than 4194304 bytes" in reply["error"]["message"]
    await peer.assert_healthy()


INVALID_UTF8 = [
    b"\xff\xfe\xfd",
    b"\xc3\x28",
    b"\xc0\xaf\xc0\xaf",
    b"\xed\xa0\x80",
    b'{"jsonrpc": "2.0", "id": 1, "method": "\xff\xfe"}',
]


@pytest.mark.parametrize("line", INVALID_UTF8)
async def test_invalid_utf8_outside_a_string_is_answered_and_survived(peer: StdioPeer, line: bytes) -> None:
    await peer.send_line(line)
    reply = await peer.receive()
    assert "error" in reply
    assert reply["error"]["code"] in {PARSE_ERROR, INVALID_REQUEST, METHOD_NOT_FOUND}
    await peer.assert_healthy()


@pytest.mark.parametrize("raw_user", [b"\xff", b"u0000\xc3", b"\xed\xa0\x80u00001", b"u00001\x80"])
async def test_invalid_utf8_inside_an_argument_is_a_tool_error(peer: StdioPeer, raw_user: bytes) -> None:
    line = b'{"jsonrpc": "2.0", "id": 77, "method": "tools/call", "params": {"name": "get_user", '
    line += b'"arguments": {"user": "' + raw_user + b'"}}}'
    await peer.send_line(line)
    reply = await peer.response(77)
    assert reply["result"]["isError"] is True
    assert reply["result"].get("structuredContent") is None
    await peer.assert_healthy()


NOT_JSON_RPC = [
    b"[]",
    b"[1, 2, 3]",
    b"42",
    b'"ping"',
    b"null",
    b"{}",
    b'{"jsonrpc": "1.0", "id": 1, "method": "ping"}',
    b'{"id": 1, "method": "ping"}',
    b'{"jsonrpc": "2.0", "method": ["ping"]}',
    b'{"jsonrpc": "2.0", "id": 1, "method": 42}',
    b'[{"jsonrpc": "2.0", "id": 1, "method": "ping"}, {"jsonrpc": "2.0", "id": 2, "method": "ping"}]',
]


@pytest.mark.parametrize("line", NOT_JSON_RPC)
async def test_json_that_is_not_a_json_rpc_message_gets_invalid_request(peer: StdioPeer, line: bytes) -> None:
    await peer.send_line(line)
    reply = await peer.response(None)
    assert reply["error"]["code"] == INVALID_REQUEST
    await peer.assert_healthy()


@pytest.mark.parametrize("depth", [1_000, 100_000])
@pytest.mark.parametrize("where", ["bare", "in_arguments", "in_params"])
async def test_deeply_nested_json_gets_a_parse_error(peer: StdioPeer, depth: int, where: str) -> None:
    nested = b"[" * depth + b"]" * depth
    lines = {
        "bare": nested,
        "in_arguments": b'{"jsonrpc": "2.0", "id": 5, "method": "tools/call", "params": {"name": "get_user", '
        + b'"arguments": {"user": '
        + nested
        + b"}}}",
        "in_params": b'{"jsonrpc": "2.0", "id": 5, "method": "ping", "params": {"x": ' + nested + b"}}",
    }
    await peer.send_line(lines[where])
    reply = await peer.response(None)
    assert reply["error"]["code"] == PARSE_ERROR
    await peer.assert_healthy()


async def test_moderately_nested_arguments_are_a_tool_error(peer: StdioPeer) -> None:
    nested: Any = "u00001"
    for _ in range(40):
        nested = {"user": [nested]}
    result = await peer.call("get_user", nested)
    assert result["isError"] is True
    await peer.assert_healthy()


@pytest.mark.parametrize(
    ("tool", "arguments"),
    [
        ("get_user", {"user": "u" * 1_000_000}),
        ("get_user", {"user": "u00001" + " " * 1_000_000}),
        ("search_users", {"query": "ada " * 250_000}),
        ("get_group_members", {"group": "g" * 1_000_000}),
        ("search_users", {"department": "é" * 500_000}),
    ],
)
async def test_a_megabyte_argument_is_a_tool_error_and_is_not_echoed_back(
    peer: StdioPeer, tool: str, arguments: dict[str, Any]
) -> None:
    result = await peer.call(tool, arguments)
    assert result["isError"] is True
    assert len(json.dumps(result)) < 10_000
    await peer.assert_healthy()


@pytest.mark.parametrize(
    "method", ["no/such/method", "tools/delete", "", "rpc.discover", "users/drop", "x" * 10_000]
)
async def test_an_unknown_method_gets_method_not_found(peer: StdioPeer, method: str) -> None:
    reply = await peer.request(method, {})
    assert reply["error"]["code"] == METHOD_NOT_FOUND
    await peer.assert_healthy()


@pytest.mark.parametrize(
    "tool", ["no_such_tool", "", "GET_USER", "get_user ", "../get_user", "get_user\x00", "t" * 5000]
)
async def test_an_unknown_tool_gets_an_error_naming_the_problem(peer: StdioPeer, tool: str) -> None:
    reply = await peer.request("tools/call", {"name": tool, "arguments": {"user": "u00001"}})
    # Since 2025-11-25 an unknown tool is a protocol error (invalid params), not a tool result.
    assert reply["error"]["code"] == INVALID_PARAMS
    assert reply["error"]["message"].startswith("Unknown tool")
    await peer.assert_healthy()


@pytest.mark.parametrize(
    ("tool", "arguments"),
    [
        ("get_user", {"user": 123}),
        ("get_user", {"user": None}),
        ("get_user", {"user": ["u00001"]}),
        ("get_user", {"user": {"$ne": ""}}),
        ("get_user", {"user": True}),
        ("search_users", {"page_size": "many"}),
        ("search_users", {"page_size": -1}),
        ("search_users", {"page_size": 10**30}),
        ("search_users", {"page_size": 2.5}),
        ("search_users", {"cursor": 42}),
        ("list_groups", {"page_size": [1]}),
    ],
)
async def test_an_argument_of_the_wrong_type_is_a_tool_error(
    peer: StdioPeer, tool: str, arguments: dict[str, Any]
) -> None:
    result = await peer.call(tool, arguments)
    assert result["isError"] is True
    assert result["content"][0]["text"]
    await peer.assert_healthy()


@pytest.mark.parametrize(
    ("tool", "arguments"),
    [
        ("get_user", {}),
        ("get_manager_chain", {}),
        ("get_group_members", {"sort": "id"}),
        ("get_user", None),
    ],
)
async def test_a_missing_argument_is_a_tool_error_naming_it(
    peer: StdioPeer, tool: str, arguments: Any
) -> None:
    result = await peer.call(tool, arguments)
    assert result["isError"] is True
    text = result["content"][0]["text"]
    assert "user" in text or "group" in text
    await peer.assert_healthy()


@pytest.mark.parametrize(
    "extra",
    [
        {"admin": True},
        {"fields": ["phone", "personal_address"]},
        {"__proto__": {"x": 1}},
        {"user ": "u00002"},
    ],
)
async def test_extra_arguments_are_an_error_naming_them_and_never_acted_on(
    peer: StdioPeer, extra: dict[str, Any]
) -> None:
    result = await peer.call("get_user", {"user": "u00001", **extra})
    assert result["isError"] is True
    assert "structuredContent" not in result
    text = result["content"][0]["text"]
    assert f"get_user has no argument {next(iter(extra))!r}; its arguments are: user" in text
    await peer.assert_healthy()


@pytest.mark.parametrize(
    "params",
    [
        {"name": 42, "arguments": {}},
        {"arguments": {"user": "u00001"}},
        {"name": "get_user", "arguments": "user=u00001"},
        {"name": "get_user", "arguments": ["u00001"]},
    ],
)
async def test_malformed_tools_call_params_are_an_error_not_a_crash(
    peer: StdioPeer, params: dict[str, Any]
) -> None:
    reply = await peer.request("tools/call", params)
    assert "error" in reply or reply["result"]["isError"] is True
    await peer.assert_healthy()


# --- ending the process --------------------------------------------------------------------------


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
async def test_a_signal_ends_the_server_promptly_with_exit_code_0(
    tmp_path: Path, signum: signal.Signals
) -> None:
    peer = await StdioPeer.start(tmp_path / "stderr.log")
    await peer.handshake()
    await peer.assert_healthy()
    # stdin stays open: the server must not wait for the client to write or hang up.
    peer.process.send_signal(signum)
    with anyio.fail_after(3):
        assert await peer.process.wait() == 0
    assert "Traceback" not in peer.stderr_path.read_text()


async def test_end_of_stdin_ends_the_server_promptly_with_exit_code_0(tmp_path: Path) -> None:
    peer = await StdioPeer.start(tmp_path / "stderr.log")
    await peer.handshake()
    await peer.assert_healthy()
    with anyio.fail_after(3):
        assert await peer.close_stdin_and_wait() == 0
    assert "Traceback" not in peer.stderr_path.read_text()


async def test_a_server_with_stdin_from_a_file_answers_and_exits_0(tmp_path: Path) -> None:
    requests = tmp_path / "requests.jsonl"
    initialize = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": HANDSHAKE_VERSION,
            "capabilities": {},
            "clientInfo": {"name": "f", "version": "1"},
        },
    }
    requests.write_text(json.dumps(initialize) + "\nnot json\n")
    with requests.open("rb") as stdin:
        process = await anyio.run_process(
            [sys.executable, "-m", MODULE], stdin=stdin, env=server_environment(), stderr=subprocess.DEVNULL
        )
    replies = [json.loads(line) for line in process.stdout.splitlines()]
    assert process.returncode == 0
    assert {reply.get("id") for reply in replies} == {1, None}
