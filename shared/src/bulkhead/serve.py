"""The one module that starts transports: stdio, or Streamable HTTP + legacy SSE in one process.

stdio mode runs the SDK's session on Bulkhead's wire (`bulkhead.stdio`, `bulkhead.wire`:
non-blocking descriptors on the event loop; POSIX only, so imported only when stdio is served);
plain `tools/call` requests are answered on the wire itself (`bulkhead.direct`) unless the
`direct_calls` setting is off.
HTTP mode serves `/mcp` (Streamable HTTP, both protocol eras), `/sse` + `/messages/` (the legacy
HTTP+SSE transport) and `GET /healthz`, behind bearer-token auth and Host/Origin validation. We
own the uvicorn instance so shutdown is prompt: on SIGINT/SIGTERM open `subscriptions/listen`
streams are closed first and connections get a short grace period.
"""

import asyncio
import contextlib
import gc
import importlib.util
import logging
import signal
import socket
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any

import anyio
from mcp.server.mcpserver import MCPServer
from mcp.server.subscriptions import ListenHandler
from mcp.server.transport_security import TransportSecuritySettings
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bulkhead.audit import AuditLog
from bulkhead.auth import BearerTokenMiddleware
from bulkhead.direct import DirectCalls
from bulkhead.settings import ServerSettings

if TYPE_CHECKING:
    import uvicorn

__all__ = ["build_http_app", "serve", "serve_stdio", "transport_security"]

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


MAX_REQUEST_HEAD_BYTES = 256 * 1024
"""Largest request line plus headers the HTTP transports accept."""


async def _healthz(_request: Request) -> Response:
    return JSONResponse({"status": "ok"})


class _OneResponsePerSseStream:
    """Ends a legacy SSE stream properly instead of starting a second response on it.

    The SDK's /sse endpoint returns an empty `Response()` once its event stream ends. When the
    server stops first, that second `http.response.start` makes uvicorn log a traceback and cut the
    connection mid-chunk; here it is dropped, and its empty final body ends the stream cleanly.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != "/sse":
            await self.app(scope, receive, send)
            return
        started = finished = False

        async def send_once(message: Message) -> None:
            nonlocal started, finished
            if message["type"] == "http.response.start":
                if started:
                    return
                started = True
            elif message["type"] == "http.response.body":
                if finished:
                    return
                finished = not message.get("more_body", False)
            await send(message)

        await self.app(scope, receive, send_once)


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
    return BearerTokenMiddleware(
        _OneResponsePerSseStream(app),
        settings.token_table(),
        realm=f"bulkhead-{settings.server_name}",
        allow_anonymous=settings.is_loopback or settings.allow_unauthenticated,
    )


def _close_listen_streams(server: MCPServer[Any]) -> None:
    entry = server._lowlevel_server.get_request_handler("subscriptions/listen")  # pyright: ignore[reportPrivateUsage] -- the SDK keeps no other handle on it (MCP-SDK-NOTES 15)
    if entry is not None and isinstance(entry.handler, ListenHandler):
        entry.handler.close()


async def serve_stdio(server: MCPServer[Any], *, direct_calls: bool = False) -> None:
    """Serve `server` over this process's stdin and stdout until the client goes or a signal arrives.

    The wire is Bulkhead's (`bulkhead.stdio` claims fd 0 and fd 1 and diverts stray prints to
    stderr; `bulkhead.wire` drives them on the event loop); the session on it is the SDK's own,
    in both protocol eras.
    """
    from bulkhead.stdio import stdio_wire  # noqa: PLC0415 -- POSIX only (fcntl): HTTP mode runs anywhere

    lowlevel = server._lowlevel_server  # pyright: ignore[reportPrivateUsage] -- run_stdio_async() takes no streams
    async with anyio.create_task_group() as tg:

        async def stop_on_signal() -> None:
            with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                async for _ in signals:
                    tg.cancel_scope.cancel()

        tg.start_soon(stop_on_signal)
        tap = DirectCalls(server) if direct_calls else None
        async with stdio_wire(tap) as (read_stream, write_stream):
            try:
                await lowlevel.run(read_stream, write_stream, lowlevel.create_initialization_options())
            finally:
                if tap is not None:
                    with anyio.CancelScope(shield=True):
                        await tap.close()
        tg.cancel_scope.cancel()


def _uvicorn_server(server: MCPServer[Any], settings: ServerSettings) -> "uvicorn.Server":
    """A uvicorn server for `server` that closes listen streams before draining connections.

    uvicorn is imported here, not at the top: stdio servers never pay for it.
    """
    import uvicorn  # noqa: PLC0415 -- about 150 ms that stdio mode does not need

    class _Uvicorn(uvicorn.Server):
        def handle_exit(self, sig: int, frame: Any) -> None:
            # Unlike uvicorn's own handler this does not re-raise the signal after a graceful
            # stop, so the process exits 0.
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
            _close_listen_streams(server)
            await super().shutdown(sockets)

    config = uvicorn.Config(
        build_http_app(server, settings),
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
        server_header=False,
        # h11 only enforces its header limit while a request's head is incomplete, so with the
        # default (16 KiB) a large head was refused or accepted by how the bytes happened to be
        # split across reads. Above the transport's largest read (256 KiB) a head can never
        # arrive whole in one read, so the outcome no longer depends on timing.
        h11_max_incomplete_event_size=MAX_REQUEST_HEAD_BYTES,
    )
    return _Uvicorn(config)


async def _serve_http(server: MCPServer[Any], settings: ServerSettings) -> None:
    await _uvicorn_server(server, settings).serve()


async def _run(
    server: MCPServer[Any], settings: ServerSettings, resources: AbstractAsyncContextManager[Any] | None
) -> None:
    loop = type(asyncio.get_running_loop())
    logger.debug("event loop: %s.%s", loop.__module__, loop.__qualname__)
    try:
        async with resources if resources is not None else contextlib.nullcontext():
            if settings.transport == "stdio":
                await serve_stdio(server, direct_calls=settings.direct_calls)
            else:
                await _serve_http(server, settings)
    finally:
        audit = getattr(server, "audit", None)
        if isinstance(audit, AuditLog):
            audit.flush()


def _use_uvloop(settings: ServerSettings) -> bool:
    """Whether to run on uvloop: asked for, or `auto` and importable (it is not on Windows)."""
    if settings.event_loop == "asyncio":
        return False
    if settings.event_loop == "uvloop":
        return True
    return importlib.util.find_spec("uvloop") is not None


_YOUNG_GC_THRESHOLD = 5_000
"""Container objects allocated (net of those freed) before a young collection; CPython's is 700."""


def _settle_heap() -> None:
    """Take the start-up heap out of the garbage collector's walks, and let a call's objects die young.

    Imports and the built server leave about 100,000 container objects that live as long as the
    process, and CPython's full (generation 2) collection walks every one: about 30 ms. A full
    collection runs whenever the objects that survived younger collections reach a quarter of the
    long-lived ones, and a call that returns 1,000 rows leaves thousands (its rows outlive the
    collections that run while it is answered), so every few such calls one paid that pause.
    `gc.freeze()` moves everything alive now into a permanent generation that collections skip:
    bulkhead-postgres, 1,000 rows over stdio, p99 46 -> 10 ms and server CPU 6.8 -> 4.4 ms per
    call. There is no `gc.collect()` first: it would add 30 ms to the start to free about a
    hundred objects.

    A young collection runs once 700 more containers are alive than at the last one; a 1,000-row
    call has about 4,000 alive at its peak (rows, their arrays, the SDK's copies), so it ran six
    and promoted every row towards the old generations, to be walked again there: 0.29 ms of
    collection per call. Above that peak the rows are freed before any collection runs: 0.02 ms.
    """
    gc.freeze()
    young, *older = gc.get_threshold()
    gc.set_threshold(max(young, _YOUNG_GC_THRESHOLD), *older)


def serve(
    server: MCPServer[Any],
    settings: ServerSettings,
    resources: AbstractAsyncContextManager[Any] | None = None,
) -> None:
    """Run `server` on the transport `settings` names until the client goes or a signal arrives.

    `resources` (a database pool, a file watcher) is entered before the transport starts and
    left after it stops.
    """
    _settle_heap()
    anyio.run(_run, server, settings, resources, backend_options={"use_uvloop": _use_uvloop(settings)})
