"""The server's lifetime: the library watcher runs beside the transport and stops with it."""

import logging
from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager

import anyio

from bulkhead.notify import ChangeNotifier
from bulkhead_prompts.library import Library
from bulkhead_prompts.settings import PromptsSettings
from bulkhead_prompts.watch import LibraryWatcher

__all__ = ["running", "watcher_for"]

logger = logging.getLogger("bulkhead_prompts")


def watcher_for(settings: PromptsSettings, library: Library, notifier: ChangeNotifier) -> LibraryWatcher:
    """A watcher that reloads `library` and tells every client when its prompts change."""
    return LibraryWatcher(
        library,
        notifier.prompts_changed,
        polling=settings.watch_polling,
        debounce_ms=settings.reload_debounce_ms,
    )


@asynccontextmanager
async def running(
    settings: PromptsSettings, library: Library, notifier: ChangeNotifier
) -> AsyncGenerator[LibraryWatcher | None]:
    """Watch the library (when `settings.watching`) for as long as the block runs.

    The block starts only once the watcher is ready, so no change made after a client connected
    can be missed.
    """
    if not settings.watching:
        yield None
        return
    watcher = watcher_for(settings, library, notifier)
    async with anyio.create_task_group() as tg:
        await tg.start(watcher.run)
        try:
            yield watcher
        finally:
            watcher.stop()
