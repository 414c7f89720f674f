"""Huge and growing files through the server: bounded responses, no errors, nothing hangs."""

import threading
from pathlib import Path

import pytest
from mcp import MCPError
from mcp_types import CallToolResult

from bulkhead.testing import connect
from bulkhead_files.resources import file_uri
from bulkhead_files.sandbox import Sandbox
from bulkhead_files.server import build_server
from tests.files.conftest import make_settings

pytestmark = pytest.mark.anyio


def meta(result: CallToolResult) -> dict[str, object]:
    assert not result.is_error, result.content
    assert result.structured_content is not None
    return result.structured_content


@pytest.fixture
def huge(root: Path) -> Path:
    """A 10 GiB sparse file: it costs no disk, and nothing may try to hold it."""
    path = root / "huge.log"
    with path.open("wb") as handle:
        handle.truncate(10 << 30)
    return path


async def test_a_huge_file_is_read_in_bounded_ranges_and_refused_as_a_whole_resource(
    root: Path, sandbox: Sandbox, huge: Path
) -> None:
    server = build_server(make_settings(root, max_read_bytes=65536), sandbox)
    async with connect(server) as client:
        first = meta(await client.call_tool("read_file", {"path": "huge.log"}))
        far = meta(await client.call_tool("read_file", {"path": "huge.log", "offset": (10 << 30) - 10}))
        info = meta(await client.call_tool("file_info", {"path": "huge.log"}))
        found = meta(await client.call_tool("search_text", {"pattern": "x", "path": "huge.log"}))
        with pytest.raises(MCPError) as caught:
            await client.read_resource(file_uri(str(huge)))
    assert first["length"] == 65536
    assert first["next_offset"] == 65536
    assert first["encoding"] == "base64"  # NUL bytes: binary
    assert far["length"] == 10
    assert far["truncated"] is False
    assert info["size"] == 10 << 30
    assert found["files_searched"] == 0  # over the search size limit: skipped, not read
    assert "read_file" in str(caught.value)


async def test_a_file_that_grows_while_read_gives_bounded_consistent_answers(
    root: Path, sandbox: Sandbox
) -> None:
    target = root / "growing.log"
    target.write_text("start\n")
    server = build_server(make_settings(root, max_read_bytes=4096), sandbox)
    stop = threading.Event()

    def grow() -> None:
        with target.open("a") as handle:
            while not stop.is_set():
                handle.write("line of log output\n")
                handle.flush()

    writer = threading.Thread(target=grow)
    writer.start()
    try:
        async with connect(server) as client:
            for _ in range(100):
                result = meta(await client.call_tool("read_file", {"path": "growing.log"}))
                length = result["length"]
                size = result["size"]
                assert isinstance(length, int)
                assert isinstance(size, int)
                assert length <= 4096
                assert length <= size
    finally:
        stop.set()
        writer.join()
