"""BearerTokenMiddleware in front of a tiny ASGI app that reports the principal it was given.

The transports are tested end to end in tests/e2e; here only the token rules, over httpx2's ASGI
transport (no sockets, no mocks of our own code).
"""

import hmac
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx2
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Message, Scope

from bulkhead.app import PRINCIPAL_SCOPE_KEY
from bulkhead.auth import BearerTokenMiddleware

pytestmark = pytest.mark.anyio

TOKENS = {
    "first-token-0123456789abcdef": "alice",
    "second-token-0123456789abcdef": "bob",
    "third-token-0123456789abcdefgh": "ci",
}


async def _whoami(request: Request) -> Response:
    return JSONResponse({"principal": request.scope.get(PRINCIPAL_SCOPE_KEY)})


APP = Starlette(routes=[Route("/whoami", _whoami, methods=["GET", "POST"]), Route("/healthz", _whoami)])


@pytest.fixture
async def client() -> AsyncIterator[httpx2.AsyncClient]:
    app = BearerTokenMiddleware(APP, TOKENS, realm="bulkhead-test")
    async with httpx2.AsyncClient(
        transport=httpx2.ASGITransport(app=app), base_url="http://127.0.0.1"
    ) as http:
        yield http


@pytest.mark.parametrize(("token", "name"), list(TOKENS.items()))
async def test_each_token_authenticates_as_its_own_name(
    client: httpx2.AsyncClient, token: str, name: str
) -> None:
    response = await client.get("/whoami", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    assert response.json() == {"principal": name}


@pytest.mark.parametrize("scheme", ["bearer", "BEARER", "Bearer", "bEaReR"])
async def test_the_scheme_is_case_insensitive(client: httpx2.AsyncClient, scheme: str) -> None:
    response = await client.get(
        "/whoami", headers={"Authorization": f"{scheme} first-token-0123456789abcdef"}
    )
    assert response.json() == {"principal": "alice"}


@pytest.mark.parametrize(
    "authorization",
    [
        "Bearer first-token-0123456789abcde",  # one character short
        "Bearer first-token-0123456789abcdefX",  # one character more
        "Bearer FIRST-TOKEN-0123456789ABCDEF",
        "Bearer alice",
        "Bearer first-token-0123456789abcdef second-token-0123456789abcdef",
        "Basic first-token-0123456789abcdef",
        "first-token-0123456789abcdef",
        "Bearer",
        "Token first-token-0123456789abcdef",
    ],
)
async def test_anything_but_an_exact_bearer_token_is_refused(
    client: httpx2.AsyncClient, authorization: str
) -> None:
    response = await client.post("/whoami", headers={"Authorization": authorization})
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith('Bearer realm="bulkhead-test"')
    assert response.json()["error"] == "invalid_token"
    assert "first-token" not in response.text


async def test_a_missing_token_gets_a_plain_challenge_and_a_wrong_one_says_invalid_token(
    client: httpx2.AsyncClient,
) -> None:
    missing = await client.get("/whoami")
    wrong = await client.get("/whoami", headers={"Authorization": "Bearer nope-nope-nope-nope"})
    assert missing.status_code == wrong.status_code == 401
    assert missing.headers["www-authenticate"] == 'Bearer realm="bulkhead-test"'
    assert wrong.headers["www-authenticate"] == 'Bearer realm="bulkhead-test", error="invalid_token"'
    assert missing.headers["content-length"] == str(len(missing.content))


@pytest.mark.parametrize(
    "query", ["access_token=first-token-0123456789abcdef", "token=first-token-0123456789abcdef"]
)
async def test_a_token_in_the_query_string_is_ignored(client: httpx2.AsyncClient, query: str) -> None:
    response = await client.get(f"/whoami?{query}")
    assert response.status_code == 401


async def test_non_ascii_authorization_bytes_are_refused_not_crashed_on(client: httpx2.AsyncClient) -> None:
    response = await client.get(
        "/whoami", headers={b"Authorization": "Bearer caf\xe9-token-0123456789".encode("latin-1")}
    )
    assert response.status_code == 401


async def test_healthz_needs_no_token(client: httpx2.AsyncClient) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"principal": None}


async def test_without_tokens_and_with_anonymous_allowed_every_request_is_anonymous() -> None:
    app = BearerTokenMiddleware(APP, {}, realm="bulkhead-test", allow_anonymous=True)
    async with httpx2.AsyncClient(
        transport=httpx2.ASGITransport(app=app), base_url="http://127.0.0.1"
    ) as http:
        plain = await http.get("/whoami")
        with_junk = await http.get("/whoami", headers={"Authorization": "Bearer whatever"})
    assert plain.json() == with_junk.json() == {"principal": "anonymous"}


async def test_without_tokens_and_without_anonymous_every_request_is_refused() -> None:
    app = BearerTokenMiddleware(APP, {}, realm="bulkhead-test")
    async with httpx2.AsyncClient(
        transport=httpx2.ASGITransport(app=app), base_url="http://127.0.0.1"
    ) as http:
        plain = await http.get("/whoami")
        with_junk = await http.get("/whoami", headers={"Authorization": "Bearer whatever"})
        health = await http.get("/healthz")
    assert plain.status_code == with_junk.status_code == 401
    assert health.status_code == 200


async def test_lifespan_events_pass_through_untouched() -> None:
    seen: list[str] = []

    async def inner(scope: Scope, receive: Callable[[], Any], send: Callable[[Message], Any]) -> None:
        seen.append(scope["type"])

    async def receive() -> Message:
        return {"type": "lifespan.startup"}

    async def send(_message: Message) -> None:
        return None

    await BearerTokenMiddleware(inner, TOKENS, realm="r")({"type": "lifespan"}, receive, send)
    assert seen == ["lifespan"]


@pytest.mark.parametrize(
    "presented",
    ["first-token-0123456789abcdef", "third-token-0123456789abcdefgh", "no-such-token-0123456789"],
    ids=["first matches", "last matches", "none matches"],
)
async def test_every_configured_token_is_compared_in_constant_time_whichever_matches(
    client: httpx2.AsyncClient, monkeypatch: pytest.MonkeyPatch, presented: str
) -> None:
    compared: list[bytes] = []
    real_compare = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        compared.append(b)
        return real_compare(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    await client.get("/whoami", headers={"Authorization": f"Bearer {presented}"})
    # No early exit: the time taken must not tell which token (or how many) matched.
    assert sorted(compared) == sorted(token.encode() for token in TOKENS)


@pytest.mark.parametrize("tokens", [TOKENS, {}])
async def test_websocket_handshakes_are_refused_with_or_without_tokens(tokens: dict[str, str]) -> None:
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "websocket.connect"}

    async def send(message: Message) -> None:
        sent.append(message)

    scope: Scope = {
        "type": "websocket",
        "path": "/mcp",
        "headers": [(b"authorization", b"Bearer first-token-0123456789abcdef")],
    }
    await BearerTokenMiddleware(APP, tokens, realm="bulkhead-test")(scope, receive, send)
    assert sent == [{"type": "websocket.close", "code": 1008}]
