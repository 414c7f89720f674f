"""bulkhead-users tools through the in-memory client, in both protocol eras."""

from typing import Any

import pytest
from mcp import MCPError
from mcp_types import CallToolResult

from bulkhead.app import BulkheadServer
from bulkhead.testing import connect

pytestmark = pytest.mark.anyio

ERAS = ["legacy", "2026-07-28"]


def data(result: CallToolResult) -> dict[str, Any]:
    assert not result.is_error, result.content
    assert result.structured_content is not None
    return result.structured_content


def error_text(result: CallToolResult) -> str:
    assert result.is_error
    return "".join(getattr(block, "text", "") for block in result.content)


@pytest.mark.parametrize("era", ERAS)
async def test_every_tool_is_listed_read_only_with_an_output_schema(server: BulkheadServer, era: str) -> None:
    async with connect(server, era) as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
    assert set(tools) == {
        "get_user",
        "search_users",
        "get_manager_chain",
        "list_direct_reports",
        "list_groups",
        "get_group_members",
    }
    for tool in tools.values():
        assert tool.annotations is not None
        assert tool.annotations.read_only_hint is True
        assert tool.annotations.destructive_hint is False
        assert tool.output_schema is not None
        assert tool.description


@pytest.mark.parametrize("era", ERAS)
async def test_get_user_finds_a_person_by_id_email_or_username(server: BulkheadServer, era: str) -> None:
    async with connect(server, era) as client:
        by_id = data(await client.call_tool("get_user", {"user": "u00001"}))
        by_email = data(await client.call_tool("get_user", {"user": by_id["email"].upper()}))
        by_username = data(await client.call_tool("get_user", {"user": by_id["username"]}))
    assert by_id == by_email == by_username
    assert by_id["title"] == "Chief Executive Officer"
    assert by_id["manager_id"] is None


async def test_an_unknown_user_is_an_error_that_points_to_search(server: BulkheadServer) -> None:
    async with connect(server) as client:
        result = await client.call_tool("get_user", {"user": "u99999"})
    assert "No user" in error_text(result)
    assert "search_users" in error_text(result)


async def test_search_pages_through_every_match_exactly_once(server: BulkheadServer) -> None:
    seen: list[str] = []
    cursor = None
    async with connect(server) as client:
        while True:
            args: dict[str, Any] = {"department": "engineering", "page_size": 7}
            if cursor:
                args["cursor"] = cursor
            page = data(await client.call_tool("search_users", args))
            seen += [user["id"] for user in page["users"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
    assert len(seen) == page["total"] == len(set(seen))
    assert page["total"] > 20


async def test_free_text_search_is_case_insensitive_and_literal(server: BulkheadServer) -> None:
    async with connect(server) as client:
        found = data(await client.call_tool("search_users", {"query": "FISCHER"}))
        wildcard = data(await client.call_tool("search_users", {"query": "%"}))
        star = data(await client.call_tool("search_users", {"query": "*"}))
    assert found["total"] > 0
    assert all("fischer" in (user["display_name"] + user["email"]).lower() for user in found["users"])
    assert wildcard["total"] == 0
    assert star["total"] == 0


async def test_filters_combine_and_match_groups(server: BulkheadServer) -> None:
    async with connect(server) as client:
        page = data(
            await client.call_tool(
                "search_users", {"department": "Engineering", "location": "berlin", "group": "ON-CALL"}
            )
        )
    assert page["total"] > 0
    for user in page["users"]:
        assert user["department"] == "Engineering"
        assert user["location"] == "Berlin"
        assert "on-call" in user["groups"]


async def test_manager_chain_goes_up_to_the_ceo(server: BulkheadServer) -> None:
    async with connect(server) as client:
        chain = data(await client.call_tool("get_manager_chain", {"user": "u00300"}))
    managers = chain["managers"]
    assert managers[-1]["id"] == "u00001"
    assert managers[0]["id"] == chain["user"]["manager_id"]
    assert chain["truncated"] is False


async def test_direct_reports_are_the_people_whose_manager_it_is(server: BulkheadServer) -> None:
    async with connect(server) as client:
        result = data(await client.call_tool("list_direct_reports", {"user": "u00001", "page_size": 100}))
    assert result["total"] == len(result["reports"]) == 8
    assert {user["manager_id"] for user in result["reports"]} == {"u00001"}


async def test_groups_list_with_counts_and_members_page(server: BulkheadServer) -> None:
    async with connect(server) as client:
        groups = data(await client.call_tool("list_groups", {}))
        leadership = next(group for group in groups["groups"] if group["name"] == "leadership")
        members = data(await client.call_tool("get_group_members", {"group": "Leadership", "page_size": 100}))
        missing = await client.call_tool("get_group_members", {"group": "no-such-group"})
    assert members["total"] == leadership["members"]
    assert all("leadership" in user["groups"] for user in members["users"])
    assert "list_groups" in error_text(missing)


@pytest.mark.parametrize("era", ERAS)
async def test_user_resource_returns_the_visible_fields_as_json(server: BulkheadServer, era: str) -> None:
    async with connect(server, era) as client:
        templates = await client.list_resource_templates()
        result = await client.read_resource("users://u00002")
    assert templates.resource_templates[0].uri_template == "users://{user_id}"
    text = getattr(result.contents[0], "text", "")
    assert '"id": "u00002"' in text
    assert "phone" not in text


async def test_get_user_with_a_name_points_to_search_users_in_a_sentence(server: BulkheadServer) -> None:
    async with connect(server) as client:
        result = await client.call_tool("get_user", {"user": "Ada Lovelace"})
    text = error_text(result)
    assert "No user has the id, email or username 'Ada Lovelace'. Use search_users" in text
    assert "validation error" not in text


@pytest.mark.parametrize("tool", ["get_user", "get_manager_chain", "list_direct_reports"])
async def test_a_blank_user_is_refused_with_a_sentence(server: BulkheadServer, tool: str) -> None:
    async with connect(server) as client:
        result = await client.call_tool(tool, {"user": "   "})
    assert "user is blank: pass an id, email address or username" in error_text(result)


@pytest.mark.parametrize("group", [" ", "\u3000"])
async def test_a_blank_group_is_refused_instead_of_listing_everyone(
    server: BulkheadServer, group: str
) -> None:
    async with connect(server) as client:
        result = await client.call_tool("get_group_members", {"group": group})
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
    assert "group is blank" in error_text(result)
    assert result.structured_content is None
    group_schema = tools["get_group_members"].input_schema["properties"]["group"]
    assert group_schema["minLength"] == 1
    assert group_schema["maxLength"] == 200


async def test_a_group_name_with_control_characters_is_refused(server: BulkheadServer) -> None:
    async with connect(server) as client:
        result = await client.call_tool("get_group_members", {"group": "leadership\n"})
    assert "control characters" in error_text(result)


async def test_the_user_resource_of_an_unknown_id_is_not_found(server: BulkheadServer) -> None:
    async with connect(server) as client:
        with pytest.raises(MCPError, match="No user has the id 'U00001'"):
            await client.read_resource("users://U00001")


async def test_the_tools_that_list_people_describe_what_they_return_and_when_they_fail(
    server: BulkheadServer,
) -> None:
    async with connect(server) as client:
        tools = {tool.name: tool.description or "" for tool in (await client.list_tools()).tools}
    assert "total number of direct reports" in tools["list_direct_reports"]
    assert "search_users" in tools["list_direct_reports"]
    assert "total number of members" in tools["get_group_members"]
    assert "list_groups" in tools["get_group_members"]
    assert "`group` matches anyone in that group" in tools["search_users"]
