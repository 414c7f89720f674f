"""`BulkheadServer`: an `MCPServer` with the house rules built in.

Every tool call, resource read and prompt get passes through here once, so this is the one place
that writes audit records and turns unexpected exceptions into a reference id the model can quote
while the traceback stays in the server log.
"""

import logging
import secrets
import time
from collections.abc import Iterable
from typing import Any

import anyio
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel.helper_types import ReadResourceContents
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import (
    ResourceError,
    ToolError,
    UnexpectedResourceError,
    UnexpectedToolError,
)
from mcp.shared.exceptions import MCPError
from mcp_types import (
    INTERNAL_ERROR,
    INVALID_PARAMS,
    CallToolRequestParams,
    CallToolResult,
    GetPromptResult,
    InputRequiredResult,
    TextContent,
)
from pydantic import AnyUrl

from bulkhead.audit import AuditLog, Outcome
from bulkhead.direct import REQUEST_ID
from bulkhead.errors import InternalError, InvalidArgumentError, internal_error_message
from bulkhead.results import wire_form
from bulkhead.settings import ServerSettings
from bulkhead.validation import CursorCodec

__all__ = ["PRINCIPAL_SCOPE_KEY", "BulkheadServer", "new_reference"]

PRINCIPAL_SCOPE_KEY = "bulkhead.principal"
"""Where `bulkhead.auth` leaves the authenticated token's name in the ASGI scope."""

logger = logging.getLogger("bulkhead")


def new_reference() -> str:
    """A short random id that ties an error the caller saw to its log record."""
    return secrets.token_hex(6)


def _principal(context: Context[Any, Any] | None) -> tuple[str, str | None]:
    """(principal, request id) of the request behind `context`."""
    if context is None:
        # A call answered on the stdio wire without the SDK's dispatch (`bulkhead.direct`).
        return "local", REQUEST_ID.get()
    try:
        request_context = context.request_context
    except ValueError:
        return "local", None
    request = request_context.request
    scope = getattr(request, "scope", None)
    principal = "local"
    if isinstance(scope, dict):
        principal = str(scope.get(PRINCIPAL_SCOPE_KEY, "anonymous"))  # pyright: ignore[reportUnknownMemberType, reportUnknownArgumentType] -- ASGI scope
    request_id = request_context.request_id
    return principal, None if request_id is None else str(request_id)


def _text_size(result: CallToolResult) -> int:
    return sum(len(block.text) for block in result.content if isinstance(block, TextContent))


class BulkheadServer(MCPServer[Any]):
    """An `MCPServer` that audits every call and hides unexpected errors behind a reference id."""

    def __init__(
        self,
        settings: ServerSettings,
        *,
        instructions: str | None = None,
        version: str = "",
        **kwargs: Any,
    ) -> None:
        name = f"bulkhead-{settings.server_name}"
        super().__init__(name, instructions=instructions, version=version, **kwargs)
        self.bulkhead_settings = settings
        self.audit = AuditLog(settings.server_name, settings.audit)
        key = settings.cursor_secret.get_secret_value().encode() if settings.cursor_secret else None
        self.cursors = CursorCodec(key)
        # No cancel registry of our own: over stdio, SSE and Streamable HTTP sessions the SDK's
        # JSON-RPC dispatcher cancels a tool call that notifications/cancelled names, and the
        # in-memory client cancels it directly (tests/e2e/test_stdio_wire.py checks stdio).

    async def _handle_call_tool(  # pyright: ignore[reportIncompatibleMethodOverride] -- the runner takes a dict as it is
        self, ctx: ServerRequestContext[Any], params: CallToolRequestParams
    ) -> CallToolResult | InputRequiredResult | dict[str, Any]:
        """The `tools/call` handler: `call_tool`'s result, with structured content in its wire form.

        See `bulkhead.results.wire_form`: the SDK then walks the structured content once less.
        """
        result = await super()._handle_call_tool(ctx, params)
        if not isinstance(result, CallToolResult) or result.structured_content is None:
            return result
        return wire_form(result)

    async def call_tool(
        self, name: str, arguments: dict[str, Any], context: Context[Any, Any] | None = None
    ) -> CallToolResult | InputRequiredResult:
        """Call a tool, writing one audit record; unexpected failures become an `InternalError`."""
        started = time.perf_counter()
        outcome: Outcome = "ok"
        reason: str | None = None
        size: int | None = None
        try:
            tool = self._tool_manager.get_tool(name)  # pyright: ignore[reportPrivateUsage] -- no public lookup
            if tool is None:
                # The spec makes an unknown tool a protocol error, not a tool result.
                raise MCPError(code=INVALID_PARAMS, message=f"Unknown tool: {name}")
            known: dict[str, Any] = tool.parameters.get("properties", {})
            unknown = [key for key in arguments if key not in known]
            if unknown:
                # The SDK would drop them silently; a model that misspelt a filter must find out.
                names = ", ".join(known) or "none"
                raise InvalidArgumentError(
                    f"{name} has no argument {unknown[0][:60]!r}; its arguments are: {names}."
                )
            result = await super().call_tool(name, arguments, context)
        except anyio.get_cancelled_exc_class():
            # The SDK cancels the call's scope on notifications/cancelled (or, for a 2026-07-28
            # request over HTTP, when the client drops the response stream).
            outcome = "cancelled"
            raise
        except MCPError as exc:
            outcome, reason = "rejected", exc.error.message
            raise
        except UnexpectedToolError as exc:
            reference = new_reference()
            logger.error(
                "tool %s failed unexpectedly (reference %s)", name, reference, exc_info=exc.__cause__ or exc
            )
            outcome, reason = "error", f"reference {reference}"
            raise InternalError(reference) from None
        except ToolError as exc:
            outcome, reason = "rejected", str(exc)
            raise
        else:
            if isinstance(result, CallToolResult):
                size = _text_size(result)
                if result.is_error:
                    outcome = "rejected"
            return result
        finally:
            principal, request_id = _principal(context)
            self.audit.record(
                operation="tools/call",
                target=name,
                arguments=arguments,
                outcome=outcome,
                started=started,
                principal=principal,
                request_id=request_id,
                result_size=size,
                reason=reason,
            )

    async def read_resource(
        self, uri: AnyUrl | str, context: Context[Any, Any] | None = None
    ) -> Iterable[ReadResourceContents] | InputRequiredResult:
        """Read a resource, writing one audit record; unexpected failures carry only a reference id."""
        started = time.perf_counter()
        outcome: Outcome = "ok"
        reason: str | None = None
        size: int | None = None
        try:
            result = await super().read_resource(uri, context)
        except UnexpectedResourceError as exc:
            reference = new_reference()
            logger.error(
                "resource %s failed unexpectedly (reference %s)",
                uri,
                reference,
                exc_info=exc.__cause__ or exc,
            )
            outcome, reason = "error", f"reference {reference}"
            raise ResourceError(internal_error_message(reference)) from None
        except ResourceError as exc:
            outcome, reason = "rejected", str(exc)
            raise
        else:
            if not isinstance(result, InputRequiredResult):
                result = list(result)
                size = sum(len(item.content) for item in result)
            return result
        finally:
            principal, request_id = _principal(context)
            self.audit.record(
                operation="resources/read",
                target=str(uri),
                arguments=None,
                outcome=outcome,
                started=started,
                principal=principal,
                request_id=request_id,
                result_size=size,
                reason=reason,
            )

    async def render_prompt(
        self, name: str, arguments: dict[str, Any] | None, context: Context[Any, Any] | None
    ) -> GetPromptResult | InputRequiredResult:
        """Produce a prompt's messages: the SDK's registered prompts by default; a server may override.

        Raise `MCPError` (or `ValueError`) for a request the caller must fix; anything else is a bug
        and reaches the caller only as a reference id.
        """
        return await super().get_prompt(name, arguments, context)

    async def get_prompt(
        self, name: str, arguments: dict[str, Any] | None = None, context: Context[Any, Any] | None = None
    ) -> GetPromptResult | InputRequiredResult:
        """Render a prompt, writing one audit record; unexpected failures carry only a reference id."""
        started = time.perf_counter()
        outcome: Outcome = "ok"
        reason: str | None = None
        try:
            return await self.render_prompt(name, arguments, context)
        except MCPError as exc:
            outcome, reason = "rejected", exc.error.message
            raise
        except ValueError as exc:
            outcome, reason = "rejected", str(exc)
            raise
        except Exception as exc:
            reference = new_reference()
            logger.error("prompt %s failed unexpectedly (reference %s)", name, reference, exc_info=exc)
            outcome, reason = "error", f"reference {reference}"
            raise MCPError(code=INTERNAL_ERROR, message=internal_error_message(reference)) from None
        finally:
            principal, request_id = _principal(context)
            self.audit.record(
                operation="prompts/get",
                target=name,
                arguments=arguments,
                outcome=outcome,
                started=started,
                principal=principal,
                request_id=request_id,
                reason=reason,
            )
