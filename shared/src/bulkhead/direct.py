"""Direct tool calls on the stdio wire: `tools/call` answered without the SDK's per-request plumbing.

Over stdio the SDK hands each request through a relay stream, a dispatcher task, a cancel scope,
a middleware chain and a per-version result sieve before the tool runs: about 0.3 ms of CPU per
call, more than a point lookup in PostgreSQL costs. For the calls where none of that does anything,
this tap answers them itself: the same `MCPServer.call_tool` (argument validation, the tool, output
validation, Bulkhead's audit record), the same error handling as the SDK's `tools/call` handler,
the same JSON-RPC encoding.

A call is answered here only when all of this holds, and otherwise goes to the SDK untouched:
- the connection is in the handshake era and the SDK accepted its `initialize` with a protocol
  version in `DIRECT_VERSIONS`;
- the params are exactly `name` and `arguments` (no `_meta`: no progress token, no trace context);
- the tool exists and takes no `Context` (it sends no notifications or requests of its own);
- the server has only the SDK's default middleware (its OpenTelemetry span and its requestState
  seal), no cache hint for `tools/call`, and no OpenTelemetry tracer provider is installed (the
  span would be a no-op).

`notifications/cancelled` cancels a direct call as the SDK would: its id matched as the SDK
matches it, the call's own cancel scope cancelled (so shielded clean-up in the tool runs to its
end), and the call never answered. Ids are matched as the SDK keys its table of requests in flight,
where a later request with an id replaces an earlier one: the SDK's answers are watched so that a
cancel reaches only the latest request with its id, whichever side runs it. At the end of the
connection, calls still running are cancelled and answered "Connection closed", as the SDK does.
tests/e2e/test_direct_calls.py checks that every answer is byte for byte the one the SDK gives.
"""

import asyncio
import contextvars
import logging
from dataclasses import dataclass, field
from typing import Any, Literal, cast

import anyio
import mcp_types
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError, UnexpectedToolError
from mcp.shared.dispatcher import coerce_request_id
from mcp.shared.exceptions import MCPError
from mcp.shared.jsonrpc_dispatcher import cancelled_request_id_from_params
from mcp_types import (
    CONNECTION_CLOSED,
    INTERNAL_ERROR,
    CallToolResult,
    ErrorData,
    JSONRPCError,
    JSONRPCNotification,
    JSONRPCRequest,
    JSONRPCResponse,
    TextContent,
)
from mcp_types.methods import serialize_server_result
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS
from opentelemetry import trace
from pydantic import BaseModel, ValidationError

from bulkhead.results import wire_form
from bulkhead.wire import StdioWriter, encode_message

__all__ = ["DIRECT_VERSIONS", "REQUEST_ID", "DirectCalls"]

logger = logging.getLogger("bulkhead.direct")

DIRECT_VERSIONS = frozenset(HANDSHAKE_PROTOCOL_VERSIONS)
"""The protocol versions whose connections get direct calls: every handshake-era one."""

REQUEST_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "bulkhead_direct_request_id", default=None
)
"""The JSON-RPC id of the direct call running in this task, for its audit record."""

_PARAMS = frozenset({"name", "arguments"})
_DEFAULT_MIDDLEWARE = ["OpenTelemetryMiddleware", "RequestStateBoundary"]


def _plain_server(server: MCPServer[Any]) -> bool:
    """Whether the SDK's per-request chain would add nothing to a call on `server`."""
    lowlevel = server._lowlevel_server  # pyright: ignore[reportPrivateUsage] -- middleware and cache hints live there
    middleware = [type(layer).__name__ for layer in lowlevel.middleware]
    # The SDK's defaults: a span (see below) and the requestState seal, which only acts on a
    # request carrying `requestState` or a result that asks for input; a direct call has neither.
    if middleware != _DEFAULT_MIDDLEWARE or "tools/call" in lowlevel.cache_hints:
        return False
    # An extension's tool-call interceptor (or any other handler put in its place) wraps the
    # server's own; a direct call would go around it.
    entry = lowlevel.get_request_handler("tools/call")
    if entry is None or entry.handler != server._handle_call_tool:  # pyright: ignore[reportPrivateUsage] -- what the SDK registers
        return False
    # Until a provider is installed the API hands out its proxy, and every span is a no-op.
    return isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)


@dataclass
class _Call:
    request_id: mcp_types.RequestId
    task: "asyncio.Task[None] | None" = None
    scope: anyio.CancelScope = field(default_factory=anyio.CancelScope)
    """Cancelled as the SDK cancels a request's scope: a native `Task.cancel()` would go through
    the tool's shielded clean-up (a statement's ROLLBACK, say) and cut it short."""
    answered: bool = False
    withdrawn: bool = False
    """The client cancelled it: it is never answered."""
    superseded: bool = False
    """A later request with the same id went to the SDK: as the SDK keys its requests in flight
    by id (the later one wins), a `notifications/cancelled` for that id no longer reaches this call."""


class DirectCalls:
    """A `bulkhead.wire.WireTap` that answers eligible `tools/call` requests itself."""

    def __init__(self, server: MCPServer[Any]) -> None:
        self._server = server
        self._writer: StdioWriter | None = None
        # "none": no initialize yet; "sent": the first one is waiting for its answer; "done": the
        # SDK accepted it at a version in DIRECT_VERSIONS; "off": anything else (direct calls stay off).
        self._handshake: Literal["none", "sent", "done", "off"] = "none"
        self._initialize_id: mcp_types.RequestId = ""
        self._version = ""
        self._ready = False
        # Keyed as the SDK keys its requests in flight: "7" and 7 are one id (coerce_request_id).
        self._calls: dict[mcp_types.RequestId, _Call] = {}
        # Ids of the requests the SDK runs (how many with each id), and the ids a direct call took
        # over while the SDK still runs an earlier request with it: the SDK would have replaced
        # that request in its table, so a cancel for the id must not reach it.
        self._sdk_ids: dict[mcp_types.RequestId, int] = {}
        self._taken_over: set[mcp_types.RequestId] = set()

    @property
    def ready(self) -> bool:
        """Whether calls are being answered directly on this connection now."""
        return self._ready

    def attach(self, writer: StdioWriter) -> None:
        """Answer on `writer`."""
        self._writer = writer

    def inbound(self, message: mcp_types.JSONRPCMessage) -> bool:
        """Take an eligible `tools/call`; watch the handshake and cancellations."""
        if isinstance(message, JSONRPCRequest):
            if message.method == "initialize":
                if self._handshake == "none":
                    self._handshake, self._initialize_id = "sent", coerce_request_id(message.id)
                else:
                    self._handshake, self._ready = "off", False
                return False
            key = coerce_request_id(message.id)
            if self._ready and message.method == "tools/call" and self._start(message):
                if key in self._sdk_ids:
                    self._taken_over.add(key)
                return True
            self._sdk_ids[key] = self._sdk_ids.get(key, 0) + 1
            self._taken_over.discard(key)
            running = self._calls.get(key) if self._calls else None
            if running is not None:
                running.superseded = True
            return False
        if isinstance(message, JSONRPCNotification) and message.method == "notifications/cancelled":
            # The SDK's reading of requestId: a string or an integer, never a boolean or a float.
            request_id = cancelled_request_id_from_params(message.params)
            if request_id is None:
                return False
            key = coerce_request_id(request_id)
            call = self._calls.get(key)
            if call is not None and not call.superseded:
                call.withdrawn = True
                call.scope.cancel()
            if key in self._taken_over:
                return True  # the SDK's own request with this id is no longer the one cancelled
            self._sdk_ids.pop(key, None)  # a request the SDK cancels is never answered
        return False

    def outbound(self, message: mcp_types.JSONRPCMessage) -> None:
        """Note the SDK's answers, and whether it accepted `initialize` (at which protocol version)."""
        if not isinstance(message, JSONRPCResponse | JSONRPCError) or message.id is None:
            return
        key = coerce_request_id(message.id)
        running = self._sdk_ids.get(key)
        if running is not None:
            if running > 1:
                self._sdk_ids[key] = running - 1
            else:
                del self._sdk_ids[key]
                self._taken_over.discard(key)
        if self._handshake != "sent":
            return
        if key != self._initialize_id:
            return
        version = message.result.get("protocolVersion") if isinstance(message, JSONRPCResponse) else None
        # The SDK serves tools/call from here on (it does not wait for notifications/initialized).
        accepted = version in DIRECT_VERSIONS
        self._version = str(version)
        self._handshake = "done" if accepted else "off"
        self._ready = accepted and _plain_server(self._server)
        if self._ready:
            logger.debug("answering plain tools/call requests on this connection directly")

    def _start(self, request: JSONRPCRequest) -> bool:
        params = request.params
        if params is None or not params.keys() <= _PARAMS:
            return False
        name, arguments = params.get("name"), params.get("arguments", {})
        if not isinstance(name, str) or not isinstance(arguments, dict):
            return False  # the SDK answers with its own invalid-params error
        tool = self._server._tool_manager.get_tool(name)  # pyright: ignore[reportPrivateUsage] -- no public lookup
        key = coerce_request_id(request.id)
        # A tool with resolvers (`Resolve(...)` parameters) reads the request's context as one
        # taking a `Context` does.
        if tool is None or tool.context_kwarg is not None or tool.resolved_params or key in self._calls:
            return False
        call = _Call(request.id)
        context = contextvars.copy_context()
        context.run(REQUEST_ID.set, str(request.id))  # as the SDK's request context gives it
        coroutine = self._run(call, name, cast("dict[str, Any]", arguments))
        call.task = asyncio.get_running_loop().create_task(coroutine, context=context)
        self._calls[key] = call
        call.task.add_done_callback(lambda _: self._calls.pop(key, None))
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("tools/call %s (%s) is answered directly", request.id, name)
        return True

    async def _run(self, call: _Call, name: str, arguments: dict[str, Any]) -> None:
        with call.scope:
            await self._answer_call(call, name, arguments)

    async def _answer_call(self, call: _Call, name: str, arguments: dict[str, Any]) -> None:
        try:
            result = await self._server.call_tool(name, arguments, None)
        except MCPError as exc:
            self._answer(call, JSONRPCError(jsonrpc="2.0", id=call.request_id, error=exc.error))
            return
        except Exception as exc:
            result = _failure_result(name, exc)
        try:
            # The SDK's own per-version sieve: the same fields, in the same order, as its answer.
            payload = serialize_server_result("tools/call", self._version, _dump(result))
        except ValidationError:
            logger.exception("handler for 'tools/call' returned an invalid result")
            invalid = ErrorData(code=INTERNAL_ERROR, message="Handler returned an invalid result")
            self._answer(call, JSONRPCError(jsonrpc="2.0", id=call.request_id, error=invalid))
            return
        except Exception as exc:
            # The SDK dispatcher's catch-all for a handler that raised: code 0 and the text.
            logger.exception("handler for 'tools/call' raised")
            failed = ErrorData(code=0, message=str(exc))
            self._answer(call, JSONRPCError(jsonrpc="2.0", id=call.request_id, error=failed))
            return
        self._answer(call, JSONRPCResponse(jsonrpc="2.0", id=call.request_id, result=payload))

    def _answer(self, call: _Call, message: JSONRPCResponse | JSONRPCError) -> None:
        if call.withdrawn:
            return  # the SDK never answers a request the client cancelled, even one that finished
        call.answered = True
        if self._writer is not None:
            self._writer.write(encode_message(message))

    async def close(self) -> None:
        """Cancel the calls still running and answer them "Connection closed", as the SDK does."""
        self._ready = False
        calls = list(self._calls.values())
        tasks = [call.task for call in calls if call.task is not None]
        for call in calls:
            call.scope.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        closed = ErrorData(code=CONNECTION_CLOSED, message="Connection closed")
        for call in calls:
            if not call.answered and not call.withdrawn:
                self._answer(call, JSONRPCError(jsonrpc="2.0", id=call.request_id, error=closed))


def _dump(result: object) -> dict[str, Any]:
    """A handler's result as the SDK dumps it before the sieve (`BulkheadServer._handle_call_tool`)."""
    if isinstance(result, CallToolResult):
        return wire_form(result)
    if isinstance(result, BaseModel):
        return result.model_dump(by_alias=True, mode="json", exclude_none=True)
    return dict(cast("dict[str, Any]", result))


def _failure_result(name: str, exc: Exception) -> CallToolResult:
    """What the SDK's `tools/call` handler makes of an exception other than `MCPError`."""
    if isinstance(exc, ToolError) and not isinstance(exc, UnexpectedToolError):
        if isinstance(exc.__cause__, ValidationError):
            fields = sorted({".".join(str(part) for part in err["loc"]) for err in exc.__cause__.errors()})
            logger.info("Tool %r rejected arguments: %r", name, fields)
        else:
            logger.info("Tool %r failed: %r", name, str(exc))
    else:
        logger.exception("Tool %r raised an unexpected exception", name)
    return CallToolResult(content=[TextContent(type="text", text=str(exc))], is_error=True)
