"""Live updates after real writes, in both protocol eras (inotify and polling), bounded waits only."""

import warnings
from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import pytest
from mcp import Client
from mcp.client.subscriptions import ResourcesListChanged, ResourceUpdated
from mcp_types import ResourceListChangedNotification, ResourceUpdatedNotification

from bulkhead.app import BulkheadServer
from bulkhead.notify import ChangeNotifier
from bulkhead.testing import MODERN_ERA, Inbox
from bulkhead_files.resources import file_uri
from bulkhead_files.sandbox import Sandbox
from bulkhead_files.server import build_server
from bulkhead_files.watch import Watcher
from tests.files.conftest import make_settings

pytestmark = pytest.mark.anyio


async def until_watching(watcher: Watcher, root: Path) -> None:
    """Return once the watcher reports changes: touch a hidden probe until it sees one (bounded)."""
    probe = root / ".probe"
    with anyio.fail_after(20):
        for attempt in range(1000):
            before = watcher.batches
            probe.write_text(str(attempt))
            with anyio.move_on_after(0.5):
                while watcher.batches == before:
                    await watcher.changed.wait()
            if watcher.batches > before:
                return


@asynccontextmanager
async def watched(
    root: Path, sandbox: Sandbox, *, polling: bool = False
) -> AsyncGenerator[tuple[BulkheadServer, Watcher]]:
    notifier = ChangeNotifier()
    server = build_server(make_settings(root), sandbox, notifier)
    watcher = Watcher(sandbox, notifier, polling=polling, debounce_ms=50)
    async with anyio.create_task_group() as tg:
        stop = anyio.Event()
        tg.start_soon(watcher.run, stop)
        await until_watching(watcher, root)
        try:
            yield server, watcher
        finally:
            stop.set()
            tg.cancel_scope.cancel()


@pytest.mark.parametrize("polling", [False, True], ids=["inotify", "polling"])
async def test_a_subscribed_handshake_client_hears_about_a_write(
    root: Path, sandbox: Sandbox, polling: bool
) -> None:
    inbox = Inbox()
    target = root / "docs" / "guide.md"
    async with (
        watched(root, sandbox, polling=polling) as (server, _watcher),
        Client(server, mode="legacy", message_handler=inbox) as client,
    ):
        assert client.server_capabilities.resources is not None
        assert client.server_capabilities.resources.subscribe
        assert client.server_capabilities.resources.list_changed
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            await client.subscribe_resource(file_uri(str(target)))  # pyright: ignore[reportDeprecated] -- handshake-era API
        target.write_text("# Guide, revised\n")
        got = await inbox.next_of(ResourceUpdatedNotification)
        assert isinstance(got, ResourceUpdatedNotification)
        assert str(got.params.uri) == file_uri(str(target))
        text = (await client.read_resource(file_uri(str(target)))).contents[0]
        assert text.text == "# Guide, revised\n"  # type: ignore[union-attr]  # pyright: ignore[reportAttributeAccessIssue]


async def test_unsubscribed_files_and_unsubscribing_stop_the_updates(root: Path, sandbox: Sandbox) -> None:
    inbox = Inbox()
    target = root / "data.csv"
    async with (
        watched(root, sandbox) as (server, _watcher),
        Client(server, mode="legacy", message_handler=inbox) as client,
    ):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            await client.subscribe_resource(file_uri(str(target)))  # pyright: ignore[reportDeprecated] -- handshake-era API
            (root / "docs" / "notes.txt").write_text("other file\n")
            target.write_text("id\n")
            got = await inbox.next_of(ResourceUpdatedNotification)
            assert str(got.params.uri) == file_uri(str(target))  # type: ignore[union-attr]  # pyright: ignore[reportAttributeAccessIssue]
            assert all(
                str(item.params.uri) == file_uri(str(target))
                for item in inbox.items
                if isinstance(item, ResourceUpdatedNotification)
            )
            await client.unsubscribe_resource(file_uri(str(target)))  # pyright: ignore[reportDeprecated] -- handshake-era API
        seen = len(inbox.items)
        target.write_text("id\n2\n")
        (root / "new.txt").write_text("new")
        await inbox.next_of(ResourceListChangedNotification, seen)
        assert not any(isinstance(item, ResourceUpdatedNotification) for item in inbox.items[seen:])


async def test_files_appearing_and_disappearing_send_list_changed(root: Path, sandbox: Sandbox) -> None:
    inbox = Inbox()
    async with (
        watched(root, sandbox) as (server, _watcher),
        Client(server, mode="legacy", message_handler=inbox) as client,
    ):
        await client.list_resources()
        (root / "fresh.md").write_text("fresh")
        await inbox.next_of(ResourceListChangedNotification)
        names = {r.name for r in (await client.list_resources()).resources}
        assert "fresh.md" in names
        seen = len(inbox.items)
        (root / "fresh.md").unlink()
        await inbox.next_of(ResourceListChangedNotification, seen)


async def test_changes_to_hidden_or_denied_files_notify_nobody(root: Path, sandbox: Sandbox) -> None:
    inbox = Inbox()
    async with (
        watched(root, sandbox) as (server, watcher),
        Client(server, mode="legacy", message_handler=inbox) as client,
    ):
        await client.list_resources()
        before = watcher.batches
        (root / ".env").write_text("PASSWORD=changed\n")
        (root / "server.pem").write_text("key")
        with anyio.fail_after(10):
            while watcher.batches == before:
                await watcher.changed.wait()
        assert inbox.items == []


async def test_a_modern_client_hears_updates_and_list_changes_on_its_listen_stream(
    root: Path, sandbox: Sandbox
) -> None:
    target = root / "src" / "pkg" / "main.py"
    async with (
        watched(root, sandbox) as (server, _watcher),
        Client(server, mode=MODERN_ERA, raise_exceptions=False) as client,
        client.listen(resources_list_changed=True, resource_subscriptions=[file_uri(str(target))]) as stream,
    ):
        target.write_text("def main():\n    return 2\n")
        with anyio.fail_after(10):
            first = await anext(aiter(stream))
        assert first == ResourceUpdated(file_uri(str(target)))
        (root / "added.txt").write_text("added")
        with anyio.fail_after(10):
            second = await anext(aiter(stream))
        assert second == ResourcesListChanged()
