"""Configuration and OpenAPI loading: clear one-line errors, `$ref`s resolved, cycles bounded."""

import json
from pathlib import Path
from typing import Any

import pytest

from bulkhead.settings import ConfigError
from bulkhead_http.config import IncludeRule, OpenApiConfig, load_config, parse_config
from bulkhead_http.openapi import MAX_NODES, load_document, resolve_schema, select_operations
from bulkhead_http.operations import build_operations, tool_name
from bulkhead_http.runtime import DATA_DIR, demo_config
from tests.http.conftest import api, tool


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "apis.yaml"
    path.write_text(text)
    return path


def test_the_demo_configuration_loads_and_points_at_the_given_port() -> None:
    config = demo_config(9999)
    assert config.apis[0].base_url == "http://127.0.0.1:9999/api"
    assert config.apis[0].allow_private_network


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("apis: [", "line 1 is not valid YAML"),
        ("apis: []", "apis: List should have at least 1 item"),
        ("apis:\n  - name: a\n    base_url: http://x.example\n", "an API needs `tools` or `openapi`"),
        (
            "apis:\n  - name: a\n    base_url: http://x.example\n    tools: [{name: t, path: /t}]\n"
            "    colour: red\n",
            "apis[0].colour: Extra inputs are not permitted",
        ),
        (
            "apis:\n  - name: a\n    base_url: http://x.example\n    tools: [{name: t, path: '/t/{id}'}]\n",
            "every {placeholder} needs a path parameter",
        ),
        (
            "apis:\n  - name: a\n    base_url: http://x.example\n    tools: [{name: t, path: /t}]\n"
            "    auth: {type: bearer}\n",
            "needs exactly one of `env` or `file`",
        ),
        (
            "apis:\n  - name: a\n    base_url: http://x.example\n    tools: [{name: t, path: /t}]\n"
            "    auth: {type: bearer, env: NOT_SET_ANYWHERE_42}\n",
            "environment variable NOT_SET_ANYWHERE_42 is not set",
        ),
        (
            "apis:\n  - name: a\n    base_url: http://x.example\n    tools: [{name: t, path: /t}]\n"
            "    auth: {type: bearer, file: missing-token.txt}\n",
            "cannot read",
        ),
        (
            "apis:\n  - name: a\n    base_url: http://x.example\n    tools: [{name: 'bad name', path: /t}]\n",
            "apis[0].tools[0].name",
        ),
    ],
)
def test_a_bad_configuration_is_one_line_naming_the_file_and_the_place(
    tmp_path: Path, text: str, message: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(path) in str(caught.value)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_a_secret_from_a_file_is_read_and_never_shown(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("file-secret-value-123\n")
    path = write(
        tmp_path,
        "apis:\n  - name: a\n    base_url: https://x.example\n    tools: [{name: t, path: /t}]\n"
        "    auth: {type: bearer, file: token}\n",
    )
    config = load_config(path)
    secret = config.apis[0].auth.secret
    assert secret is not None
    assert secret.get_secret_value() == "file-secret-value-123"
    assert "file-secret-value-123" not in repr(config)


def test_a_write_tool_needs_allow_writes() -> None:
    config = parse_config(
        api("http://x.example", [tool("w", "/w", method="POST")]), source="t", base=DATA_DIR
    )
    with pytest.raises(ConfigError, match="set allow_writes: true"):
        build_operations(config, {})


def test_two_tools_with_one_name_are_refused() -> None:
    config = parse_config(
        api("http://x.example", [tool("t", "/a"), tool("t", "/b")]), source="t", base=DATA_DIR
    )
    with pytest.raises(ConfigError, match="used twice"):
        build_operations(config, {})


def test_operation_ids_become_snake_case_tool_names() -> None:
    assert tool_name("listTickets") == "list_tickets"
    assert tool_name("get-user by id") == "get-user_by_id"
    assert tool_name("") == "operation"


def _doc(schemas: dict[str, Any], version: str = "3.1.0") -> dict[str, Any]:
    return {
        "openapi": version,
        "paths": {
            "/nodes/{node_id}": {
                "get": {
                    "operationId": "getNode",
                    "tags": ["nodes"],
                    "parameters": [
                        {"name": "node_id", "in": "path", "required": True, "schema": {"type": "string"}}
                    ],
                    "responses": {
                        "200": {
                            "description": "ok",
                            "content": {
                                "application/json": {"schema": {"$ref": "#/components/schemas/Node"}}
                            },
                        }
                    },
                },
                "delete": {
                    "operationId": "deleteNode",
                    "tags": ["nodes"],
                    "responses": {"204": {"description": "x"}},
                },
            }
        },
        "components": {"schemas": schemas},
    }


def test_a_self_referencing_schema_is_expanded_once_and_marked() -> None:
    node = {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "children": {"type": "array", "items": {"$ref": "#/components/schemas/Node"}},
        },
    }
    document = load_document(json.dumps(_doc({"Node": node})), source="doc")
    rules = OpenApiConfig(include=[IncludeRule(operation_id="getNode")], source="x")
    [operation] = select_operations(document, rules)
    assert operation.output_schema is not None
    children = operation.output_schema["properties"]["children"]["items"]
    assert children == {"description": "(recursive: Node)"}


def test_mutually_recursive_and_exploding_references_stay_bounded() -> None:
    schemas: dict[str, Any] = {
        "A": {"properties": {"b": {"$ref": "#/components/schemas/B"}}},
        "B": {"properties": {"a": {"$ref": "#/components/schemas/A"}}},
    }
    # Each level doubles: 2**40 nodes if expanded naively.
    for level in range(40):
        schemas[f"L{level}"] = {
            "properties": {
                "x": {"$ref": f"#/components/schemas/L{level + 1}"},
                "y": {"$ref": f"#/components/schemas/L{level + 1}"},
            }
        }
    schemas["L40"] = {"type": "string"}
    document = load_document(json.dumps(_doc(schemas)), source="doc")
    mutual = resolve_schema(document, {"$ref": "#/components/schemas/A"})
    assert mutual["properties"]["b"]["properties"]["a"] == {"description": "(recursive: A)"}
    exploded = resolve_schema(document, {"$ref": "#/components/schemas/L0"})
    assert len(json.dumps(exploded)) < MAX_NODES * 200


def test_openapi_30_nullable_becomes_a_null_type_and_unknown_refs_are_marked() -> None:
    schemas = {
        "Node": {
            "type": "object",
            "properties": {"note": {"type": "string", "nullable": True}, "ext": {"$ref": "other.yaml#/X"}},
        }
    }
    document = load_document(json.dumps(_doc(schemas, "3.0.3")), source="doc")
    schema = resolve_schema(document, {"$ref": "#/components/schemas/Node"})
    assert schema["properties"]["note"]["type"] == ["string", "null"]
    assert "unresolved reference" in schema["properties"]["ext"]["description"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"swagger": "2.0", "paths": {}}', r"OpenAPI version \(missing\) is not supported"),
        ('{"openapi": "4.0.0", "paths": {}}', "4.0.0 is not supported"),
        ('{"openapi": "3.1.0"}', "no `paths`"),
        ("[1, 2]", "no top-level object"),
        ("{: :", "neither JSON nor YAML"),
    ],
)
def test_documents_that_are_not_openapi_3_are_refused(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_document(text, source="doc")


def test_include_rules_select_by_id_tag_path_and_method_and_writes_need_allow_writes() -> None:
    document = load_document(json.dumps(_doc({"Node": {"type": "object"}})), source="doc")

    def names(rules: list[dict[str, Any]], **extra: Any) -> list[str]:
        config = parse_config(
            {
                "apis": [
                    {
                        "name": "n",
                        "base_url": "http://x.example",
                        "openapi": {"source": "x", "include": rules},
                        **extra,
                    }
                ]
            },
            source="t",
            base=DATA_DIR,
        )
        return [op.name for op in build_operations(config, {"n": document})]

    assert names([{"tag": "nodes"}]) == ["get_node"]
    assert names([{"tag": "nodes"}], allow_writes=True) == ["get_node", "delete_node"]
    assert names([{"path": "/nodes/*", "method": "DELETE"}], allow_writes=True) == ["delete_node"]
    assert names([{"operation_id": "getNode"}]) == ["get_node"]
    with pytest.raises(ConfigError, match="no operation is selected"):
        names([{"tag": "other"}])
