"""THREATS.md, all servers, over HTTP: bearer tokens, DNS rebinding (Host/Origin), exposure rules at
start, and oversized bodies, against a real bulkhead-users subprocess."""

import base64
import subprocess
import sys
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client

from bulkhead.testing import HttpServer, http_server, server_environment

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

MODULE = "bulkhead_users"
MODERN = "2026-07-28"
ALICE = "alice-token-0123456789abcdef"  # from --tokens
CI = "ci-token-from-a-file-0123456789"  # from --tokens-file
FILES_TOKEN = "files-server-token-0123456789"  # valid for another server, not this one
WRONG = "wrong-token-0123456789abcdefgh"
ALLOWED_HOST = "mcp.example.test"
ACCEPT = {"accept": "application/json, text/event-stream", "content-type": "application/json"}
MODERN_META = {
    "io.modelcontextprotocol/protocolVersion": MODERN,
    "io.modelcontextprotocol/clientInfo": {"name": "e2e", "version": "1"},
    "io.modelcontextprotocol/clientCapabilities": {},
}
INITIALIZE: dict[str, Any] = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-11-25",
        "capabilities": {},
        "clientInfo": {"name": "e2e", "version": "1"},
    },
}
MODERN_LIST: dict[str, Any] = {
    "jsonrpc": "2.0",
    "id": 2,
    "method": "tools/list",
    "params": {"_meta": MODERN_META},
}
MODERN_HEADERS = {**ACCEPT, "mcp-protocol-version": MODERN, "mcp-method": "tools/list"}


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
async def server(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[HttpServer]:
    """Tokens from both sources: `alice` on the command line, `ci` in a file with comments."""
    tokens_file = tmp_path_factory.mktemp("tokens") / "tokens"
    tokens_file.write_text(f"# tokens for the e2e tests\n\nci:{CI}\n")
    tokens_file.chmod(0o600)
    async with http_server(
        MODULE, ["--tokens", f"alice:{ALICE}", "--tokens-file", str(tokens_file)]
    ) as running:
        yield running


@asynccontextmanager
async def raw(server: HttpServer) -> AsyncGenerator[httpx2.AsyncClient]:
    async with httpx2.AsyncClient(base_url=server.base_url, timeout=httpx2.Timeout(30)) as http:
        yield http


@asynccontextmanager
async def connect(server: HttpServer, transport: str, token: str) -> AsyncGenerator[Client]:
    if transport == "sse":
        async with Client(sse_client(server.sse_url, headers=bearer(token)), mode="legacy") as client:
            yield client
        return
    async with (
        httpx2.AsyncClient(headers=bearer(token), timeout=httpx2.Timeout(30)) as http,
        Client(streamable_http_client(server.mcp_url, http_client=http), mode=transport) as client,
    ):
        yield client


async def assert_alive(server: HttpServer) -> None:
    """The process runs and a properly authenticated request is answered."""
    assert server.process.returncode is None
    async with raw(server) as http:
        response = await http.post("/mcp", headers={**MODERN_HEADERS, **bearer(ALICE)}, json=MODERN_LIST)
    assert response.status_code == 200
    assert "get_user" in response.text


# --- who may call ------------------------------------------------------------------------------

BAD_CREDENTIALS: dict[str, tuple[dict[str, str], str]] = {
    "no token": ({}, ""),
    "wrong token": (bearer(WRONG), ""),
    "a token for another server": (bearer(FILES_TOKEN), ""),
    "access_token in the query": ({}, f"access_token={ALICE}"),
    "token in the query": ({}, f"token={CI}"),
    "query token beside a wrong header": (bearer(WRONG), f"access_token={ALICE}"),
    "basic scheme with the token": (
        {"authorization": "Basic " + base64.b64encode(f"alice:{ALICE}".encode()).decode()},
        "",
    ),
    "basic scheme, raw token": ({"authorization": f"Basic {ALICE}"}, ""),
    "no scheme": ({"authorization": ALICE}, ""),
    "token scheme": ({"authorization": f"Token {ALICE}"}, ""),
    "bare bearer": ({"authorization": "Bearer"}, ""),
    "quoted empty bearer": ({"authorization": 'Bearer ""'}, ""),
    "name:token as the token": (bearer(f"alice:{ALICE}"), ""),
    "a prefix of the token": (bearer(ALICE[:-1]), ""),
    "the token plus a character": (bearer(ALICE + "x"), ""),
    "the token in upper case": (bearer(ALICE.upper()), ""),
    "the token's name": (bearer("alice"), ""),
    "two tokens in one header": (bearer(f"{ALICE} {CI}"), ""),
}
ENDPOINTS = [
    ("POST", "/mcp"),
    ("GET", "/mcp"),
    ("DELETE", "/mcp"),
    ("GET", "/sse"),
    ("POST", "/messages/"),
    ("GET", "/nonexistent"),
]


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
@pytest.mark.parametrize("case", list(BAD_CREDENTIALS))
async def test_requests_without_a_valid_bearer_token_get_401_with_a_challenge(
    server: HttpServer, case: str, method: str, path: str
) -> None:
    headers, query = BAD_CREDENTIALS[case]
    url = f"{path}?{query}" if query else path
    async with raw(server) as http:
        response = await http.request(method, url, headers={**ACCEPT, **headers}, json=INITIALIZE)
    assert response.status_code == 401
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith("Bearer ")
    assert 'realm="bulkhead-users"' in challenge
    assert response.json()["error"] == "invalid_token"
    for token in (ALICE, CI):
        assert token not in response.text
        assert token not in challenge


@pytest.mark.parametrize("value", [b"Bearer ", b"Bearer \t", b"Bearer     ", b"", b" "])
async def test_an_empty_bearer_gets_401(server: HttpServer, value: bytes) -> None:
    # Sent over a raw socket: HTTP client libraries refuse to send trailing whitespace.
    request = (
        b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Accept: application/json, text/event-stream\r\nContent-Length: 2\r\nConnection: close\r\n"
        b"Authorization: " + value + b"\r\n\r\n{}"
    )
    response = b""
    with anyio.fail_after(10):
        async with await anyio.connect_tcp("127.0.0.1", server.port) as stream:
            await stream.send(request)
            while b"\r\n\r\n" not in response:
                response += await stream.receive()
    status_line, _, headers = response.partition(b"\r\n")
    assert status_line.split()[1] == b"401"
    assert b"www-authenticate: bearer" in headers.lower()


async def test_a_wrong_token_is_told_apart_from_a_missing_one(server: HttpServer) -> None:
    async with raw(server) as http:
        missing = await http.post("/mcp", headers=ACCEPT, json=INITIALIZE)
        wrong = await http.post("/mcp", headers={**ACCEPT, **bearer(WRONG)}, json=INITIALIZE)
    assert 'error="invalid_token"' not in missing.headers["www-authenticate"]
    assert 'error="invalid_token"' in wrong.headers["www-authenticate"]


@pytest.mark.parametrize("token", [ALICE, CI], ids=["from --tokens", "from --tokens-file"])
@pytest.mark.parametrize("transport", ["legacy", MODERN, "sse"])
async def test_a_valid_token_works_in_both_eras_and_over_sse(
    server: HttpServer, token: str, transport: str
) -> None:
    async with connect(server, transport, token) as client:
        result = await client.call_tool("get_user", {"user": "u00001"})
    assert not result.is_error


@pytest.mark.parametrize("scheme", ["bearer", "BEARER", "Bearer"])
async def test_the_bearer_scheme_is_case_insensitive(server: HttpServer, scheme: str) -> None:
    async with raw(server) as http:
        response = await http.post(
            "/mcp", headers={**MODERN_HEADERS, "authorization": f"{scheme} {ALICE}"}, json=MODERN_LIST
        )
    assert response.status_code == 200


async def test_an_sse_session_cannot_be_driven_without_the_token(server: HttpServer) -> None:
    async with (
        raw(server) as http,
        http.stream("GET", "/sse", headers=bearer(ALICE)) as stream,
    ):
        lines = stream.aiter_lines()  # not `async for ... break`: that would close the stream
        endpoint = ""
        with anyio.fail_after(10):
            while not endpoint.startswith("/messages/"):
                endpoint = (await anext(lines)).removeprefix("data: ")
        assert endpoint.startswith("/messages/?session_id=")
        stolen = await http.post(endpoint, headers=ACCEPT, json=INITIALIZE)
        wrong = await http.post(endpoint, headers={**ACCEPT, **bearer(WRONG)}, json=INITIALIZE)
        allowed = await http.post(endpoint, headers={**ACCEPT, **bearer(ALICE)}, json=INITIALIZE)
    assert stolen.status_code == wrong.status_code == 401
    assert allowed.status_code == 202


# --- DNS rebinding --------------------------------------------------------------------------------

FOREIGN_HOSTS = [
    "evil.example",
    "evil.example:80",
    "127.0.0.1.evil.example",
    "localhost.evil.example:8080",
    "attacker.test:1",
    "",
]
FOREIGN_ORIGINS = [
    "http://evil.example",
    "https://evil.example",
    "http://127.0.0.1.evil.example",
    "http://localhost.evil.example:8000",
    "null",
    "file://",
]
REBINDING = [("host", value) for value in FOREIGN_HOSTS] + [("origin", value) for value in FOREIGN_ORIGINS]


async def _rebinding_attempts(server: HttpServer, header: str, value: str) -> list[httpx2.Response]:
    """The same foreign header on every endpoint, each request carrying a valid token."""
    headers = {**bearer(ALICE), header: value}
    async with raw(server) as http:
        legacy = await http.post("/mcp", headers={**ACCEPT, **headers}, json=INITIALIZE)
        modern = await http.post("/mcp", headers={**MODERN_HEADERS, **headers}, json=MODERN_LIST)
        messages = await http.post(
            "/messages/?session_id=00000000000000000000000000000000",
            headers={**ACCEPT, **headers},
            json=INITIALIZE,
        )
        sse = await http.get("/sse", headers=headers)
    return [legacy, modern, messages, sse]


@pytest.mark.parametrize(("header", "value"), REBINDING)
async def test_a_foreign_host_or_origin_is_rejected_even_with_a_valid_token(
    server: HttpServer, header: str, value: str
) -> None:
    with anyio.fail_after(30):
        responses = await _rebinding_attempts(server, header, value)
    expected = 421 if header == "host" else 403
    assert [response.status_code for response in responses] == [expected] * len(responses)
    await assert_alive(server)


@pytest.mark.parametrize(
    ("header", "value"),
    [
        ("host", "localhost:1234"),
        ("host", "127.0.0.1"),
        ("host", "[::1]:8101"),
        ("origin", "http://localhost:3000"),
        ("origin", "http://127.0.0.1"),
    ],
)
async def test_loopback_hosts_and_origins_are_accepted(server: HttpServer, header: str, value: str) -> None:
    async with raw(server) as http:
        response = await http.post(
            "/mcp", headers={**MODERN_HEADERS, **bearer(ALICE), header: value}, json=MODERN_LIST
        )
    assert response.status_code == 200


# --- oversized bodies -----------------------------------------------------------------------------

MIB = 1024 * 1024


@pytest.mark.parametrize("size", [4 * MIB + 1, 8 * MIB, 32 * MIB])
@pytest.mark.parametrize("where", ["legacy", "modern", "messages"])
async def test_an_oversized_body_gets_413_and_the_server_keeps_running(
    server: HttpServer, size: int, where: str
) -> None:
    body = b'{"jsonrpc": "2.0", "id": 1, "method": "ping", "params": {"x": "' + b"a" * size + b'"}}'
    headers = {"legacy": ACCEPT, "modern": MODERN_HEADERS, "messages": ACCEPT}[where]
    path = "/messages/?session_id=00000000000000000000000000000000" if where == "messages" else "/mcp"
    async with raw(server) as http:
        response = await http.post(path, headers={**headers, **bearer(ALICE)}, content=body)
    assert response.status_code == 413
    await assert_alive(server)


async def test_an_oversized_chunked_body_without_a_length_gets_413(server: HttpServer) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(80):
            yield b"a" * 65536

    async with raw(server) as http:
        response = await http.post("/mcp", headers={**MODERN_HEADERS, **bearer(ALICE)}, content=chunks())
    assert response.status_code == 413
    await assert_alive(server)


# --- secrets stay out of the log ---------------------------------------------------------------


async def test_no_token_ever_appears_on_stderr(server: HttpServer) -> None:
    # Runs after the tests above in this module, which presented every token in every way.
    async with raw(server) as http:
        for token in (ALICE, CI, WRONG, FILES_TOKEN):
            await http.post(
                f"/mcp?access_token={token}", headers={**ACCEPT, **bearer(token)}, json=INITIALIZE
            )
    async with connect(server, MODERN, ALICE) as client:
        await client.call_tool("get_user", {"user": "u00007"})
    with anyio.fail_after(10):
        await server.wait_for_record(
            lambda record: (
                record.get("logger") == "bulkhead.audit" and record.get("arguments") == {"user": "u00007"}
            )
        )
    log = "\n".join(server.stderr_lines)
    assert "alice" in log
    for token in (ALICE, CI, WRONG, FILES_TOKEN):
        assert token not in log


# --- exposure rules at start ---------------------------------------------------------------------


async def _refused(args: list[str], env: dict[str, str] | None = None) -> str:
    """Run the server with `args`, expect exit code 2, and return its one line of stderr.

    A few cases per rule here, through the real entry point; tests/shared/test_settings.py has more.
    """
    with anyio.fail_after(30):
        result = await anyio.run_process(
            [sys.executable, "-m", MODULE, "--transport", "http", "--port", "0", *args],
            env=server_environment(env),
            stdin=subprocess.DEVNULL,
            check=False,
        )
    assert result.returncode == 2
    assert result.stdout == b""
    lines = result.stderr.decode().splitlines()
    assert len(lines) == 1, lines
    assert "Traceback" not in lines[0]
    return lines[0]


@pytest.mark.parametrize(
    ("args", "env"),
    [
        (["--host", "0.0.0.0"], None),
        (["--host", "::"], None),
        ([], {"BULKHEAD_USERS_HOST": "0.0.0.0"}),
    ],
)
async def test_binding_beyond_loopback_without_tokens_is_refused_naming_the_setting(
    args: list[str], env: dict[str, str] | None
) -> None:
    line = await _refused(args, env)
    assert "host" in line
    assert "tokens" in line
    assert "allow-unauthenticated" in line


@pytest.mark.parametrize(
    "args",
    [
        ["--host", "0.0.0.0", "--allow-unauthenticated"],
        ["--host", "0.0.0.0", "--tokens", f"alice:{ALICE}"],
    ],
)
async def test_binding_beyond_loopback_without_allowed_hosts_is_refused_naming_the_setting(
    args: list[str],
) -> None:
    line = await _refused(args)
    assert "allowed_hosts" in line
    assert ALICE not in line


@pytest.fixture(scope="module")
async def exposed() -> AsyncIterator[HttpServer]:
    """Bound to every interface, with a token and one allowed host name (reached via 127.0.0.1)."""
    args = ["--host", "0.0.0.0", "--tokens", f"alice:{ALICE}", "--allowed-hosts", ALLOWED_HOST]
    async with http_server(MODULE, args) as running:
        yield running


@pytest.mark.parametrize("host", [ALLOWED_HOST, f"{ALLOWED_HOST}:443", "127.0.0.1", "localhost:8101"])
async def test_an_exposed_server_accepts_its_configured_host_name(exposed: HttpServer, host: str) -> None:
    async with raw(exposed) as http:
        response = await http.post(
            "/mcp", headers={**MODERN_HEADERS, **bearer(ALICE), "host": host}, json=MODERN_LIST
        )
    assert response.status_code == 200
    assert "get_user" in response.text


@pytest.mark.parametrize(
    "host", ["evil.example", f"{ALLOWED_HOST}.evil.example", f"x{ALLOWED_HOST}", "0.0.0.0"]
)
async def test_an_exposed_server_rejects_other_host_names(exposed: HttpServer, host: str) -> None:
    async with raw(exposed) as http:
        response = await http.post(
            "/mcp", headers={**MODERN_HEADERS, **bearer(ALICE), "host": host}, json=MODERN_LIST
        )
    assert response.status_code == 421


async def test_an_exposed_server_still_requires_the_token(exposed: HttpServer) -> None:
    async with raw(exposed) as http:
        response = await http.post("/mcp", headers={**MODERN_HEADERS, "host": ALLOWED_HOST}, json=MODERN_LIST)
    assert response.status_code == 401


async def test_an_exposed_server_serves_the_sdk_client(exposed: HttpServer) -> None:
    async with connect(exposed, "legacy", ALICE) as client:
        result = await client.call_tool("get_user", {"user": "u00001"})
    assert not result.is_error


@pytest.mark.parametrize(
    "tokens_args",
    [
        ["--tokens", "#none"],
        ["--tokens", " , "],
        ["--tokens-file", "EMPTY_FILE"],
    ],
)
async def test_a_tokens_setting_that_yields_no_token_is_refused_not_taken_as_no_auth(
    tokens_args: list[str], tmp_path: Path
) -> None:
    empty = tmp_path / "tokens"
    empty.write_text("# tokens go here\n\n")
    args = [arg.replace("EMPTY_FILE", str(empty)) for arg in tokens_args]
    line = await _refused(["--host", "0.0.0.0", "--allowed-hosts", ALLOWED_HOST, *args])
    assert "no name:token entries" in line


async def test_a_session_belongs_to_the_token_that_opened_it(server: HttpServer) -> None:
    async with raw(server) as http:
        opened = await http.post("/mcp", headers={**ACCEPT, **bearer(ALICE)}, json=INITIALIZE)
        session = opened.headers["mcp-session-id"]
        stolen = {**ACCEPT, **bearer(CI), "mcp-session-id": session, "mcp-protocol-version": "2025-11-25"}
        call: dict[str, Any] = {"jsonrpc": "2.0", "id": 7, "method": "tools/list", "params": {}}
        used = await http.post("/mcp", headers=stolen, json=call)
        ended = await http.delete("/mcp", headers=stolen)
        own = {**ACCEPT, **bearer(ALICE), "mcp-session-id": session, "mcp-protocol-version": "2025-11-25"}
        await http.post("/mcp", headers=own, json={"jsonrpc": "2.0", "method": "notifications/initialized"})
        still_alices = await http.post("/mcp", headers=own, json=call)
    assert opened.status_code == 200
    assert used.status_code == 404
    assert ended.status_code == 404
    assert still_alices.status_code == 200
    assert "get_user" in still_alices.text


async def test_an_sse_session_belongs_to_the_token_that_opened_it(server: HttpServer) -> None:
    async with (
        raw(server) as http,
        http.stream("GET", "/sse", headers={"accept": "text/event-stream", **bearer(ALICE)}) as stream,
    ):
        endpoint = ""
        async for line in stream.aiter_lines():
            if line.startswith("data:"):
                endpoint = line.removeprefix("data:").strip()
                break
        response = await http.post(endpoint, headers=bearer(CI), json=INITIALIZE)
    assert endpoint.startswith("/messages/")
    assert response.status_code == 404
