"""The field allow-list: hidden fields never leak through results, searches, sorts, errors or audit."""

import json
import logging
from typing import Any

import pytest
from mcp import MCPError
from mcp_types import CallToolResult

from bulkhead.errors import InvalidArgumentError
from bulkhead.testing import connect
from bulkhead_users.directory import UserLookup
from bulkhead_users.fields import FieldPolicy
from bulkhead_users.filedir import FileDirectory
from bulkhead_users.server import build_server
from tests.users.conftest import make_settings

pytestmark = pytest.mark.anyio

# u00001's hidden values in the bundled directory; none of them may ever be seen.
HIDDEN = ("phone", "personal_address")


def _text(result: CallToolResult) -> str:
    return json.dumps(result.structured_content) + "".join(getattr(b, "text", "") for b in result.content)


async def _secret_values(directory: FileDirectory) -> list[str]:
    record = await directory.get("u00001", ("id",))
    assert record is not None
    return [record[name] for name in HIDDEN]


async def test_phone_and_address_are_hidden_by_default_everywhere(bundled: FileDirectory) -> None:
    server = build_server(make_settings(audit="off"), bundled)
    secrets = await _secret_values(bundled)
    async with connect(server) as client:
        tools = (await client.list_tools()).tools
        results = [
            await client.call_tool("get_user", {"user": "u00001"}),
            await client.call_tool("search_users", {"page_size": 100}),
            await client.call_tool("get_manager_chain", {"user": "u00200"}),
            await client.call_tool("list_direct_reports", {"user": "u00001"}),
            await client.call_tool("get_group_members", {"group": "leadership", "page_size": 100}),
        ]
        resource = await client.read_resource("users://u00001")
    for tool in tools:
        assert "phone" not in json.dumps(tool.output_schema)
        assert "personal_address" not in json.dumps(tool.output_schema)
    for result in results:
        assert not result.is_error
        text = _text(result)
        for name in HIDDEN:
            assert f'"{name}"' not in text
        for value in secrets:
            assert value not in text
    for value in secrets:
        assert value not in getattr(resource.contents[0], "text", "")


@pytest.mark.parametrize("probe", ["+1-555", "555", "Street", "1-555-"])
async def test_free_text_search_never_matches_a_hidden_field(bundled: FileDirectory, probe: str) -> None:
    server = build_server(make_settings(audit="off"), bundled)
    async with connect(server) as client:
        result = await client.call_tool("search_users", {"query": probe})
    assert not result.is_error
    assert result.structured_content is not None
    assert result.structured_content["total"] == 0


async def test_hidden_filter_is_rejected_exactly_like_an_unknown_one(bundled: FileDirectory) -> None:
    server = build_server(make_settings(audit="off", fields=["id", "display_name", "department"]), bundled)
    calls = {
        "location": {"location": "Berlin"},
        "location ": {"location": "Atlantis"},
        "group": {"group": "leadership"},
        "shoe_size": {"shoe_size": "42"},
    }
    async with connect(server) as client:
        results = {name: await client.call_tool("search_users", call) for name, call in calls.items()}
    messages = {_text(result).replace(repr(name.strip()), "X") for name, result in results.items()}
    assert all(result.is_error for result in results.values())
    # Same answer whether the hidden value would have matched or not, and for a field that does not
    # exist at all: nothing is revealed.
    assert len(messages) == 1
    assert "its arguments are: query, department, sort, page_size, cursor." in messages.pop()
    assert "Berlin" not in _text(results["location"])


async def test_search_offers_only_the_filters_and_sort_fields_of_visible_fields(
    bundled: FileDirectory,
) -> None:
    server = build_server(make_settings(audit="off", fields=["id", "display_name", "department"]), bundled)
    async with connect(server) as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
    properties = tools["search_users"].input_schema["properties"]
    assert list(properties) == ["query", "department", "sort", "page_size", "cursor"]
    assert properties["sort"]["anyOf"][0]["enum"] == ["display_name", "id", "department"]
    assert "location" not in (tools["search_users"].description or "")


@pytest.mark.parametrize(
    "sort", ["location", "phone", "personal_address", "email", "nonexistent", "id; drop"]
)
async def test_sorting_by_a_hidden_or_unknown_field_is_rejected(bundled: FileDirectory, sort: str) -> None:
    server = build_server(make_settings(audit="off", fields=["id", "display_name", "department"]), bundled)
    async with connect(server) as client:
        result = await client.call_tool("search_users", {"sort": sort})
    assert result.is_error
    assert "Input should be 'display_name', 'id' or 'department'" in _text(result)


async def test_lookup_by_a_hidden_email_finds_nobody(bundled: FileDirectory) -> None:
    server = build_server(make_settings(audit="off", fields=["id", "display_name"]), bundled)
    record = await bundled.get("u00001", ("id",))
    assert record is not None
    async with connect(server) as client:
        by_email = await client.call_tool("get_user", {"user": record["email"]})
        by_username = await client.call_tool("get_user", {"user": record["username"]})
        by_id = await client.call_tool("get_user", {"user": "u00001"})
    assert by_email.is_error
    assert by_username.is_error
    assert not by_id.is_error
    assert by_id.structured_content == {"id": "u00001", "display_name": record["display_name"]}


@pytest.mark.parametrize(
    ("fields", "offered"),
    [
        (["display_name"], set[str]()),
        (["display_name", "manager_id"], {"get_manager_chain", "list_direct_reports"}),
        (["display_name", "groups"], {"list_groups", "get_group_members"}),
    ],
)
async def test_manager_and_group_tools_are_offered_only_when_their_fields_are_visible(
    bundled: FileDirectory, fields: list[str], offered: set[str]
) -> None:
    server = build_server(make_settings(audit="off", fields=fields), bundled)
    unoffered = {"get_manager_chain", "list_direct_reports", "list_groups", "get_group_members"} - offered
    async with connect(server) as client:
        tools = {tool.name for tool in (await client.list_tools()).tools}
        for name in unoffered:
            with pytest.raises(MCPError, match=f"Unknown tool: {name}"):
                await client.call_tool(name, {"user": "u00001", "group": "leadership"})
        instructions = client.instructions or ""
    assert tools == {"get_user", "search_users", *offered}
    for name in unoffered:
        assert name not in instructions


async def test_the_lookup_refuses_manager_and_group_questions_when_those_fields_are_hidden(
    bundled: FileDirectory,
) -> None:
    lookup = UserLookup(bundled, FieldPolicy(["id", "display_name"]))
    refusals = [
        lookup.manager_chain("u00002"),
        lookup.reports_query("u00001", None),
        lookup.groups(0, 10),
    ]
    for refusal in refusals:
        with pytest.raises(InvalidArgumentError, match="not available on this server"):
            await refusal
    with pytest.raises(InvalidArgumentError, match="not available on this server"):
        lookup.group_query("leadership", None)


async def test_audit_records_carry_arguments_but_never_results(
    bundled: FileDirectory, caplog: pytest.LogCaptureFixture, tmp_path: Any
) -> None:
    audit_file = tmp_path / "audit.jsonl"
    server = build_server(make_settings(audit=str(audit_file)), bundled)
    secrets = await _secret_values(bundled)
    with caplog.at_level(logging.DEBUG):
        async with connect(server) as client:
            await client.call_tool("get_user", {"user": "u00001"})
            await client.call_tool("search_users", {"query": "x" * 5000, "department": "Engineering"})
            await client.call_tool("get_user", {"user": "nobody"})
    server.audit.close()
    records = [json.loads(line) for line in audit_file.read_text().splitlines()]
    assert [r["outcome"] for r in records] == ["ok", "rejected", "rejected"]
    assert records[0]["arguments"] == {"user": "u00001"}
    assert records[0]["server"] == "users"
    assert records[0]["principal"] == "local"
    assert records[0]["result_size"] > 0
    assert len(records[1]["arguments"]["query"]) < 300
    everything = audit_file.read_text() + caplog.text
    for value in secrets:
        assert value not in everything
