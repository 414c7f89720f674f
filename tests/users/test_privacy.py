"""The field allow-list: hidden fields never leak through results, searches, sorts, errors or audit."""

import json
import logging
from typing import Any

import pytest
from mcp_types import CallToolResult

from bulkhead.testing import connect
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
    async with connect(server) as client:
        hidden = await client.call_tool("search_users", {"location": "Berlin"})
        hidden_nomatch = await client.call_tool("search_users", {"location": "Atlantis"})
        hidden_group = await client.call_tool("search_users", {"group": "leadership"})
    messages = {
        _text(r).replace("location", "X").replace("groups", "X")
        for r in (hidden, hidden_nomatch, hidden_group)
    }
    assert all(r.is_error for r in (hidden, hidden_nomatch, hidden_group))
    # Same answer whether the hidden value would have matched or not: nothing is revealed.
    assert len(messages) == 1
    assert "Berlin" not in _text(hidden)


@pytest.mark.parametrize(
    "sort", ["location", "phone", "personal_address", "email", "nonexistent", "id; drop"]
)
async def test_sorting_by_a_hidden_or_unknown_field_is_rejected(bundled: FileDirectory, sort: str) -> None:
    server = build_server(make_settings(audit="off", fields=["id", "display_name", "department"]), bundled)
    async with connect(server) as client:
        result = await client.call_tool("search_users", {"sort": sort})
    assert result.is_error
    assert "choose one of: display_name, id" in _text(result)


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


async def test_manager_and_group_tools_refuse_when_those_fields_are_hidden(bundled: FileDirectory) -> None:
    server = build_server(make_settings(audit="off", fields=["id", "display_name"]), bundled)
    async with connect(server) as client:
        outcomes = [
            await client.call_tool("get_manager_chain", {"user": "u00002"}),
            await client.call_tool("list_direct_reports", {"user": "u00001"}),
            await client.call_tool("list_groups", {}),
            await client.call_tool("get_group_members", {"group": "leadership"}),
        ]
    for result in outcomes:
        assert result.is_error
        assert "not available on this server" in _text(result)


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
