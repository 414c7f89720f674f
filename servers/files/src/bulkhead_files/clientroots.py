"""Client roots (`roots/list`, handshake era): they narrow the operator's roots, never widen them."""

import logging
import warnings
from collections import OrderedDict
from typing import Any
from urllib.parse import unquote, urlsplit

import anyio
from mcp.server.context import ServerRequestContext
from mcp.server.mcpserver import Context
from mcp.shared.exceptions import MCPDeprecationWarning
from mcp_types import NotificationParams
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from bulkhead.app import BulkheadServer
from bulkhead.errors import BulkheadError
from bulkhead_files.sandbox import Sandbox

__all__ = ["ClientRoots", "connection_key"]

logger = logging.getLogger("bulkhead_files")

_CACHED_CONNECTIONS = 64


def connection_key(ctx: ServerRequestContext[Any, Any]) -> int:
    """Identity of the connection behind a request (a fresh session object wraps each message)."""
    return id(getattr(ctx.session, "_connection", ctx.session))


def _request_context(ctx: Context[Any, Any] | ServerRequestContext[Any, Any] | None) -> Any:
    if ctx is None:
        return None
    if isinstance(ctx, ServerRequestContext):
        return ctx
    try:
        return ctx.request_context
    except ValueError:
        return None


class ClientRoots:
    """The sandbox each connection may use: ours, narrowed to the roots its client declared."""

    def __init__(self, server: BulkheadServer, sandbox: Sandbox, *, enabled: bool) -> None:
        self.sandbox = sandbox
        self.enabled = enabled
        self._narrowed: OrderedDict[int, Sandbox] = OrderedDict()
        self._scoped: set[int] = set()
        """Live connections whose client declared roots: never told about files outside them."""
        if enabled:
            server._lowlevel_server.add_notification_handler(  # pyright: ignore[reportPrivateUsage] -- MCPServer has no public hook for it
                "notifications/roots/list_changed", NotificationParams, self._changed
            )

    async def _changed(self, ctx: ServerRequestContext[Any, Any], _params: Any) -> None:
        dropped = self._narrowed.pop(connection_key(ctx), None)
        if dropped is not None:
            dropped.close()

    def _drop(self, key: int, narrowed: Sandbox) -> None:
        if self._narrowed.get(key) is narrowed:
            del self._narrowed[key]
            narrowed.close()

    def _forget(self, key: int) -> None:
        self._scoped.discard(key)

    def may_hear(self, key: int, uri: str) -> bool:
        """Whether connection `key` may be told that the file behind `uri` changed.

        Only files inside its client's roots; while its roots changed and were not asked again
        yet (its next request does that), nothing, since the new roots may be narrower.
        """
        narrowed = self._narrowed.get(key)
        if narrowed is None:
            return key not in self._scoped
        try:
            narrowed.locate(unquote(urlsplit(uri).path))
        except BulkheadError:
            return False
        return True

    async def sandbox_for(self, ctx: Context[Any, Any] | ServerRequestContext[Any, Any] | None) -> Sandbox:
        """The sandbox for the connection behind `ctx`."""
        request = _request_context(ctx)
        if not self.enabled or request is None:
            return self.sandbox
        session = request.session
        capabilities = session.client_capabilities
        if capabilities is None or capabilities.roots is None:
            return self.sandbox
        if session.protocol_version in MODERN_PROTOCOL_VERSIONS:
            return self.sandbox
        key = connection_key(request)
        cached = self._narrowed.get(key)
        if cached is not None:
            self._narrowed.move_to_end(key)
            return cached
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", MCPDeprecationWarning)
            try:
                with anyio.fail_after(5):
                    listed = await session.list_roots()
            except Exception as exc:
                logger.info("client roots unavailable (%s); serving the configured roots", type(exc).__name__)
                return self.sandbox
        paths: list[str] = []
        for root in listed.roots:
            parts = urlsplit(str(root.uri))
            if parts.scheme == "file" and parts.netloc in ("", "localhost"):
                paths.append(unquote(parts.path))
        narrowed = await anyio.to_thread.run_sync(self.sandbox.narrowed, paths)
        self._narrowed[key] = narrowed
        connection = getattr(session, "_connection", None)
        exit_stack = getattr(connection, "exit_stack", None)
        if exit_stack is not None:
            # Forgotten with its connection, so a later connection at the same address starts afresh.
            exit_stack.callback(self._drop, key, narrowed)
            if key not in self._scoped:
                self._scoped.add(key)
                exit_stack.callback(self._forget, key)
        if len(self._narrowed) > _CACHED_CONNECTIONS:
            _, oldest = self._narrowed.popitem(last=False)
            oldest.close()
        logger.info("client roots narrow the served roots to %s", [r.path for r in narrowed.roots])
        return narrowed
