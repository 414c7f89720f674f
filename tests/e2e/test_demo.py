"""The README's demo command starts every server and prints a working client configuration."""

import json
import signal
import subprocess
import sys

import anyio
import pytest
from mcp import Client

from bulkhead.testing import server_environment

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]


async def test_the_demo_prints_a_config_whose_urls_answer_and_stops_on_ctrl_c() -> None:
    process = await anyio.open_process(
        [sys.executable, "-m", "bulkhead.demo", "--port", "0"],
        env=server_environment(),
        stdin=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    assert process.stdout is not None
    output = b""
    with anyio.fail_after(60):
        async for chunk in process.stdout:
            output += chunk
            if b"\n}\n" in output:
                break
    text = output.decode()
    config = json.loads(text[text.index("{") : text.rindex("}") + 1])
    url = config["mcpServers"]["bulkhead-users"]["url"]
    async with Client(url, mode="legacy") as client:
        result = await client.call_tool("get_user", {"user": "u00001"})
    assert not result.is_error
    async with Client(config["mcpServers"]["bulkhead-files"]["url"], mode="legacy") as client:
        readme = next(r for r in (await client.list_resources()).resources if r.name == "README.md")
        contents = (await client.read_resource(readme.uri)).contents
    assert "sample project" in getattr(contents[0], "text", "")
    async with Client(config["mcpServers"]["bulkhead-prompts"]["url"], mode="legacy") as client:
        prompt = await client.get_prompt("summarize_ticket", {"ticket": "Checkout returns 500."})
    assert "Checkout returns 500." in getattr(prompt.messages[0].content, "text", "")
    async with Client(config["mcpServers"]["bulkhead-http"]["url"], mode="legacy") as client:
        ticket = await client.call_tool("get_ticket", {"ticket_id": "T-1001"})
    assert not ticket.is_error
    process.send_signal(signal.SIGINT)
    with anyio.fail_after(15):
        assert await process.wait() == 0


@pytest.mark.postgres
async def test_a_server_that_cannot_start_is_left_out_and_the_others_still_serve(pg_cluster: object) -> None:
    # --schemas is a bulkhead-postgres flag: bulkhead-users refuses it and must be left out.
    process = await anyio.open_process(
        [sys.executable, "-m", "bulkhead.demo", "--port", "0", "--schemas", "shop"],
        env=server_environment(),
        stdin=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    assert process.stdout is not None
    output = b""
    with anyio.fail_after(90):
        async for chunk in process.stdout:
            output += chunk
            if b"\n}\n" in output:
                break
    text = output.decode()
    config = json.loads(text[text.index("{") : text.rindex("}") + 1])
    assert list(config["mcpServers"]) == ["bulkhead-postgres"]
    async with Client(config["mcpServers"]["bulkhead-postgres"]["url"], mode="legacy") as client:
        result = await client.call_tool("list_tables", {})
    assert not result.is_error
    process.send_signal(signal.SIGTERM)
    with anyio.fail_after(30):
        assert await process.wait() == 0
