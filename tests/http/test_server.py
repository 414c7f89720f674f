"""bulkhead-http over the demo tracker: tools, annotations, results, meta-tools, read-only default."""

import json
from typing import Any

import pytest
import yaml
from mcp.shared.exceptions import MCPError

from bulkhead.testing import MODERN_ERA
from bulkhead_http.runtime import DATA_DIR
from tests.http.conftest import serving, text_of
from tests.http.upstream import Upstream

pytestmark = pytest.mark.anyio


def demo(upstream: Upstream, **changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((DATA_DIR / "demo.yaml").read_text())
    data["apis"][0]["base_url"] = f"{upstream.base}/api"
    data["apis"][0].update(changes)
    return data


async def test_each_allowed_operation_is_a_tool_with_annotations_from_its_method(upstream: Upstream) -> None:
    async with serving(demo(upstream)) as (client, _):
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
    assert set(tools) == {"list_tickets", "search_tickets", "get_ticket", "add_comment", "ticket_stats"}
    get = tools["get_ticket"]
    assert get.annotations is not None
    assert get.annotations.read_only_hint is True
    assert get.annotations.destructive_hint is False
    assert get.input_schema["required"] == ["ticket_id"]
    assert get.input_schema["additionalProperties"] is False
    assert get.output_schema is not None
    assert get.output_schema["properties"]["body"]["allOf"][0]["properties"]["id"]["type"] == "string"
    comment = tools["add_comment"]
    assert comment.annotations is not None
    assert comment.annotations.read_only_hint is False
    assert comment.annotations.destructive_hint is True
    assert comment.annotations.idempotent_hint is False
    assert "body" in comment.input_schema["properties"]
    assert str(tools["ticket_stats"].description).startswith("Ticket counts")


async def test_a_json_answer_is_structured_content_with_status_and_body(upstream: Upstream) -> None:
    async with serving(demo(upstream)) as (client, _):
        result = await client.call_tool("get_ticket", {"ticket_id": "T-1003"})
    assert not result.is_error
    assert result.structured_content is not None
    assert result.structured_content["status"] == 200
    assert result.structured_content["body"]["id"] == "T-1003"
    assert json.loads(text_of(result))["body"]["id"] == "T-1003"


async def test_pagination_follows_next_cursor_to_the_end(upstream: Upstream) -> None:
    seen: list[str] = []
    async with serving(demo(upstream)) as (client, _):
        cursor = None
        for _ in range(10):
            arguments: dict[str, Any] = {"limit": 50, "status": "open"}
            if cursor:
                arguments["cursor"] = cursor
            result = await client.call_tool("list_tickets", arguments)
            assert result.structured_content is not None
            body = result.structured_content["body"]
            seen += [ticket["id"] for ticket in body["tickets"]]
            cursor = body["next_cursor"]
            if cursor is None:
                break
    assert len(seen) == len(set(seen)) == 40


async def test_an_upstream_404_is_an_error_result_with_status_and_body(upstream: Upstream) -> None:
    async with serving(demo(upstream)) as (client, _):
        result = await client.call_tool("get_ticket", {"ticket_id": "T-9"})
    assert result.is_error
    text = text_of(result)
    assert "404 Not Found" in text
    assert "GET /tickets/T-9" in text
    assert "no ticket T-9" in text


async def test_arguments_are_validated_against_the_published_schema(upstream: Upstream) -> None:
    async with serving(demo(upstream)) as (client, _):
        wrong_type = await client.call_tool("list_tickets", {"limit": "many"})
        out_of_range = await client.call_tool("list_tickets", {"limit": 500})
        missing = await client.call_tool("get_ticket", {})
        unknown = await client.call_tool("get_ticket", {"ticket_id": "T-1001", "admin": True})
    for result, word in (
        (wrong_type, "limit"),
        (out_of_range, "limit"),
        (missing, "ticket_id"),
        (unknown, "admin"),
    ):
        assert result.is_error
        assert word in text_of(result)
    assert upstream.hits["/api/tickets"] == 0


async def test_a_write_operation_runs_when_writes_are_enabled(upstream: Upstream) -> None:
    async with serving(demo(upstream)) as (client, _):
        added = await client.call_tool(
            "add_comment", {"ticket_id": "T-1001", "body": {"body": "Fixed in 2.3"}}
        )
        ticket = await client.call_tool("get_ticket", {"ticket_id": "T-1001"})
    assert not added.is_error
    assert added.structured_content is not None
    assert added.structured_content["status"] == 201
    assert ticket.structured_content is not None
    assert ticket.structured_content["body"]["comments"][-1]["body"] == "Fixed in 2.3"


async def test_writes_are_left_out_unless_the_api_enables_them(upstream: Upstream) -> None:
    async with serving(demo(upstream, allow_writes=False)) as (client, _):
        names = {tool.name for tool in (await client.list_tools()).tools}
        with pytest.raises(MCPError, match="Unknown tool"):
            await client.call_tool("add_comment", {"ticket_id": "T-1001", "body": {"body": "x"}})
    assert "add_comment" not in names
    assert "get_ticket" in names
    assert upstream.hits["/api/tickets/T-1001/comments"] == 0


async def test_the_rate_limited_endpoint_is_retried_after_its_retry_after(upstream: Upstream) -> None:
    async with serving(demo(upstream)) as (client, _):
        results = [await client.call_tool("ticket_stats", {}) for _ in range(3)]
    assert all(not result.is_error for result in results)
    assert upstream.hits["/api/stats"] >= 4  # at least one 429 was answered, waited out and retried


async def test_meta_tools_search_then_call(upstream: Upstream) -> None:
    async with serving(demo(upstream), meta_tools=True) as (client, _):
        names = {tool.name for tool in (await client.list_tools()).tools}
        found = await client.call_tool("search_operations", {"query": "ticket comment"})
        everything = await client.call_tool("search_operations", {})
        called = await client.call_tool(
            "call_operation", {"name": "get_ticket", "arguments": {"ticket_id": "T-1010"}}
        )
        invalid = await client.call_tool(
            "call_operation", {"name": "get_ticket", "arguments": {"ticket_id": "../x"}}
        )
        unknown = await client.call_tool("call_operation", {"name": "drop_database"})
    assert names == {"search_operations", "call_operation"}
    assert found.structured_content is not None
    assert found.structured_content["operations"][0]["name"] == "add_comment"
    assert everything.structured_content is not None
    assert everything.structured_content["total"] == 5
    assert called.structured_content is not None
    assert called.structured_content["body"]["id"] == "T-1010"
    assert invalid.is_error
    assert unknown.is_error
    assert "search_operations" in text_of(unknown)


async def test_the_modern_protocol_era_calls_tools_too(upstream: Upstream) -> None:
    async with serving(demo(upstream), era=MODERN_ERA) as (client, _):
        result = await client.call_tool("search_tickets", {"q": "csv", "limit": 3})
    assert not result.is_error
    assert result.structured_content is not None
    assert result.structured_content["body"]["total"] > 0
