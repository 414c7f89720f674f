"""The server's lifetime: the file watcher while it runs, the roots' descriptors closed after."""

import logging
from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager

import anyio

from bulkhead.notify import ChangeNotifier
from bulkhead_files.sandbox import Sandbox
from bulkhead_files.settings import FilesSettings
from bulkhead_files.watch import Watcher

__all__ = ["running"]

logger = logging.getLogger("bulkhead_files")


@asynccontextmanager
async def running(
    settings: FilesSettings, sandbox: Sandbox, notifier: ChangeNotifier
) -> AsyncGenerator[None]:
    """Serve `sandbox` for as long as the transport runs (watching it if asked), then release it."""
    logger.info("serving %s", ", ".join(root.path for root in sandbox.roots))
    try:
        async with anyio.create_task_group() as tg:
            stop = anyio.Event()
            if settings.watch:
                watcher = Watcher(
                    sandbox, notifier, polling=settings.watch_polling, debounce_ms=settings.watch_debounce_ms
                )
                tg.start_soon(watcher.run, stop)
            try:
                yield
            finally:
                stop.set()
                tg.cancel_scope.cancel()
    finally:
        sandbox.close()
