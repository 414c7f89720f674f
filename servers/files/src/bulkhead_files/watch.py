"""Live updates: watch the roots and turn file changes into MCP change notifications.

Added or removed files make one (debounced) `resources/list_changed`; every changed file makes a
`resources/updated` for its URI, which `ChangeNotifier` sends only to handshake-era connections
that subscribed to it and publishes for 2026-07-28 listen streams. Hidden and denied files never
cause a notification, so a change to `.env` reveals nothing.
"""

import logging

import anyio
from watchfiles import Change, awatch  # pyright: ignore[reportUnknownVariableType] -- its stop_event type names trio

from bulkhead.notify import ChangeNotifier
from bulkhead_files.resources import file_uri
from bulkhead_files.sandbox import Sandbox

__all__ = ["Watcher"]

logger = logging.getLogger("bulkhead_files")


class Watcher:
    """Watches a sandbox's roots (inotify, or polling for containers) and notifies clients."""

    def __init__(
        self, sandbox: Sandbox, notifier: ChangeNotifier, *, polling: bool = False, debounce_ms: int = 200
    ) -> None:
        self.sandbox = sandbox
        self.notifier = notifier
        self.polling = polling
        self.debounce_ms = debounce_ms
        self.batches = 0
        """Batches of raw changes seen (hidden and denied files included); tests wait on it."""
        self.changed = anyio.Event()

    def _served(self, path: str) -> bool:
        for root in self.sandbox.roots:
            prefix = root.path.rstrip("/") + "/"
            if path.startswith(prefix):
                return self.sandbox.parts_allowed([p for p in path[len(prefix) :].split("/") if p])
        return False

    async def run(self, stop: anyio.Event | None = None) -> None:
        """Watch until `stop` is set (or the task is cancelled)."""
        paths = [root.path for root in self.sandbox.roots]
        if not paths:
            return
        logger.info("watching %s for changes%s", ", ".join(paths), " (polling)" if self.polling else "")
        # watchfiles logs every batch at info ("3 changes detected"): our notifications say enough.
        logging.getLogger("watchfiles").setLevel(logging.WARNING)
        async for changes in awatch(
            *paths,
            watch_filter=None,
            debounce=self.debounce_ms,
            step=min(50, self.debounce_ms),
            stop_event=stop,
            force_polling=self.polling,
            poll_delay_ms=300,
            ignore_permission_denied=True,
        ):
            await self.dispatch(changes)

    async def dispatch(self, changes: set[tuple[Change, str]]) -> None:
        """Notify clients about one batch of changes."""
        listed = False
        updated: set[str] = set()
        for change, path in changes:
            if not self._served(path):
                continue
            if change in (Change.added, Change.deleted):
                listed = True
            updated.add(file_uri(path))
        try:
            if listed:
                await self.notifier.resources_changed()
            for uri in sorted(updated):
                await self.notifier.resource_updated(uri)
        finally:
            self.batches += 1
            self.changed.set()
            self.changed = anyio.Event()
