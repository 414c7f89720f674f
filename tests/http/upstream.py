"""A real upstream for the tests: the demo tracker plus purpose-built misbehaving endpoints.

Served by uvicorn on 127.0.0.1 (TCP_NODELAY) inside the test's event loop. `/api/...` is the demo
tracker; `/bad/...` misbehaves on purpose: slow, endless, huge, wrong content types, invalid
JSON, 429 with Retry-After, 5xx, redirects, and an echo of what arrived. Every request is counted
by path, so a test can prove that something was (or was never) sent.
"""

import json
import socket
from collections import Counter
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import anyio
import anyio.lowlevel
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from bulkhead_http.demo_api import bind_socket, create_app, serve_app

SECRET_ECHO = "/bad/echo"


@dataclass
class Upstream:
    """A running upstream: where it listens and what reached it."""

    port: int
    hits: Counter[str] = field(default_factory=Counter[str])
    requests: list[dict[str, object]] = field(default_factory=list[dict[str, object]])

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def _bad_routes(state: Upstream) -> list[Route]:
    never = anyio.Event()

    async def slow(_request: Request) -> Response:
        await never.wait()
        return PlainTextResponse("unreachable")

    async def endless(_request: Request) -> Response:
        async def chunks() -> AsyncIterator[bytes]:
            yield b'{"items": ['
            while True:
                # A checkpoint: once the client has gone uvicorn's send() returns at once, and a
                # loop without one would starve the event loop.
                await anyio.lowlevel.checkpoint()
                yield b'"' + b"x" * 65536 + b'",'

        return StreamingResponse(chunks(), media_type="application/json")

    async def huge(_request: Request) -> Response:
        return JSONResponse({"blob": "y" * 5_000_000})

    async def html(_request: Request) -> Response:
        return Response("<html><body>Login required</body></html>", media_type="text/html")

    async def bad_json(_request: Request) -> Response:
        return Response('{"truncated": [1, 2', media_type="application/json")

    async def big_text(_request: Request) -> Response:
        return PlainTextResponse("z" * 100_000)

    async def binary(_request: Request) -> Response:
        return Response(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4, media_type="image/png")

    async def flaky(request: Request) -> Response:
        failures = int(request.query_params.get("failures", "2"))
        if state.hits[request.url.path] <= failures:
            return JSONResponse({"error": "try again"}, status_code=503)
        return JSONResponse({"ok": True, "attempt": state.hits[request.url.path]})

    async def limited(request: Request) -> Response:
        wait = request.query_params.get("wait", "0")
        if state.hits[request.url.path] == 1 or wait != "0":
            return JSONResponse({"error": "slow down"}, status_code=429, headers={"Retry-After": wait})
        return JSONResponse({"ok": True})

    async def error500(_request: Request) -> Response:
        return PlainTextResponse("E" * 50_000, status_code=500)

    async def not_found(_request: Request) -> Response:
        return JSONResponse({"error": "no such thing"}, status_code=404)

    async def redirect(request: Request) -> Response:
        return RedirectResponse(
            request.query_params["to"], status_code=int(request.query_params.get("code", "302"))
        )

    async def echo(request: Request) -> Response:
        body = (await request.body()).decode("utf-8", "replace")
        return JSONResponse(
            {
                "path": request.url.path,
                "raw_path": request.scope.get("raw_path", b"").decode("latin-1"),
                "query": request.url.query,
                "query_items": [[k, v] for k, v in request.query_params.multi_items()],
                "headers": {k: v for k, v in request.headers.items()},
                "body": body,
            }
        )

    async def reflect(request: Request) -> Response:
        # Like APIs that quote the credential they rejected, after `pad` filler characters.
        credential = request.headers.get("authorization") or request.query_params.get("api_key", "")
        text = "x" * int(request.query_params.get("pad", "0")) + f"rejected: {credential} (check it)"
        return PlainTextResponse(text, status_code=int(request.query_params.get("status", "401")))

    async def echo_close(request: Request) -> Response:
        response = await echo(request)
        response.headers["Connection"] = "close"
        return response

    return [
        Route("/slow", slow),
        Route("/endless", endless),
        Route("/huge", huge),
        Route("/html", html),
        Route("/badjson", bad_json),
        Route("/bigtext", big_text),
        Route("/binary", binary),
        Route("/flaky", flaky, methods=["GET", "POST"]),
        Route("/limited", limited),
        Route("/error500", error500),
        Route("/notfound", not_found),
        Route("/redirect", redirect, methods=["GET", "POST"]),
        Route("/echo-close", echo_close),
        Route("/reflect", reflect),
        Route("/echo", echo, methods=["GET", "POST", "PUT", "DELETE", "PATCH"]),
        Route("/echo/{rest:path}", echo, methods=["GET", "POST"]),
    ]


class _Counting:
    def __init__(self, app: ASGIApp, state: Upstream) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            self.state.hits[scope["path"]] += 1
            headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
            self.state.requests.append(
                {
                    "path": scope["path"],
                    "raw_path": scope.get("raw_path", b"").decode("latin-1"),
                    "query": scope["query_string"].decode(),
                    "headers": headers,
                }
            )
        await self.app(scope, receive, send)


@asynccontextmanager
async def running_upstream(ssl_files: tuple[str, str] | None = None) -> AsyncGenerator[Upstream]:
    """Serve the demo tracker and the misbehaving endpoints until the block ends."""
    sock = bind_socket()
    state = Upstream(port=sock.getsockname()[1])
    app = _Counting(
        Starlette(routes=[Mount("/bad", routes=_bad_routes(state)), Mount("/", app=create_app())]), state
    )
    async with anyio.create_task_group() as tg:
        ready = anyio.Event()
        if ssl_files is None:
            tg.start_soon(serve_app, app, sock, ready)
        else:
            tg.start_soon(_serve_tls, app, sock, ready, ssl_files)
        with anyio.fail_after(10):
            await ready.wait()
        try:
            yield state
        finally:
            tg.cancel_scope.cancel()


async def _serve_tls(app: ASGIApp, sock: object, ready: anyio.Event, ssl_files: tuple[str, str]) -> None:
    assert isinstance(sock, socket.socket)

    class _Server(uvicorn.Server):
        def install_signal_handlers(self) -> None:
            return

        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets)
            ready.set()

    config = uvicorn.Config(
        app,
        log_config=None,
        access_log=False,
        lifespan="off",
        ssl_certfile=ssl_files[0],
        ssl_keyfile=ssl_files[1],
    )
    try:
        await _Server(config).serve(sockets=[sock])
    finally:
        sock.close()


def dumps(value: object) -> str:
    return json.dumps(value)
