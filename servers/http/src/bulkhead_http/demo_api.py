"""The demo upstream: a small ticket tracker of our own, with an OpenAPI 3.1 document.

It serves `/api/tickets` (paginated list with filters), `/api/tickets/search`,
`/api/tickets/{ticket_id}`, `POST /api/tickets/{ticket_id}/comments` and `/api/stats`, which
allows two calls a second and answers the rest with 429 and `Retry-After`. Its data is generated
(the same every start) and kept in memory. bulkhead-http starts it in-process when it has no
configuration; `python -m bulkhead_http.demo_api --port N` serves it alone (for a configuration
of your own, or the benchmark).
"""

import argparse
import base64
import contextlib
import socket
import sys
import time
from collections import deque
from collections.abc import Sequence
from typing import Any

import anyio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

__all__ = ["STATS_PER_SECOND", "TICKET_COUNT", "bind_socket", "create_app", "main", "serve_app"]

TICKET_COUNT = 120
STATS_PER_SECOND = 2
MAX_PAGE = 50
MAX_COMMENTS = 200

_TITLES = (
    "Login page times out behind the VPN",
    "Export to CSV drops the last row",
    "Dark mode colours unreadable in charts",
    "Password reset mail lands in spam",
    "Search ignores accented characters",
    "Invoice PDF shows the wrong tax rate",
    "Mobile app crashes when offline",
    "Slow dashboard for large teams",
    "Webhook retries flood the audit log",
    "Time zone shown as UTC in reports",
)
_PEOPLE = ("ana", "bo", "chen", "dara", "eli", "fatou", "gus")
_STATUSES = ("open", "in_progress", "closed")
_PRIORITIES = ("low", "medium", "high", "urgent")
_TAGS = ("billing", "auth", "ui", "mobile", "reports", "performance", "email")


def _tickets() -> dict[str, dict[str, Any]]:
    tickets: dict[str, dict[str, Any]] = {}
    for n in range(TICKET_COUNT):
        ticket_id = f"T-{1001 + n}"
        title = _TITLES[n % len(_TITLES)] + ("" if n < len(_TITLES) else f" (case {n // len(_TITLES) + 1})")
        tickets[ticket_id] = {
            "id": ticket_id,
            "title": title,
            "status": _STATUSES[(n * 7) % 3],
            "priority": _PRIORITIES[(n * 5) % 4],
            "assignee": _PEOPLE[n % len(_PEOPLE)],
            "tags": [_TAGS[n % len(_TAGS)], _TAGS[(n * 3 + 1) % len(_TAGS)]],
            "created_at": f"2026-{1 + n % 11:02d}-{1 + n % 27:02d}T09:{n % 60:02d}:00Z",
            "description": f"Reported by {_PEOPLE[(n + 3) % len(_PEOPLE)]}. {title}. Logs attached.",
            "comments": [
                {
                    "id": 1,
                    "author": _PEOPLE[(n + 1) % len(_PEOPLE)],
                    "body": "Reproduced on staging.",
                    "created_at": "2026-11-01T10:00:00Z",
                }
            ],
        }
    return tickets


def _summary(ticket: dict[str, Any]) -> dict[str, Any]:
    return {key: ticket[key] for key in ("id", "title", "status", "priority", "assignee")}


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def _cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(f"o{offset}".encode()).decode().rstrip("=")


def _offset(cursor: str) -> int | None:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except ValueError:
        return None
    return int(text[1:]) if text.startswith("o") and text[1:].isdigit() else None


def _limit(request: Request, default: int = 20) -> int | None:
    raw = request.query_params.get("limit", str(default))
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_PAGE:
        return None
    return int(raw)


def create_app() -> Starlette:
    """The tracker as an ASGI app (fresh data for each app)."""
    tickets = _tickets()
    stats_calls: deque[float] = deque()

    async def list_tickets(request: Request) -> Response:
        limit = _limit(request)
        if limit is None:
            return _error(400, f"limit must be an integer from 1 to {MAX_PAGE}")
        offset = _offset(request.query_params.get("cursor", "")) if request.query_params.get("cursor") else 0
        if offset is None:
            return _error(400, "cursor is not one this API handed out")
        status = request.query_params.get("status")
        assignee = request.query_params.get("assignee")
        if status is not None and status not in _STATUSES:
            return _error(400, f"status must be one of {', '.join(_STATUSES)}")
        rows = [
            t
            for t in tickets.values()
            if (status is None or t["status"] == status) and (assignee is None or t["assignee"] == assignee)
        ]
        page = rows[offset : offset + limit]
        more = offset + limit < len(rows)
        return JSONResponse(
            {
                "tickets": [_summary(t) for t in page],
                "total": len(rows),
                "next_cursor": _cursor(offset + limit) if more else None,
            }
        )

    async def search_tickets(request: Request) -> Response:
        query = request.query_params.get("q", "").strip().lower()
        limit = _limit(request)
        if not query or limit is None:
            return _error(400, f"q is required and limit must be an integer from 1 to {MAX_PAGE}")
        hits = [
            t for t in tickets.values() if query in t["title"].lower() or query in t["description"].lower()
        ]
        return JSONResponse({"tickets": [_summary(t) for t in hits[:limit]], "total": len(hits)})

    async def get_ticket(request: Request) -> Response:
        ticket = tickets.get(request.path_params["ticket_id"])
        if ticket is None:
            return _error(404, f"no ticket {request.path_params['ticket_id'][:40]}")
        return JSONResponse(ticket)

    async def add_comment(request: Request) -> Response:
        ticket = tickets.get(request.path_params["ticket_id"])
        if ticket is None:
            return _error(404, f"no ticket {request.path_params['ticket_id'][:40]}")
        try:
            data = await request.json()
        except ValueError:
            return _error(400, "the body must be JSON")
        if not isinstance(data, dict) or not isinstance(data.get("body"), str) or not data["body"].strip():  # pyright: ignore[reportUnknownMemberType] -- JSON
            return _error(422, "body (a non-empty string) is required")
        text = str(data["body"])  # pyright: ignore[reportUnknownArgumentType] -- JSON
        if len(text) > 2000 or len(ticket["comments"]) >= MAX_COMMENTS:
            return _error(422, "the comment is too long or the ticket has too many comments")
        author = data.get("author")  # pyright: ignore[reportUnknownMemberType, reportUnknownVariableType] -- JSON
        comment: dict[str, Any] = {
            "id": len(ticket["comments"]) + 1,
            "author": author if isinstance(author, str) and author else "assistant",  # pyright: ignore[reportUnknownArgumentType] -- JSON
            "body": text,
            "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        ticket["comments"].append(comment)
        return JSONResponse(comment, status_code=201)

    async def stats(_request: Request) -> Response:
        now = time.monotonic()
        while stats_calls and now - stats_calls[0] >= 1.0:
            stats_calls.popleft()
        if len(stats_calls) >= STATS_PER_SECOND:
            return _error(
                429, f"at most {STATS_PER_SECOND} stats calls a second", headers={"Retry-After": "1"}
            )
        stats_calls.append(now)
        counts: dict[str, dict[str, int]] = {"by_status": {}, "by_priority": {}}
        for t in tickets.values():
            counts["by_status"][t["status"]] = counts["by_status"].get(t["status"], 0) + 1
            counts["by_priority"][t["priority"]] = counts["by_priority"].get(t["priority"], 0) + 1
        return JSONResponse({"total": len(tickets), **counts})

    return Starlette(
        routes=[
            Route("/api/tickets", list_tickets, methods=["GET"]),
            Route("/api/tickets/search", search_tickets, methods=["GET"]),
            Route("/api/tickets/{ticket_id}", get_ticket, methods=["GET"]),
            Route("/api/tickets/{ticket_id}/comments", add_comment, methods=["POST"]),
            Route("/api/stats", stats, methods=["GET"]),
        ]
    )


def bind_socket(host: str = "127.0.0.1", port: int = 0) -> socket.socket:
    """A listening TCP socket with TCP_NODELAY, so pooled clients never wait on delayed ACKs."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((host, port))
    sock.listen(128)
    sock.setblocking(False)
    return sock


async def serve_app(app: Any, sock: socket.socket, ready: anyio.Event | None = None) -> None:
    """Serve `app` on `sock` with uvicorn until cancelled (no access log, no signal handlers)."""
    import uvicorn  # noqa: PLC0415 -- only when serving

    class _Quiet(uvicorn.Server):
        def install_signal_handlers(self) -> None:
            return  # the embedding process owns its signals

        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets)
            if ready is not None:
                ready.set()

    config = uvicorn.Config(app, log_config=None, access_log=False, lifespan="off", server_header=False)
    server = _Quiet(config)
    try:
        await server.serve(sockets=[sock])
    finally:
        server.should_exit = True
        sock.close()


def main(argv: Sequence[str] | None = None) -> None:
    """Serve the tracker alone on 127.0.0.1; prints `port N` on stdout once it listens."""
    parser = argparse.ArgumentParser(prog="python -m bulkhead_http.demo_api", description=__doc__)
    parser.add_argument("--port", type=int, default=8180)
    args = parser.parse_args(argv)
    sock = bind_socket(port=args.port)
    sys.stdout.write(f"port {sock.getsockname()[1]}\n")
    sys.stdout.flush()

    async def run() -> None:
        await serve_app(create_app(), sock)

    with contextlib.suppress(KeyboardInterrupt):
        anyio.run(run)


if __name__ == "__main__":
    main()
