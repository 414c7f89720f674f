"""Hot reload: real file changes reach clients of both eras as prompts/list_changed."""

from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError
from mcp_types import PromptListChangedNotification

from bulkhead.notify import ChangeNotifier
from bulkhead.testing import MODERN_ERA, Inbox
from bulkhead_prompts.server import PromptsServer
from bulkhead_prompts.watch import LibraryWatcher
from tests.prompts.conftest import GREETING, GREETING_BODY, ServerFactory, write, write_prompt

pytestmark = pytest.mark.anyio

WAIT = 15


@asynccontextmanager
async def watched(
    make_server: ServerFactory, root: Path, polling: bool = False
) -> AsyncGenerator[tuple[PromptsServer, LibraryWatcher]]:
    from bulkhead_prompts.runtime import running  # noqa: PLC0415

    notifier = ChangeNotifier()
    server = make_server(root, notifier, reload_debounce_ms=50, watch_polling=polling)
    async with running(server.settings_, server.library, notifier) as watcher:
        assert watcher is not None
        with anyio.fail_after(WAIT):
            await watcher.ready.wait()
        yield server, watcher


async def names(client: Client) -> list[str]:
    return [prompt.name for prompt in (await client.list_prompts()).prompts]


@pytest.mark.parametrize("polling", [False, True], ids=["events", "polling"])
async def test_handshake_clients_hear_about_added_changed_and_removed_prompts(
    tmp_path: Path, make_server: ServerFactory, polling: bool
) -> None:
    root = tmp_path / "lib"
    write_prompt(root, "greet.md", GREETING, GREETING_BODY)
    inbox = Inbox(WAIT)
    async with (
        watched(make_server, root, polling) as (server, _),
        Client(server, mode="legacy", raise_exceptions=False, message_handler=inbox) as client,
    ):
        assert await names(client) == ["greet"]
        write_prompt(root, "new.md", {"name": "new", "description": "Brand new."}, "Hi.\n")
        await inbox.wait_for(PromptListChangedNotification, 1)
        assert await names(client) == ["greet", "new"]

        write_prompt(root, "new.md", {"name": "new", "description": "Changed."}, "Hello.\n")
        await inbox.wait_for(PromptListChangedNotification, 2)
        listed = (await client.list_prompts()).prompts
        assert listed[1].description == "Changed."
        got = await client.get_prompt("new")
        assert getattr(got.messages[0].content, "text", None) == "Hello."

        (root / "new.md").unlink()
        await inbox.wait_for(PromptListChangedNotification, 3)
        assert await names(client) == ["greet"]
        with pytest.raises(MCPError):
            await client.get_prompt("new")


async def test_modern_clients_hear_through_subscriptions_listen(
    tmp_path: Path, make_server: ServerFactory
) -> None:
    root = tmp_path / "lib"
    write_prompt(root, "greet.md", GREETING, GREETING_BODY)
    async with (
        watched(make_server, root) as (server, _),
        Client(server, mode=MODERN_ERA, raise_exceptions=False) as client,
        client.listen(prompts_list_changed=True) as subscription,
    ):
        events = aiter(subscription)
        write_prompt(root, "sub/new.md", {"name": "new", "description": "Brand new."}, "Hi.\n")
        with anyio.fail_after(WAIT):
            await anext(events)
        assert await names(client) == ["greet", "new"]
        (root / "greet.md").unlink()
        with anyio.fail_after(WAIT):
            await anext(events)
        assert await names(client) == ["new"]


async def test_a_broken_edit_keeps_the_last_good_version_serving_until_fixed(
    tmp_path: Path, make_server: ServerFactory, caplog: pytest.LogCaptureFixture
) -> None:
    root = tmp_path / "lib"
    write_prompt(root, "greet.md", GREETING, GREETING_BODY)
    inbox = Inbox(WAIT)
    async with (
        watched(make_server, root) as (server, watcher),
        Client(server, mode="legacy", raise_exceptions=False, message_handler=inbox) as client,
    ):
        await client.list_prompts()
        applied = watcher.reloads
        write(root, "greet.md", "---\nname: greet\ndescription: [broken\n---\nHi {{ who }}\n")
        with anyio.fail_after(WAIT):
            await watcher.wait_for_reloads(applied + 1)
        assert server.library.stale() == ["greet.md"]
        assert str(server.library.problems[0]).startswith("greet.md:3: front matter is not valid")
        assert any("greet.md:3: front matter is not valid YAML" in r.getMessage() for r in caplog.records)
        result = await client.get_prompt("greet", {"who": "Ada"})
        assert getattr(result.messages[0].content, "text", None) == "Hello Ada, in a warm tone."
        assert inbox.count(PromptListChangedNotification) == 0  # nothing served changed

        write_prompt(root, "greet.md", GREETING | {"description": "Fixed."}, GREETING_BODY)
        await inbox.wait_for(PromptListChangedNotification, 1)
        assert server.library.problems == []
        assert (await client.list_prompts()).prompts[0].description == "Fixed."


async def test_a_new_broken_file_is_reported_and_the_rest_keep_serving(
    tmp_path: Path, make_server: ServerFactory
) -> None:
    root = tmp_path / "lib"
    write_prompt(root, "greet.md", GREETING, GREETING_BODY)
    async with watched(make_server, root) as (server, watcher):
        applied = watcher.reloads
        write(root, "bad.md", "---\ndescription: x\n---\n{{ undeclared }}\n")
        with anyio.fail_after(WAIT):
            await watcher.wait_for_reloads(applied + 1)
        assert [str(p) for p in server.library.problems] == [
            "bad.md:4: the template uses 'undeclared', which is not a declared argument"
        ]
        assert [spec.name for spec in server.library.prompts()] == ["greet"]


async def test_a_directory_removed_at_once_takes_its_prompts_with_it(
    tmp_path: Path, make_server: ServerFactory
) -> None:
    root = tmp_path / "lib"
    write_prompt(root, "greet.md", GREETING, GREETING_BODY)
    for index in range(3):
        write_prompt(root, f"team/p{index}.md", {"name": f"p{index}", "description": "x"}, "Hi.\n")
    inbox = Inbox(WAIT)
    async with (
        watched(make_server, root) as (server, _),
        Client(server, mode="legacy", raise_exceptions=False, message_handler=inbox) as client,
    ):
        assert len(await names(client)) == 4
        (root / "team").rename(tmp_path / "moved-away")
        await inbox.wait_for(PromptListChangedNotification, 1)
        assert await names(client) == ["greet"]


async def test_the_watcher_stops_promptly_when_the_server_stops(
    tmp_path: Path, make_server: ServerFactory
) -> None:
    root = tmp_path / "lib"
    write_prompt(root, "greet.md", GREETING, GREETING_BODY)
    with anyio.fail_after(5):
        async with watched(make_server, root):
            pass
