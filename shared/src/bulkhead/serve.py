"""The one module that starts transports: stdio, or Streamable HTTP + legacy SSE in one process.

HTTP mode serves `/mcp` (Streamable HTTP, both protocol eras), `/sse` + `/messages/` (the legacy
HTTP+SSE transport) and `GET /healthz`, behind bearer-token auth and Host/Origin validation. We
own the uvicorn instance so shutdown is prompt: on SIGINT/SIGTERM open `subscriptions/listen`
streams are closed first and connections get a short grace period.
"""

import contextlib
import logging
import signal
import socket
from contextlib import AbstractAsyncContextManager
from typing import Any

import anyio
import uvicorn
from mcp.server.mcpserver import MCPServer
from mcp.server.subscriptions import ListenHandler
from mcp.server.transport_security import TransportSecuritySettings
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp

from bulkhead.auth import BearerTokenMiddleware
from bulkhead.settings import ServerSettings

__all__ = ["build_http_app", "serve", "transport_security"]

logger = logging.getLogger("bulkhead.serve")

_LOOPBACK_HOSTS = ["127.0.0.1", "localhost", "[::1]"]
GRACEFUL_SHUTDOWN_SECONDS = 2


def transport_security(settings: ServerSettings) -> TransportSecuritySettings:
    """Host/Origin validation, always on: loopback names plus the configured extras."""
    hosts = [f"{name}:*" for name in _LOOPBACK_HOSTS] + list(_LOOPBACK_HOSTS)
    for entry in settings.allowed_hosts:
        hosts.append(entry)
        has_port = "]:" in entry if entry.startswith("[") else ":" in entry
        if not has_port:
            hosts.append(f"{entry}:*")
    origins = [f"http://{name}:*" for name in _LOOPBACK_HOSTS] + [
        f"http://{name}" for name in _LOOPBACK_HOSTS
    ]
    origins += settings.allowed_origins
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True, allowed_hosts=hosts, allowed_origins=origins
    )


async def _healthz(_request: Request) -> Response:
    return JSONResponse({"status": "ok"})


def build_http_app(server: MCPServer[Any], settings: ServerSettings) -> ASGIApp:
    """One ASGI app: Streamable HTTP at /mcp, legacy SSE at /sse, /healthz, all behind auth."""
    security = transport_security(settings)
    streamable = server.streamable_http_app(
        streamable_http_path="/mcp",
        stateless_http=settings.stateless_http,
        transport_security=security,
        host=settings.host,
    )
    legacy = server.sse_app(
        sse_path="/sse", message_path="/messages/", transport_security=security, host=settings.host
    )
    routes: list[BaseRoute] = [Route("/healthz", _healthz, methods=["GET"])]
    routes += streamable.routes
    routes += legacy.routes
    app = Starlette(routes=routes, lifespan=lambda _app: server.session_manager.run())
    return BearerTokenMiddleware(app, settings.token_table(), realm=f"bulkhead-{settings.server_name}")


def _close_listen_streams(server: MCPServer[Any]) -> None:
    entry = server._lowlevel_server.get_request_handler("subscriptions/listen")  # pyright: ignore[reportPrivateUsage] -- the SDK keeps no other handle on it (MCP-SDK-NOTES 15)
    if entry is not None and isinstance(entry.handler, ListenHandler):
        entry.handler.close()


class _Uvicorn(uvicorn.Server):
    """uvicorn that closes listen streams before draining, and does not re-raise the signal."""

    def __init__(self, config: uvicorn.Config, server: MCPServer[Any]) -> None:
        super().__init__(config)
        self._mcp = server

    def handle_exit(self, sig: int, frame: Any) -> None:
        if self.should_exit and sig == signal.SIGINT:
            self.force_exit = True
        self.should_exit = True

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        for listener in self.servers:
            for sock in listener.sockets:
                host, port = sock.getsockname()[:2]
                logger.info("listening on http://%s:%s/mcp", host, port, extra={"port": port})

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        _close_listen_streams(self._mcp)
        await super().shutdown(sockets)


async def _serve_stdio(server: MCPServer[Any]) -> None:
    async with anyio.create_task_group() as tg:

        async def stop_on_signal() -> None:
            with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                async for _ in signals:
                    tg.cancel_scope.cancel()

        tg.start_soon(stop_on_signal)
        await server.run_stdio_async()
        tg.cancel_scope.cancel()


async def _serve_http(server: MCPServer[Any], settings: ServerSettings) -> None:
    config = uvicorn.Config(
        build_http_app(server, settings),
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
        server_header=False,
    )
    await _Uvicorn(config, server).serve()


async def _run(
    server: MCPServer[Any], settings: ServerSettings, resources: AbstractAsyncContextManager[Any] | None
) -> None:
    async with resources if resources is not None else contextlib.nullcontext():
        if settings.transport == "stdio":
            await _serve_stdio(server)
        else:
            await _serve_http(server, settings)


def serve(
    server: MCPServer[Any],
    settings: ServerSettings,
    resources: AbstractAsyncContextManager[Any] | None = None,
) -> None:
    """Run `server` on the transport `settings` names until the client goes or a signal arrives.

    `resources` (a database pool, a file watcher) is entered before the transport starts and
    left after it stops.
    """
    anyio.run(_run, server, settings, resources)
