"""Confinement: every path is walked from a root's directory descriptor, one component at a time.

Nothing here trusts a path string. A path is split into names, checked against the deny list and
the hidden-file rule, and then opened with `openat(O_NOFOLLOW)` from the root's descriptor, one
component after another, so a component that is (or is swapped for) a symbolic link is never
followed by the kernel. A link is read instead and its target re-walked inside the same root, so
links that stay inside a root work and links that leave it are refused — and a check-then-swap race
cannot lead the walk outside, because there is no separate check. Final components are opened
with `O_NONBLOCK` and must be regular files (or directories where one is wanted), so a FIFO, a
socket or a device is refused without blocking.
"""

import errno
import os
import posixpath
import re
import stat
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from operator import attrgetter
from typing import TYPE_CHECKING, NamedTuple

from bulkhead.errors import InvalidArgumentError, NotFoundError

if TYPE_CHECKING:
    from bulkhead_files.settings import FilesSettings

__all__ = ["MAX_PATH_CHARS", "NameMatcher", "Opened", "Root", "Sandbox", "WalkEntry", "compile_patterns"]

MAX_PATH_CHARS = 4096
MAX_LINK_HOPS = 40

_BY_NAME = attrgetter("name")
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0)


class _Verdicts(dict[str, bool]):
    """A memo of a pure name -> bool function, bounded: past `MAX_VERDICTS` names it starts over."""

    MAX_VERDICTS = 1 << 15

    def __init__(self, compute: Callable[[str], bool]) -> None:
        super().__init__()
        self.compute = compute

    def __missing__(self, name: str) -> bool:
        verdict = self.compute(name)
        if len(self) >= self.MAX_VERDICTS:
            self.clear()
        self[name] = verdict
        return verdict


class NameMatcher:
    """Deny patterns for single names, matched case-insensitively and cheaply.

    Exact names are a set lookup, `prefix*` and `*suffix` patterns are `startswith`/`endswith`
    on tuples, and only the rest go through one regular expression: a walk over 100,000 names
    asks this once per name.
    """

    def __init__(self, patterns: Sequence[str]) -> None:
        import fnmatch  # noqa: PLC0415 -- only at start

        self.exact: set[str] = set()
        prefixes: list[str] = []
        suffixes: list[str] = []
        rest: list[str] = []
        for raw in patterns:
            pattern = raw.lower()
            body = pattern[1:] if pattern.startswith("*") else pattern
            body = body[:-1] if body.endswith("*") else body
            both_ends = pattern.startswith("*") and pattern.endswith("*")
            if not body or both_ends or any(ch in body for ch in "*?["):
                rest.append(fnmatch.translate(pattern))
            elif pattern.startswith("*"):
                suffixes.append(body)
            elif pattern.endswith("*"):
                prefixes.append(body)
            else:
                self.exact.add(pattern)
        self.prefixes = tuple(prefixes)
        self.suffixes = tuple(suffixes)
        self.regex = re.compile("|".join(f"(?:{r})" for r in rest)) if rest else None

        self.verdicts = _Verdicts(self.match)
        """`verdicts[name]` is `self(name)`, remembered: a directory listed again costs a dict lookup
        per name instead of a method call and four string tests."""

    def __call__(self, name: str) -> bool:
        """Whether `name` matches a deny pattern."""
        return self.verdicts[name]

    def match(self, name: str) -> bool:
        """Whether `name` matches a deny pattern (computed, not remembered)."""
        lowered = name.lower()
        return (
            lowered in self.exact
            or (bool(self.prefixes) and lowered.startswith(self.prefixes))
            or (bool(self.suffixes) and lowered.endswith(self.suffixes))
            or (self.regex is not None and self.regex.match(lowered) is not None)
        )


def compile_patterns(patterns: Sequence[str]) -> tuple[NameMatcher | None, re.Pattern[str] | None]:
    """(name matcher, relative-path regex) for deny patterns, matched case-insensitively.

    A pattern without `/` matches any single name in a path; one with `/` matches the whole
    relative path (and everything under it).
    """
    import fnmatch  # noqa: PLC0415 -- only at start

    names = [p for p in patterns if p and "/" not in p.strip("/")]
    paths = [
        fnmatch.translate(p.strip("/").lower()).removesuffix(r"\Z") + r"(?:/.*)?\Z"
        for p in patterns
        if "/" in p.strip("/")
    ]
    name_matcher = NameMatcher(names) if names else None
    path_re = re.compile("|".join(f"(?:{p})" for p in paths)) if paths else None
    return name_matcher, path_re


@dataclass(frozen=True)
class Root:
    """A served directory: its real path and a descriptor held open for the server's lifetime."""

    path: str
    fd: int

    def display(self, parts: Sequence[str]) -> str:
        """The absolute path of `parts` under this root, as results show it."""
        return posixpath.join(self.path, *parts) if parts else self.path


@dataclass
class Opened:
    """A confined file or directory, open. Close it (or use `with`)."""

    fd: int
    root: Root
    parts: tuple[str, ...]
    st: os.stat_result

    @property
    def path(self) -> str:
        """The absolute path shown to callers."""
        return self.root.display(self.parts)

    @property
    def is_dir(self) -> bool:
        """Whether this is a directory."""
        return stat.S_ISDIR(self.st.st_mode)

    def close(self) -> None:
        """Close the descriptor."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> "Opened":
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


class WalkEntry(NamedTuple):
    """A regular file met by `Sandbox.walk` (a tuple: a walk makes one per file)."""

    root: Root
    parts: tuple[str, ...]
    entry: os.DirEntry[str]

    @property
    def path(self) -> str:
        """The absolute path shown to callers."""
        return self.root.display(self.parts)

    @property
    def relative(self) -> str:
        """The path relative to its root."""
        return "/".join(self.parts)


def _unsendable(name: str) -> bool:
    """A name whose bytes are not UTF-8 (Python spells them as lone surrogates).

    No client can send such a name back and no JSON message can carry it: one of them used to
    break resources/list, find_files and search_text for the whole tree. Such entries are skipped.
    """
    if name.isascii():
        return False
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _outside(path: str) -> InvalidArgumentError:
    return InvalidArgumentError(
        f"{path[:200]!r} is outside the directories this server may read; use a path inside one of "
        "the roots (list_directory with no path lists them)."
    )


def _check_spelling(path: str) -> None:
    if len(path) > MAX_PATH_CHARS:
        raise InvalidArgumentError(f"The path is longer than {MAX_PATH_CHARS} characters.")
    if "\0" in path or any(ord(ch) < 32 for ch in path):
        raise InvalidArgumentError("The path contains a NUL or control character; paths cannot.")
    if "\\" in path:
        raise InvalidArgumentError("Use / to separate path components; backslashes are not accepted.")
    if path.startswith("~"):
        raise InvalidArgumentError(
            "Home-directory paths (~) are not served; use a path inside one of the roots."
        )


def _link_target(root: Root, done: Sequence[str], target: str, shown: str) -> list[str]:
    """The names under `root` a link at `done` pointing to `target` leads to; refused if outside."""
    if target.startswith("/"):
        clean = posixpath.normpath(target)
        if clean == root.path:
            return []
        if clean.startswith(root.path.rstrip("/") + "/"):
            return [n for n in clean[len(root.path) :].split("/") if n]
        raise _outside(shown)
    names = list(done)
    for part in target.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not names:
                raise _outside(shown)
            names.pop()
        else:
            names.append(part)
    return names


class Sandbox:
    """The roots, the deny list and the rules every path passes before anything is opened."""

    def __init__(
        self,
        roots: Sequence[str],
        *,
        deny: Sequence[str] = (),
        show_hidden: bool = False,
        allow_hard_links: bool = False,
    ) -> None:
        if not roots:
            raise ValueError("a sandbox needs at least one root")
        self.roots: list[Root] = []
        for path in roots:
            real = os.path.realpath(path)
            self.roots.append(Root(real, os.open(real, _DIR_FLAGS)))
        self.deny = list(deny)
        self._deny_name, self._deny_path = compile_patterns(deny)
        self.show_hidden = show_hidden
        self.allow_hard_links = allow_hard_links

    @classmethod
    def from_settings(cls, settings: "FilesSettings") -> "Sandbox":
        """The sandbox the settings describe (the bundled sample tree when no roots are given)."""
        from bulkhead_files.settings import sample_tree  # noqa: PLC0415

        roots = settings.roots or [str(sample_tree())]
        return cls(
            roots,
            deny=settings.deny,
            show_hidden=settings.show_hidden,
            allow_hard_links=settings.allow_hard_links,
        )

    def close(self) -> None:
        """Close the roots' descriptors."""
        for root in self.roots:
            os.close(root.fd)
        self.roots = []

    def narrowed(self, client_roots: Sequence[str]) -> "Sandbox":
        """A sandbox limited to the client's roots, intersected with ours; never wider.

        A client root inside one of ours becomes a root; one that contains ours keeps ours; the
        rest are ignored. No overlap at all leaves an empty sandbox that refuses everything.
        """
        kept: list[str] = []
        for given in client_roots:
            clean = posixpath.normpath(given)
            if not clean.startswith("/") or "\0" in clean:
                continue
            for root in self.roots:
                if clean == root.path or root.path.startswith(clean.rstrip("/") + "/"):
                    candidate = root.path
                elif clean.startswith(root.path + "/"):
                    try:
                        with self.open(clean, want="dir") as opened:
                            candidate = opened.path
                    except (InvalidArgumentError, NotFoundError):
                        continue
                else:
                    continue
                if candidate not in kept:
                    kept.append(candidate)
        narrowed = Sandbox.__new__(Sandbox)
        narrowed.roots = []
        for path in kept:
            # Opened through our own walk above, so it is inside a root; a fresh descriptor keeps
            # the narrowed sandbox independent of later renames.
            narrowed.roots.append(Root(path, os.open(path, _DIR_FLAGS)))
        narrowed.deny = self.deny
        narrowed._deny_name, narrowed._deny_path = self._deny_name, self._deny_path
        narrowed.show_hidden = self.show_hidden
        narrowed.allow_hard_links = self.allow_hard_links
        return narrowed

    # -- names -----------------------------------------------------------------------------------

    def name_allowed(self, name: str) -> bool:
        """Whether one directory entry name may be listed at all."""
        if (name.startswith(".") and not self.show_hidden) or _unsendable(name):
            return False
        return self._deny_name is None or not self._deny_name(name)

    def parts_allowed(self, parts: Sequence[str]) -> bool:
        """Whether a relative path (as names) may be served."""
        if not all(self.name_allowed(name) for name in parts):
            return False
        return self._deny_path is None or not self._deny_path.match("/".join(parts).lower())

    def _check_parts(self, parts: Sequence[str], shown: str) -> None:
        if not self.parts_allowed(parts):
            raise InvalidArgumentError(
                f"{shown[:200]!r} is not available: hidden files and secret-looking names (.git, .env, "
                "private keys, credentials ...) are not served."
            )

    def locate(self, path: str | None) -> tuple[Root, tuple[str, ...]]:
        """The root and the names of `path`, checked lexically (nothing is opened).

        Relative paths are taken from the first root; absolute paths must lie inside a root.

        Raises:
            InvalidArgumentError: malformed, outside every root, or denied.
        """
        if not self.roots:
            raise InvalidArgumentError(
                "No directory is available: the client's roots do not overlap the server's roots."
            )
        if path is None or (path in ("", ".", "/") and len(self.roots) == 1):
            return self.roots[0], ()
        _check_spelling(path)
        names = [name for name in path.split("/") if name not in ("", ".")]
        if ".." in names:
            raise InvalidArgumentError(
                f"{path[:200]!r} contains '..'; give a path inside one of the roots without '..'."
            )
        if not path.startswith("/"):
            root = self.roots[0]
            parts = tuple(names)
        else:
            joined = "/" + "/".join(names)
            for candidate in self.roots:
                if joined == candidate.path:
                    root, parts = candidate, ()
                    break
                if joined.startswith(candidate.path.rstrip("/") + "/"):
                    root = candidate
                    parts = tuple(n for n in joined[len(candidate.path) :].split("/") if n)
                    break
            else:
                raise _outside(path)
        self._check_parts(parts, path)
        return root, parts

    # -- opening ---------------------------------------------------------------------------------

    def open(self, path: str | None, *, want: str = "file") -> Opened:
        """Open `path` confined to its root: `want` is "file", "dir" or "any" (file or directory).

        Raises:
            InvalidArgumentError: outside the roots, denied, or not a regular file / directory.
            NotFoundError: no such file.
        """
        root, parts = self.locate(path)
        return self.open_parts(root, parts, want=want, shown=path or root.path)

    def open_parts(self, root: Root, parts: Sequence[str], *, want: str, shown: str) -> Opened:  # noqa: PLR0912, PLR0915 -- one walk, its cases in one place
        """Open `parts` under `root`, walking one component at a time without following links."""
        pending = list(parts)
        done: list[str] = []
        current = root.fd
        hops = 0
        try:
            while pending:
                name = pending.pop(0)
                last = not pending
                directory = not last or want == "dir"
                if last and not directory:
                    # Look before opening, so a FIFO or a device is never opened at all; the
                    # descriptor is compared with this afterwards.
                    try:
                        seen = os.stat(name, dir_fd=current, follow_symlinks=False)
                    except OSError as exc:
                        raise self._os_error(exc, shown) from None
                    if stat.S_ISLNK(seen.st_mode):
                        hops, pending = self._follow(root, current, name, done, pending, hops, shown)
                        done = []
                        current = self._reset(current, root)
                        continue
                    if want == "file" and not stat.S_ISREG(seen.st_mode):
                        if stat.S_ISDIR(seen.st_mode):
                            raise InvalidArgumentError(
                                f"{shown[:200]!r} is a directory; use list_directory for it."
                            )
                        raise self._not_regular(shown)
                    if want == "any" and not (stat.S_ISREG(seen.st_mode) or stat.S_ISDIR(seen.st_mode)):
                        raise self._not_regular(shown)
                    flags = _DIR_FLAGS if stat.S_ISDIR(seen.st_mode) else _FILE_FLAGS
                else:
                    flags = _DIR_FLAGS
                try:
                    opened = os.open(name, flags, dir_fd=current)
                except OSError as exc:
                    if exc.errno in (errno.ELOOP, errno.EMLINK) or (
                        exc.errno == errno.ENOTDIR and self._is_link(name, current)
                    ):
                        hops, pending = self._follow(root, current, name, done, pending, hops, shown)
                        done = []
                        current = self._reset(current, root)
                        continue
                    if exc.errno == errno.ENOTDIR and last:
                        raise InvalidArgumentError(
                            f"{shown[:200]!r} is a file, not a directory; use read_file for it."
                        ) from None
                    raise self._os_error(exc, shown) from None
                if current != root.fd:
                    os.close(current)
                current = opened
                done.append(name)
            st = os.fstat(current)
        except BaseException:
            if current != root.fd:
                os.close(current)
            raise
        result = Opened(current if current != root.fd else os.dup(root.fd), root, tuple(done), st)
        try:
            self._check_opened(result, want, shown)
        except BaseException:
            result.close()
            raise
        return result

    def _check_opened(self, opened: Opened, want: str, shown: str) -> None:
        mode = opened.st.st_mode
        if stat.S_ISDIR(mode):
            if want == "file":
                raise InvalidArgumentError(f"{shown[:200]!r} is a directory; use list_directory for it.")
            return
        if not stat.S_ISREG(mode):
            raise self._not_regular(shown)
        if want == "dir":
            raise InvalidArgumentError(f"{shown[:200]!r} is a file, not a directory; use read_file for it.")
        if opened.st.st_nlink > 1 and not self.allow_hard_links:
            raise InvalidArgumentError(
                f"{shown[:200]!r} has more than one hard link and is not served (a hard link can bring "
                "a file from outside the roots in)."
            )

    @staticmethod
    def _is_link(name: str, directory: int) -> bool:
        try:
            return stat.S_ISLNK(os.stat(name, dir_fd=directory, follow_symlinks=False).st_mode)
        except OSError:
            return False

    @staticmethod
    def _reset(current: int, root: Root) -> int:
        if current != root.fd:
            os.close(current)
        return root.fd

    def _follow(
        self,
        root: Root,
        current: int,
        name: str,
        done: list[str],
        pending: list[str],
        hops: int,
        shown: str,
    ) -> tuple[int, list[str]]:
        """The remaining walk after the symbolic link `name`, re-rooted; refused if it leaves `root`."""
        hops += 1
        if hops > MAX_LINK_HOPS:
            raise InvalidArgumentError(f"{shown[:200]!r} goes through too many symbolic links.")
        try:
            target = os.readlink(name, dir_fd=current)
        except OSError as exc:
            if exc.errno == errno.EINVAL:
                # No longer a link (it was swapped back): walk the same names again from the root.
                return hops, [*done, name, *pending]
            raise self._os_error(exc, shown) from None
        names = _link_target(root, done, target, shown)
        # A link must not lead to what a direct path could not reach (`notes -> .env`).
        self._check_parts(names + pending, shown)
        return hops, names + pending

    @staticmethod
    def _not_regular(shown: str) -> InvalidArgumentError:
        return InvalidArgumentError(
            f"{shown[:200]!r} is not a regular file (a FIFO, socket or device); only files and "
            "directories are served."
        )

    @staticmethod
    def _os_error(exc: OSError, shown: str) -> Exception:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            return NotFoundError(
                f"{shown[:200]!r} does not exist; use list_directory or find_files to see what does."
            )
        if exc.errno in (errno.EACCES, errno.EPERM):
            return InvalidArgumentError(f"{shown[:200]!r} is not readable by the server.")
        if exc.errno == errno.ENAMETOOLONG:
            return InvalidArgumentError("A component of the path is too long.")
        if exc.errno == errno.ELOOP:
            return InvalidArgumentError(f"{shown[:200]!r} goes through too many symbolic links.")
        return InvalidArgumentError(f"{shown[:200]!r} cannot be opened ({os.strerror(exc.errno or 0)}).")

    # -- walking ---------------------------------------------------------------------------------

    def scan(self, opened: Opened) -> list[os.DirEntry[str]]:
        """The allowed entries of an open directory, sorted by name."""
        hidden = not self.show_hidden
        deny_name = self._deny_name
        with os.scandir(opened.fd) as it:
            if deny_name is None:
                entries = [e for e in it if not ((hidden and e.name[0] == ".") or _unsendable(e.name))]
            else:
                denied = deny_name.verdicts  # a dict: no Python call per name once a name was seen
                entries = [
                    e
                    for e in it
                    if not ((hidden and e.name[0] == ".") or denied[e.name] or _unsendable(e.name))
                ]
        if self._deny_path is not None:
            entries = [e for e in entries if self.parts_allowed((*opened.parts, e.name))]
        entries.sort(key=_BY_NAME)
        return entries

    def walk(
        self,
        start: Opened | None = None,
        *,
        budget: list[int] | None = None,
        only: Callable[[str], bool] | None = None,
        deadline: float | None = None,
    ) -> Iterator[WalkEntry]:
        """Every allowed regular file under `start` (or every root), depth first, names sorted.

        Directories are opened from their parent's descriptor without following links, and denied
        or hidden names are pruned before they are entered. `budget` is a one-item list of entries
        still allowed to be visited; the walk stops when it reaches 0. `only`, when given, picks
        the file names worth yielding (the rest are passed over without building an entry).
        Past `deadline` (a `time.monotonic()` value) the walk stops as if the budget ran out.
        """
        budget = budget if budget is not None else [1 << 62]
        starts = [start] if start is not None else [None]
        for begin in starts:
            roots = [begin.root] if begin is not None else self.roots
            for root in roots:
                first_fd = begin.fd if begin is not None else root.fd
                first_parts = begin.parts if begin is not None else ()
                yield from self._walk_dir(
                    root, first_fd, first_parts, budget, own=False, only=only, deadline=deadline
                )
                if budget[0] <= 0:
                    return

    def _walk_dir(  # noqa: PLR0912 -- one explicit-stack walk with its filters inline
        self,
        root: Root,
        fd: int,
        parts: tuple[str, ...],
        budget: list[int],
        *,
        own: bool,
        only: Callable[[str], bool] | None = None,
        deadline: float | None = None,
    ) -> Iterator[WalkEntry]:
        # An explicit stack, not recursion: one generator frame per file met, however deep.
        hidden = not self.show_hidden
        deny_name = self._deny_name
        deny_path = self._deny_path
        frames: list[tuple[int, tuple[str, ...], Iterator[os.DirEntry[str]], bool]] = []

        def push(directory: int, at: tuple[str, ...], owned: bool) -> None:
            try:
                with os.scandir(directory) as it:
                    entries = sorted(it, key=_BY_NAME)
            except OSError:
                if owned:
                    os.close(directory)
                return
            frames.append((directory, at, iter(entries), owned))

        push(fd, parts, own)
        try:
            while frames:
                directory, at, entries, _ = frames[-1]
                entry = next(entries, None)
                if entry is None:
                    _, _, _, owned = frames.pop()
                    if owned:
                        os.close(directory)
                    continue
                budget[0] -= 1
                if budget[0] < 0:
                    return
                if deadline is not None and budget[0] & 1023 == 0 and time.monotonic() > deadline:
                    budget[0] = -1
                    return
                name = entry.name
                if (
                    (hidden and name[0] == ".")
                    or (deny_name is not None and deny_name(name))
                    or _unsendable(name)
                ):
                    continue
                try:
                    if entry.is_dir(follow_symlinks=False):
                        child = (*at, name)
                        if deny_path is None or not deny_path.match("/".join(child).lower()):
                            push(os.open(name, _DIR_FLAGS, dir_fd=directory), child, True)
                    elif (only is None or only(name)) and entry.is_file(follow_symlinks=False):
                        child = (*at, name)
                        if deny_path is None or not deny_path.match("/".join(child).lower()):
                            yield WalkEntry(root, child, entry)
                except OSError:
                    continue
        finally:
            for directory, _, _, owned in frames:
                if owned:
                    os.close(directory)
