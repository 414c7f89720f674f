"""Finding and reading library files without ever leaving the library root.

A library is a directory a team keeps in git. Every path a prompt names (an embed) and every
prompt file found while scanning is resolved, checked to lie under the root, and opened without
following a final symlink; on Linux the opened descriptor is checked again (what was opened, not
only what was checked), so a file swapped for a symlink between check and open is refused too.
"""

import os
import stat
from pathlib import Path, PurePosixPath

__all__ = ["LibraryPathError", "is_prompt_file", "read_confined", "resolve_confined", "scan"]

PROMPT_SUFFIX = ".md"
IGNORED_NAMES = frozenset({"readme.md"})


class LibraryPathError(ValueError):
    """A library path that is malformed, leads outside the library, or cannot be read."""


def _check_relative(relative: str) -> PurePosixPath:
    if not relative or relative.strip() != relative:
        raise LibraryPathError("is empty or has leading or trailing spaces")
    if "\x00" in relative or "\\" in relative or any(ord(c) < 32 for c in relative):
        raise LibraryPathError("contains a backslash or a control character")
    if len(relative) > 1024:
        raise LibraryPathError("is longer than 1024 characters")
    path = PurePosixPath(relative)
    if path.is_absolute() or relative.startswith("~"):
        raise LibraryPathError("must be relative to the library root")
    for part in path.parts:
        if part == "..":
            raise LibraryPathError("must not contain '..'")
        if part.startswith("."):
            raise LibraryPathError("must not name a hidden file or directory")
    return path


def resolve_confined(root: Path, relative: str) -> Path:
    """The real path of `relative` under `root` (itself a real path), or `LibraryPathError`."""
    path = _check_relative(relative)
    real = Path(os.path.realpath(root.joinpath(*path.parts)))
    if not real.is_relative_to(root):
        raise LibraryPathError("leads outside the library (through a symlink)")
    return real


def _opened_path(fd: int) -> Path | None:
    try:
        return Path(os.readlink(f"/proc/self/fd/{fd}"))
    except OSError:
        return None


def read_confined(root: Path, relative: str, max_bytes: int) -> bytes:
    """The bytes of library file `relative`, at most `max_bytes` of them, or `LibraryPathError`."""
    real = resolve_confined(root, relative)
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(real, flags)
    except FileNotFoundError:
        raise LibraryPathError("does not exist") from None
    except OSError as exc:
        raise LibraryPathError(f"cannot be opened ({exc.strerror})") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise LibraryPathError("is not a regular file")
        opened = _opened_path(fd)
        if opened is not None and not opened.is_relative_to(root):
            raise LibraryPathError("leads outside the library (changed while it was opened)")
        if info.st_size > max_bytes:
            raise LibraryPathError(f"is {info.st_size} bytes, over the limit of {max_bytes}")
        chunks: list[bytes] = []
        size = 0
        while size <= max_bytes:
            chunk = os.read(fd, min(65536, max_bytes + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > max_bytes:
            raise LibraryPathError(f"grew over the limit of {max_bytes} bytes while it was read")
        return b"".join(chunks)
    finally:
        os.close(fd)


def _utf8(name: str) -> bool:
    """Whether a file name is UTF-8 (other bytes come as lone surrogates no JSON message can carry)."""
    if name.isascii():
        return True
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def is_prompt_file(relative: str) -> bool:
    """Whether a path relative to the root is a prompt file: `*.md`, not a README, nothing hidden.

    Directories whose name starts with `.` or `_` hold no prompts (`.git/`, `_shared/` for embeds).
    Names that are not UTF-8 are not prompts: one named after its file stem would make every
    prompts/list answer impossible to send.
    """
    path = PurePosixPath(relative)
    if path.suffix.lower() != PROMPT_SUFFIX or path.name.lower() in IGNORED_NAMES or not _utf8(relative):
        return False
    return not any(part.startswith((".", "_")) for part in path.parts)


def scan(root: Path) -> list[str]:
    """Every prompt file under `root`, relative and sorted. Symlinked directories are not entered."""
    found: list[str] = []
    for directory, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(name for name in dirnames if not name.startswith((".", "_")) and _utf8(name))
        base = Path(directory).relative_to(root)
        for name in filenames:
            relative = (base / name).as_posix()
            if is_prompt_file(relative):
                found.append(relative)
    return sorted(found)
