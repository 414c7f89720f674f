"""`bulkhead.wire`: line splitting, and the wire over real pipes and files in this process.

`bulkhead.stdio` (the claim of fd 0 / fd 1) and the whole transport under a real client are in tests/e2e.
"""

import json
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anyio
import mcp_types
import pytest
from mcp.shared.message import SessionMessage
from mcp_types import JSONRPCRequest, JSONRPCResponse

from bulkhead.wire import MAX_LINE_BYTES, WRITE_HIGH_WATER, LineSplitter, ReadStream, StdioWriter, fd_wire

pytestmark = pytest.mark.anyio

STREAM = b'{"a": 1}\n\n{"b": [1, 2]}\nlast without newline'
LINES = [b'{"a": 1}', b"", b'{"b": [1, 2]}']


# --- LineSplitter -------------------------------------------------------------------------------


def _split(data: bytes, size: int, max_line: int = MAX_LINE_BYTES) -> list[bytes | None]:
    splitter = LineSplitter(max_line)
    lines: list[bytes | None] = []
    for start in range(0, len(data), size):
        lines += splitter.feed(data[start : start + size])
    return lines + splitter.end()


@pytest.mark.parametrize("size", [1, 2, 3, 7, 9, 10, 64, 10_000])
def test_lines_come_out_the_same_however_the_bytes_are_chunked(size: int) -> None:
    assert _split(STREAM, size) == [*LINES, b"last without newline"]


def test_a_stream_that_ends_with_a_newline_has_no_extra_last_line() -> None:
    assert _split(STREAM[: STREAM.rindex(b"\n") + 1], 5) == LINES


@pytest.mark.parametrize("size", [1, 5, 17, 1000])
def test_a_line_over_the_limit_becomes_none_and_its_neighbours_survive(size: int) -> None:
    data = b"short\n" + b"x" * 100 + b"\n" + b"y" * 16 + b"\n" + b"z" * 17 + b"\nend"
    assert _split(data, size, max_line=16) == [b"short", None, b"y" * 16, None, b"end"]


def test_an_unterminated_line_over_the_limit_is_none_at_the_end() -> None:
    assert _split(b"ok\n" + b"x" * 50, 7, max_line=16) == [b"ok", None]


# --- the wire over pipes ------------------------------------------------------------------------


class Pipes:
    """Two real pipes: the client's ends (`to_server`, `from_server`) and the wire's."""

    def __init__(self) -> None:
        self.server_in, self.to_server = os.pipe()
        self.from_server, self.server_out = os.pipe()
        os.set_blocking(self.from_server, False)
        self._buffer = bytearray()
        self.closed: set[int] = set()

    def write(self, data: bytes) -> None:
        os.write(self.to_server, data)

    def send(self, message: dict[str, Any]) -> None:
        self.write(json.dumps(message).encode() + b"\n")

    async def line(self) -> dict[str, Any]:
        with anyio.fail_after(10):
            while (end := self._buffer.find(b"\n")) < 0:
                try:
                    chunk = os.read(self.from_server, 1 << 16)
                except BlockingIOError:
                    await anyio.wait_readable(self.from_server)
                    continue
                assert chunk, "stdout closed"
                self._buffer += chunk
        line = bytes(self._buffer[:end])
        del self._buffer[: end + 1]
        mcp_types.jsonrpc_message_adapter.validate_json(line)
        value: dict[str, Any] = json.loads(line)
        return value

    def close(self, fd: int) -> None:
        if fd not in self.closed:
            os.close(fd)
            self.closed.add(fd)

    def close_all(self) -> None:
        for fd in (self.server_in, self.to_server, self.from_server, self.server_out):
            self.close(fd)


@pytest.fixture
def pipes() -> Iterator[Pipes]:
    pipes = Pipes()
    yield pipes
    pipes.close_all()


@pytest.fixture
async def wire(pipes: Pipes) -> AsyncIterator[tuple[ReadStream, StdioWriter]]:
    async with fd_wire(pipes.server_in, pipes.server_out) as streams:
        yield streams


async def _receive(stream: ReadStream) -> SessionMessage:
    with anyio.fail_after(10):
        item = await stream.receive()
    assert isinstance(item, SessionMessage)
    return item


def _request(request_id: int, **params: Any) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "method": "ping", "params": params}


async def test_messages_written_at_once_arrive_parsed_and_in_order(
    pipes: Pipes, wire: tuple[ReadStream, StdioWriter]
) -> None:
    read, _ = wire
    pipes.write(b"".join(json.dumps(_request(n)).encode() + b"\n" for n in range(50)))
    ids = [(await _receive(read)).message for _ in range(50)]
    assert [message.id for message in ids if isinstance(message, JSONRPCRequest)] == list(range(50))


async def test_invalid_utf8_inside_a_string_is_replaced_as_the_sdk_does(
    pipes: Pipes, wire: tuple[ReadStream, StdioWriter]
) -> None:
    read, _ = wire
    pipes.write(b'{"jsonrpc": "2.0", "id": 1, "method": "ping", "params": {"x": "a\xffb"}}\n')
    message = (await _receive(read)).message
    assert isinstance(message, JSONRPCRequest)
    assert message.params == {"x": "a\ufffdb"}


@pytest.mark.parametrize(
    ("line", "code"),
    [(b"not json", -32700), (b"", -32700), (b"[1]", -32600), (b'{"id": 1, "method": "ping"}', -32600)],
)
async def test_a_line_that_is_no_message_is_answered_and_the_next_one_is_read(
    pipes: Pipes, wire: tuple[ReadStream, StdioWriter], line: bytes, code: int
) -> None:
    read, _ = wire
    pipes.write(line + b"\n" + json.dumps(_request(2)).encode() + b"\n")
    reply = await pipes.line()
    assert reply["id"] is None
    assert reply["error"]["code"] == code
    message = (await _receive(read)).message
    assert isinstance(message, JSONRPCRequest)
    assert message.id == 2


async def test_a_line_over_four_mib_is_answered_without_being_kept(
    pipes: Pipes, wire: tuple[ReadStream, StdioWriter]
) -> None:
    read, _ = wire
    line = json.dumps(_request(1, x="a" * (MAX_LINE_BYTES + 10))).encode() + b"\n"

    async def write_all() -> None:
        view = memoryview(line)
        while view:
            await anyio.wait_writable(pipes.to_server)
            view = view[os.write(pipes.to_server, view[: 1 << 16]) :]

    reply: dict[str, Any] = {}
    async with anyio.create_task_group() as tg:
        tg.start_soon(write_all)
        reply = await pipes.line()
    assert reply["error"]["code"] == -32600
    assert "longer than" in reply["error"]["message"]
    pipes.send(_request(3))
    message = (await _receive(read)).message
    assert isinstance(message, JSONRPCRequest)
    assert message.id == 3


async def test_end_of_input_ends_the_read_stream_after_the_last_line(
    pipes: Pipes, wire: tuple[ReadStream, StdioWriter]
) -> None:
    read, _ = wire
    pipes.write(json.dumps(_request(1)).encode())  # no newline: still a line at the end
    pipes.close(pipes.to_server)
    message = (await _receive(read)).message
    assert isinstance(message, JSONRPCRequest)
    with anyio.fail_after(10), pytest.raises(anyio.EndOfStream):
        await read.receive()


def _reply(request_id: int, text: str) -> SessionMessage:
    return SessionMessage(JSONRPCResponse(jsonrpc="2.0", id=request_id, result={"text": text}))


async def test_replies_a_full_pipe_refuses_wait_in_order_until_the_client_reads(
    pipes: Pipes, wire: tuple[ReadStream, StdioWriter]
) -> None:
    _, writer = wire
    big = "b" * (WRITE_HIGH_WATER // 2)
    await writer.send(_reply(1, big))
    await writer.send(_reply(2, "small"))
    assert writer.queued > 0  # the pipe took what it could; the rest waits for the loop
    replies: list[dict[str, Any]] = []
    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            # Past the high-water mark the sender waits for the client, which reads meanwhile.
            tg.start_soon(writer.send, _reply(3, big + big + "c"))
            replies = [await pipes.line() for _ in range(3)]
    assert [reply["id"] for reply in replies] == [1, 2, 3]
    assert replies[0]["result"]["text"] == big
    assert replies[2]["result"]["text"] == big + big + "c"
    assert writer.queued == 0


async def test_a_client_that_hangs_up_stdout_ends_the_read_stream(
    pipes: Pipes, wire: tuple[ReadStream, StdioWriter]
) -> None:
    read, writer = wire
    pipes.close(pipes.from_server)
    with pytest.raises(anyio.BrokenResourceError):
        await writer.send(_reply(1, "nobody reads this"))
    assert writer.broken
    with anyio.fail_after(10), pytest.raises(anyio.EndOfStream):
        await read.receive()


async def test_the_session_closing_the_writer_refuses_later_replies(
    wire: tuple[ReadStream, StdioWriter],
) -> None:
    _, writer = wire
    async with writer:
        pass
    with pytest.raises(anyio.ClosedResourceError):
        await writer.send(_reply(1, "late"))


async def test_regular_files_work_as_input_and_output(tmp_path: Path) -> None:
    requests = tmp_path / "in.jsonl"
    requests.write_bytes(b"".join(json.dumps(_request(n)).encode() + b"\n" for n in range(3)) + b"junk\n")
    replies = tmp_path / "out.jsonl"
    read_fd = os.open(requests, os.O_RDONLY)
    write_fd = os.open(replies, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        async with fd_wire(read_fd, write_fd) as (read, writer):
            ids = [(await _receive(read)).message for _ in range(3)]
            with anyio.fail_after(10), pytest.raises(anyio.EndOfStream):
                await read.receive()
            await writer.send(_reply(9, "done"))
    finally:
        os.close(read_fd)
        os.close(write_fd)
    assert [message.id for message in ids if isinstance(message, JSONRPCRequest)] == [0, 1, 2]
    lines = [json.loads(line) for line in replies.read_bytes().splitlines()]
    assert lines[0]["error"]["code"] == -32700
    assert lines[1]["result"] == {"text": "done"}


async def test_no_descriptors_mean_an_ended_input_and_a_broken_output() -> None:
    async with fd_wire(-1, -1) as (read, writer):
        with anyio.fail_after(10), pytest.raises(anyio.EndOfStream):
            await read.receive()
        with pytest.raises(anyio.BrokenResourceError):
            await writer.send(_reply(1, "nowhere"))
