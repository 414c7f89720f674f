"""THREATS.md, users: identifier fuzzing and tampered cursors get clear errors and change nothing."""

import base64
import json
from typing import Any

import pytest
from mcp_types import CallToolResult

from bulkhead.app import BulkheadServer
from bulkhead.testing import connect
from bulkhead_users.filedir import FileDirectory
from bulkhead_users.server import build_server
from tests.users.conftest import make_settings

pytestmark = pytest.mark.anyio


def _text(result: CallToolResult) -> str:
    return "".join(getattr(block, "text", "") for block in result.content)


FUZZ_IDENTIFIERS = [
    "",
    " ",
    "u" * 10_000,
    "u00001\x00",
    "u00001\nu00002",
    "\x1b[31mred",
    "*",
    "%",
    "u0000_",
    "u0000%",
    ".*",
    "' OR '1'='1",
    "u00001'; DROP TABLE users; --",
    "${jndi:ldap://x}",
    "../../etc/passwd",
    "u00001\u202e",
    "ü" * 300,
]


@pytest.mark.parametrize("identifier", FUZZ_IDENTIFIERS)
@pytest.mark.parametrize("tool", ["get_user", "get_manager_chain", "list_direct_reports"])
async def test_fuzzed_identifiers_get_a_clear_error_and_no_data(
    server: BulkheadServer, tool: str, identifier: str
) -> None:
    async with connect(server) as client:
        result = await client.call_tool(tool, {"user": identifier})
        healthy = await client.call_tool("get_user", {"user": "u00001"})
    assert result.is_error
    assert result.structured_content is None
    text = _text(result)
    assert text
    assert "Internal error" not in text
    assert not healthy.is_error


@pytest.mark.parametrize(
    "arguments",
    [
        {"query": "a" * 201},
        {"query": "line\nbreak"},
        {"department": "\x00"},
        {"department": ""},
        {"page_size": 0},
        {"page_size": 101},
        {"page_size": "ten"},
        {"page_size": 10**12},
        {"sort": "x" * 41},
        {"unexpected": "argument"},
        {"departement": "Sales"},
    ],
)
async def test_bad_search_arguments_are_rejected_with_a_message(
    server: BulkheadServer, arguments: dict[str, Any]
) -> None:
    async with connect(server) as client:
        result = await client.call_tool("search_users", arguments)
    assert result.is_error
    assert "Internal error" not in _text(result)


async def test_a_misspelt_argument_is_named_with_the_real_ones(server: BulkheadServer) -> None:
    async with connect(server) as client:
        result = await client.call_tool("search_users", {"departement": "Sales"})
    assert "search_users has no argument 'departement'; its arguments are: query, department" in _text(result)


async def _first_page(client: Any, **arguments: Any) -> dict[str, Any]:
    result = await client.call_tool("search_users", {"page_size": 5, **arguments})
    assert not result.is_error
    return result.structured_content


def _tamper(cursor: str) -> list[str]:
    payload, _, signature = cursor.partition(".")
    body = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    body["o"] = 0 if body["o"] else 5
    forged_payload = base64.urlsafe_b64encode(json.dumps(body).encode()).decode().rstrip("=")
    flipped = signature[:-1] + ("A" if signature[-1] != "A" else "B")
    return [
        forged_payload + "." + signature,
        payload + "." + flipped,
        payload,
        "." + signature,
        cursor + "x",
        "not-a-cursor",
        "é" * 30,
        base64.urlsafe_b64encode(b'{"o": 100}').decode(),
    ]


async def test_an_edited_or_forged_cursor_is_rejected(server: BulkheadServer) -> None:
    async with connect(server) as client:
        first = await _first_page(client, department="Engineering")
        for bad in _tamper(first["next_cursor"]):
            result = await client.call_tool("search_users", {"department": "Engineering", "cursor": bad})
            assert result.is_error, bad
            assert "start from the first page" in _text(result)


async def test_a_cursor_is_bound_to_the_request_it_came_from(server: BulkheadServer) -> None:
    async with connect(server) as client:
        first = await _first_page(client, department="Engineering")
        cursor = first["next_cursor"]
        other_filter = await client.call_tool("search_users", {"department": "Sales", "cursor": cursor})
        other_tool = await client.call_tool("get_group_members", {"group": "leadership", "cursor": cursor})
        same = await client.call_tool("search_users", {"department": "engineering ", "cursor": cursor})
    assert other_filter.is_error
    assert other_tool.is_error
    assert not same.is_error


async def test_a_cursor_from_another_server_instance_is_rejected(server: BulkheadServer) -> None:
    other = type(server)(make_settings(audit="off"))
    async with connect(server) as client:
        cursor = (await _first_page(client))["next_cursor"]
    with pytest.raises(Exception, match="cursor"):
        other.cursors.decode(cursor, ("search_users", None, (), "display_name"))


async def test_replicas_sharing_a_cursor_secret_accept_each_others_cursors(bundled: Any) -> None:
    one = build_server(make_settings(audit="off", cursor_secret="s" * 32), bundled)
    two = build_server(make_settings(audit="off", cursor_secret="s" * 32), bundled)
    async with connect(one) as first_client, connect(two) as second_client:
        cursor = (await _first_page(first_client))["next_cursor"]
        result = await second_client.call_tool("search_users", {"page_size": 5, "cursor": cursor})
    assert not result.is_error


async def _page_two(client: Any, tool: str, first: dict[str, Any], second: dict[str, Any]) -> CallToolResult:
    """Page 2 of `tool`: page 1 asked with `first`, its cursor passed back with `second`."""
    page = await client.call_tool(tool, {"page_size": 2, **first})
    assert not page.is_error, _text(page)
    cursor = page.structured_content["next_cursor"]
    assert cursor
    return await client.call_tool(tool, {"page_size": 2, **second, "cursor": cursor})


@pytest.mark.parametrize(
    ("tool", "arguments"),
    [
        ("search_users", {"department": "Engineering"}),
        ("list_direct_reports", {"user": "u00001"}),
        ("get_group_members", {"group": "leadership"}),
    ],
)
async def test_a_cursor_made_with_the_default_sort_is_accepted_with_that_sort_named(
    server: BulkheadServer, tool: str, arguments: dict[str, Any]
) -> None:
    async with connect(server) as client:
        named = await _page_two(client, tool, arguments, {**arguments, "sort": "display_name"})
        other = await _page_two(client, tool, arguments, {**arguments, "sort": "id"})
    assert not named.is_error, _text(named)
    assert other.is_error


async def test_a_direct_reports_cursor_follows_the_person_however_they_are_named(
    server: BulkheadServer, bundled: Any
) -> None:
    boss = await bundled.get("u00001", ("id",))
    async with connect(server) as client:
        by_id = await _page_two(client, "list_direct_reports", {"user": "u00001"}, {"user": "u00001"})
        by_email = await _page_two(
            client, "list_direct_reports", {"user": "u00001"}, {"user": boss["email"].upper()}
        )
        by_username = await _page_two(
            client, "list_direct_reports", {"user": boss["email"]}, {"user": boss["username"]}
        )
    assert not by_id.is_error
    assert by_email.structured_content == by_username.structured_content == by_id.structured_content


async def test_a_direct_reports_cursor_is_refused_for_an_id_differing_only_in_case(tmp_path: Any) -> None:
    path = tmp_path / "people.json"
    people = [{"id": "a1"}, {"id": "A1"}] + [
        {"id": f"r{n}", "manager_id": boss} for n, boss in enumerate(["a1", "a1", "a1", "A1", "A1", "A1"])
    ]
    path.write_text(json.dumps(people))
    directory = FileDirectory(path)
    await directory.open()
    server = build_server(make_settings(audit="off"), directory)
    async with connect(server) as client:
        same = await _page_two(client, "list_direct_reports", {"user": "a1"}, {"user": "a1"})
        other = await _page_two(client, "list_direct_reports", {"user": "a1"}, {"user": "A1"})
    assert not same.is_error
    assert "start from the first page" in _text(other)


async def test_a_group_members_cursor_accepts_the_group_in_any_case(server: BulkheadServer) -> None:
    async with connect(server) as client:
        same = await _page_two(client, "get_group_members", {"group": "leadership"}, {"group": " LEADERSHIP"})
        other = await _page_two(client, "get_group_members", {"group": "leadership"}, {"group": "on-call"})
    assert not same.is_error
    assert other.is_error
