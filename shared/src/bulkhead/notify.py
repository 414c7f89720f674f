"""`ChangeNotifier`: list_changed and resource-updated notifications in both protocol eras.

A server whose content changes under it (a watched directory of prompts or files) must tell its
clients, and the two protocol eras are told differently (MCP-SDK-NOTES 8):

- Handshake era (2024-11-05 … 2025-11-25): the notification goes out on each connection's
  standalone channel. The SDK keeps no list of live connections, so the notifier keeps its own: a
  server middleware registers every handshake-era connection that has a back-channel, and the
  connection's own exit stack removes it again when it closes. `resources/subscribe` and
  `resources/unsubscribe` are answered here and remembered per connection.
- 2026-07-28: events are published on the `SubscriptionBus` that feeds `subscriptions/listen`
  streams. The notifier owns that bus, so the server must be built with
  `subscriptions=notifier.bus`.

Server-agnostic: it knows nothing about prompts or files, only which kinds of change exist.
"""

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import anyio
from mcp.server.connection import Connection
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.lowlevel.server import NotificationOptions
from mcp.server.mcpserver import MCPServer
from mcp.server.subscriptions import (
    InMemorySubscriptionBus,
    PromptsListChanged,
    ResourcesListChanged,
    ResourceUpdated,
    ServerEvent,
    SubscriptionBus,
    ToolsListChanged,
)
from mcp_types import EmptyResult, SubscribeRequestParams, UnsubscribeRequestParams
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

__all__ = ["ChangeNotifier", "SubscribeCheck", "UpdateFilter"]

logger = logging.getLogger("bulkhead.notify")

SubscribeCheck = Callable[[ServerRequestContext[Any, Any], str], Awaitable[None]]
"""Vets a `resources/subscribe` before it is remembered: raises (an `MCPError`) to refuse it."""

UpdateFilter = Callable[[int, str], bool]
"""Whether the connection (by `id`) may still be told that the resource URI changed."""

SEND_TIMEOUT = 5.0
"""Seconds one connection may take to accept a notification before it is treated as dead."""


class _CountingBus:
    """A `SubscriptionBus` that also tells how many listen streams are open, and when that changes."""

    def __init__(self, inner: SubscriptionBus) -> None:
        self._inner = inner
        self.listeners = 0
        self.changed = anyio.Event()

    def _bump(self, delta: int) -> None:
        self.listeners += delta
        self.changed.set()
        self.changed = anyio.Event()

    async def publish(self, event: ServerEvent) -> None:
        await self._inner.publish(event)

    def subscribe(self, listener: Callable[[ServerEvent], None]) -> Callable[[], None]:
        unsubscribe = self._inner.subscribe(listener)
        self._bump(1)
        done = False

        def stop() -> None:
            nonlocal done
            unsubscribe()
            if not done:
                done = True
                self._bump(-1)

        return stop


@dataclass
class _Peer:
    """One live handshake-era connection and the resource URIs it subscribed to."""

    connection: Connection
    uris: set[str] = field(default_factory=set[str])


def _connection_of(ctx: ServerRequestContext[Any, Any]) -> Connection | None:
    connection = getattr(ctx.session, "_connection", None)  # the SDK exposes it only on `Context`
    return connection if isinstance(connection, Connection) else None


class ChangeNotifier:
    """Fans change notifications out to handshake-era connections and 2026-07-28 listen streams.

    Usage::

        notifier = ChangeNotifier()
        server = BulkheadServer(settings, subscriptions=notifier.bus)
        notifier.install(server, prompts=True)
        ...
        await notifier.prompts_changed()
    """

    def __init__(self, bus: SubscriptionBus | None = None, *, send_timeout: float = SEND_TIMEOUT) -> None:
        self._bus = _CountingBus(bus if bus is not None else InMemorySubscriptionBus())
        self._peers: dict[int, _Peer] = {}
        self._peers_changed = anyio.Event()
        self._send_timeout = send_timeout
        self._check_subscribe: SubscribeCheck | None = None
        self._may_hear: UpdateFilter | None = None

    @property
    def bus(self) -> SubscriptionBus:
        """The bus to build the server with (`subscriptions=notifier.bus`)."""
        return self._bus

    @property
    def connection_count(self) -> int:
        """Live handshake-era connections that can receive notifications."""
        return len(self._peers)

    @property
    def listener_count(self) -> int:
        """Open 2026-07-28 `subscriptions/listen` streams."""
        return self._bus.listeners

    def install(
        self,
        server: MCPServer[Any],
        *,
        prompts: bool = False,
        resources: bool = False,
        tools: bool = False,
        subscribe: bool = False,
        check_subscribe: SubscribeCheck | None = None,
        may_hear: UpdateFilter | None = None,
    ) -> None:
        """Track `server`'s connections and advertise the change notifications it will send.

        Args:
            server: the server, built with `subscriptions=self.bus`.
            prompts: advertise `prompts.listChanged` to handshake-era clients.
            resources: advertise `resources.listChanged`.
            tools: advertise `tools.listChanged`.
            subscribe: serve `resources/subscribe` and `resources/unsubscribe` (handshake era).
            check_subscribe: vets each `resources/subscribe` (raise to refuse it).
            may_hear: asked again before each `resources/updated` goes to a connection, so a
                subscription made while it was allowed stops once it no longer is.
        """
        self._check_subscribe = check_subscribe
        self._may_hear = may_hear
        lowlevel = server._lowlevel_server  # pyright: ignore[reportPrivateUsage] -- middleware and handlers live there
        lowlevel.middleware.append(self._track)
        options = NotificationOptions(
            prompts_changed=prompts, resources_changed=resources, tools_changed=tools
        )
        create = lowlevel.create_initialization_options

        def create_with_notifications(
            notification_options: NotificationOptions | None = None,
            experimental_capabilities: dict[str, dict[str, Any]] | None = None,
            extensions: dict[str, dict[str, Any]] | None = None,
        ) -> Any:
            return create(notification_options or options, experimental_capabilities, extensions)

        # Handshake-era capabilities take their listChanged flags from the caller of this method
        # (the transports); defaulting them here keeps every transport honest.
        lowlevel.create_initialization_options = create_with_notifications  # pyright: ignore[reportAttributeAccessIssue] -- per-instance default
        if subscribe:
            lowlevel.add_request_handler("resources/subscribe", SubscribeRequestParams, self._on_subscribe)
            lowlevel.add_request_handler(
                "resources/unsubscribe", UnsubscribeRequestParams, self._on_unsubscribe
            )

    async def _track(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        result = await call_next(ctx)
        connection = _connection_of(ctx)
        if (
            connection is not None
            and connection.protocol_version not in MODERN_PROTOCOL_VERSIONS
            and connection.has_standalone_channel
            and id(connection) not in self._peers
        ):
            self._add(connection)
        return result

    def _add(self, connection: Connection) -> _Peer:
        key = id(connection)
        peer = _Peer(connection)
        self._peers[key] = peer
        connection.exit_stack.callback(self._forget, key, connection)
        self._signal()
        return peer

    def _forget(self, key: int, connection: Connection) -> None:
        peer = self._peers.get(key)
        if peer is not None and peer.connection is connection:
            del self._peers[key]
            self._signal()

    def _signal(self) -> None:
        self._peers_changed.set()
        self._peers_changed = anyio.Event()

    async def wait_for_connections(self, count: int = 1) -> None:
        """Return once at least `count` handshake-era connections are tracked. Bound it with a timeout."""
        while len(self._peers) < count:
            await self._peers_changed.wait()

    async def wait_for_listeners(self, count: int = 1) -> None:
        """Return once at least `count` listen streams are open. Bound it with a timeout."""
        while self._bus.listeners < count:
            await self._bus.changed.wait()

    async def _on_subscribe(
        self, ctx: ServerRequestContext[Any, Any], params: SubscribeRequestParams
    ) -> EmptyResult:
        if self._check_subscribe is not None:
            await self._check_subscribe(ctx, str(params.uri))
        connection = _connection_of(ctx)
        if connection is not None:
            peer = self._peers.get(id(connection)) or self._add(connection)
            peer.uris.add(str(params.uri))
        return EmptyResult()

    async def _on_unsubscribe(
        self, ctx: ServerRequestContext[Any, Any], params: UnsubscribeRequestParams
    ) -> EmptyResult:
        connection = _connection_of(ctx)
        peer = None if connection is None else self._peers.get(id(connection))
        if peer is not None:
            peer.uris.discard(str(params.uri))
        return EmptyResult()

    def subscribers(self, uri: str) -> int:
        """How many handshake-era connections subscribed to `uri`."""
        return sum(1 for peer in self._peers.values() if uri in peer.uris)

    async def prompts_changed(self) -> None:
        """Send `notifications/prompts/list_changed` in both eras."""
        await self._send(PromptsListChanged(), None)

    async def resources_changed(self) -> None:
        """Send `notifications/resources/list_changed` in both eras."""
        await self._send(ResourcesListChanged(), None)

    async def tools_changed(self) -> None:
        """Send `notifications/tools/list_changed` in both eras."""
        await self._send(ToolsListChanged(), None)

    async def resource_updated(self, uri: str) -> None:
        """Send `notifications/resources/updated` to whoever subscribed to `uri`, in both eras."""
        await self._send(ResourceUpdated(uri), uri)

    async def _send(self, event: ServerEvent, uri: str | None) -> None:
        targets = [
            (key, peer.connection)
            for key, peer in list(self._peers.items())
            if uri is None or (uri in peer.uris and (self._may_hear is None or self._may_hear(key, uri)))
        ]
        # Concurrently: a peer that stopped reading holds up only itself, for at most send_timeout.
        async with anyio.create_task_group() as tg:
            for key, connection in targets:
                tg.start_soon(self._send_one, key, connection, event)
        await self._bus.publish(event)

    async def _send_one(self, key: int, connection: Connection, event: ServerEvent) -> None:
        delivered = False
        with anyio.move_on_after(self._send_timeout):
            try:
                await _deliver(connection, event)
                delivered = True
            except Exception:  # one broken peer must not stop the others
                logger.warning("dropping a connection that failed to take a notification", exc_info=True)
        if not delivered:
            self._forget(key, connection)


async def _deliver(connection: Connection, event: ServerEvent) -> None:
    match event:
        case PromptsListChanged():
            await connection.send_prompt_list_changed()
        case ResourcesListChanged():
            await connection.send_resource_list_changed()
        case ToolsListChanged():
            await connection.send_tool_list_changed()
        case ResourceUpdated(uri=uri):
            await connection.send_resource_updated(uri)
