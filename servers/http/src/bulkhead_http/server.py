"""`build_server`: one tool per configured operation (or two meta-tools), wired to the upstreams.

The tools' input schemas come from the configuration and OpenAPI documents, not from Python
signatures, so each tool is registered with a pass-through argument model; the operation
validates the arguments against its published schema itself. No domain logic here.
"""

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Annotated, Any

from mcp.server.mcpserver.tools.base import Tool
from mcp.server.mcpserver.utilities.func_metadata import ArgModelBase, FuncMetadata
from mcp_types import CallToolResult, ToolAnnotations
from pydantic import BaseModel, ConfigDict, Field

from bulkhead.app import BulkheadServer
from bulkhead.errors import InvalidArgumentError
from bulkhead.results import structured
from bulkhead_http.operations import Operation
from bulkhead_http.results import envelope_schema, to_result
from bulkhead_http.settings import HttpSettings
from bulkhead_http.upstream import Upstream

__all__ = ["build_server", "operation_annotations", "operation_caller"]

INSTRUCTIONS = """\
Tools that call configured HTTP APIs. Each tool is one upstream operation: its description says
what it does and its input schema which path, query, header and body values it takes. Results
carry the upstream's JSON as structured content ({status, content_type, body}) or its text;
upstream errors (4xx/5xx, timeouts, rate limits) come back as errors with the status and a
trimmed body. Requests can only go to the configured APIs."""

META_INSTRUCTIONS = """\
Tools that call configured HTTP APIs. First call search_operations with words from your task to
find an operation and its input schema, then call_operation with its name and arguments. Upstream
errors (4xx/5xx, timeouts, rate limits) come back as errors with the status and a trimmed body."""


class _PassThrough(ArgModelBase):
    """Takes any arguments and hands them on as one dict: the operation validates them itself."""

    model_config = ConfigDict(extra="allow")

    def model_dump_one_level(self) -> dict[str, Any]:
        """{"arguments": every argument as sent}."""
        return {"arguments": dict(self.model_extra or {})}


def operation_annotations(operation: Operation) -> ToolAnnotations:
    """Hints from the method: GET/HEAD read-only; writes destructive; PUT/DELETE idempotent."""
    return ToolAnnotations(
        title=f"{operation.method} {operation.path}",
        read_only_hint=operation.read_only,
        destructive_hint=not operation.read_only,
        idempotent_hint=operation.idempotent,
        open_world_hint=True,
    )


def operation_caller(
    operation: Operation, upstream: Upstream
) -> Callable[[Mapping[str, Any]], Awaitable[CallToolResult]]:
    """A function that calls `operation` through `upstream` and builds the tool result."""
    limits = operation.api.limits
    expects_json = operation.output_schema is not None

    async def call(arguments: Mapping[str, Any]) -> CallToolResult:
        parts = operation.request(arguments)
        response = await upstream.call(parts, idempotent=operation.idempotent)
        return to_result(response, limits=limits, scrub=upstream.scrub, expects_json=expects_json)

    return call


def _tool(operation: Operation, upstream: Upstream) -> Tool:
    call = operation_caller(operation, upstream)

    async def run(arguments: dict[str, Any]) -> CallToolResult:
        return await call(arguments)

    output = envelope_schema(operation.output_schema) if operation.output_schema is not None else None
    return Tool(
        fn=run,
        name=operation.name,
        title=None,
        description=operation.description,
        parameters=operation.input_schema,
        fn_metadata=FuncMetadata(arg_model=_PassThrough, output_schema=output),
        is_async=True,
        context_kwarg=None,
        annotations=operation_annotations(operation),
    )


class OperationSummary(BaseModel):
    """One operation as search_operations lists it."""

    name: str
    api: str
    method: str
    path: str
    description: str
    read_only: bool
    input_schema: dict[str, Any]


class OperationList(BaseModel):
    """Operations matching a search, best first."""

    operations: list[OperationSummary]
    total: int = Field(description="How many operations matched in all")


def _score(operation: Operation, words: list[str]) -> int:
    haystack = f"{operation.name} {operation.api.name} {operation.path} {operation.description}".lower()
    return sum(haystack.count(word) + (3 if word in operation.name.lower() else 0) for word in words)


def _meta_tools(operations: Sequence[Operation], upstreams: Mapping[str, Upstream]) -> list[Tool]:
    by_name = {op.name: (op, operation_caller(op, upstreams[op.api.name])) for op in operations}
    all_read_only = all(op.read_only for op in operations)

    async def search_operations(
        query: Annotated[str, Field(max_length=200, description="Words describing what you want to do")] = "",
        limit: Annotated[int, Field(ge=1, le=50, description="Most operations to return")] = 10,
    ) -> Annotated[CallToolResult, OperationList]:
        """Find the upstream API operations that fit a task, with each one's input schema.

        Matches the words against operation names, paths and descriptions; an empty query lists
        them all. Call call_operation next with the chosen operation's name and arguments.
        """
        words = [word for word in query.lower().split() if word]
        ranked = [(op, _score(op, words)) for op in operations]
        hits = [op for op, score in sorted(ranked, key=lambda item: -item[1]) if score > 0 or not words]
        return structured(
            OperationList(
                operations=[OperationSummary.model_validate(op.summary()) for op in hits[:limit]],
                total=len(hits),
            )
        )

    async def call_operation(
        name: Annotated[str, Field(max_length=64, description="The operation's name from search_operations")],
        arguments: Annotated[
            dict[str, Any] | None, Field(description="Arguments matching the operation's input_schema")
        ] = None,
    ) -> CallToolResult:
        """Call one upstream API operation by name with its arguments.

        Find the name and the input schema with search_operations first. Returns the upstream's
        JSON as structured content ({status, content_type, body}) or its text; upstream errors come
        back as errors with the status and a trimmed body.
        """
        entry = by_name.get(name)
        if entry is None:
            raise InvalidArgumentError(
                f"There is no operation named {name[:64]!r}; call search_operations to find one."
            )
        return await entry[1](arguments or {})

    search = Tool.from_function(
        search_operations,
        annotations=ToolAnnotations(
            read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False
        ),
    )
    caller = Tool.from_function(
        call_operation,
        annotations=ToolAnnotations(
            read_only_hint=all_read_only,
            destructive_hint=not all_read_only,
            idempotent_hint=all(op.idempotent for op in operations),
            open_world_hint=True,
        ),
    )
    return [search, caller]


def build_server(
    settings: HttpSettings, operations: Sequence[Operation], upstreams: Mapping[str, Upstream]
) -> BulkheadServer:
    """The bulkhead-http MCP server offering `operations` through `upstreams`."""
    if settings.meta_tools:
        tools = _meta_tools(operations, upstreams)
        instructions = META_INSTRUCTIONS
    else:
        tools = [_tool(op, upstreams[op.api.name]) for op in operations]
        instructions = INSTRUCTIONS
    return BulkheadServer(settings, instructions=instructions, version="0.1.0", tools=tools)
