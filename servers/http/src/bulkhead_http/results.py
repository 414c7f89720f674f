"""Upstream answers as tool results.

A JSON body becomes structured content (`{"status", "content_type", "body"}`) plus one compact
text copy; a text body is returned as text, cut at the API's limit with a marker that says so;
upstream 4xx/5xx answers, redirects that were not followed, bodies over the byte cap, invalid JSON
and a content type the operation does not promise become `isError` results with the status, the
reason and a trimmed body. Nothing leaves without passing the upstream's credential scrubber.
"""

import json
from collections.abc import Callable
from typing import Any

from mcp_types import CallToolResult, TextContent

from bulkhead_http.config import Limits
from bulkhead_http.upstream import UpstreamResponse

__all__ = ["envelope_schema", "error_result", "to_result"]

_TEXT_TYPES = (
    "application/xml",
    "application/javascript",
    "application/x-www-form-urlencoded",
    "application/yaml",
)


def envelope_schema(body_schema: dict[str, Any]) -> dict[str, Any]:
    """The output schema of an operation whose success body follows `body_schema`."""
    return {
        "type": "object",
        "properties": {
            "status": {"type": "integer", "description": "HTTP status of the upstream answer"},
            "content_type": {"type": "string"},
            "body": body_schema,
        },
        "required": ["status"],
    }


def error_result(text: str) -> CallToolResult:
    """An `isError` result carrying `text`."""
    return CallToolResult(content=[TextContent(type="text", text=text)], is_error=True)


def _media(content_type: str) -> tuple[str, str]:
    kind, _, rest = content_type.partition(";")
    charset = "utf-8"
    for item in rest.split(";"):
        key, _, value = item.strip().partition("=")
        if key.lower() == "charset" and value:
            charset = value.strip('"').lower()
    return kind.strip().lower(), charset


def _decode(body: bytes, charset: str) -> str:
    try:
        return body.decode(charset, "replace")
    except LookupError:
        return body.decode("utf-8", "replace")


def _cut(text: str, limit: int, what: str) -> str:
    if len(text) <= limit:
        return text
    return text[:limit] + f"\n[... {what} cut here: {len(text) - limit} more characters not shown]"


def _is_json(kind: str) -> bool:
    return kind == "application/json" or kind.endswith("+json")


def _is_text(kind: str) -> bool:
    return kind.startswith("text/") or kind in _TEXT_TYPES or kind.endswith("+xml")


def _scrubbed(data: Any, scrub: Callable[[str], str]) -> Any:
    if isinstance(data, str):
        return scrub(data)
    if isinstance(data, list):
        return [_scrubbed(item, scrub) for item in data]  # pyright: ignore[reportUnknownVariableType] -- JSON
    if isinstance(data, dict):
        return {scrub(str(k)): _scrubbed(v, scrub) for k, v in data.items()}  # pyright: ignore[reportUnknownVariableType, reportUnknownArgumentType] -- JSON
    return data


def _where(response: UpstreamResponse) -> str:
    return f"{response.method} {response.path}"


def to_result(  # noqa: PLR0911, PLR0912 -- one branch per kind of answer, in order
    response: UpstreamResponse,
    *,
    limits: Limits,
    scrub: Callable[[str], str],
    expects_json: bool,
) -> CallToolResult:
    """The tool result for `response`; `expects_json` when the operation publishes an output schema."""
    kind, charset = _media(response.content_type)
    status = response.status
    if status >= 300:
        body = _decode(response.body, charset) if _is_json(kind) or _is_text(kind) or not kind else ""
        # Scrubbed before the cut: a cut through the credential would leave a prefix no scrub finds.
        body = _cut(scrub(body).strip(), limits.max_error_body_chars, "body")
        text = f"The upstream API answered {status} {response.reason} to {_where(response)}."
        if 300 <= status < 400:
            text += " It redirected"
            text += f" to {response.location}" if response.location else ""
            text += "; redirects are not followed for this API, so nothing was fetched from there."
        elif status == 429 or response.retry_after is not None:
            wait = f" after {response.retry_after:g} s" if response.retry_after is not None else " later"
            text += f" It is rate limiting: try again{wait}."
        elif status >= 500:
            text += " The upstream failed; try again later."
        else:
            text += " Check the arguments against the tool's description."
        if body:
            text += f"\nBody: {body}"
        return error_result(scrub(text))
    if response.truncated:
        if _is_text(kind) and not expects_json:
            text = _cut(scrub(_decode(response.body, charset)), limits.max_text_chars, "text")
            return CallToolResult(
                content=[
                    TextContent(
                        type="text",
                        text=scrub(text)
                        + f"\n[... response cut at {limits.max_response_bytes} bytes: it was larger]",
                    )
                ]
            )
        return error_result(
            f"The upstream answer to {_where(response)} is larger than {limits.max_response_bytes} bytes, "
            "this API's limit; ask for less (filters, a smaller page size) and try again."
        )
    if not response.body:
        structured: dict[str, Any] = {"status": status, "content_type": kind}
        return CallToolResult(
            content=[TextContent(type="text", text=json.dumps(structured))], structured_content=structured
        )
    if _is_json(kind):
        try:
            data = json.loads(_decode(response.body, charset))
        except ValueError:
            snippet = _cut(scrub(_decode(response.body, charset)), limits.max_error_body_chars, "body")
            return error_result(
                scrub(
                    f"The upstream API sent invalid JSON for {_where(response)} (status {status}).\n"
                    f"Body: {snippet}"
                )
            )
        structured = {"status": status, "content_type": kind, "body": data}
        text = json.dumps(structured, ensure_ascii=False)
        if scrub(text) != text:
            structured = _scrubbed(structured, scrub)
            text = json.dumps(structured, ensure_ascii=False)
        return CallToolResult(content=[TextContent(type="text", text=text)], structured_content=structured)
    if expects_json:
        snippet = (
            _cut(scrub(_decode(response.body, charset)), limits.max_error_body_chars, "body")
            if _is_text(kind)
            else ""
        )
        return error_result(
            scrub(
                f"The upstream API answered {_where(response)} with {kind or 'no content type'} where this "
                "operation promises JSON." + (f"\nBody: {snippet}" if snippet else "")
            )
        )
    if _is_text(kind) or not kind:
        text = _cut(scrub(_decode(response.body, charset)), limits.max_text_chars, "text")
        return CallToolResult(content=[TextContent(type="text", text=scrub(text))])
    return CallToolResult(
        content=[
            TextContent(
                type="text",
                text=f"The upstream answered {status} with {kind} ({len(response.body)} bytes), which is not "
                "text; this server returns only JSON and text bodies.",
            )
        ]
    )
