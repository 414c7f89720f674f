"""OpenAPI 3.0 / 3.1 documents: load, resolve local `$ref`s (cycles bounded), pick operations.

Resolution never hangs and never explodes: a reference already being expanded (a cycle) becomes a
placeholder schema, nesting is cut at a fixed depth, and the total number of nodes one schema may
expand to is capped, so a document built to blow up (a chain of doubling references) costs a
bounded amount of work.
"""

import copy
import fnmatch
from dataclasses import dataclass
from typing import Any

import yaml

from bulkhead.settings import ConfigError
from bulkhead_http.config import HTTP_METHODS, OpenApiConfig

__all__ = ["MAX_DEPTH", "MAX_NODES", "SpecOperation", "load_document", "resolve_schema", "select_operations"]

MAX_DEPTH = 16
"""Deepest nesting of an expanded schema; deeper parts become `{}` (anything)."""
MAX_NODES = 20_000
"""Most nodes one expanded schema may hold; the rest becomes `{}`."""

_METHODS = tuple(method.lower() for method in HTTP_METHODS)


@dataclass(frozen=True)
class SpecParameter:
    """A parameter of an OpenAPI operation, resolved."""

    name: str
    location: str
    required: bool
    description: str
    schema: dict[str, Any]


@dataclass(frozen=True)
class SpecOperation:
    """One OpenAPI operation, its references resolved."""

    operation_id: str
    method: str
    path: str
    summary: str
    tags: tuple[str, ...]
    parameters: tuple[SpecParameter, ...]
    body_schema: dict[str, Any] | None
    body_required: bool
    output_schema: dict[str, Any] | None


def load_document(text: str, *, source: str) -> dict[str, Any]:
    """Parse an OpenAPI document (JSON or YAML) and check its version."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        raise ConfigError(f"{source}: is neither JSON nor YAML") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: is not an OpenAPI document (no top-level object)")
    document: dict[str, Any] = data  # pyright: ignore[reportUnknownVariableType] -- parsed YAML
    version = str(document.get("openapi", ""))
    if not (version.startswith("3.0.") or version.startswith("3.1.")):
        raise ConfigError(
            f"{source}: OpenAPI version {version or '(missing)'} is not supported; use 3.0 or 3.1"
        )
    if not isinstance(document.get("paths"), dict):
        raise ConfigError(f"{source}: has no `paths` object")
    return document


class _Expander:
    def __init__(self, document: dict[str, Any], *, openapi_30: bool) -> None:
        self.document = document
        self.openapi_30 = openapi_30
        self.nodes = 0

    def lookup(self, ref: str) -> Any:
        if not ref.startswith("#/"):
            return None
        node: Any = self.document
        for raw in ref[2:].split("/"):
            key = raw.replace("~1", "/").replace("~0", "~")
            if isinstance(node, dict) and key in node:
                node = node[key]  # pyright: ignore[reportUnknownVariableType] -- JSON
            elif isinstance(node, list) and key.isdigit() and int(key) < len(node):  # pyright: ignore[reportUnknownArgumentType] -- JSON
                node = node[int(key)]  # pyright: ignore[reportUnknownVariableType] -- JSON
            else:
                return None
        return node  # pyright: ignore[reportUnknownVariableType] -- JSON

    def expand(self, node: Any, stack: tuple[str, ...] = (), depth: int = 0) -> Any:  # noqa: PLR0911 -- one return per kind of node
        self.nodes += 1
        if depth > MAX_DEPTH or self.nodes > MAX_NODES:
            return {}
        if isinstance(node, list):
            return [self.expand(item, stack, depth + 1) for item in node]  # pyright: ignore[reportUnknownVariableType] -- JSON
        if not isinstance(node, dict):
            return copy.copy(node)
        ref = node.get("$ref")  # pyright: ignore[reportUnknownMemberType, reportUnknownVariableType] -- JSON
        if isinstance(ref, str):
            if ref in stack:
                return {"description": f"(recursive: {ref.rsplit('/', 1)[-1]})"}
            target = self.lookup(ref)
            if target is None:
                return {"description": f"(unresolved reference {ref[:100]})"}
            return self.expand(target, (*stack, ref), depth + 1)
        out: dict[str, Any] = {}
        for key, value in node.items():  # pyright: ignore[reportUnknownVariableType] -- JSON
            if key in ("example", "examples", "xml", "externalDocs", "discriminator"):
                continue
            out[str(key)] = self.expand(value, stack, depth + 1)  # pyright: ignore[reportUnknownArgumentType] -- JSON
        if self.openapi_30 and out.pop("nullable", False) is True and "type" in out:
            kind = out["type"]
            out["type"] = [kind, "null"] if isinstance(kind, str) else kind
        return out


def resolve_schema(document: dict[str, Any], node: Any) -> dict[str, Any]:
    """`node` with every local `$ref` expanded, bounded in depth and size."""
    expander = _Expander(document, openapi_30=str(document.get("openapi", "")).startswith("3.0."))
    result = expander.expand(node)
    return result if isinstance(result, dict) else {}  # pyright: ignore[reportUnknownVariableType] -- JSON


def _json_schema_of(document: dict[str, Any], content: Any) -> dict[str, Any] | None:
    if not isinstance(content, dict):
        return None
    for media, entry in content.items():  # pyright: ignore[reportUnknownVariableType] -- JSON
        kind = str(media).split(";", 1)[0].strip().lower()  # pyright: ignore[reportUnknownArgumentType] -- JSON
        if (kind == "application/json" or kind.endswith("+json")) and isinstance(entry, dict):
            schema = entry.get("schema")  # pyright: ignore[reportUnknownMemberType, reportUnknownVariableType] -- JSON
            return resolve_schema(document, schema) if schema is not None else {}
    return None


def _success_schema(document: dict[str, Any], responses: Any) -> dict[str, Any] | None:
    if not isinstance(responses, dict):
        return None
    for code in ("200", "201", "202", "203", "2XX", "2xx"):
        response = responses.get(code)  # pyright: ignore[reportUnknownMemberType, reportUnknownVariableType] -- JSON
        if response is not None:
            resolved = resolve_schema(document, response)
            return _json_schema_of(document, resolved.get("content"))
    return None


def _parameters(document: dict[str, Any], raw: list[Any]) -> tuple[SpecParameter, ...]:
    found: dict[tuple[str, str], SpecParameter] = {}
    for item in raw:
        param = resolve_schema(document, item)
        name, location = str(param.get("name", "")), str(param.get("in", ""))
        if not name or location not in ("path", "query", "header"):
            continue  # cookie parameters and malformed entries are not offered
        schema = param.get("schema")
        found[(name, location)] = SpecParameter(
            name=name,
            location=location,
            required=bool(param.get("required", location == "path")),
            description=str(param.get("description", "")),
            schema=schema if isinstance(schema, dict) else {"type": "string"},  # pyright: ignore[reportUnknownArgumentType] -- JSON
        )
    return tuple(found.values())


def _matches(config: OpenApiConfig, operation_id: str, method: str, path: str, tags: tuple[str, ...]) -> bool:
    for rule in config.include:
        if rule.operation_id is not None and rule.operation_id != operation_id:
            continue
        if rule.tag is not None and rule.tag not in tags:
            continue
        if rule.method is not None and rule.method != method:
            continue
        if rule.path is not None and not fnmatch.fnmatchcase(path, rule.path):
            continue
        return True
    return False


def select_operations(document: dict[str, Any], config: OpenApiConfig) -> list[SpecOperation]:
    """The operations of `document` that `config.include` allows, in document order."""
    selected: list[SpecOperation] = []
    paths: dict[str, Any] = document["paths"]
    for path, raw_item in paths.items():
        if not isinstance(raw_item, dict) or not str(path).startswith("/"):
            continue
        item: dict[str, Any] = raw_item  # pyright: ignore[reportUnknownVariableType] -- JSON
        if isinstance(item.get("$ref"), str):
            target = _Expander(document, openapi_30=False).lookup(item["$ref"])
            item = target if isinstance(target, dict) else {}  # pyright: ignore[reportUnknownVariableType] -- JSON
        shared: list[Any] = item.get("parameters") or []
        for method in _METHODS:
            operation = item.get(method)
            if not isinstance(operation, dict):
                continue
            op: dict[str, Any] = operation  # pyright: ignore[reportUnknownVariableType] -- JSON
            operation_id = str(op.get("operationId") or f"{method}_{path}")
            raw_tags: list[Any] = op.get("tags") or []
            tags = tuple(str(tag) for tag in raw_tags)
            if not _matches(config, operation_id, method.upper(), str(path), tags):
                continue
            body = resolve_schema(document, op["requestBody"]) if op.get("requestBody") else None
            body_schema = None
            body_required = False
            if isinstance(body, dict):
                body_schema = _json_schema_of(document, body.get("content"))
                body_required = bool(body.get("required", False))
            summary = str(op.get("summary") or "")
            detail = str(op.get("description") or "")
            selected.append(
                SpecOperation(
                    operation_id=operation_id,
                    method=method.upper(),
                    path=str(path),
                    summary=(summary + ("\n\n" + detail if detail and detail != summary else "")).strip(),
                    tags=tags,
                    parameters=_parameters(document, [*shared, *(op.get("parameters") or [])]),
                    body_schema=body_schema,
                    body_required=body_required,
                    output_schema=_success_schema(document, op.get("responses")),
                )
            )
    return selected
