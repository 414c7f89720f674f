"""THREATS.md, all servers: malformed JSON-RPC over HTTP gets a clear error, and the server survives.

Raw POSTs to /mcp in both protocol eras (a handshake-era session, and stateless 2026-07-28
requests) and to a legacy SSE session's /messages/ endpoint. After every attack the same channel
must still answer a good request.
"""

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import anyio
import httpx2
import pytest

from bulkhead.testing import HttpServer, http_server

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

MODULE = "bulkhead_users"
MODERN = "2026-07-28"
HANDSHAKE = "2025-11-25"
ERAS = ["legacy", MODERN]
ACCEPT = {"accept": "application/json, text/event-stream", "content-type": "application/json"}
MODERN_META = {
    "io.modelcontextprotocol/protocolVersion": MODERN,
    "io.modelcontextprotocol/clientInfo": {"name": "abuse", "version": "1"},
    "io.modelcontextprotocol/clientCapabilities": {},
}
PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
JSON_RPC_ERRORS = {PARSE_ERROR, INVALID_REQUEST, METHOD_NOT_FOUND, INVALID_PARAMS}


def jsonrpc_messages(response: httpx2.Response) -> list[dict[str, Any]]:
    """The JSON-RPC messages in a response, whether it is JSON or an SSE stream."""
    if response.headers.get("content-type", "").startswith("text/event-stream"):
        return [
            json.loads(line[5:])
            for line in response.text.splitlines()
            if line.startswith("data:") and line[5:].strip()
        ]
    return [response.json()]


def only_error(response: httpx2.Response) -> dict[str, Any]:
    [message] = jsonrpc_messages(response)
    assert message["jsonrpc"] == "2.0"
    assert "result" not in message
    error: dict[str, Any] = message["error"]
    assert isinstance(error["message"], str)
    assert error["message"]
    return error


def assert_clear_error(response: httpx2.Response) -> None:
    """A JSON-RPC error (400 for a malformed body), or a tool result flagged `isError`; never a success."""
    [message] = jsonrpc_messages(response)
    if response.status_code == 200 and "result" in message:
        assert message["result"]["isError"] is True
        assert message["result"]["content"][0]["text"]
    else:
        assert response.status_code in {200, 400}
        assert only_error(response)["code"] in JSON_RPC_ERRORS


@dataclass
class Channel:
    """Where raw requests go: a handshake-era session, or stateless 2026-07-28 requests."""

    http: httpx2.AsyncClient
    era: str
    session_id: str | None = None

    def headers(self, method: str = "tools/call", name: str | None = "get_user") -> dict[str, str]:
        if self.era == "legacy":
            assert self.session_id is not None
            return {**ACCEPT, "mcp-session-id": self.session_id, "mcp-protocol-version": HANDSHAKE}
        headers = {**ACCEPT, "mcp-protocol-version": MODERN, "mcp-method": method}
        if name is not None and method == "tools/call":
            headers["mcp-name"] = name
        return headers

    def envelope(self, message: dict[str, Any]) -> dict[str, Any]:
        """`message` with the per-request `_meta` the 2026-07-28 era requires."""
        if self.era == "legacy":
            return message
        params = dict(message.get("params") or {})
        params["_meta"] = MODERN_META
        return {**message, "params": params}

    async def post(self, body: bytes, headers: dict[str, str] | None = None) -> httpx2.Response:
        return await self.http.post("/mcp", content=body, headers=headers or self.headers())

    async def call(self, message: dict[str, Any], **header_args: Any) -> httpx2.Response:
        body = json.dumps(self.envelope(message)).encode()
        return await self.post(body, self.headers(message.get("method", ""), **header_args))

    async def assert_healthy(self) -> None:
        message: dict[str, Any] = {
            "jsonrpc": "2.0",
            "id": 99,
            "method": "tools/call",
            "params": {"name": "get_user", "arguments": {"user": "u00001"}},
        }
        response = await self.call(message)
        assert response.status_code == 200
        [reply] = jsonrpc_messages(response)
        assert reply["id"] == 99
        assert reply["result"]["structuredContent"]["id"] == "u00001"


@pytest.fixture(scope="module")
async def server() -> AsyncIterator[HttpServer]:
    async with http_server(MODULE) as running:
        yield running


@pytest.fixture(params=ERAS)
async def channel(server: HttpServer, request: pytest.FixtureRequest) -> AsyncIterator[Channel]:
    era: str = request.param
    async with httpx2.AsyncClient(base_url=server.base_url, timeout=httpx2.Timeout(60)) as http:
        channel = Channel(http, era)
        if era == "legacy":
            initialize = {
                "jsonrpc": "2.0",
                "id": 0,
                "method": "initialize",
                "params": {
                    "protocolVersion": HANDSHAKE,
                    "capabilities": {},
                    "clientInfo": {"name": "a", "version": "1"},
                },
            }
            response = await http.post("/mcp", json=initialize, headers=ACCEPT)
            channel.session_id = response.headers["mcp-session-id"]
            initialized = {"jsonrpc": "2.0", "method": "notifications/initialized"}
            assert (await http.post("/mcp", json=initialized, headers=channel.headers())).status_code == 202
        yield channel
    assert server.process.returncode is None


MALFORMED_JSON = [
    b"not json",
    b'{"jsonrpc": "2.0", "id": 1,',
    b"{'jsonrpc': '2.0', 'id': 1, 'method': 'ping'}",
    b'{"jsonrpc": "2.0", "id": 1, "method": "ping"}}',
    b"",
    b"\x00\x00\x00",
    b"}{",
    b'{"jsonrpc": "2.0", "id": 1, "method": "ping", }',
]


@pytest.mark.parametrize("body", MALFORMED_JSON)
async def test_malformed_json_gets_400_and_a_parse_error(channel: Channel, body: bytes) -> None:
    response = await channel.post(body)
    assert response.status_code == 400
    assert only_error(response)["code"] == PARSE_ERROR
    await channel.assert_healthy()


INVALID_UTF8 = [b"\xff\xfe\xfd", b"\xc3\x28", b"\xc0\xaf\xc0\xaf", b"\xef\xbb\xbf\xef\xbb\xbf{}"]


@pytest.mark.parametrize("body", INVALID_UTF8)
async def test_a_body_of_invalid_utf8_gets_400_and_a_json_rpc_error(channel: Channel, body: bytes) -> None:
    response = await channel.post(body)
    assert response.status_code == 400
    assert only_error(response)["code"] in {PARSE_ERROR, INVALID_REQUEST}
    await channel.assert_healthy()


@pytest.mark.parametrize("raw_user", [b"\xff", b"u0000\xc3", b"\xed\xa0\x80", b"u00001\x80"])
async def test_invalid_utf8_inside_an_argument_gets_a_clear_error(channel: Channel, raw_user: bytes) -> None:
    template: dict[str, Any] = {
        "jsonrpc": "2.0",
        "id": 3,
        "method": "tools/call",
        "params": {"name": "get_user", "arguments": {}},
    }
    body = json.dumps(channel.envelope(template)).encode()
    body = body.replace(b'"arguments": {}', b'"arguments": {"user": "' + raw_user + b'"}')
    response = await channel.post(body)
    assert_clear_error(response)
    await channel.assert_healthy()


NOT_AN_OBJECT = [b"[]", b"42", b'"tools/call"', b"null", b"true", b"3.14"]


@pytest.mark.parametrize("body", NOT_AN_OBJECT)
async def test_json_that_is_not_an_object_gets_400_and_a_json_rpc_error(
    channel: Channel, body: bytes
) -> None:
    response = await channel.post(body)
    assert response.status_code == 400
    assert only_error(response)["code"] in {INVALID_REQUEST, INVALID_PARAMS}
    await channel.assert_healthy()


@pytest.mark.parametrize(
    "message",
    [
        {"jsonrpc": "1.0", "id": 1, "method": "tools/list"},
        {"jsonrpc": "3.0", "id": 1, "method": "tools/list"},
        {"jsonrpc": 2.0, "id": 1, "method": "tools/list"},
        {"id": 1, "method": "tools/list"},
        {"jsonrpc": "2.0", "id": 1, "method": 7},
        {"jsonrpc": "2.0", "id": 1},
    ],
)
async def test_a_message_that_is_not_json_rpc_2_gets_400(channel: Channel, message: dict[str, Any]) -> None:
    response = await channel.post(
        json.dumps(channel.envelope(message)).encode(), channel.headers("tools/list")
    )
    assert response.status_code == 400
    assert only_error(response)["code"] in JSON_RPC_ERRORS
    await channel.assert_healthy()


BATCHES: list[list[Any]] = [
    [
        {"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
    ],
    [{"jsonrpc": "2.0", "id": 1, "method": "tools/list"}],
    [],
    [{"jsonrpc": "2.0", "method": "notifications/initialized"}],
    [
        {"jsonrpc": "2.0", "id": n, "method": "tools/call", "params": {"name": "get_user"}}
        for n in range(1000)
    ],
]


@pytest.mark.parametrize("batch", BATCHES, ids=["two", "one", "empty", "notification", "a thousand"])
async def test_a_batch_array_is_refused_with_400(channel: Channel, batch: list[Any]) -> None:
    response = await channel.post(json.dumps([channel.envelope(item) for item in batch]).encode())
    assert response.status_code == 400
    assert only_error(response)["code"] in {INVALID_REQUEST, INVALID_PARAMS}
    await channel.assert_healthy()


@pytest.mark.parametrize(
    "method", ["no/such/method", "tools/delete", "users/drop", "rpc.discover", "m" * 100_000]
)
async def test_an_unknown_method_gets_method_not_found(channel: Channel, method: str) -> None:
    response = await channel.call({"jsonrpc": "2.0", "id": 5, "method": method, "params": {}})
    assert response.status_code in {200, 404}
    error = only_error(response)
    assert error["code"] == METHOD_NOT_FOUND
    await channel.assert_healthy()


async def test_a_large_request_head_gets_the_same_answer_however_its_bytes_arrive(server: HttpServer) -> None:
    # A 100 KB header used to be refused or served by how the head was split across reads (h11
    # checks its limit only on an incomplete head): about 2 in 100 fresh connections were reset.
    method = "m" * 100_000
    body = json.dumps({"jsonrpc": "2.0", "id": 5, "method": method, "params": {"_meta": MODERN_META}})
    headers = {**ACCEPT, "mcp-protocol-version": MODERN, "mcp-method": method}
    statuses: list[int] = []
    for _ in range(200):
        async with httpx2.AsyncClient(base_url=server.base_url, timeout=httpx2.Timeout(60)) as http:
            statuses.append((await http.post("/mcp", content=body, headers=headers)).status_code)
    assert set(statuses) == {404}


@pytest.mark.parametrize(
    "arguments",
    [
        {"user": "x" * 3_000_000},
        {"user": "u00001", "padding": "p" * 3_000_000},
        {"user": "u00001", "k" * 3_000_000: 1},
        {"user": ["u00001"] * 200_000},
        {"user": "ü" * 500_000},
    ],
    ids=[
        "3 MB identifier",
        "3 MB extra argument",
        "3 MB argument name",
        "huge array",
        "half a million umlauts",
    ],
)
async def test_a_huge_argument_under_the_body_limit_gets_a_short_tool_error(
    channel: Channel, arguments: dict[str, Any]
) -> None:
    message: dict[str, Any] = {
        "jsonrpc": "2.0",
        "id": 6,
        "method": "tools/call",
        "params": {"name": "get_user", "arguments": arguments},
    }
    response = await channel.call(message)
    assert response.status_code == 200
    [reply] = jsonrpc_messages(response)
    assert reply["result"]["isError"] is True
    assert len(response.content) < 20_000
    await channel.assert_healthy()


async def test_a_huge_request_id_is_answered_or_refused_but_survived(channel: Channel) -> None:
    message: dict[str, Any] = {"jsonrpc": "2.0", "id": "i" * 2_000_000, "method": "tools/list", "params": {}}
    with anyio.fail_after(30):
        response = await channel.call(message)
    assert response.status_code in {200, 400}
    await channel.assert_healthy()


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def _nested_bodies(channel: Channel, depth: int) -> dict[str, bytes]:
    meta = json.dumps(MODERN_META) if channel.era == MODERN else "{}"
    nested = _nested(depth)
    return {
        "bare": nested.encode(),
        "params": f'{{"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {{"_meta": {meta}, '
        f'"name": "get_user", "arguments": {{"user": "u00001"}}, "x": {nested}}}}}'.encode(),
        "arguments": f'{{"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {{"_meta": {meta}, '
        f'"name": "get_user", "arguments": {{"user": {nested}}}}}}}'.encode(),
    }


@pytest.mark.parametrize("depth", [10_000, 100_000, 1_000_000])
@pytest.mark.parametrize("where", ["bare", "params", "arguments"])
async def test_deeply_nested_json_gets_400_and_a_parse_error(
    channel: Channel, depth: int, where: str
) -> None:
    response = await channel.post(_nested_bodies(channel, depth)[where])
    assert response.status_code in {400, 413}
    if response.status_code == 400:
        assert only_error(response)["code"] == PARSE_ERROR
    await channel.assert_healthy()


@pytest.mark.parametrize("depth", [50, 150, 500])
@pytest.mark.parametrize("where", ["bare", "arguments"])
async def test_moderately_nested_json_gets_a_clear_error(channel: Channel, depth: int, where: str) -> None:
    response = await channel.post(_nested_bodies(channel, depth)[where])
    assert_clear_error(response)
    await channel.assert_healthy()


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"content-type": "text/plain"}, 415),
        ({"content-type": "application/x-www-form-urlencoded"}, 415),
        ({"accept": "text/html"}, 406),
    ],
)
async def test_a_wrong_content_type_or_accept_header_is_refused(
    channel: Channel, headers: dict[str, str], status: int
) -> None:
    message: dict[str, Any] = {"jsonrpc": "2.0", "id": 8, "method": "tools/list", "params": {}}
    response = await channel.post(
        json.dumps(channel.envelope(message)).encode(), {**channel.headers("tools/list"), **headers}
    )
    assert response.status_code in {status, 400}
    await channel.assert_healthy()


@pytest.mark.parametrize("session_id", ["0" * 32, "not-a-session", "../../etc/passwd", "x" * 4000])
async def test_a_forged_session_id_is_refused_and_the_real_session_lives_on(
    server: HttpServer, session_id: str
) -> None:
    async with httpx2.AsyncClient(base_url=server.base_url) as http:
        legacy = Channel(http, "legacy", session_id)
        response = await legacy.call({"jsonrpc": "2.0", "id": 9, "method": "tools/list", "params": {}})
    assert response.status_code in {400, 404}


@pytest.mark.parametrize(
    ("drop", "replace"),
    [
        ("mcp-method", {}),
        ("mcp-name", {}),
        ("mcp-protocol-version", {}),
        (None, {"mcp-method": "tools/list"}),
        (None, {"mcp-name": "list_groups"}),
        (None, {"mcp-protocol-version": "1999-01-01"}),
    ],
)
async def test_a_modern_request_whose_headers_disagree_with_its_body_is_refused(
    server: HttpServer, drop: str | None, replace: dict[str, str]
) -> None:
    async with httpx2.AsyncClient(base_url=server.base_url) as http:
        modern = Channel(http, MODERN)
        headers = {**modern.headers(), **replace}
        headers.pop(drop or "", None)
        message: dict[str, Any] = {
            "jsonrpc": "2.0",
            "id": 10,
            "method": "tools/call",
            "params": {"name": "get_user", "arguments": {}},
        }
        response = await modern.post(json.dumps(modern.envelope(message)).encode(), headers)
        assert response.status_code == 400
        assert only_error(response)["code"] < 0
        await modern.assert_healthy()


SSE_GARBAGE = [
    b"not json",
    b"[1, 2]",
    b'{"jsonrpc": "1.0", "id": 1, "method": "ping"}',
    b"\xff\xfe",
    _nested(100_000).encode(),
]


@pytest.mark.parametrize("body", SSE_GARBAGE)
async def test_garbage_posted_to_an_sse_session_is_refused_and_the_session_lives_on(
    server: HttpServer, body: bytes
) -> None:
    async with (
        httpx2.AsyncClient(base_url=server.base_url, timeout=httpx2.Timeout(30)) as http,
        http.stream("GET", "/sse") as stream,
    ):
        events = stream.aiter_lines()  # not `async for ... break`: that would close the stream

        async def next_data() -> str:
            with anyio.fail_after(10):
                while not (line := await anext(events)).startswith("data: "):
                    pass
            return line.removeprefix("data: ")

        endpoint = await next_data()
        refused = await http.post(endpoint, content=body, headers=ACCEPT)
        initialize = {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {
                "protocolVersion": HANDSHAKE,
                "capabilities": {},
                "clientInfo": {"name": "a", "version": "1"},
            },
        }
        accepted = await http.post(endpoint, json=initialize, headers=ACCEPT)
        reply = json.loads(await next_data())
    assert refused.status_code == 400
    assert accepted.status_code == 202
    assert reply["id"] == 1
    assert reply["result"]["serverInfo"]["name"] == "bulkhead-users"
