"""Bearer-token authentication for the HTTP transports.

Static tokens, each with a name: the name goes into audit records, the token goes nowhere. Every
presented token is compared with every configured one in constant time. Tokens are read only from
the `Authorization` header; one sent in the query string is ignored (and so fails), because query
strings end up in proxy and access logs.
"""

import hmac
import json

from starlette.types import ASGIApp, Receive, Scope, Send

from bulkhead.app import PRINCIPAL_SCOPE_KEY

__all__ = ["BearerTokenMiddleware"]

_PUBLIC_PATHS = frozenset({"/healthz"})


class BearerTokenMiddleware:
    """ASGI middleware: a valid `Authorization: Bearer <token>` or 401 with `WWW-Authenticate`.

    With no tokens configured (a loopback-only server) every request passes as `anonymous`.
    """

    def __init__(self, app: ASGIApp, tokens: dict[str, str], realm: str) -> None:
        self.app = app
        self._tokens = [(token.encode(), name) for token, name in tokens.items()]
        self._realm = realm

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
        if not self._tokens:
            scope[PRINCIPAL_SCOPE_KEY] = "anonymous"
            await self.app(scope, receive, send)
            return
        header = next((value for key, value in scope["headers"] if key == b"authorization"), None)
        principal = self._authenticate(header)
        if principal is None:
            await self._reject(send, missing=header is None)
            return
        scope[PRINCIPAL_SCOPE_KEY] = principal
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
