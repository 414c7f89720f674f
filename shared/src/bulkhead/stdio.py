"""Claims the process's stdin and stdout for the MCP stdio wire (`bulkhead.wire`).

The same descriptor contract as the SDK's `mcp.server.stdio.stdio_server`: while serving, fd 0
reads the null device and fd 1 points at stderr, so a stray `print()` (ours, a dependency's, C
code's or a child process's) lands in stderr, never in the protocol. The protocol runs on private
descriptors above the standard range, close-on-exec (`fcntl.F_DUPFD_CLOEXEC`), and fd 0 / fd 1
are restored on exit.

POSIX only (Linux and macOS, which is what Bulkhead targets): it uses `fcntl`. On Linux the
protocol descriptors are private reopenings of the pipe or terminal (`/proc/self/fd/N`), so
`O_NONBLOCK` is not shared with the client or with stderr (a terminal's fd 0, 1 and 2 are often
one open file description); elsewhere they are duplicates, and the flags are restored on exit.
"""

import contextlib
import fcntl
import os
import stat
import sys
from collections.abc import AsyncGenerator, Callable, Generator
from contextlib import asynccontextmanager

from bulkhead.wire import ReadStream, StdioWriter, WireTap, fd_wire

__all__ = ["stdio_wire"]


def _private_descriptor(fd: int, flags: int) -> int:
    """A descriptor for what `fd` refers to, above the standard range and close-on-exec.

    On Linux a pipe or terminal is opened anew through /proc, which gives it an open file
    description (and so an `O_NONBLOCK` flag) of its own; otherwise, or when that fails, it is a
    duplicate that shares flags with `fd`. The reopening is non-blocking, so opening a pipe whose
    other end is already closed cannot hang.
    """
    mode = os.fstat(fd).st_mode
    if sys.platform == "linux" and (stat.S_ISFIFO(mode) or stat.S_ISCHR(mode)):
        with contextlib.suppress(OSError):
            reopened = os.open(f"/proc/self/fd/{fd}", flags | os.O_NOCTTY | os.O_CLOEXEC | os.O_NONBLOCK)
            if reopened > 2 and os.path.samestat(os.fstat(reopened), os.fstat(fd)):
                os.set_blocking(reopened, os.get_blocking(fd))
                return reopened
            os.close(reopened)
    return fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 3)


@contextlib.contextmanager
def _claimed(fd: int, flags: int, diversion: Callable[[], int]) -> Generator[int]:
    """Serve the wire on a private descriptor while `fd` points at `diversion()`; restore it after.

    Yields -1 when `fd` is not open (then there is no wire on that side).
    """
    try:
        wire = _private_descriptor(fd, flags)
    except OSError:
        yield -1
        return
    try:
        diverted = diversion()
        try:
            os.dup2(diverted, fd)
        finally:
            os.close(diverted)
        try:
            yield wire
        finally:
            if fd == 1:
                # Stray output buffered while serving belongs to stderr, not to the wire.
                with contextlib.suppress(Exception):
                    sys.stdout.flush()
            with contextlib.suppress(OSError):
                os.dup2(wire, fd)
    finally:
        os.close(wire)


def _stdout_diversion() -> int:
    try:
        return os.dup(2)
    except OSError:
        return os.open(os.devnull, os.O_WRONLY)


@asynccontextmanager
async def stdio_wire(tap: WireTap | None = None) -> AsyncGenerator[tuple[ReadStream, StdioWriter]]:
    """Claim stdin and stdout for the protocol; yield (read stream, write stream) for a session.

    While it runs fd 0 reads the null device and fd 1 writes to stderr; on exit the output still
    queued gets up to `FLUSH_SECONDS` to reach the client, and fd 0 and fd 1 are the wire again.
    """
    with (
        _claimed(0, os.O_RDONLY, lambda: os.open(os.devnull, os.O_RDONLY)) as wire_in,
        _claimed(1, os.O_WRONLY, _stdout_diversion) as wire_out,
    ):
        async with fd_wire(wire_in, wire_out, tap) as streams:
            yield streams
