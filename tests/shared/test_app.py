"""The error boundary and audit trail every server inherits from `BulkheadServer`."""

import json
import logging
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from mcp_types import CallToolResult, TextContent
from pydantic import BaseModel

from bulkhead.app import BulkheadServer
from bulkhead.errors import InvalidArgumentError
from bulkhead.settings import ServerSettings
from bulkhead.testing import connect

pytestmark = pytest.mark.anyio


@pytest.fixture
def server(tmp_path: Path) -> Iterator[BulkheadServer]:
    server = BulkheadServer(ServerSettings(audit=str(tmp_path / "audit.jsonl")))

    @server.tool()
    def crash(password: str) -> str:
        """Fails with an unexpected exception whose text must stay on the server."""
        raise RuntimeError(f"secret detail {password}")

    @server.tool()
    def refuse(value: int) -> str:
        """Fails with an error meant for the model."""
        raise InvalidArgumentError(f"value {value} is not allowed; pass a value below 10.")

    @server.resource("things://{name}")
    def thing(name: str) -> str:
        raise KeyError(name)

    yield server
    server.audit.close()


@pytest.mark.parametrize("era", ["legacy", "2026-07-28"])
async def test_an_unexpected_exception_shows_only_a_reference_that_is_in_the_log(
    server: BulkheadServer, caplog: pytest.LogCaptureFixture, era: str
) -> None:
    async with connect(server, era) as client:
        result = await client.call_tool("crash", {"password": "hunter2-hunter2"})
    assert result.is_error
    text = "".join(getattr(block, "text", "") for block in result.content)
    match = re.search(r"reference ([0-9a-f]{12})", text)
    assert match, text
    assert "secret detail" not in text
    assert "hunter2" not in text
    logged = [r for r in caplog.records if match.group(1) in r.getMessage()]
    assert logged
    assert logged[0].exc_info is not None


async def test_a_model_facing_error_reaches_the_model_verbatim(server: BulkheadServer) -> None:
    async with connect(server) as client:
        result = await client.call_tool("refuse", {"value": 12})
    text = "".join(getattr(block, "text", "") for block in result.content)
    assert "value 12 is not allowed; pass a value below 10." in text


async def test_an_unexpected_resource_failure_carries_only_a_reference(server: BulkheadServer) -> None:
    async with connect(server) as client:
        with pytest.raises(Exception, match=r"Internal error \(reference [0-9a-f]{12}\)") as caught:
            await client.read_resource("things://x")
    assert "KeyError" not in str(caught.value)


async def test_every_call_leaves_one_audit_record_with_secrets_redacted(
    server: BulkheadServer, tmp_path: Path
) -> None:
    async with connect(server) as client:
        await client.call_tool("crash", {"password": "hunter2-hunter2"})
        await client.call_tool("refuse", {"value": 12})
        with pytest.raises(Exception, match="Unknown tool: no_such_tool"):
            await client.call_tool("no_such_tool", {})
        with pytest.raises(Exception, match="reference"):
            await client.read_resource("things://x")
    server.audit.close()
    records = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    assert [(r["operation"], r["target"], r["outcome"]) for r in records] == [
        ("tools/call", "crash", "error"),
        ("tools/call", "refuse", "rejected"),
        ("tools/call", "no_such_tool", "rejected"),
        ("resources/read", "things://x", "error"),
    ]
    assert records[0]["arguments"] == {"password": "[redacted]"}
    assert "hunter2" not in (tmp_path / "audit.jsonl").read_text()
    assert all(r["duration_ms"] >= 0 for r in records)


async def test_audit_records_go_to_stderr_logging_by_default(caplog: pytest.LogCaptureFixture) -> None:
    server = BulkheadServer(ServerSettings())

    @server.tool()
    def ping() -> str:
        """Answers pong."""
        return "pong"

    with caplog.at_level(logging.INFO, logger="bulkhead.audit"):
        async with connect(server) as client:
            await client.call_tool("ping", {})
    audits = [r for r in caplog.records if r.name == "bulkhead.audit"]
    assert len(audits) == 1
    assert audits[0].__dict__["audit"]["outcome"] == "ok"


@pytest.mark.parametrize("era", ["legacy", "2026-07-28"])
async def test_structured_content_reaches_the_client_in_its_json_form(tmp_path: Path, era: str) -> None:
    # The handler hands structured content to the SDK as it is; the SDK's own dump for the
    # protocol version still turns what is not plain JSON (a datetime, a tuple) into JSON.
    server = BulkheadServer(ServerSettings(audit=str(tmp_path / "audit.jsonl")))

    class Point(BaseModel):
        name: str
        values: list[int | None]

    @server.tool()
    def point() -> Point:
        """A model: the SDK dumps it to structured content."""
        return Point(name="é", values=[1, None])

    @server.tool()
    def raw() -> CallToolResult:
        """A result built by hand, with values that are not JSON yet."""
        when = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
        return CallToolResult(
            content=[TextContent(type="text", text="raw")],
            structured_content={"when": when, "pair": (1, 2), "none": None},
        )

    try:
        async with connect(server, era) as client:
            modelled = await client.call_tool("point", {})
            built = await client.call_tool("raw", {})
    finally:
        server.audit.close()
    assert modelled.structured_content == {"name": "é", "values": [1, None]}
    assert not modelled.is_error
    assert built.structured_content == {"when": "2024-01-02T03:04:05Z", "pair": [1, 2], "none": None}
    assert [getattr(block, "text", None) for block in built.content] == ["raw"]
