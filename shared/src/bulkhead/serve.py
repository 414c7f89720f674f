"""The one module that starts transports: stdio, or Streamable HTTP + legacy SSE in one process.

HTTP mode serves `/mcp` (Streamable HTTP, both protocol eras), `/sse` + `/messages/` (the legacy
HTTP+SSE transport) and `GET /healthz`, behind bearer-token auth and Host/Origin validation. We
own the uvicorn instance so shutdown is prompt: on SIGINT/SIGTERM open `subscriptions/listen`
streams are closed first and connections get a short grace period.
"""

import contextlib
import logging
import os
import signal
import socket
import stat
from collections.abc import Generator
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any

import anyio
from anyio.abc import ObjectSendStream
from mcp.server.mcpserver import MCPServer
from mcp.server.stdio import stdio_server
from mcp.server.subscriptions import ListenHandler
from mcp.server.transport_security import TransportSecuritySettings
from mcp.shared.message import SessionMessage
from mcp_types import INVALID_REQUEST, PARSE_ERROR, ErrorData, JSONRPCError
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bulkhead.auth import BearerTokenMiddleware
from bulkhead.settings import ServerSettings

if TYPE_CHECKING:
    import uvicorn

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


MAX_LINE_BYTES = 4 * 1024 * 1024
"""The longest stdin line read (the same cap the SDK puts on an HTTP request body)."""

OVERSIZED_LINE = "\x00bulkhead: oversized line"
"""What the reader hands on in place of a line over MAX_LINE_BYTES: not JSON, so it is answered."""


class _StdinLines:
    """Lines of a pipe, socket or terminal on fd 0, read without a worker thread.

    The SDK reads stdin with a blocking `readline` in a worker thread, which a cancel scope cannot
    interrupt: SIGTERM would wait until the client wrote another line. Waiting on readiness and
    reading what is there is cancellable. Undecodable bytes become U+FFFD, as in the SDK.
    """

    def __init__(self, fd: int, max_line: int = MAX_LINE_BYTES) -> None:
        self._fd = fd
        self._max_line = max_line
        self._buffer = bytearray()
        self._eof = False
        self._skipping = False  # inside a line that was too long, until its newline

    def __aiter__(self) -> "_StdinLines":
        return self

    async def __anext__(self) -> str:
        scanned = 0
        while (end := self._buffer.find(b"\n", scanned)) < 0 and not self._eof:
            scanned = len(self._buffer)
            if scanned > self._max_line:
                # Bounded memory: drop the line's bytes as they come and answer it once it ends.
                self._skipping, scanned = True, 0
                self._buffer.clear()
            await anyio.wait_readable(self._fd)
            try:
                chunk = os.read(self._fd, 1 << 16)
            except BlockingIOError:
                continue
            self._eof = not chunk
            self._buffer += chunk
        if end < 0:
            if not self._buffer and not self._skipping:
                raise StopAsyncIteration
            end = len(self._buffer)
        line = bytes(self._buffer[:end])
        del self._buffer[: end + 1]
        if self._skipping or len(line) > self._max_line:
            self._skipping = False
            return OVERSIZED_LINE
        return line.decode("utf-8", "replace")


@contextlib.contextmanager
def _stdin_lines() -> Generator[_StdinLines | None]:
    """A cancellable reader of fd 0, or None (the SDK's reader) for files and /dev/null."""
    try:
        mode = os.fstat(0).st_mode
    except OSError:
        yield None
        return
    if not (stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode) or os.isatty(0)):
        yield None  # a regular file never blocks, and epoll refuses it
        return
    # As the SDK does: the wire moves to a private descriptor and fd 0 reads /dev/null, so nothing
    # else in the process (or a child) can take protocol bytes.
    wire = os.dup(0)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    was_blocking = os.get_blocking(wire)
    os.set_blocking(wire, False)
    try:
        yield _StdinLines(wire)
    finally:
        with contextlib.suppress(OSError):
            os.set_blocking(wire, was_blocking)
            os.dup2(wire, 0)
        os.close(wire)


def _garbage_error(exc: Exception) -> SessionMessage:
    """The JSON-RPC error for a stdin line that is not a JSON-RPC message (its id is unknowable)."""
    errors = exc.errors() if isinstance(exc, ValidationError) else []
    if any(error.get("input") == OVERSIZED_LINE for error in errors):
        data = ErrorData(
            code=INVALID_REQUEST,
            message=f"Invalid Request: the line is longer than {MAX_LINE_BYTES} bytes and was discarded",
        )
    elif any(error["type"] == "json_invalid" for error in errors):
        data = ErrorData(code=PARSE_ERROR, message="Parse error: the line is not valid JSON")
    else:
        data = ErrorData(
            code=INVALID_REQUEST,
            message="Invalid Request: the line is not a JSON-RPC 2.0 request, notification or response",
        )
    return SessionMessage(JSONRPCError(jsonrpc="2.0", id=None, error=data))


async def _serve_stdio(server: MCPServer[Any]) -> None:
    lowlevel = server._lowlevel_server  # pyright: ignore[reportPrivateUsage] -- run_stdio_async() takes no streams we could filter
    with _stdin_lines() as stdin:
        async with anyio.create_task_group() as tg:

            async def stop_on_signal() -> None:
                with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                    async for _ in signals:
                        tg.cancel_scope.cancel()

            tg.start_soon(stop_on_signal)
            # The SDK drops lines it cannot parse without a word, leaving the client waiting; we
            # answer each with the JSON-RPC error the spec asks for and pass the rest through.
            async with stdio_server(stdin) as (read_stream, write_stream):  # pyright: ignore[reportArgumentType] -- only iterated line by line
                forward, inbox = anyio.create_memory_object_stream[SessionMessage | Exception](0)

                async def answer_garbage(forward: ObjectSendStream[SessionMessage | Exception]) -> None:
                    async with forward:
                        async for item in read_stream:
                            if isinstance(item, Exception):
                                logger.warning("answered a stdin line that is not a JSON-RPC message")
                                await write_stream.send(_garbage_error(item))
                            else:
                                await forward.send(item)

                tg.start_soon(answer_garbage, forward)
                await lowlevel.run(inbox, write_stream, lowlevel.create_initialization_options())
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
    )
    return _Uvicorn(config)


async def _serve_http(server: MCPServer[Any], settings: ServerSettings) -> None:
    await _uvicorn_server(server, settings).serve()


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
