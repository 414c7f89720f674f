"""Fixtures for the bulkhead-http tests: a real upstream on 127.0.0.1 and servers configured for it."""

from collections.abc import AsyncGenerator, AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from mcp import Client
from mcp_types import CallToolResult, TextContent

from bulkhead.testing import connect
from bulkhead_http.config import parse_config
from bulkhead_http.netguard import Resolver, SystemResolver
from bulkhead_http.operations import build_operations
from bulkhead_http.runtime import DATA_DIR, load_documents
from bulkhead_http.server import build_server
from bulkhead_http.settings import HttpSettings
from bulkhead_http.upstream import Upstream as Client_
from tests.http.upstream import Upstream, running_upstream


@pytest.fixture
async def upstream() -> AsyncIterator[Upstream]:
    async with running_upstream() as state:
        yield state


ServerFactory = Callable[..., AbstractAsyncContextManager[tuple[Client, dict[str, Client_]]]]


def tool(name: str, path: str, method: str = "GET", **extra: Any) -> dict[str, Any]:
    return {"name": name, "path": path, "method": method, **extra}


@asynccontextmanager
async def serving(
    config: dict[str, Any],
    *,
    resolver: Resolver | None = None,
    meta_tools: bool = False,
    base: Path = DATA_DIR,
    connected: list[str] | None = None,
    era: str = "legacy",
) -> AsyncGenerator[tuple[Client, dict[str, Client_]]]:
    """An in-memory client of bulkhead-http built from `config` (a dict as the YAML would give)."""
    parsed = parse_config(config, source="test.yaml", base=base)
    chosen = resolver or SystemResolver()
    documents = await load_documents(parsed, base, chosen)
    operations = build_operations(parsed, documents)
    upstreams = {api.name: Client_(api, chosen, connected=connected) for api in parsed.apis}
    settings = HttpSettings(meta_tools=meta_tools, audit="stderr")
    server = build_server(settings, operations, upstreams)
    try:
        async with connect(server, era) as client:
            yield client, upstreams
    finally:
        for item in upstreams.values():
            await item.aclose()


def text_of(result: CallToolResult) -> str:
    """The text of a result's first content block."""
    block = result.content[0]
    assert isinstance(block, TextContent)
    return block.text


def api(base_url: str, tools: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    """A one-API configuration."""
    return {"apis": [{"name": "test", "base_url": base_url, "tools": tools, **extra}]}


def redirecting_api(base_url: str, **extra: Any) -> dict[str, Any]:
    """One API under `base_url` with a tool `go(to)` that calls `/redirect?to=...`, redirects on."""
    tools = [tool("go", "/redirect", parameters=[{"name": "to", "in": "query", "required": True}])]
    return api(base_url, tools, allow_private_network=True, follow_redirects=True, **extra)
