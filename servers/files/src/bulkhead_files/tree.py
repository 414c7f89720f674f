"""The read-only operations on a `Sandbox`: listing, ranged reads, name and text search, file info.

Everything here is synchronous and bounded (entries, bytes, matches, time); the server runs each
call on a worker thread in one hop. No MCP imports.
"""

import functools
import mimetypes
import os
import re
import stat
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import anyio
import regex

from bulkhead.errors import BulkheadError, InvalidArgumentError
from bulkhead_files.sandbox import Opened, Root, Sandbox, WalkEntry

__all__ = [
    "INLINE_READ_BYTES",
    "MAX_LINE_CHARS",
    "BinaryTextError",
    "FileRange",
    "Found",
    "Limits",
    "TextHit",
    "TextHits",
    "Tree",
    "compile_glob",
    "guess_mime",
    "iso_time",
]

INLINE_READ_BYTES = 64 * 1024
"""Reads up to this size run on the event loop; larger ones on a worker thread."""

INLINE_DIR_BYTES = 64 * 1024
"""Directories whose st_size is at most this (about 1,800 entries on ext4) are listed on the event
loop: the worker-thread hop cost more than scanning them. Bigger ones go to a worker thread."""

MAX_LINE_CHARS = 400
"""A matching line is returned cut to this many characters."""

_MATCH_LINE_CHARS = 10_000
"""Lines are matched on at most this many characters, so one huge line costs a bounded time."""

_EXTRA_TYPES = {
    ".md": "text/markdown",
    ".markdown": "text/markdown",
    ".csv": "text/csv",
    ".toml": "application/toml",
    ".yaml": "application/yaml",
    ".yml": "application/yaml",
    ".rs": "text/x-rust",
    ".go": "text/x-go",
    ".ts": "text/x-typescript",
    ".tsx": "text/x-typescript",
    ".sql": "application/sql",
    ".sh": "text/x-shellscript",
}


def guess_mime(name: str) -> str | None:
    """The MIME type a file's name suggests, or None."""
    _, ext = os.path.splitext(name)
    extra = _EXTRA_TYPES.get(ext.lower())
    if extra:
        return extra
    return mimetypes.guess_type(name, strict=False)[0]


def iso_time(seconds: float) -> str:
    """A POSIX timestamp as ISO 8601 UTC with a `Z`, to the second."""
    return _iso_second(int(seconds))


@functools.lru_cache(maxsize=4096)
def _iso_second(second: int) -> str:
    # Files of one directory mostly share a handful of seconds: listing 1,000 of them formats few.
    return datetime.fromtimestamp(second, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


class _TimedPattern:
    """A glob with many wildcards, matched by `regex` under the search's deadline.

    `*a*a*a*a*a*a*a*a*b` against a long name of a's backtracks for hours in `re`, which holds
    the GIL while it does: the whole server would freeze. Past the deadline `match` raises
    `TimeoutError`, which the searches report as their time limit.
    """

    def __init__(self, source: str, deadline: float) -> None:
        self._compiled = regex.compile(source, regex.IGNORECASE | regex.DOTALL)
        self._deadline = deadline

    def match(self, text: str) -> object:
        """A match object or None, like `re.Pattern.match`; `TimeoutError` past the deadline."""
        return self._compiled.match(text, timeout=max(self._deadline - time.monotonic(), 0.001))


_MAX_PLAIN_STARS = 2
"""Globs with more runs of `*` than this are matched under a deadline (two keep `re` polynomial)."""


def compile_glob(pattern: str, deadline: float | None = None) -> tuple[re.Pattern[str] | _TimedPattern, bool]:
    """(regex, whole_path) for a glob: `*` within a name, `**` across directories, `?`, `[...]`.

    A pattern without `/` matches file names; one with `/` matches paths relative to the search
    start. Matching is case-insensitive. With a `deadline` (monotonic), a glob with many
    wildcards is matched with a timeout (`TimeoutError` once it passes).
    """
    text = pattern.strip("/")
    while text.startswith("**/"):
        # `**/x` with no other `/` is the name pattern `x` (at any depth): no path to build per file.
        text = text[3:]
    whole_path = "/" in text
    source = _translate(text)
    try:
        compiled = re.compile(source, re.IGNORECASE | re.DOTALL)
    except re.error:
        raise InvalidArgumentError(
            f"The glob {pattern[:100]!r} is malformed; check its [...] classes."
        ) from None
    if deadline is not None and len(re.findall(r"\*+", text)) > _MAX_PLAIN_STARS:
        return _TimedPattern(source, deadline), whole_path
    return compiled, whole_path


def _translate(text: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if text.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
            continue
        if text.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        if ch == "*":
            out.append("[^/]*")
        elif ch == "?":
            out.append("[^/]")
        elif ch == "[":
            end = text.find("]", i + 2 if text[i + 1 : i + 2] in ("!", "]") else i + 1)
            if end == -1:
                out.append(re.escape(ch))
            else:
                body = text[i + 1 : end].replace("\\", "\\\\")
                if body.startswith("!"):
                    body = "^" + body[1:]
                out.append(f"[{body}]")
                i = end
        else:
            out.append(re.escape(ch))
        i += 1
    return "".join(out) + r"\Z"


def _substring(glob: str) -> str | None:
    """`text` for the globs `*text*` and `**/*text*` (the common name search), else None."""
    body = glob.strip("/")
    while body.startswith("**/"):
        body = body[3:]
    if len(body) > 2 and body[0] == "*" and body[-1] == "*" and not any(c in body[1:-1] for c in "*?[]/"):
        return body[1:-1].lower()
    return None


@dataclass(frozen=True)
class Limits:
    """How far one call may go."""

    page_size: int = 1000
    max_read_bytes: int = 1_048_576
    search_timeout: float = 5.0
    max_search_matches: int = 200
    max_search_file_bytes: int = 4 * 1_048_576
    max_walk_entries: int = 500_000


@dataclass(frozen=True)
class FileRange:
    """Bytes read from a file, decoded when they are text."""

    path: str
    size: int
    offset: int
    data: bytes
    text: str | None
    mime_type: str
    next_offset: int | None


@dataclass(frozen=True)
class Found:
    """A page of find results."""

    paths: list[str]
    more: bool
    stopped: str | None


@dataclass(frozen=True)
class TextHit:
    """One matching line."""

    path: str
    line: int
    text: str


@dataclass
class TextHits:
    """What a text search found, and why it stopped early if it did."""

    hits: list[TextHit] = field(default_factory=list[TextHit])
    files_searched: int = 0
    stopped: str | None = None


class BinaryTextError(ValueError):
    """The bytes are not UTF-8 text."""


def _decode(data: bytes, *, at_end: bool) -> tuple[str, int]:
    """(text, bytes used): UTF-8 text, trimmed back to a character boundary unless at the end."""
    if b"\0" in data:
        raise BinaryTextError
    try:
        return data.decode("utf-8"), len(data)
    except UnicodeDecodeError as exc:
        # A range may cut a character in two: give back up to 3 bytes and let the next read start there.
        if not at_end and exc.start >= len(data) - 3 and exc.reason == "unexpected end of data":
            return data[: exc.start].decode("utf-8"), exc.start
        raise BinaryTextError from None


def _kind(mode: int) -> str:
    if stat.S_ISREG(mode):
        return "file"
    if stat.S_ISDIR(mode):
        return "directory"
    if stat.S_ISLNK(mode):
        return "symlink"
    return "other"


_MARK = {"file": "", "directory": "/", "symlink": "@", "other": "|"}


def _entry_kind(entry: os.DirEntry[str]) -> str:
    # Most entries are regular files: one question answers them (without following links).
    if entry.is_file(follow_symlinks=False):
        return "file"
    if entry.is_dir(follow_symlinks=False):
        return "directory"
    if entry.is_symlink():
        return "symlink"
    return "other"


class Tree:
    """Read-only operations over a sandbox, each bounded by `limits`."""

    def __init__(self, sandbox: Sandbox, limits: Limits) -> None:
        self.sandbox = sandbox
        self.limits = limits

    # -- directories -----------------------------------------------------------------------------

    def list_directory(
        self, path: str | None, offset: int, limit: int, *, details: bool = False
    ) -> tuple[str, list[str], list[dict[str, Any]] | None, int]:
        """(directory path, a page of names, their details if asked, total entries).

        Names are sorted and marked like `ls -F` (`dir/`, `link@`, `fifo|`), from the directory
        itself: no stat per entry unless `details` (type, size, modified time as plain dicts).
        """
        box = self.sandbox
        if (path is None or path in ("", "/")) and len(box.roots) > 1:
            names = [r.path + "/" for r in box.roots][offset : offset + limit]
            extra = [{"name": r.path, "type": "directory"} for r in box.roots][offset : offset + limit]
            return "/", names, extra if details else None, len(box.roots)
        with box.open(path, want="dir") as opened:
            return self.list_opened(opened, offset, limit, details=details)

    async def list_directory_async(
        self, path: str | None, offset: int, limit: int, *, details: bool = False
    ) -> tuple[str, list[str], list[dict[str, Any]] | None, int]:
        """`list_directory` without blocking the event loop on big directories.

        Opening runs inline (a few `openat`/`fstat` calls); a directory of at most
        `INLINE_DIR_BYTES` is scanned inline too, a bigger one (or any, with details: a stat per
        entry) on a worker thread.
        """
        box = self.sandbox
        if (path is None or path in ("", "/")) and len(box.roots) > 1:
            return self.list_directory(path, offset, limit, details=details)
        with box.open(path, want="dir") as opened:
            if not details and opened.st.st_size <= INLINE_DIR_BYTES:
                return self.list_opened(opened, offset, limit)
            # Not abandoned on cancellation, so the descriptor outlives the scan.
            return await anyio.to_thread.run_sync(
                functools.partial(self.list_opened, opened, offset, limit, details=details)
            )

    def list_opened(
        self, opened: Opened, offset: int, limit: int, *, details: bool = False
    ) -> tuple[str, list[str], list[dict[str, Any]] | None, int]:
        """`list_directory` of a directory already open."""
        entries = self.sandbox.scan(opened)
        page = entries[offset : offset + limit]
        if not details:
            try:
                names = [
                    e.name if e.is_file(follow_symlinks=False) else e.name + _MARK[_entry_kind(e)]
                    for e in page
                ]
                return opened.path, names, None, len(entries)
            except OSError:  # an entry without a type that vanished: leave it out, as below
                pass
        names: list[str] = []
        found: list[dict[str, Any]] = []
        for entry in page:
            try:
                if not details:
                    names.append(entry.name + _MARK[_entry_kind(entry)])
                    continue
                st = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            kind = _kind(st.st_mode)
            names.append(entry.name + _MARK[kind])
            item: dict[str, Any] = {"name": entry.name, "type": kind}
            if kind == "file":
                item["size"] = st.st_size
            item["modified"] = _iso_second(int(st.st_mtime))
            found.append(item)
        return opened.path, names, found if details else None, len(entries)

    # -- reading ---------------------------------------------------------------------------------

    def read(self, path: str, offset: int = 0, length: int | None = None) -> FileRange:
        """Up to `length` bytes (capped by max_read_bytes) from `offset`, decoded if text."""
        with self.sandbox.open(path) as opened:
            return self.read_opened(opened, offset, length)

    def read_opened(self, opened: Opened, offset: int, length: int | None) -> FileRange:
        """Read a range of an already opened file (see `read`)."""
        size = opened.st.st_size
        want = min(length if length is not None else self.limits.max_read_bytes, self.limits.max_read_bytes)
        data = os.pread(opened.fd, want, offset) if offset < size or size == 0 else b""
        # A file that grew since fstat is read up to what we asked for; the size reported is what we saw.
        size = max(size, offset + len(data))
        end = offset + len(data)
        at_end = end >= size
        mime = guess_mime(opened.parts[-1] if opened.parts else "")
        text: str | None
        try:
            text, used = _decode(data, at_end=at_end)
            end = offset + used
            data = data[:used]
            if mime is None or mime.startswith(("application/octet-stream", "image/", "audio/", "video/")):
                mime = "text/plain" if mime is None or mime == "application/octet-stream" else mime
        except BinaryTextError:
            text = None
            mime = mime if mime and not mime.startswith("text/") else "application/octet-stream"
        if (
            mime.startswith(("image/", "audio/", "video/"))
            and text is not None
            and not mime.endswith("svg+xml")
        ):
            text = None
        return FileRange(
            path=opened.path,
            size=size,
            offset=offset,
            data=data,
            text=text,
            mime_type=mime,
            next_offset=end if end < size else None,
        )

    async def read_async(self, path: str, offset: int = 0, length: int | None = None) -> FileRange:
        """`read` without blocking the event loop on big reads.

        Opening is a few `openat`/`fstat` calls on metadata and runs inline; a range of at most
        `INLINE_READ_BYTES` is read inline too, anything larger on a worker thread. A thread hop
        costs more than reading a small file from the page cache.
        """
        with self.sandbox.open(path) as opened:
            want = min(
                length if length is not None else self.limits.max_read_bytes, self.limits.max_read_bytes
            )
            if min(want, max(opened.st.st_size - offset, 0)) <= INLINE_READ_BYTES:
                return self.read_opened(opened, offset, length)
            # Not abandoned on cancellation, so the descriptor outlives the read.
            return await anyio.to_thread.run_sync(self.read_opened, opened, offset, length)

    def info(self, path: str) -> tuple[Opened, str | None]:
        """The opened file or directory (closed) and its guessed MIME type."""
        with self.sandbox.open(path, want="any") as opened:
            mime = None if opened.is_dir else guess_mime(opened.parts[-1] if opened.parts else "")
            return opened, mime

    # -- searching -------------------------------------------------------------------------------

    def _start(self, path: str | None) -> Opened | None:
        if path is None or (path in ("", "/") and len(self.sandbox.roots) > 1):
            return None
        return self.sandbox.open(path, want="dir")

    def _files(
        self,
        path: str | None,
        budget: list[int],
        only: Callable[[str], bool] | None = None,
        deadline: float | None = None,
    ) -> Iterator[WalkEntry]:
        start = self._start(path)
        try:
            yield from self.sandbox.walk(start, budget=budget, only=only, deadline=deadline)
        finally:
            if start is not None:
                start.close()

    def find(self, glob: str, path: str | None, offset: int, limit: int) -> Found:
        """Files whose name (or relative path, for a glob with `/`) matches, one page at a time."""
        deadline = time.monotonic() + self.limits.search_timeout
        pattern, whole_path = compile_glob(glob, deadline)
        budget = [self.limits.max_walk_entries]
        start_depth = 0
        if path is not None and not (path in ("", "/") and len(self.sandbox.roots) > 1):
            start_depth = len(self.sandbox.locate(path)[1])
        found: list[str] = []
        seen = 0
        checked = 0
        literal = _substring(glob)
        only: Callable[[str], bool] | None = None
        if literal is not None:
            only = lambda name: literal in name.lower()  # noqa: E731 -- the hot path of a name search
        elif not whole_path:
            only = lambda name: pattern.match(name) is not None  # noqa: E731
        try:
            for entry in self._files(path, budget, only, deadline):
                checked += 1
                if checked & 15 == 0 and time.monotonic() > deadline:
                    return Found(found, more=True, stopped="time limit reached")
                if whole_path and not pattern.match("/".join(entry.parts[start_depth:])):
                    continue
                seen += 1
                if seen <= offset:
                    continue
                if len(found) == limit:
                    return Found(found, more=True, stopped=None)
                found.append(entry.path)
        except TimeoutError:  # a many-wildcard glob ran out of time on one name
            return Found(found, more=True, stopped="time limit reached")
        if budget[0] < 0:
            timed_out = time.monotonic() > deadline
            return Found(
                found, more=timed_out, stopped="time limit reached" if timed_out else "entry limit reached"
            )
        return Found(found, more=False, stopped=None)

    def search_text(  # noqa: PLR0912 -- the bounds are the point
        self,
        pattern: str,
        *,
        is_regex: bool,
        case_sensitive: bool,
        path: str | None,
        glob: str | None,
        max_matches: int,
    ) -> TextHits:
        """Lines that contain `pattern` (literal, or a regular expression), bounded in time and matches."""
        flags = 0 if case_sensitive else regex.IGNORECASE
        try:
            compiled = regex.compile(pattern if is_regex else regex.escape(pattern), flags)
        except regex.error as exc:
            raise InvalidArgumentError(f"The regular expression is invalid: {exc}.") from None
        limits = self.limits
        deadline = time.monotonic() + limits.search_timeout
        name_filter = compile_glob(glob, deadline)[0] if glob else None
        budget = [limits.max_walk_entries]
        result = TextHits()
        cap = min(max_matches, limits.max_search_matches)
        for root, parts, shown in self._targets(path, budget):
            if time.monotonic() > deadline:
                result.stopped = "time limit reached"
                return result
            try:
                if name_filter is not None and not name_filter.match(parts[-1]):
                    continue
            except TimeoutError:  # a many-wildcard glob ran out of time on one name
                result.stopped = "time limit reached"
                return result
            try:
                with self.sandbox.open_parts(root, parts, want="file", shown=shown) as opened:
                    if opened.st.st_size > limits.max_search_file_bytes:
                        continue
                    data = os.pread(opened.fd, limits.max_search_file_bytes, 0)
            except (BulkheadError, OSError):
                # Vanished, swapped or unreadable since the walk saw it: skipped, not fatal.
                continue
            if b"\0" in data[:8192]:
                continue
            result.files_searched += 1
            text = data.decode("utf-8", "replace")
            for number, line in enumerate(text.splitlines(), start=1):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    result.stopped = "time limit reached"
                    return result
                try:
                    hit = compiled.search(line[:_MATCH_LINE_CHARS], timeout=remaining)
                except TimeoutError:
                    result.stopped = "time limit reached"
                    return result
                if hit is None:
                    continue
                if len(result.hits) == cap:
                    result.stopped = "match limit reached"
                    return result
                result.hits.append(TextHit(shown, number, line[:MAX_LINE_CHARS]))
        if budget[0] < 0:
            result.stopped = "entry limit reached"
        return result

    def _targets(self, path: str | None, budget: list[int]) -> Iterator[tuple[Root, tuple[str, ...], str]]:
        """(root, names, shown path) of every file to search: one file, or all under a directory."""
        if path is not None and not (path in ("", "/") and len(self.sandbox.roots) > 1):
            with self.sandbox.open(path, want="any") as opened:
                if not opened.is_dir:
                    yield opened.root, opened.parts, opened.path
                    return
        for entry in self._files(path, budget):
            yield entry.root, entry.parts, entry.path
