"""Bearer-token authentication for the HTTP transports.

Static tokens, each with a name: the name goes into audit records, the token goes nowhere. Every
presented token is compared with every configured one in constant time. Tokens are read only from
the `Authorization` header; one sent in the query string is ignored (and so fails), because query
strings end up in proxy and access logs.
"""

import hmac
import json

from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken
from starlette.types import ASGIApp, Receive, Scope, Send

from bulkhead.app import PRINCIPAL_SCOPE_KEY

__all__ = ["BearerTokenMiddleware"]

_PUBLIC_PATHS = frozenset({"/healthz"})


class BearerTokenMiddleware:
    """ASGI middleware: a valid `Authorization: Bearer <token>` or 401 with `WWW-Authenticate`.

    With no tokens and `allow_anonymous` (a loopback-only server, or an explicit
    --allow-unauthenticated) every request passes as `anonymous`; with no tokens otherwise, every
    request is refused. An authenticated request carries its token's name as `scope["user"]`, which
    is what the SDK binds sessions to.
    """

    def __init__(
        self, app: ASGIApp, tokens: dict[str, str], realm: str, *, allow_anonymous: bool = False
    ) -> None:
        self.app = app
        self._tokens = [(token.encode(), name) for token, name in tokens.items()]
        self._realm = realm
        # Fail closed: no tokens means "everyone" only when the caller says so explicitly.
        self._anonymous = allow_anonymous and not self._tokens
        self._users = {
            name: AuthenticatedUser(AccessToken(token="", client_id=name, scopes=[]))
            for name in tokens.values()
        }

    def _authenticate(self, header: bytes | None) -> str | None:
        if header is None:
            return None
        scheme, _, presented = header.partition(b" ")
        if scheme.lower() != b"bearer" or not presented.strip():
            return None
        presented = presented.strip()
        found: str | None = None
        for token, name in self._tokens:
            # No early exit: the time taken does not depend on which token matched.
            if hmac.compare_digest(presented, token):
                found = name
        return found

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass authenticated requests on with their principal; answer the rest with 401."""
        if scope["type"] == "websocket":
            # No Bulkhead transport uses websockets: refuse the handshake rather than pass it on.
            await send({"type": "websocket.close", "code": 1008})
            return
        if scope["type"] != "http" or scope["path"] in _PUBLIC_PATHS:
            await self.app(scope, receive, send)
            return
        if self._anonymous:
            scope[PRINCIPAL_SCOPE_KEY] = "anonymous"
            await self.app(scope, receive, send)
            return
        header = next((value for key, value in scope["headers"] if key == b"authorization"), None)
        principal = self._authenticate(header)
        if principal is None:
            await self._reject(send, missing=header is None)
            return
        scope[PRINCIPAL_SCOPE_KEY] = principal
        # The SDK binds a session to scope["user"]: another token cannot use or end it.
        scope["user"] = self._users[principal]
        await self.app(scope, receive, send)

    async def _reject(self, send: Send, *, missing: bool) -> None:
        if missing:
            challenge = f'Bearer realm="{self._realm}"'
            description = "This server requires a bearer token in the Authorization header."
        else:
            challenge = f'Bearer realm="{self._realm}", error="invalid_token"'
            description = "The bearer token is not valid for this server."
        body = json.dumps({"error": "invalid_token", "error_description": description}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 401,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"www-authenticate", challenge.encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
