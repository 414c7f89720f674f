"""Start-up and lifetime: the configuration (or the demo), OpenAPI documents, the demo tracker.

With no `--config` the demo tracker is bound to a free port on 127.0.0.1 before anything else,
the demo configuration is pointed at it, and the tracker is served in-process for as long as the
server runs. OpenAPI documents given as URLs are fetched once at start through the same guard as
every other request of their API.
"""

import logging
import socket
from collections.abc import AsyncGenerator, Mapping
from contextlib import asynccontextmanager
from importlib.resources import files
from pathlib import Path
from typing import Any

import anyio
import yaml

from bulkhead.errors import BulkheadError
from bulkhead.settings import ConfigError
from bulkhead_http.config import ApiConfig, AuthConfig, HttpConfig, parse_config
from bulkhead_http.netguard import Resolver
from bulkhead_http.openapi import load_document
from bulkhead_http.operations import RequestParts
from bulkhead_http.upstream import Upstream
from bulkhead_http.urls import origin_of

__all__ = ["DATA_DIR", "demo_config", "load_documents", "running"]

logger = logging.getLogger("bulkhead_http")

DATA_DIR = Path(str(files("bulkhead_http").joinpath("data")))
"""The demo configuration and the demo tracker's OpenAPI document."""


def demo_config(port: int) -> HttpConfig:
    """The demo configuration, pointed at the demo tracker on 127.0.0.1:`port`."""
    data: Any = yaml.safe_load((DATA_DIR / "demo.yaml").read_text(encoding="utf-8"))
    data["apis"][0]["base_url"] = f"http://127.0.0.1:{port}/api"
    return parse_config(data, source="demo.yaml", base=DATA_DIR)


async def _fetch_document(api: ApiConfig, url: str, resolver: Resolver) -> str:
    same_origin = origin_of(url) == origin_of(api.base_url)
    # Credentials go to the API's own origin only; a document elsewhere is fetched without them.
    fetch_api = api.model_copy(
        update={"base_url": url, "follow_redirects": False, "auth": api.auth if same_origin else AuthConfig()}
    )
    upstream = Upstream(fetch_api, resolver)
    try:
        response = await upstream.call(RequestParts(method="GET", path=""), idempotent=True)
    except BulkheadError as exc:
        raise ConfigError(f"apis.{api.name}.openapi.source: cannot fetch {url}: {exc}") from None
    finally:
        await upstream.aclose()
    if response.status != 200 or response.truncated:
        raise ConfigError(
            f"apis.{api.name}.openapi.source: {url} answered {response.status}"
            + (" with more than max_response_bytes" if response.truncated else "")
        )
    return response.body.decode("utf-8", "replace")


async def load_documents(config: HttpConfig, base: Path, resolver: Resolver) -> dict[str, dict[str, Any]]:
    """Each API's OpenAPI document (files relative to `base`; URLs fetched through the guard)."""
    documents: dict[str, dict[str, Any]] = {}
    for api in config.apis:
        if api.openapi is None:
            continue
        source = api.openapi.source
        if source.startswith(("http://", "https://")):
            text = await _fetch_document(api, source, resolver)
        else:
            path = Path(source) if Path(source).is_absolute() else base / source
            try:
                text = await anyio.Path(path).read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise ConfigError(
                    f"apis.{api.name}.openapi.source: cannot read {path}: {type(exc).__name__}"
                ) from None
        documents[api.name] = load_document(text, source=f"apis.{api.name}.openapi.source ({source})")
    return documents


@asynccontextmanager
async def running(
    upstreams: Mapping[str, Upstream], demo_socket: socket.socket | None
) -> AsyncGenerator[None]:
    """Serve the demo tracker (when there is one) while the server runs; close the clients after."""
    try:
        async with anyio.create_task_group() as tg:
            if demo_socket is not None:
                from bulkhead_http.demo_api import create_app, serve_app  # noqa: PLC0415 -- demo only

                ready = anyio.Event()
                tg.start_soon(serve_app, create_app(), demo_socket, ready)
                await ready.wait()
                host, port = demo_socket.getsockname()[:2]
                logger.info("demo ticket tracker at http://%s:%s/api", host, port)
            try:
                yield
            finally:
                tg.cancel_scope.cancel()
    finally:
        for upstream in upstreams.values():
            await upstream.aclose()
