"""bulkhead-users as a real subprocess over HTTP: Streamable HTTP in both eras, legacy SSE, health,
stateless mode, many sessions at once, prompt shutdown, and audit records that name the caller."""

import json
import signal
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client
from mcp_types import CallToolResult, TextResourceContents

from bulkhead.testing import HttpServer, http_server

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

MODULE = "bulkhead_users"
MODERN = "2026-07-28"
ERAS = ["legacy", MODERN]
TOKENS = {"alice": "alice-token-0123456789abcdef", "bob": "bob-token-fedcba9876543210xyz"}
TRANSPORTS = ["streamable-legacy", "streamable-2026-07-28", "sse"]
ACCEPT = {"accept": "application/json, text/event-stream", "content-type": "application/json"}


def _text(result: CallToolResult) -> str:
    return "".join(getattr(block, "text", "") for block in result.content)


def _data(result: CallToolResult) -> dict[str, Any]:
    assert not result.is_error, _text(result)
    assert result.structured_content is not None
    return result.structured_content


@asynccontextmanager
async def connect(server: HttpServer, transport: str, token: str | None = None) -> AsyncGenerator[Client]:
    """An SDK client over `transport`: `streamable-<era>` at /mcp, or `sse` at /sse."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    if transport == "sse":
        async with Client(sse_client(server.sse_url, headers=headers), mode="legacy") as client:
            yield client
        return
    era = transport.removeprefix("streamable-")
    async with (
        httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30)) as http,
        Client(streamable_http_client(server.mcp_url, http_client=http), mode=era) as client,
    ):
        yield client


@pytest.fixture(scope="module")
async def server() -> AsyncIterator[HttpServer]:
    """One server with two named tokens, shared by the tests that only talk to it."""
    tokens = ",".join(f"{name}:{token}" for name, token in TOKENS.items())
    async with http_server(MODULE, ["--tokens", tokens]) as running:
        yield running


# --- the transports ------------------------------------------------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_every_transport_calls_tools_and_reads_a_user(server: HttpServer, transport: str) -> None:
    async with connect(server, transport, TOKENS["alice"]) as client:
        tools = {tool.name for tool in (await client.list_tools()).tools}
        person = _data(await client.call_tool("get_user", {"user": "u00001"}))
        page = _data(await client.call_tool("search_users", {"department": "Engineering", "page_size": 2}))
        following = _data(
            await client.call_tool(
                "search_users", {"department": "Engineering", "page_size": 2, "cursor": page["next_cursor"]}
            )
        )
        missing = await client.call_tool("get_user", {"user": "u99999"})
        resource = await client.read_resource("users://u00001")
        version = client.protocol_version
    assert version == (MODERN if transport.endswith(MODERN) else "2025-11-25")
    assert {"get_user", "search_users", "get_manager_chain", "list_groups"} <= tools
    assert person["title"] == "Chief Executive Officer"
    assert len(page["users"]) == len(following["users"]) == 2
    assert {user["id"] for user in page["users"]}.isdisjoint(user["id"] for user in following["users"])
    assert missing.is_error
    assert "No user" in _text(missing)
    [contents] = resource.contents
    assert isinstance(contents, TextResourceContents)
    assert json.loads(contents.text) == person


async def test_a_handshake_era_client_learns_the_server_name_but_healthz_does_not_tell_it(
    server: HttpServer,
) -> None:
    async with connect(server, "streamable-legacy", TOKENS["bob"]) as client:
        assert client.server_info is not None
        assert client.server_info.name == "bulkhead-users"


async def test_healthz_answers_without_a_token_and_reveals_nothing(server: HttpServer) -> None:
    async with httpx2.AsyncClient(base_url=server.base_url) as http:
        response = await http.get("/healthz")
        head = await http.get("/healthz", headers={"Authorization": "Bearer wrong-token-0123456789"})
    assert response.status_code == head.status_code == 200
    assert response.json() == {"status": "ok"}
    assert "server" not in response.headers
    exposed = (response.text + json.dumps(dict(response.headers))).lower()
    for secret in ["bulkhead", "users", "0.1.0", "uvicorn", "python", "starlette", "mcp"]:
        assert secret not in exposed


# --- many sessions at once -----------------------------------------------------------------------


async def test_twenty_concurrent_sessions_each_get_their_own_answers(server: HttpServer) -> None:
    clients = 20
    connected = 0
    everyone_connected = anyio.Event()
    answers: dict[str, dict[str, Any]] = {}

    async def session(index: int) -> None:
        nonlocal connected
        transport = TRANSPORTS[index % len(TRANSPORTS)]
        user_id = f"u{index + 1:05d}"
        token = TOKENS["alice" if index % 2 else "bob"]
        async with connect(server, transport, token) as client:
            connected += 1
            if connected == clients:
                everyone_connected.set()
            await everyone_connected.wait()
            person = _data(await client.call_tool("get_user", {"user": user_id}))
            _data(await client.call_tool("list_groups", {"page_size": 5}))
            answers[user_id] = person

    with anyio.fail_after(60):
        async with anyio.create_task_group() as tg:
            for index in range(clients):
                tg.start_soon(session, index)
    assert len(answers) == clients
    assert all(person["id"] == user_id for user_id, person in answers.items())


# --- audit ---------------------------------------------------------------------------------------


def audited(key: str, value: object) -> Callable[[dict[str, Any]], bool]:
    """Matches the audit record whose `key` is `value`."""

    def matches(record: dict[str, Any]) -> bool:
        return record.get("logger") == "bulkhead.audit" and bool(record.get(key) == value)

    return matches


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_audit_records_carry_the_token_name_and_never_the_token(
    server: HttpServer, transport: str
) -> None:
    marker, user_id = {
        "streamable-legacy": ("ada", "u00003"),
        "streamable-2026-07-28": ("grace", "u00004"),
        "sse": ("linus", "u00005"),
    }[transport]
    async with connect(server, transport, TOKENS["bob"]) as client:
        await client.call_tool("search_users", {"query": marker})
        await client.call_tool("get_user", {"user": f"{marker}.nobody"})
        await client.read_resource(f"users://{user_id}")

    with anyio.fail_after(10):
        found = await server.wait_for_record(audited("arguments", {"query": marker}))
        rejected = await server.wait_for_record(audited("arguments", {"user": f"{marker}.nobody"}))
        read = await server.wait_for_record(audited("target", f"users://{user_id}"))
    assert found["principal"] == rejected["principal"] == read["principal"] == "bob"
    assert found["outcome"] == "ok"
    assert rejected["outcome"] == "rejected"
    everything = "\n".join(server.stderr_lines)
    for token in TOKENS.values():
        assert token not in everything
        assert token[:16] not in everything


# --- stateless mode ------------------------------------------------------------------------------


async def test_stateless_http_answers_every_request_without_a_session() -> None:
    initialize = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-11-25",
            "capabilities": {},
            "clientInfo": {"name": "t", "version": "1"},
        },
    }
    async with http_server(MODULE, ["--stateless-http"]) as running:
        async with httpx2.AsyncClient(base_url=running.base_url) as http:
            response = await http.post("/mcp", headers=ACCEPT, json=initialize)
            # Without a session, a request needs no initialize before it (any replica could answer).
            direct = await http.post(
                "/mcp",
                headers={**ACCEPT, "mcp-protocol-version": "2025-11-25"},
                json={"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
            )
        for era in ERAS:
            async with connect(running, f"streamable-{era}") as client:
                first = _data(await client.call_tool("get_user", {"user": "u00001"}))
                second = _data(await client.call_tool("get_user", {"user": "u00002"}))
                assert (first["id"], second["id"]) == ("u00001", "u00002")
    assert response.status_code == 200
    assert "mcp-session-id" not in response.headers
    assert direct.status_code == 200
    assert "get_user" in direct.text


# --- shutdown ------------------------------------------------------------------------------------


async def _stops_promptly(running: HttpServer, signum: signal.Signals = signal.SIGTERM) -> None:
    running.process.send_signal(signum)
    with anyio.fail_after(3):
        assert await running.process.wait() == 0


async def test_sigterm_stops_the_server_promptly_with_an_sse_stream_open() -> None:
    async with http_server(MODULE) as running, connect(running, "sse") as client:
        _data(await client.call_tool("get_user", {"user": "u00001"}))
        await _stops_promptly(running)
    assert not any("Traceback" in line for line in running.stderr_lines)


async def test_sigterm_stops_the_server_promptly_with_a_handshake_era_session_open() -> None:
    async with http_server(MODULE) as running, connect(running, "streamable-legacy") as client:
        _data(await client.call_tool("get_user", {"user": "u00001"}))
        await _stops_promptly(running)
    assert not any("Traceback" in line for line in running.stderr_lines)


async def test_sigterm_closes_an_open_listen_stream_gracefully_and_stops_promptly() -> None:
    async with (
        http_server(MODULE) as running,
        connect(running, f"streamable-{MODERN}") as client,
        client.listen(tools_list_changed=True, resource_subscriptions=["users://u00001"]) as subscription,
    ):
        await _stops_promptly(running)
        with anyio.fail_after(5):
            # A graceful close ends the iteration; an abrupt drop would raise SubscriptionLost.
            events = [event async for event in subscription]
    assert events == []
    assert not any("Traceback" in line for line in running.stderr_lines)


async def test_sigint_stops_the_server_promptly_too() -> None:
    async with http_server(MODULE) as running:
        async with connect(running, "streamable-legacy") as client:
            _data(await client.call_tool("list_groups", {}))
        await _stops_promptly(running, signal.SIGINT)
