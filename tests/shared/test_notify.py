"""`ChangeNotifier` delivers change notifications to real clients in both protocol eras."""

import warnings
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest
from mcp import Client
from mcp.client.subscriptions import PromptsListChanged, ResourceUpdated, ToolsListChanged
from mcp_types import (
    PromptListChangedNotification,
    ResourceListChangedNotification,
    ResourceUpdatedNotification,
    ToolListChangedNotification,
)

from bulkhead.app import BulkheadServer
from bulkhead.notify import ChangeNotifier
from bulkhead.settings import ServerSettings
from bulkhead.testing import MODERN_ERA, Inbox

pytestmark = pytest.mark.anyio


@pytest.fixture
def notified(tmp_path: Path) -> Iterator[tuple[BulkheadServer, ChangeNotifier]]:
    notifier = ChangeNotifier()
    server = BulkheadServer(ServerSettings(audit=str(tmp_path / "audit.jsonl")), subscriptions=notifier.bus)

    @server.resource("things://{name}")
    def thing(name: str) -> str:
        return name

    @server.prompt()
    def hello() -> str:
        """Says hello."""
        return "hello"

    notifier.install(server, prompts=True, resources=True, tools=True, subscribe=True)
    yield server, notifier
    server.audit.close()


def legacy_client(server: BulkheadServer, inbox: Inbox) -> Client:
    return Client(server, mode="legacy", raise_exceptions=False, message_handler=inbox)


async def test_handshake_clients_are_told_the_notifications_the_server_sends(
    notified: tuple[BulkheadServer, ChangeNotifier],
) -> None:
    server, _ = notified
    async with legacy_client(server, Inbox()) as client:
        capabilities = client.server_capabilities
    assert capabilities.prompts is not None
    assert capabilities.prompts.list_changed
    assert capabilities.resources is not None
    assert capabilities.resources.list_changed
    assert capabilities.resources.subscribe


async def test_every_live_handshake_connection_gets_each_list_changed(
    notified: tuple[BulkheadServer, ChangeNotifier],
) -> None:
    server, notifier = notified
    first, second = Inbox(), Inbox()
    async with legacy_client(server, first) as one, legacy_client(server, second) as two:
        await one.list_prompts()
        await two.list_prompts()
        with anyio.fail_after(5):
            await notifier.wait_for_connections(2)
        await notifier.prompts_changed()
        await notifier.tools_changed()
        await notifier.resources_changed()
        for inbox in (first, second):
            await inbox.next_of(PromptListChangedNotification)
            await inbox.next_of(ToolListChangedNotification)
            await inbox.next_of(ResourceListChangedNotification)


async def test_a_closed_connection_is_forgotten_and_the_others_still_hear(
    notified: tuple[BulkheadServer, ChangeNotifier],
) -> None:
    server, notifier = notified
    survivor = Inbox()
    async with legacy_client(server, survivor) as client:
        await client.list_prompts()
        async with legacy_client(server, Inbox()) as passing:
            await passing.list_prompts()
            assert notifier.connection_count == 2
        assert notifier.connection_count == 1
        await notifier.prompts_changed()
        await survivor.next_of(PromptListChangedNotification)
    assert notifier.connection_count == 0


async def test_resource_updates_reach_only_subscribers_until_they_unsubscribe(
    notified: tuple[BulkheadServer, ChangeNotifier],
) -> None:
    server, notifier = notified
    subscriber, bystander = Inbox(), Inbox()
    async with legacy_client(server, subscriber) as one, legacy_client(server, bystander) as two:
        await two.list_prompts()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the handshake-era API is deprecated for 2026-07-28 only
            await one.subscribe_resource("things://a")  # pyright: ignore[reportDeprecated] -- the handshake era's API
            assert notifier.subscribers("things://a") == 1
            await notifier.resource_updated("things://b")
            await notifier.resource_updated("things://a")
            got = await subscriber.next_of(ResourceUpdatedNotification)
            assert isinstance(got, ResourceUpdatedNotification)
            assert str(got.params.uri) == "things://a"
            assert not any(isinstance(item, ResourceUpdatedNotification) for item in bystander.items)
            await one.unsubscribe_resource("things://a")  # pyright: ignore[reportDeprecated] -- the handshake era's API
        assert notifier.subscribers("things://a") == 0
        seen = len(subscriber.items)
        await notifier.resource_updated("things://a")
        await notifier.prompts_changed()
        await subscriber.next_of(PromptListChangedNotification, seen)
        assert not any(isinstance(item, ResourceUpdatedNotification) for item in subscriber.items[seen:])


async def test_modern_listen_streams_receive_the_events_they_asked_for(
    notified: tuple[BulkheadServer, ChangeNotifier],
) -> None:
    server, notifier = notified
    async with Client(server, mode=MODERN_ERA, raise_exceptions=False) as client:
        async with client.listen(prompts_list_changed=True, resource_subscriptions=["things://a"]) as sub:
            assert notifier.listener_count == 1
            await notifier.tools_changed()  # not asked for: never delivered
            await notifier.prompts_changed()
            await notifier.resource_updated("things://a")
            with anyio.fail_after(5):
                events = [await anext(aiter(sub)), await anext(aiter(sub))]
        assert PromptsListChanged() in events
        assert ResourceUpdated("things://a") in events
        assert ToolsListChanged() not in events
        with anyio.fail_after(5):
            while notifier.listener_count:
                await anyio.lowlevel.checkpoint()
    assert notifier.connection_count == 0  # a modern client is never tracked as a handshake peer


async def test_wait_for_listeners_returns_once_a_stream_is_open(
    notified: tuple[BulkheadServer, ChangeNotifier],
) -> None:
    server, notifier = notified
    async with (
        Client(server, mode=MODERN_ERA, raise_exceptions=False) as client,
        anyio.create_task_group() as tg,
    ):

        async def listen() -> None:
            async with client.listen(prompts_list_changed=True) as sub:
                async for _event in sub:
                    tg.cancel_scope.cancel()

        tg.start_soon(listen)
        with anyio.fail_after(5):
            await notifier.wait_for_listeners(1)
        await notifier.prompts_changed()
