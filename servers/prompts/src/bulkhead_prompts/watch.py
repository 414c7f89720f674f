"""Hot reload: the library directory is watched and changed files are reloaded as they change.

Native file events (inotify, FSEvents) by default; polling (`watch_polling`) for file systems
that do not deliver them (network mounts, some container volumes). Changes are debounced: a burst
of writes (a `git pull`) becomes one reload and one notification.

Polling is ours, not watchfiles': its poll watcher compares modification times in whole seconds,
so a second edit within the same second as the first went unseen. Ours compares
(mtime_ns, ctime_ns, size, inode) of every prompt file at each poll.
"""

import logging
import os
from collections.abc import Awaitable, Callable
from pathlib import Path

import anyio
import anyio.to_thread
from anyio.abc import TaskStatus
from watchfiles._rust_notify import RustNotify  # the public awatch cannot say when it is watching

from bulkhead_prompts.files import is_prompt_file, scan
from bulkhead_prompts.library import Library
from bulkhead_prompts.models import Problem

__all__ = ["LibraryWatcher"]

logger = logging.getLogger("bulkhead_prompts.watch")

WAKE_MS = 1000
"""How long one wait for file events lasts before the watcher checks whether it should stop."""


class LibraryWatcher:
    """Watches `library.root`, reloads what changed, and awaits `on_change()` when the served set changes."""

    def __init__(
        self,
        library: Library,
        on_change: Callable[[], Awaitable[None]],
        *,
        polling: bool = False,
        debounce_ms: int = 200,
        poll_delay_ms: int = 300,
        step_ms: int = 50,
    ) -> None:
        self.library = library
        self.on_change = on_change
        self.polling = polling
        self.debounce_ms = debounce_ms
        self.poll_delay_ms = poll_delay_ms
        self.step_ms = min(step_ms, debounce_ms) if debounce_ms > 0 else step_ms
        self.ready = anyio.Event()
        """Set once file events are being received: a change made after this is never missed."""
        self.reloads = 0
        """Batches of changes applied so far (the first load after the watch started counts)."""
        self._reloaded = anyio.Event()
        self._stop = anyio.Event()

    async def wait_for_reloads(self, count: int) -> None:
        """Return once `count` batches have been applied. Bound it with a timeout."""
        while self.reloads < count:
            await self._reloaded.wait()

    def stop(self) -> None:
        """Ask `run` to return (within `step_ms`)."""
        self._stop.set()

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Watch until `stop()`: reload on every batch of changes, notify when the served set changed.

        Reports started (for `TaskGroup.start`) once changes can no longer be missed.
        """
        if self.polling:
            await self._run_polling(task_status)
            return
        root = self.library.root
        with RustNotify([str(root)], False, False, self.poll_delay_ms, True, True) as notify:
            # Anything that changed between the first load and the watch starting is caught here.
            await self._apply(None)
            self.ready.set()
            task_status.started()
            logger.info("watching the library for changes (native events)")
            while not self._stop.is_set():
                raw = await anyio.to_thread.run_sync(
                    notify.watch, self.debounce_ms, self.step_ms, WAKE_MS, self._stop
                )
                if isinstance(raw, set):
                    await self._apply({path for _change, path in raw})

    async def _run_polling(self, task_status: TaskStatus[None]) -> None:
        root = self.library.root
        snapshot = await anyio.to_thread.run_sync(_snapshot, root)
        await self._apply(None)
        self.ready.set()
        task_status.started()
        logger.info("watching the library for changes (polling every %d ms)", self.poll_delay_ms)
        while True:
            with anyio.move_on_after(self.poll_delay_ms / 1000):
                await self._stop.wait()
            if self._stop.is_set():
                return
            current = await anyio.to_thread.run_sync(_snapshot, root)
            changed = {
                path for path in current.keys() | snapshot.keys() if current.get(path) != snapshot.get(path)
            }
            snapshot = current
            if changed:
                await self._apply({str(root / path) for path in changed})

    def _relative(self, path: str) -> str | None:
        try:
            return Path(path).relative_to(self.library.root).as_posix()
        except ValueError:
            return None

    async def _apply(self, paths: set[str] | None) -> None:
        before = set(self.library.problems)
        try:
            changed = self._reload(paths)
            _report(before, self.library.problems)
            if changed:
                logger.info("library changed: %d prompts served", len(self.library))
                await self.on_change()
        except Exception:  # the watcher must outlive any one bad reload
            logger.exception("reloading the library failed; serving what was loaded before")
        finally:
            self.reloads += 1
            self._reloaded.set()
            self._reloaded = anyio.Event()

    def _reload(self, paths: set[str] | None) -> bool:
        if paths is None:
            return self.library.load_all()
        relative = [rel for path in paths if (rel := self._relative(path)) is not None]
        # A directory that appeared, vanished or moved can carry many prompts: rescan everything.
        if any(
            not is_prompt_file(rel) and (rel == "." or _is_directory(self.library.root / rel))
            for rel in relative
        ) or any(
            not os.path.lexists(self.library.root / rel) and not rel.lower().endswith(".md")
            for rel in relative
        ):
            return self.library.load_all()
        return self.library.reload(rel for rel in relative if is_prompt_file(rel))


def _snapshot(root: Path) -> dict[str, tuple[int, int, int, int]]:
    found: dict[str, tuple[int, int, int, int]] = {}
    for relative in scan(root):
        try:
            info = os.lstat(root / relative)
        except OSError:
            continue
        found[relative] = (info.st_mtime_ns, info.st_ctime_ns, info.st_size, info.st_ino)
    return found


def _is_directory(path: Path) -> bool:
    return path.is_dir() and not path.is_symlink()


def _report(before: set[Problem], after: list[Problem]) -> None:
    for problem in after:
        if problem not in before:
            logger.warning("library problem: %s", problem, extra={"problem": str(problem)})
