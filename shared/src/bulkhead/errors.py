"""Errors a model may read.

Raise one of these for a failure the model can act on: its text reaches the model as an `isError`
result, so write it as a sentence that says what to do next. Anything else that escapes a handler
is a bug: `bulkhead.app` logs it with a traceback and a reference id and shows the model only the id.
"""

from mcp.server.mcpserver.exceptions import ResourceNotFoundError, ToolError

__all__ = [
    "BulkheadError",
    "InternalError",
    "InvalidArgumentError",
    "NotFoundError",
    "ResourceNotFoundError",
    "UnavailableError",
    "internal_error_message",
]


class BulkheadError(ToolError):
    """Base of every error whose text the model sees."""


class NotFoundError(BulkheadError):
    """The thing asked for does not exist (no such user, file, table)."""


class InvalidArgumentError(BulkheadError):
    """An argument is malformed or not allowed; the text names the argument and the fix."""


class UnavailableError(BulkheadError):
    """A backend (database, upstream API) cannot answer right now; retrying later may work."""


class InternalError(BulkheadError):
    """A bug or an unexpected failure; the model sees only its reference id."""

    def __init__(self, reference: str) -> None:
        super().__init__(internal_error_message(reference))
        self.reference = reference


def internal_error_message(reference: str) -> str:
    """The text a caller sees for an unexpected failure with this reference id."""
    return (
        f"Internal error (reference {reference}). This is a problem in the server, not in your "
        "request; try again later, and give the operator this reference if it persists."
    )
