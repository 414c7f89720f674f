"""`bulkhead-http`: settings -> logging -> configuration -> server -> transport."""

import contextlib
import sys
from collections.abc import Sequence
from pathlib import Path

import anyio

from bulkhead.logging import configure_logging
from bulkhead.settings import ConfigError, load_settings
from bulkhead_http.settings import HttpSettings

__all__ = ["main"]


def _stop(message: str) -> None:
    sys.stderr.write(f"bulkhead-http: invalid configuration: {message}\n")
    raise SystemExit(2)


def main(argv: Sequence[str] | None = None) -> None:
    """Run bulkhead-http with settings from env vars and `argv`."""
    settings = load_settings(HttpSettings, argv)
    configure_logging(settings.log_level, settings.log_format)
    from bulkhead_http.config import load_config  # noqa: PLC0415
    from bulkhead_http.netguard import SystemResolver  # noqa: PLC0415
    from bulkhead_http.operations import build_operations  # noqa: PLC0415
    from bulkhead_http.runtime import DATA_DIR, demo_config, load_documents, running  # noqa: PLC0415

    resolver = SystemResolver()
    demo_socket = None
    try:
        if settings.config is None:
            from bulkhead_http.demo_api import bind_socket  # noqa: PLC0415

            demo_socket = bind_socket()
            config = demo_config(demo_socket.getsockname()[1])
            base = DATA_DIR
        else:
            config = load_config(settings.config)
            base = Path(settings.config).parent
        documents = anyio.run(load_documents, config, base, resolver)
        operations = build_operations(config, documents)
    except ConfigError as exc:
        _stop(str(exc))
        raise
    # The MCP SDK is most of the start-up time: import it only once the configuration is good.
    from bulkhead.serve import serve  # noqa: PLC0415
    from bulkhead_http.server import build_server  # noqa: PLC0415
    from bulkhead_http.upstream import Upstream  # noqa: PLC0415

    upstreams = {api.name: Upstream(api, resolver) for api in config.apis}
    server = build_server(settings, operations, upstreams)
    with contextlib.suppress(KeyboardInterrupt):
        serve(server, settings, resources=running(upstreams, demo_socket))
