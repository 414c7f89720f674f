"""Reusable argument types and tamper-evident pagination cursors.

The JSON schema a tool publishes is a hint to the model, not a guard: these types validate again
inside the server, with messages that say what a valid value looks like.
"""

import base64
import binascii
import hashlib
import hmac
import json
import secrets
from typing import Annotated, Any

from pydantic import AfterValidator, Field

from bulkhead.errors import InvalidArgumentError

__all__ = [
    "Cursor",
    "CursorCodec",
    "Identifier",
    "PageSize",
    "SearchText",
    "ShortText",
]

_CONTROL = {chr(c) for c in range(32)} | {chr(127)}


def _no_control_characters(value: str) -> str:
    if any(ch in _CONTROL for ch in value):
        raise ValueError("must not contain control characters (newlines, tabs, NUL ...)")
    return value


ShortText = Annotated[
    str,
    Field(min_length=1, max_length=200),
    AfterValidator(_no_control_characters),
]
"""A short free-form value (a name, a filter value): 1-200 characters, no control characters."""


Identifier = Annotated[
    str,
    Field(
        min_length=1,
        max_length=254,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._@+\-]*$",
        description="An id, username or email address: letters, digits and . _ @ + -",
    ),
]
"""An identifier as people write them: an id, a username or an email address."""

SearchText = Annotated[
    str,
    Field(max_length=200, description="Text to look for (case-insensitive substring; no wildcards)"),
    AfterValidator(_no_control_characters),
]
"""Free text to search for; wildcard characters are matched literally."""

PageSize = Annotated[int, Field(ge=1, le=100, description="How many items to return (1-100)")]
"""How many items one page holds."""

Cursor = Annotated[
    str | None,
    Field(
        default=None,
        max_length=512,
        description="The next_cursor of a previous page of the same request; omit for the first page",
    ),
]
"""An opaque cursor handed back by a previous page."""


class CursorCodec:
    """Signs and checks opaque pagination cursors.

    A cursor carries a position and is bound to the request it came from (a digest of the
    request's parameters), signed with HMAC-SHA256. An edited, forged or misapplied cursor is
    rejected with a message telling the caller to start again from the first page.
    """

    def __init__(self, key: bytes | None = None) -> None:
        self._key = key if key else secrets.token_bytes(32)

    @staticmethod
    def _scope_digest(scope: Any) -> str:
        encoded = json.dumps(scope, sort_keys=True, separators=(",", ":"), default=str).encode()
        return hashlib.sha256(encoded).hexdigest()[:16]

    def _sign(self, body: bytes) -> str:
        return base64.urlsafe_b64encode(hmac.digest(self._key, body, "sha256")[:18]).decode()

    def encode(self, offset: int, scope: Any) -> str:
        """A cursor for `offset` within the request described by `scope`."""
        body = json.dumps({"o": offset, "s": self._scope_digest(scope)}, separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(body).decode().rstrip("=") + "." + self._sign(body)

    def decode(self, cursor: str | None, scope: Any) -> int:
        """The offset a cursor points at (0 for none).

        Raises:
            InvalidArgumentError: the cursor was not made by this server for `scope`.
        """
        if cursor is None or cursor == "":
            return 0
        invalid = InvalidArgumentError(
            "The cursor is not valid for this request: pass back next_cursor exactly as it was "
            "returned, with the same other arguments, or omit it to start from the first page."
        )
        if not cursor.isascii():
            raise invalid
        payload, _, signature = cursor.partition(".")
        try:
            # Strict: characters outside the alphabet are an edit, not something to skip over.
            body = base64.b64decode(payload + "=" * (-len(payload) % 4), altchars=b"-_", validate=True)
        except (binascii.Error, ValueError):
            raise invalid from None
        if not hmac.compare_digest(self._sign(body), signature):
            raise invalid
        data = json.loads(body)
        if data.get("s") != self._scope_digest(scope):
            raise invalid
        offset = data.get("o")
        if not isinstance(offset, int) or offset < 0:
            raise invalid
        return offset
