"""A bare MCPServer over Bulkhead's stdio transport, with tools that stress the wire.

Run as a script by tests/e2e/test_stdio_wire.py: `python stdio_server.py` (debug logs, JSON, on
stderr); `--bulkhead` makes it a `BulkheadServer` (audit records on stderr) with the same tools.
"""

import logging
import os
import sys

import anyio
from mcp.server.mcpserver import MCPServer

from bulkhead.app import BulkheadServer
from bulkhead.logging import configure_logging
from bulkhead.serve import serve_stdio
from bulkhead.settings import ServerSettings

logger = logging.getLogger("stdio_server")


def build(bulkhead: bool) -> MCPServer:
    server = BulkheadServer(ServerSettings()) if bulkhead else MCPServer("wire")

    @server.tool()
    async def echo(text: str) -> str:
        """Return `text` unchanged."""
        return text

    @server.tool()
    async def blob(size: int) -> str:
        """Return `size` bytes of text: 'a' .. 'z' repeated, then '$'."""
        return ("abcdefghijklmnopqrstuvwxyz" * (size // 26 + 1))[: size - 1] + "$"

    @server.tool()
    async def chatter(text: str) -> str:
        """Write `text` to stdout in every way a careless dependency might, then return it."""
        print(text)
        sys.stdout.write(text + "\n")
        sys.stdout.flush()
        os.write(1, (text + "\n").encode())
        await anyio.run_process(["/bin/sh", "-c", 'echo "$0"', text], stdout=None, stderr=None)
        return text

    @server.tool()
    async def hold() -> str:
        """Wait until cancelled (at most a minute), saying so on stderr."""
        logger.info("hold is holding")
        try:
            await anyio.sleep(60)
        except anyio.get_cancelled_exc_class():
            logger.info("hold was cancelled")
            raise
        return "held"

    del echo, blob, chatter, hold
    return server


if __name__ == "__main__":
    configure_logging("debug", "json")
    anyio.run(serve_stdio, build("--bulkhead" in sys.argv[1:]))
