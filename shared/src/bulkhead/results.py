"""Tool results: structured content plus one compact text copy.

Returning a pydantic model from a tool makes the SDK add a pretty-printed JSON text block beside
the structured content, which nearly doubles what travels. A tool annotated
`-> Annotated[CallToolResult, Model]` returns `structured(model)` instead: the same structured
content (still validated against the published output schema) and a single-line text copy for
clients that read only text. `unchecked_items` publishes a large array field without a per-item
schema, so clients do not validate it item by item.
"""

import json
from typing import Any

from mcp_types import CallToolResult, TextContent, ToolAnnotations
from pydantic import BaseModel

__all__ = ["READ_ONLY", "structured", "unchecked_items", "wire_form"]

READ_ONLY = ToolAnnotations(
    read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False
)
"""Annotations for a tool that only reads from a closed system (a directory, a database, files)."""


def structured(model: BaseModel | dict[str, Any], *, text: str | None = None) -> CallToolResult:
    """A successful result carrying `model` as structured content and as compact JSON text.

    A dict is taken as the structured content as it is (it must already be plain JSON data, with
    the wire's field names): a hot path skips building a model only to dump it again. The SDK
    still validates it against the tool's output schema. With a dict, `text` may carry its compact
    JSON (`ensure_ascii=False`, no spaces) when the caller already has it, so it is not made twice.
    """
    if isinstance(model, dict):
        if text is None:
            text = json.dumps(model, ensure_ascii=False, separators=(",", ":"))
        return CallToolResult(content=[TextContent(type="text", text=text)], structured_content=model)
    return CallToolResult(
        content=[TextContent(type="text", text=model.model_dump_json(by_alias=True))],
        structured_content=model.model_dump(mode="json", by_alias=True),
    )


def unchecked_items(schema: dict[str, Any]) -> None:
    """A `json_schema_extra` hook that publishes an array field without its per-item schema.

    A JSON Schema validator in the client (the SDK's is jsonschema, in Python) checks every item
    against `items`: about 5 ms for a 1,000-name directory page and about 25 ms for 1,000 rows of
    seven columns, many times the work of producing them, against microseconds for the array
    alone. The model itself keeps its item type (the server validates what it sends), and the
    field's description must say what the items are.
    """
    schema.pop("items", None)


def wire_form(result: CallToolResult) -> dict[str, Any]:
    """`result` as the dict a `tools/call` handler may hand the SDK, structured content as it is.

    The SDK turns a result model into its wire form (`model_dump(mode="json")`, which walks every
    value of the structured content) and then validates and dumps that again for the protocol
    version (another walk). Structured content is plain JSON data already (the SDK dumps a
    returned model to it, and `structured` hands it over as such), and the version dump still
    converts anything that is not; so only the rest of the result is dumped here. One walk fewer:
    0.3-0.5 ms for 1,000 query rows.
    """
    wire = result.model_dump(by_alias=True, mode="json", exclude_none=True, exclude={"structured_content"})
    if result.structured_content is not None:
        wire["structuredContent"] = result.structured_content
    return wire
