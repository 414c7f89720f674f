"""bulkhead-files as a real subprocess: stdio and HTTP, the sample tree, and a watched write."""

import warnings
from pathlib import Path

import anyio
import pytest
from mcp import Client
from mcp.client.session import IncomingMessage
from mcp.client.subscriptions import ResourceUpdated
from mcp_types import ResourceUpdatedNotification

from bulkhead.testing import MODERN_ERA, http_server, stdio_parameters
from bulkhead_files.resources import file_uri

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]


async def test_over_stdio_with_no_roots_the_sample_project_is_served() -> None:
    async with Client(stdio_parameters("bulkhead_files"), mode="legacy") as client:
        found = await client.call_tool("find_files", {"glob": "*.csv"})
        assert not found.is_error
        assert found.structured_content is not None
        paths: list[str] = found.structured_content["paths"]
        assert [p.rsplit("/", 1)[-1] for p in paths] == ["products.csv", "sales-2026-q3.csv"]
        logo = next(r for r in (await client.list_resources()).resources if r.name == "assets/logo.png")
        assert logo.mime_type == "image/png"
        blob = (await client.read_resource(logo.uri)).contents[0]
        assert getattr(blob, "blob", "").startswith("iVBORw0KGgo")


@pytest.fixture
def notes(tmp_path: Path) -> Path:
    (tmp_path / "notes.md").write_text("first\n")
    return tmp_path.resolve() / "notes.md"


async def test_over_http_a_subscriber_hears_about_a_real_write(tmp_path: Path, notes: Path) -> None:
    received: list[ResourceUpdatedNotification] = []
    arrived = anyio.Event()

    async def inbox(message: IncomingMessage) -> None:
        if isinstance(message, ResourceUpdatedNotification):
            received.append(message)
            arrived.set()

    async with (
        http_server("bulkhead_files", [str(tmp_path), "--watch-debounce-ms", "50"]) as server,
        Client(server.mcp_url, mode="legacy", message_handler=inbox) as client,
    ):
        uri = file_uri(str(notes))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            await client.subscribe_resource(uri)  # pyright: ignore[reportDeprecated] -- handshake-era API
        with anyio.fail_after(30):
            await server.wait_for_record(lambda r: "watching" in str(r.get("message", "")))
            # The watcher logs before its first scan: write until it reports the change (bounded).
            attempt = 0
            while not arrived.is_set():
                attempt += 1
                await anyio.Path(notes).write_text(f"revision {attempt}\n")
                with anyio.move_on_after(1):
                    await arrived.wait()
        assert str(received[0].params.uri) == uri
        text = (await client.read_resource(uri)).contents[0]
        assert getattr(text, "text", "").startswith("revision")


async def test_over_http_a_modern_listen_stream_hears_about_a_real_write(tmp_path: Path, notes: Path) -> None:
    uri = file_uri(str(notes))
    async with (
        http_server("bulkhead_files", [str(tmp_path), "--watch-debounce-ms", "50"]) as server,
        Client(server.mcp_url, mode=MODERN_ERA) as client,
        client.listen(resource_subscriptions=[uri]) as stream,
        anyio.create_task_group() as tg,
    ):
        heard = anyio.Event()

        async def receive() -> None:
            async for event in stream:
                if event == ResourceUpdated(uri):
                    heard.set()
                    return

        tg.start_soon(receive)
        with anyio.fail_after(30):
            await server.wait_for_record(lambda r: "watching" in str(r.get("message", "")))
            attempt = 0
            while not heard.is_set():
                attempt += 1
                await anyio.Path(notes).write_text(f"modern revision {attempt}\n")
                with anyio.move_on_after(1):
                    await heard.wait()
