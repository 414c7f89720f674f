"""The MCP stdio wire over any pair of descriptors: non-blocking, on the asyncio event loop.

`fd_wire(read_fd, write_fd)` yields the same pair of streams the SDK's
`mcp.server.stdio.stdio_server` yields (a context-carrying memory stream of
`SessionMessage | Exception` in, a `SessionMessage` sink out), at a fraction of the cost per
message; `bulkhead.stdio` runs it on the process's own stdin and stdout.

- The SDK reads and writes through `anyio.wrap_file`: a worker-thread round trip per line read,
  and two (write, flush) per line written. Here pipes, sockets and terminals are non-blocking:
  the event loop reads when there is input, each line is parsed where it was read (bytes straight
  into the SDK's JSON-RPC message adapter), and a reply is written with one `os.write` from the
  task that produced it. When the client does not keep up (the pipe is full, `EAGAIN`), the rest
  waits in order in a queue that the loop writes out as the pipe becomes writable, and the
  producer waits before queueing more than `WRITE_HIGH_WATER` bytes. Regular files (stdin from a
  file, say) are read and written directly.
- A line longer than `MAX_LINE_BYTES` is dropped as it arrives (bounded memory) and answered with
  a JSON-RPC error once it ends; any other line that is not a JSON-RPC message gets the JSON-RPC
  error the spec asks for. The SDK hands such lines to the session as an `Exception` item, which
  only logs them at debug level and leaves the client waiting.
- End of input ends the read stream (the session then ends, as with the SDK); a client that closes
  its end of the output ends it too, since nothing more can be answered.

POSIX only (Linux and macOS): `O_NONBLOCK` and the event loop's `add_reader` / `add_writer`.
"""

import asyncio
import contextlib
import contextvars
import logging
import os
import stat
from collections import deque
from collections.abc import AsyncGenerator, Callable
from contextlib import asynccontextmanager
from types import TracebackType
from typing import Protocol, Self, TypeAlias

import anyio
import mcp_types
from anyio.streams.memory import MemoryObjectSendStream
from mcp.shared._context_streams import ContextReceiveStream  # pyright: ignore[reportPrivateUsage] -- the read stream the SDK's own stdio transport gives its session
from mcp.shared.message import SessionMessage
from mcp_types import INVALID_REQUEST, PARSE_ERROR, ErrorData, JSONRPCError
from pydantic import ValidationError

__all__ = [
    "FLUSH_SECONDS",
    "MAX_LINE_BYTES",
    "READ_CHUNK",
    "WRITE_HIGH_WATER",
    "LineSplitter",
    "ReadStream",
    "StdioWriter",
    "WireTap",
    "encode_message",
    "fd_wire",
]

logger = logging.getLogger("bulkhead.wire")

MAX_LINE_BYTES = 4 * 1024 * 1024
"""The longest stdin line read (the same cap the SDK puts on an HTTP request body)."""

READ_CHUNK = 256 * 1024
"""Bytes read from stdin per readiness event (asyncio's own pipe transports read as much)."""

WRITE_HIGH_WATER = 1024 * 1024
"""A sender waits until stdout drains once more than this many bytes are queued for it."""

FLUSH_SECONDS = 2.0
"""How long output still queued at shutdown may take to reach a client that reads slowly."""

_IOV_MAX = 64

_Envelope: TypeAlias = tuple[contextvars.Context, SessionMessage | Exception]

_ADAPTER = mcp_types.jsonrpc_message_adapter

ReadStream: TypeAlias = ContextReceiveStream[SessionMessage | Exception]
"""What the session reads: parsed messages (the SDK's stdio transport gives it the same kind)."""


def _oversized_error() -> bytes:
    data = ErrorData(
        code=INVALID_REQUEST,
        message=f"Invalid Request: the line is longer than {MAX_LINE_BYTES} bytes and was discarded",
    )
    return encode_message(JSONRPCError(jsonrpc="2.0", id=None, error=data))


def _garbage_error(exc: ValidationError) -> bytes:
    """The JSON-RPC error for a line that is not a JSON-RPC message (its id is unknowable)."""
    if any(error["type"] == "json_invalid" for error in exc.errors()):
        data = ErrorData(code=PARSE_ERROR, message="Parse error: the line is not valid JSON")
    else:
        data = ErrorData(
            code=INVALID_REQUEST,
            message="Invalid Request: the line is not a JSON-RPC 2.0 request, notification or response",
        )
    return encode_message(JSONRPCError(jsonrpc="2.0", id=None, error=data))


class WireTap(Protocol):
    """Something that sees every message on the wire and may answer some requests itself."""

    def attach(self, writer: "StdioWriter") -> None:
        """The writer to answer on; called once, before the first message."""

    def inbound(self, message: mcp_types.JSONRPCMessage) -> bool:
        """A parsed message from the client: True if the tap took it (the session never sees it)."""
        ...

    def outbound(self, message: mcp_types.JSONRPCMessage) -> None:
        """A message the session is about to write."""


def encode_message(message: mcp_types.JSONRPCMessage) -> bytes:
    """One line of the wire, exactly as the SDK's stdio transport writes it."""
    return message.__pydantic_serializer__.to_json(message, by_alias=True, exclude_unset=True) + b"\n"


def _parse(line: bytes) -> mcp_types.JSONRPCMessage:
    """A JSON-RPC message from one line; raises `ValidationError` when it is not one.

    Bytes go to the validator as they are. Only when that fails and the line is not UTF-8 is it
    decoded with U+FFFD replacements and tried again, which is what the SDK does to every line.
    """
    try:
        return _ADAPTER.validate_json(line, by_name=False)
    except ValidationError:
        try:
            line.decode()
        except UnicodeDecodeError:
            return _ADAPTER.validate_json(line.decode("utf-8", "replace"), by_name=False)
        raise


def _pollable(fd: int) -> bool:
    """Whether the event loop can wait on `fd` (regular files and /dev/null are always ready)."""
    mode = os.fstat(fd).st_mode
    return stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode) or os.isatty(fd)


# --- writing ------------------------------------------------------------------------------------


class StdioWriter:
    """The session's write stream: each message becomes one line on the wire, in order.

    `send` writes at once when nothing is queued; what the pipe does not take waits in a queue
    that the event loop writes out whenever the pipe is writable. A sender waits while more than
    `WRITE_HIGH_WATER` bytes are queued, so a client that stops reading holds the server back
    instead of growing its memory.
    """

    def __init__(self, fd: int, on_broken: Callable[[], None], tap: WireTap | None = None) -> None:
        self._fd = fd
        self._loop = asyncio.get_running_loop()
        self._on_broken = on_broken
        self._tap = tap
        self._queue: deque[memoryview] = deque()
        self._queued = 0
        self._pollable = fd >= 0 and _pollable(fd)
        self._watching = False
        self._drained: list[asyncio.Future[None]] = []
        self._closed = False
        self.broken = fd < 0
        """The client closed its end: every further line is dropped."""

    @property
    def queued(self) -> int:
        """Bytes waiting for the client to read."""
        return self._queued

    async def send(self, item: SessionMessage, /) -> None:
        """Write `item` as one line; wait first if the client is far behind."""
        if self._closed:
            raise anyio.ClosedResourceError
        if self.broken:
            raise anyio.BrokenResourceError
        if self._tap is not None:
            self._tap.outbound(item.message)
        self.write(encode_message(item.message))
        if self._queued > WRITE_HIGH_WATER:
            await self.drain()
        if self.broken:
            raise anyio.BrokenResourceError

    def write(self, data: bytes) -> None:
        """Write `data` now, or queue it behind what is already waiting."""
        if self.broken:
            return
        if not self._queue:
            try:
                written = os.write(self._fd, data)
            except (BlockingIOError, InterruptedError):
                written = 0
            except OSError as exc:
                self._break(exc)
                return
            if written == len(data):
                return
            data = memoryview(data)[written:]  # pyright: ignore[reportAssignmentType] -- bytes-like either way
        self._queue.append(memoryview(data))
        self._queued += len(data)
        self._watch()

    def _watch(self) -> None:
        if self._watching:
            return
        self._watching = True
        if self._pollable:
            logger.debug("stdout is full; %d bytes wait for the client to read", self._queued)
            self._loop.add_writer(self._fd, self._on_writable)
        else:
            self._loop.call_soon(self._on_writable)  # a regular file never refuses a write for long

    def _on_writable(self) -> None:
        while self._queue:
            buffers = [self._queue[i] for i in range(min(_IOV_MAX, len(self._queue)))]
            try:
                written = os.writev(self._fd, buffers)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                self._break(exc)
                return
            self._queued -= written
            while written:
                head = self._queue[0]
                if written < len(head):
                    self._queue[0] = head[written:]
                    break
                written -= len(head)
                self._queue.popleft()
            if not self._pollable:
                break
        if self._queue:
            if not self._pollable:
                self._loop.call_soon(self._on_writable)
            return
        self._unwatch()
        self._wake()

    def _unwatch(self) -> None:
        if self._watching and self._pollable:
            self._loop.remove_writer(self._fd)
        self._watching = False

    def _wake(self) -> None:
        waiters, self._drained = self._drained, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def _break(self, exc: OSError) -> None:
        if not self.broken:
            logger.info("the client closed stdout (%s); no more replies can be sent", exc.strerror or exc)
        self.broken = True
        self._queue.clear()
        self._queued = 0
        self._unwatch()
        self._wake()
        self._on_broken()

    async def drain(self) -> None:
        """Wait until everything queued has been written (or the client has gone)."""
        if not self._queue:
            return
        waiter = self._loop.create_future()
        self._drained.append(waiter)
        await waiter

    def detach(self) -> None:
        """Stop writing: whatever is still queued is dropped."""
        self._unwatch()
        self._queue.clear()
        self._queued = 0
        self.broken = True
        self._wake()

    async def aclose(self) -> None:
        """Refuse further messages; what is queued is still written (see `fd_wire`)."""
        self._closed = True

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> None:
        await self.aclose()


# --- reading ------------------------------------------------------------------------------------


class LineSplitter:
    """Splits a byte stream into lines (without their newline), in bounded memory.

    A line longer than `max_line` bytes is dropped as its bytes arrive and comes out as None once
    it ends, so the caller can still answer it.
    """

    def __init__(self, max_line: int = MAX_LINE_BYTES) -> None:
        self._max_line = max_line
        self._partial = bytearray()
        self._skipping = False  # inside a line over max_line, until its newline

    def feed(self, chunk: bytes) -> list[bytes | None]:
        """The lines that `chunk` completes; its unfinished rest is kept for the next call."""
        lines: list[bytes | None] = []
        start = 0
        end = chunk.find(b"\n")
        if end >= 0 and (self._partial or self._skipping):
            self._partial += chunk[:end]
            lines.append(self._take())
            start = end + 1
            end = chunk.find(b"\n", start)
        while end >= 0:
            lines.append(chunk[start:end] if end - start <= self._max_line else None)
            start = end + 1
            end = chunk.find(b"\n", start)
        if start < len(chunk) and not self._skipping:
            self._partial += chunk[start:] if start else chunk
            if len(self._partial) > self._max_line:
                self._skipping = True
                self._partial.clear()
        return lines

    def end(self) -> list[bytes | None]:
        """The last line when the stream ended without a newline (none when it did not)."""
        return [self._take()] if self._partial or self._skipping else []

    def _take(self) -> bytes | None:
        line = None if self._skipping or len(self._partial) > self._max_line else bytes(self._partial)
        self._partial.clear()
        self._skipping = False
        return line


class _Reader:
    """Turns stdin into parsed messages on the session's read stream, in order.

    The loop calls `_on_readable` when stdin has data; each complete line is parsed there and
    handed straight to the session when it is waiting for one. What it cannot take yet waits in
    `_backlog`, reading pauses, and `pump` feeds the backlog in with backpressure.
    """

    def __init__(
        self,
        fd: int,
        send: MemoryObjectSendStream[_Envelope],
        writer: StdioWriter,
        tap: WireTap | None = None,
    ) -> None:
        self._fd = fd
        self._tap = tap
        self._loop = asyncio.get_running_loop()
        self._send = send
        self._writer = writer
        self._pollable = fd >= 0 and _pollable(fd)
        self._lines = LineSplitter()
        self._backlog: deque[SessionMessage] = deque()
        self._eof = fd < 0
        self._stopped = False
        self._reading = False
        self._wakeup: asyncio.Future[None] | None = None

    def start(self) -> None:
        if self._pollable:
            self._resume()
        else:
            self._wake_pump()  # files and /dev/null: the pump reads them directly

    def stop(self) -> None:
        """End the read stream now (the client went away, or the server is stopping)."""
        self._stopped = self._eof = True
        self._backlog.clear()
        self._pause()
        self._send.close()
        self._wake_pump()

    def _resume(self) -> None:
        if not self._reading and not self._stopped:
            self._reading = True
            self._loop.add_reader(self._fd, self._on_readable)

    def _pause(self) -> None:
        if self._reading:
            self._reading = False
            self._loop.remove_reader(self._fd)

    def _wake_pump(self) -> None:
        if self._wakeup is not None and not self._wakeup.done():
            self._wakeup.set_result(None)

    def _read(self) -> bytes | None:
        """The next bytes of stdin (empty at its end), or None when there are none yet."""
        try:
            return os.read(self._fd, READ_CHUNK)
        except (BlockingIOError, InterruptedError):
            return None
        except OSError as exc:
            logger.info("stdin failed (%s); treating it as closed", exc.strerror or exc)
            return b""

    def _on_readable(self) -> None:
        chunk = self._read()
        if chunk is not None:
            self._feed(chunk)
            self._deliver()

    def _feed(self, chunk: bytes) -> None:
        """Parse the lines `chunk` completes (at the end of stdin, the unterminated rest too)."""
        if chunk:
            lines = self._lines.feed(chunk)
        else:
            self._eof = True
            self._pause()
            lines = self._lines.end()
        for line in lines:
            self._line(line)

    def _line(self, line: bytes | None) -> None:
        if line is None:
            logger.warning("answered a stdin line longer than %d bytes; it was discarded", MAX_LINE_BYTES)
            self._writer.write(_oversized_error())
            return
        try:
            message = _parse(line)
        except ValidationError as exc:
            logger.warning("answered a stdin line that is not a JSON-RPC message")
            self._writer.write(_garbage_error(exc))
            return
        if self._tap is not None and self._tap.inbound(message):
            return
        self._backlog.append(SessionMessage(message))

    def _deliver(self) -> None:
        """Hand the backlog to a waiting session; pause reading while any of it is left."""
        while self._backlog:
            try:
                self._send.send_nowait((contextvars.copy_context(), self._backlog[0]))
            except anyio.WouldBlock:
                break
            except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                self.stop()
                return
            self._backlog.popleft()
        if self._backlog or self._writer.queued > WRITE_HIGH_WATER:
            self._pause()
            self._wake_pump()
        elif self._eof:
            self._send.close()
            self._wake_pump()

    async def pump(self) -> None:
        """Feed what `_deliver` could not, read non-pollable stdin, and resume reading."""
        while not self._stopped:
            if not self._pollable and not self._eof and (chunk := self._read()) is not None:
                self._feed(chunk)
            while self._backlog:
                message = self._backlog.popleft()
                try:
                    await self._send.send((contextvars.copy_context(), message))
                except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                    self.stop()
                    return
            await self._writer.drain()
            if self._eof:
                self._send.close()
                return
            if self._pollable:
                self._resume()
                self._wakeup = self._loop.create_future()
                await self._wakeup
            else:
                await anyio.lowlevel.checkpoint()


@asynccontextmanager
async def fd_wire(
    read_fd: int, write_fd: int, tap: WireTap | None = None
) -> AsyncGenerator[tuple[ReadStream, StdioWriter]]:
    """The protocol over two descriptors (-1: none); yield (read stream, write stream) for a session.

    Pipes, sockets and terminals are made non-blocking while the wire runs. On exit the output
    still queued gets up to `FLUSH_SECONDS` to reach the client; the descriptors stay open. A
    `tap` sees every message both ways and may answer requests itself (`bulkhead.direct`).
    """
    restore = [(fd, os.get_blocking(fd)) for fd in {read_fd, write_fd} if fd >= 0 and _pollable(fd)]
    for fd, _ in restore:
        os.set_blocking(fd, False)
    send, receive = anyio.create_memory_object_stream[_Envelope](0)
    reader: _Reader | None = None

    def client_gone() -> None:
        if reader is not None:
            reader.stop()

    writer = StdioWriter(write_fd, client_gone, tap)
    if tap is not None:
        tap.attach(writer)
    reader = _Reader(read_fd, send, writer, tap)
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(reader.pump)
            reader.start()
            try:
                yield ContextReceiveStream(receive), writer
            finally:
                reader.stop()
                tg.cancel_scope.cancel()
    finally:
        with anyio.move_on_after(FLUSH_SECONDS, shield=True):
            await writer.drain()
        writer.detach()
        receive.close()
        for fd, blocking in restore:
            with contextlib.suppress(OSError):
                os.set_blocking(fd, blocking)
