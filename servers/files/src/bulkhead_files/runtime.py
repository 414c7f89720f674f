"""The server's lifetime: the file watcher while it runs, the roots' descriptors closed after."""

import logging
from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager

from bulkhead.app import BulkheadServer
from bulkhead_files.sandbox import Sandbox
from bulkhead_files.settings import FilesSettings

__all__ = ["running"]

logger = logging.getLogger("bulkhead_files")


@asynccontextmanager
async def running(settings: FilesSettings, sandbox: Sandbox, server: BulkheadServer) -> AsyncGenerator[None]:
    """Serve `sandbox` for as long as the transport runs, then release it."""
    del server
    logger.info("serving %s", ", ".join(root.path for root in sandbox.roots))
    try:
        yield
    finally:
        sandbox.close()
