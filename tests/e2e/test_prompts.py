"""bulkhead-prompts as a real subprocess, over stdio and HTTP, driven by the real MCP client."""

from pathlib import Path

import anyio
import pytest
from mcp import Client
from mcp.client.sse import sse_client
from mcp.shared.exceptions import MCPError
from mcp_types import INVALID_PARAMS, EmbeddedResource, PromptListChangedNotification, TextContent

from bulkhead.testing import MODERN_ERA, Inbox, http_server, stdio_parameters
from tests.prompts.conftest import GREETING, GREETING_BODY, write, write_prompt

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

MODULE = "bulkhead_prompts"
WAIT = 30


@pytest.fixture
def library(tmp_path: Path) -> Path:
    root = tmp_path / "library"
    write_prompt(root, "greet.md", GREETING, GREETING_BODY)
    write(root, "_shared/checklist.md", "- tests\n")
    write_prompt(
        root,
        "review.md",
        {"name": "review", "description": "Review.", "arguments": [{"name": "diff", "required": True}]},
        "Review.\n<!-- embed: _shared/checklist.md -->\n"
        "<!-- role: assistant -->\nOK.\n<!-- role: user -->\n{{ diff }}\n",
    )
    return root


@pytest.mark.parametrize("era", ["legacy", MODERN_ERA])
async def test_over_stdio_prompts_list_get_complete_and_errors(library: Path, era: str) -> None:
    async with Client(stdio_parameters(MODULE, ["--library", str(library)]), mode=era) as client:
        assert [p.name for p in (await client.list_prompts()).prompts] == ["greet", "review"]
        result = await client.get_prompt("review", {"diff": "{{ 7*7 }}"})
        assert [m.role for m in result.messages] == ["user", "user", "assistant", "user"]
        assert isinstance(result.messages[1].content, EmbeddedResource)
        last = result.messages[3].content
        assert isinstance(last, TextContent)
        assert last.text == "{{ 7*7 }}"
        with pytest.raises(MCPError) as caught:
            await client.get_prompt("greet", {"who": "A", "tone": "loud"})
        assert caught.value.error.code == INVALID_PARAMS
        assert "tone" in caught.value.error.message


async def test_the_starter_library_is_served_when_no_library_is_given() -> None:
    async with Client(stdio_parameters(MODULE), mode="legacy") as client:
        names = [p.name for p in (await client.list_prompts()).prompts]
        result = await client.get_prompt("summarize_ticket", {"ticket": "Login fails with 500 since 09:00."})
    assert len(names) >= 12
    assert {"summarize_ticket", "generate_migration", "review_diff", "explain_sql"} <= set(names)
    assert "Login fails with 500" in getattr(result.messages[0].content, "text", "")


async def test_over_stdio_a_file_write_reaches_a_handshake_client(library: Path) -> None:
    inbox = Inbox(WAIT)
    async with Client(
        stdio_parameters(MODULE, ["--library", str(library)]), mode="legacy", message_handler=inbox
    ) as client:
        await client.list_prompts()
        write_prompt(library, "new.md", {"name": "new", "description": "New."}, "Hi.\n")
        await inbox.wait_for(PromptListChangedNotification, 1)
        assert "new" in [p.name for p in (await client.list_prompts()).prompts]


async def test_over_http_file_writes_reach_clients_of_both_eras_and_sse(library: Path) -> None:
    legacy_inbox, sse_inbox = Inbox(WAIT), Inbox(WAIT)
    async with (
        http_server(MODULE, ["--library", str(library)]) as server,
        Client(server.mcp_url, mode="legacy", message_handler=legacy_inbox) as legacy,
        Client(sse_client(server.sse_url), mode="legacy", message_handler=sse_inbox) as sse,
        Client(server.mcp_url, mode=MODERN_ERA) as modern,
        modern.listen(prompts_list_changed=True) as subscription,
    ):
        await legacy.list_prompts()
        await sse.list_prompts()
        events = aiter(subscription)
        write_prompt(library, "new.md", {"name": "new", "description": "New."}, "Hi.\n")
        await legacy_inbox.wait_for(PromptListChangedNotification, 1)
        await sse_inbox.wait_for(PromptListChangedNotification, 1)
        with anyio.fail_after(WAIT):
            await anext(events)
        for client in (legacy, sse, modern):
            assert "new" in [p.name for p in (await client.list_prompts()).prompts]
        got = await modern.get_prompt("new")
        assert getattr(got.messages[0].content, "text", None) == "Hi."


async def test_over_http_the_tools_serve_tool_only_clients(library: Path) -> None:
    async with (
        http_server(MODULE, ["--library", str(library), "--tools"]) as server,
        Client(server.mcp_url, mode="legacy") as client,
    ):
        result = await client.call_tool("get_prompt", {"name": "greet", "arguments": {"who": "Ada"}})
        refused = await client.call_tool("get_prompt", {"name": "greet", "arguments": {}})
    assert not result.is_error
    assert result.structured_content is not None
    assert result.structured_content["messages"][0]["text"] == "Hello Ada, in a warm tone."
    assert refused.is_error
    assert "needs the argument 'who'" in "".join(getattr(b, "text", "") for b in refused.content)


async def test_a_broken_library_file_is_logged_with_file_and_line_at_start(library: Path) -> None:
    write(library, "bad.md", "---\ndescription: x\n---\n{{ nope }}\n")
    async with http_server(MODULE, ["--library", str(library)]) as server:
        with anyio.fail_after(WAIT):
            record = await server.wait_for_record(lambda r: "problem" in r)
        assert record["problem"] == "bad.md:4: the template uses 'nope', which is not a declared argument"
        async with Client(server.mcp_url, mode="legacy") as client:
            assert [p.name for p in (await client.list_prompts()).prompts] == ["greet", "review"]


async def test_a_library_that_is_not_a_directory_stops_the_start_with_one_line(tmp_path: Path) -> None:
    params = stdio_parameters(MODULE, ["--library", str(tmp_path / "missing")])
    done = await anyio.run_process([params.command, *params.args], check=False, env=params.env)
    assert done.returncode == 2
    assert done.stdout == b""
    lines = done.stderr.decode().strip().splitlines()
    assert len(lines) == 1
    assert "library" in lines[0]
    assert "is not a directory" in lines[0]
