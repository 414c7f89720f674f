"""Operations: what one tool does upstream, its input schema, and the request its arguments make.

An operation comes from an explicit `tools:` entry or from an OpenAPI operation on the allow-list.
Arguments are validated again here against the published JSON Schema (the schema is a hint to the
model, not a guard), then turned into a path (checked against the template), query pairs, headers
and a JSON body. No MCP imports: the server wires these to tools.
"""

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError, ValidationError, best_match  # pyright: ignore[reportUnknownVariableType] -- jsonschema's stubs

from bulkhead.errors import InvalidArgumentError
from bulkhead.settings import ConfigError
from bulkhead_http.config import FORBIDDEN_HEADERS, READ_METHODS, ApiConfig, HttpConfig
from bulkhead_http.openapi import SpecOperation, select_operations
from bulkhead_http.urls import expand_path, scalar_text

__all__ = ["Operation", "Param", "RequestParts", "build_operations", "tool_name"]

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
MAX_MESSAGE = 300


@dataclass(frozen=True)
class Param:
    """A parameter: its name on the wire, its argument name, where it goes and its schema."""

    name: str
    arg: str
    location: str
    required: bool
    description: str
    schema: dict[str, Any]


@dataclass
class RequestParts:
    """What one call sends: method, path (under the base URL), query pairs, headers, JSON body."""

    method: str
    path: str
    query: list[tuple[str, str]] = field(default_factory=list[tuple[str, str]])
    headers: dict[str, str] = field(default_factory=dict[str, str])
    body: Any = None
    has_body: bool = False


def tool_name(operation_id: str) -> str:
    """A tool name from an operationId: `listTickets` -> `list_tickets`."""
    text = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", operation_id)
    text = re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_").lower()
    return (text or "operation")[:64]


def _trim(text: str) -> str:
    return text if len(text) <= MAX_MESSAGE else text[:MAX_MESSAGE] + "..."


class Operation:
    """One upstream operation offered as a tool."""

    def __init__(
        self,
        *,
        name: str,
        api: ApiConfig,
        method: str,
        path: str,
        description: str,
        params: list[Param],
        body_schema: dict[str, Any] | None,
        body_required: bool,
        output_schema: dict[str, Any] | None,
    ) -> None:
        self.name = name
        self.api = api
        self.method = method
        self.path = path
        self.description = description
        self.params = tuple(params)
        self.body_schema = body_schema
        self.body_required = body_required
        self.body_arg = "request_body" if any(p.arg == "body" for p in params) else "body"
        self.output_schema = output_schema
        self.input_schema = self._input_schema()
        try:
            Draft202012Validator.check_schema(self.input_schema)
        except SchemaError as exc:
            raise ConfigError(
                f"apis.{api.name}: tool {name}: a parameter schema is not valid JSON Schema: "
                f"{_trim(exc.message)}"
            ) from None
        self._validator = Draft202012Validator(self.input_schema)

    @property
    def read_only(self) -> bool:
        """Whether the operation only reads (GET / HEAD)."""
        return self.method in READ_METHODS

    @property
    def idempotent(self) -> bool:
        """Whether repeating the call has no further effect (so it may be retried)."""
        return self.method in IDEMPOTENT_METHODS

    def _input_schema(self) -> dict[str, Any]:
        properties: dict[str, Any] = {}
        required: list[str] = []
        for param in self.params:
            schema = dict(param.schema)
            where = {"path": "path segment", "query": "query parameter", "header": "header"}[param.location]
            text = f"{param.description} ({where} `{param.name}`)".strip()
            schema["description"] = text
            properties[param.arg] = schema
            if param.required:
                required.append(param.arg)
        if self.body_schema is not None:
            body = dict(self.body_schema)
            body.setdefault("description", "JSON request body")
            properties[self.body_arg] = body
            if self.body_required:
                required.append(self.body_arg)
        schema: dict[str, Any] = {"type": "object", "properties": properties, "additionalProperties": False}
        if required:
            schema["required"] = required
        return schema

    def summary(self) -> dict[str, Any]:
        """What search_operations shows about this operation."""
        return {
            "name": self.name,
            "api": self.api.name,
            "method": self.method,
            "path": self.path,
            "description": self.description,
            "read_only": self.read_only,
            "input_schema": self.input_schema,
        }

    def request(self, arguments: Mapping[str, Any]) -> RequestParts:
        """Validate `arguments` and turn them into the request to send.

        Raises:
            InvalidArgumentError: an argument is missing, unknown or invalid; the text names it.
        """
        errors: list[ValidationError] = list(self._validator.iter_errors(dict(arguments)))  # pyright: ignore[reportUnknownMemberType] -- jsonschema's stubs
        if errors:
            error: ValidationError = best_match(errors)  # pyright: ignore[reportUnknownVariableType] -- jsonschema's stubs
            where = "/".join(str(part) for part in error.absolute_path)  # pyright: ignore[reportUnknownMemberType, reportUnknownVariableType, reportUnknownArgumentType] -- jsonschema's stubs
            prefix = f"argument {where!r}: " if where else ""
            message = str(error.message)  # pyright: ignore[reportUnknownMemberType, reportUnknownArgumentType] -- jsonschema's stubs
            raise InvalidArgumentError(f"{prefix}{_trim(message)} (see the tool's input schema).")
        for name, value in arguments.items():
            try:
                json.dumps(value, ensure_ascii=False).encode("utf-8")
            except UnicodeEncodeError:
                # A lone surrogate (JSON allows "\ud800") cannot be sent in a URL, header or body.
                raise InvalidArgumentError(
                    f"argument {name[:64]!r} is not valid Unicode text (it holds a lone surrogate)."
                ) from None
        path_values: dict[str, object] = {}
        parts = RequestParts(method=self.method, path="")
        for param in self.params:
            if param.arg not in arguments or arguments[param.arg] is None:
                continue
            value = arguments[param.arg]
            if param.location == "path":
                path_values[param.name] = value
            elif param.location == "query":
                items: list[Any] = value if isinstance(value, list) else [value]  # pyright: ignore[reportUnknownVariableType] -- JSON
                for item in items:
                    parts.query.append((param.name, scalar_text(item, f"query parameter {param.arg!r}")))
            else:
                text = scalar_text(value, f"header {param.arg!r}")
                if _CONTROL.search(text):
                    raise InvalidArgumentError(
                        f"header {param.arg!r} must not contain control characters (CR, LF, NUL ...)."
                    )
                if not text.isascii():
                    # HTTP sends header values as bytes; httpx encodes them as ASCII and would fail
                    # deep inside the call (an "internal error" instead of the model's mistake).
                    raise InvalidArgumentError(
                        f"header {param.arg!r} must be ASCII text; percent-encode other characters "
                        "if the API expects them."
                    )
                parts.headers[param.name] = text
        parts.path = expand_path(self.path, path_values)
        if self.body_schema is not None and self.body_arg in arguments:
            parts.body = arguments[self.body_arg]
            parts.has_body = True
        return parts


def _auth_owned(api: ApiConfig, location: str, name: str) -> bool:
    """Whether a parameter would let the model set the API's credential."""
    auth = api.auth
    if location == "header" and name.lower() in FORBIDDEN_HEADERS:
        return True
    return auth.type == "api_key" and auth.location == location and auth.name.lower() == name.lower()


def _params(api: ApiConfig, raw: list[tuple[str, str, bool, str, dict[str, Any]]]) -> list[Param]:
    params: list[Param] = []
    names = [name for name, *_ in raw]
    for name, location, required, description, schema in raw:
        if _auth_owned(api, location, name):
            continue
        arg = name
        if names.count(name) > 1 or not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", name):
            arg = re.sub(r"[^A-Za-z0-9_]+", "_", f"{location}_{name}").strip("_")[:64]
        params.append(Param(name, arg, location, required, description, schema))
    return params


def _from_spec(api: ApiConfig, spec: SpecOperation) -> Operation:
    assert api.openapi is not None
    override = api.openapi.overrides.get(spec.operation_id)
    name = (override.name if override and override.name else None) or tool_name(spec.operation_id)
    description = (override.description if override and override.description else None) or spec.summary
    raw = [(p.name, p.location, p.required, p.description, p.schema) for p in spec.parameters]
    return Operation(
        name=name,
        api=api,
        method=spec.method,
        path=spec.path,
        description=description or f"{spec.method} {spec.path}",
        params=_params(api, raw),
        body_schema=spec.body_schema,
        body_required=spec.body_required,
        output_schema=spec.output_schema,
    )


def build_operations(config: HttpConfig, documents: Mapping[str, dict[str, Any]]) -> list[Operation]:
    """Every operation the configuration offers; `documents` holds each API's OpenAPI document.

    Write operations of an API without `allow_writes` are left out (an explicit one is an error).

    Raises:
        ConfigError: two tools share a name, a write tool on a read-only API, an invalid schema.
    """
    operations: list[Operation] = []
    for api in config.apis:
        for index, tool in enumerate(api.tools):
            if tool.method not in READ_METHODS and not api.allow_writes:
                raise ConfigError(
                    f"apis.{api.name}.tools[{index}]: {tool.method} {tool.path} writes; "
                    "set allow_writes: true on the API to offer it"
                )
            raw = [(p.name, p.location, p.required, p.description, p.schema_) for p in tool.parameters]
            operations.append(
                Operation(
                    name=tool.name,
                    api=api,
                    method=tool.method,
                    path=tool.path,
                    description=tool.description or f"{tool.method} {tool.path}",
                    params=_params(api, raw),
                    body_schema=tool.body,
                    body_required=tool.body_required,
                    output_schema=tool.output_schema,
                )
            )
        if api.openapi is not None:
            for spec in select_operations(documents[api.name], api.openapi):
                if spec.method not in READ_METHODS and not api.allow_writes:
                    continue
                operations.append(_from_spec(api, spec))
    if not operations:
        raise ConfigError("no operation is selected: check the openapi include rules (and allow_writes)")
    seen: set[str] = set()
    for operation in operations:
        if operation.name in seen:
            raise ConfigError(
                f"tool name {operation.name!r} is used twice; rename one (openapi.overrides or tools[].name)"
            )
        seen.add(operation.name)
    return operations
