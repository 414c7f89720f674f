"""The SDK floor: a bare `MCPServer` with one trivial tool, nothing of Bulkhead's.

What `bench/transport.py` compares our servers against. It does only what any MCP server must:
import the SDK, build a server, serve `echo`. No settings class, no audit, no logging setup.

    python bench/floor_server.py                                  # stdio (the SDK's transport)
    python bench/floor_server.py --transport bulkhead-stdio       # stdio (Bulkhead's transport)
    python bench/floor_server.py --transport http --port 8765     # Streamable HTTP at /mcp

In http mode it runs the SDK's own `streamable_http_app()` under uvicorn on 127.0.0.1 and, once
listening, writes one JSON line with the bound port to stderr (`--port 0` picks a free port).
Importing uvicorn costs the stdio mode nothing: `mcp.server.mcpserver` already imports it.
`bulkhead-stdio` serves the same server over `bulkhead.serve.serve_stdio`, so the two stdio modes
differ only in the transport.
"""

import argparse
import json
import socket
import sys

import anyio
import uvicorn
from mcp.server.mcpserver import MCPServer


def build() -> MCPServer:
    server = MCPServer("floor")

    # async, like every Bulkhead tool: a sync tool would add a worker-thread hop to each call.
    @server.tool()
    async def echo(text: str) -> str:
        """Return `text` unchanged."""
        return text

    del echo
    return server


async def _serve_http(server: MCPServer, port: int) -> None:
    config = uvicorn.Config(
        server.streamable_http_app(host="127.0.0.1"),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
    )

    class _Announcing(uvicorn.Server):
        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets)
            for listener in self.servers:
                for sock in listener.sockets:
                    bound = sock.getsockname()[1]
                    sys.stderr.write(json.dumps({"message": "listening", "port": bound}) + "\n")
                    sys.stderr.flush()

    runner = _Announcing(config)
    await runner.serve()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--transport", choices=("stdio", "bulkhead-stdio", "http"), default="stdio")
    parser.add_argument("--port", type=int, default=8765)
    args = parser.parse_args()
    server = build()
    if args.transport == "stdio":
        server.run("stdio")
    elif args.transport == "bulkhead-stdio":
        from bulkhead.serve import serve_stdio  # noqa: PLC0415 -- only this mode imports Bulkhead

        anyio.run(serve_stdio, server)
    else:
        anyio.run(_serve_http, server, args.port)


if __name__ == "__main__":
    main()
