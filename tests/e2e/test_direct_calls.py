"""Direct tool calls on the stdio wire answer exactly what the SDK's session answers.

Two real servers, one with direct calls (the default) and one without (`--no-direct-calls`), get
the same handshake and the same requests at every handshake-era protocol version; their answers
must be the same bytes. The calls cover success, tool errors, argument errors and the requests a
direct call must leave to the SDK (unknown tool, `_meta`, malformed params).
"""

import json
from pathlib import Path
from typing import Any

import pytest
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS

from bulkhead.direct import DIRECT_VERSIONS
from tests.e2e.test_stdio import StdioPeer

pytestmark = pytest.mark.anyio

CALLS: list[dict[str, Any]] = [
    {"name": "get_user", "arguments": {"user": "u00001"}},
    {"name": "get_user", "arguments": {"user": "u99999"}},
    {"name": "get_user", "arguments": {"user": 5}},
    {"name": "get_user", "arguments": {}},
    {"name": "get_user", "arguments": {"user": "u00001", "bogus": 1}},
    {"name": "search_users", "arguments": {"department": "Engineering", "page_size": 3}},
    {"name": "search_users", "arguments": {"page_size": "lots"}},
    {"name": "list_groups", "arguments": {}},
    {"name": "get_user"},
    {"name": "no_such_tool", "arguments": {}},
    {"name": "get_user", "arguments": {"user": "u00001"}, "_meta": {"progressToken": 7}},
    {"name": 5, "arguments": {}},
    {"name": "get_user", "arguments": ["u00001"]},
    {"arguments": {"user": "u00001"}},
    {"name": "get_user", "arguments": None},
    {"name": "get_user", "arguments": {"user": "u00001" * 20_000}},
]

DIRECT_LOG = "answering plain tools/call requests on this connection directly"


async def _answers(tmp_path: Path, version: str, *args: str) -> tuple[list[bytes], list[dict[str, Any]]]:
    """The raw answer line to each of `CALLS`, in order, and the server's stderr records."""
    # One cursor key for both servers, so their signed page cursors can be compared too.
    common = ("--log-level", "debug", "--cursor-secret", "direct-calls-test-cursor-key")
    peer = await StdioPeer.start(tmp_path / f"{version}{''.join(args)}.log", *common, *args)
    reply = await peer.request(
        "initialize",
        {"protocolVersion": version, "capabilities": {}, "clientInfo": {"name": "e2e", "version": "1"}},
    )
    assert reply["result"]["protocolVersion"] == version
    await peer.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
    lines: list[bytes] = []
    for number, params in enumerate(CALLS, 1):
        await peer.send({"jsonrpc": "2.0", "id": number, "method": "tools/call", "params": params})
        await peer.response(number)
        lines.append(peer.stdout_lines[-1])
    assert await peer.close_stdin_and_wait() == 0
    return lines, peer.stderr_records()


@pytest.mark.parametrize("version", HANDSHAKE_PROTOCOL_VERSIONS)
async def test_direct_answers_are_the_bytes_the_sdk_session_writes(tmp_path: Path, version: str) -> None:
    direct, direct_log = await _answers(tmp_path, version)
    through_sdk, sdk_log = await _answers(tmp_path, version, "--no-direct-calls")
    for params, ours, theirs in zip(CALLS, direct, through_sdk, strict=True):
        assert ours == theirs, params
    messages = [record.get("message") for record in direct_log]
    assert (DIRECT_LOG in messages) == (version in DIRECT_VERSIONS)
    assert DIRECT_LOG not in [record.get("message") for record in sdk_log]
    # The successes and the tool errors really are what they should be, not two identical failures.
    first = json.loads(direct[0])["result"]
    assert first["structuredContent"]["id"] == "u00001"
    assert json.loads(direct[1])["result"]["isError"] is True


async def test_a_direct_call_is_audited_with_its_request_id(tmp_path: Path) -> None:
    peer = await StdioPeer.start(tmp_path / "stderr.log", "--log-level", "debug")
    await peer.handshake()
    await peer.send({"jsonrpc": "2.0", "id": "call-7", "method": "tools/call", "params": CALLS[0]})
    await peer.response("call-7")  # pyright: ignore[reportArgumentType] -- string ids are valid JSON-RPC
    await peer.send({"jsonrpc": "2.0", "id": 8, "method": "tools/call", "params": CALLS[1]})
    await peer.response(8)
    assert await peer.close_stdin_and_wait() == 0
    records = peer.stderr_records()
    assert DIRECT_LOG in [record.get("message") for record in records]
    audits = [record for record in records if record.get("logger") == "bulkhead.audit"]
    assert [(audit["request_id"], audit["outcome"]) for audit in audits[-2:]] == [
        ("call-7", "ok"),
        ("8", "rejected"),
    ]
