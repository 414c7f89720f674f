"""bulkhead-http as a real subprocess: the zero-config demo over stdio, a config file over HTTP.

Over HTTP the MCP client authenticates with a bearer token and the upstream echoes what reached
it: no inbound MCP header (Authorization, session id, protocol version) is ever forwarded.
"""

import json
import subprocess
import sys
from pathlib import Path

import anyio
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from bulkhead.testing import http_server, server_environment, stdio_parameters
from tests.http.conftest import api, tool
from tests.http.upstream import Upstream

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

MCP_TOKEN = "mcp-client-token-0123456789abcdef"
UPSTREAM_TOKEN = "upstream-token-fedcba9876543210"


async def test_the_zero_config_demo_serves_the_tracker_over_stdio() -> None:
    async with Client(stdio_parameters("bulkhead_http"), mode="legacy") as client:
        tools = {t.name for t in (await client.list_tools()).tools}
        result = await client.call_tool("get_ticket", {"ticket_id": "T-1001"})
    assert "search_tickets" in tools
    assert not result.is_error
    assert result.structured_content is not None
    assert result.structured_content["body"]["id"] == "T-1001"


async def test_over_http_no_inbound_header_reaches_the_upstream_and_no_secret_comes_back(
    upstream: Upstream, tmp_path: Path
) -> None:
    config = api(
        f"{upstream.base}/bad",
        [tool("echo", "/echo")],
        allow_private_network=True,
        auth={"type": "api_key", "in": "header", "name": "X-Upstream-Key", "env": "UPSTREAM_TOKEN"},
    )
    path = tmp_path / "apis.yaml"
    path.write_text(json.dumps(config))  # JSON is YAML
    env = {"BULKHEAD_HTTP_TOKENS": f"tester:{MCP_TOKEN}", "UPSTREAM_TOKEN": UPSTREAM_TOKEN}
    async with http_server("bulkhead_http", ["--config", str(path)], env=env) as server:
        headers = {"Authorization": f"Bearer {MCP_TOKEN}", "X-Forwarded-For": "10.0.0.1", "Cookie": "a=b"}
        async with (
            httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30)) as http,
            Client(streamable_http_client(server.mcp_url, http_client=http), mode="legacy") as client,
        ):
            result = await client.call_tool("echo", {})
        logs = "\n".join(server.stderr_lines)
    received = upstream.requests[-1]["headers"]
    assert isinstance(received, dict)
    assert received["x-upstream-key"] == UPSTREAM_TOKEN
    forwarded = {str(k).lower() for k in received}  # pyright: ignore[reportUnknownVariableType, reportUnknownArgumentType]
    assert not forwarded & {
        "authorization",
        "mcp-session-id",
        "mcp-protocol-version",
        "cookie",
        "x-forwarded-for",
    }
    assert MCP_TOKEN not in json.dumps(received)
    assert not result.is_error
    assert UPSTREAM_TOKEN not in result.model_dump_json()
    assert UPSTREAM_TOKEN not in logs
    assert MCP_TOKEN not in logs


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("apis: [", "is not valid YAML"),
        (
            "apis:\n  - name: a\n    base_url: http://169.254.169.254@x.example\n"
            "    tools: [{name: t, path: /t}]\n",
            "user information",
        ),
    ],
)
async def test_a_bad_config_file_stops_the_start_with_one_line_and_exit_2(
    tmp_path: Path, text: str, expected: str
) -> None:
    path = tmp_path / "apis.yaml"
    path.write_text(text)
    with anyio.fail_after(60):
        done = await anyio.run_process(
            [sys.executable, "-m", "bulkhead_http", "--config", str(path)],
            env=server_environment(),
            stdin=subprocess.DEVNULL,
            check=False,
        )
    assert done.returncode == 2
    assert done.stdout == b""
    lines = done.stderr.decode().strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("bulkhead-http: invalid configuration: ")
    assert str(path) in lines[0]
    assert expected in lines[0]
