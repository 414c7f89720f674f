"""Adversarial review: attacks on bulkhead-files that earlier tests did not cover."""

import warnings
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError
from mcp_types import ListRootsResult, ResourceUpdatedNotification, Root

from bulkhead_files.resources import file_uri
from bulkhead_files.sandbox import Sandbox
from tests.files.test_watch import Inbox, watched

pytestmark = pytest.mark.anyio


def _updated(inbox: Inbox) -> list[str]:
    return [str(item.params.uri) for item in inbox.items if isinstance(item, ResourceUpdatedNotification)]


async def _subscribe(client: Client, uri: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        await client.subscribe_resource(uri)  # pyright: ignore[reportDeprecated] -- handshake-era API


@pytest.mark.parametrize(
    "target",
    [
        "data.csv",  # inside the operator's root, outside the client's
        "src/pkg/main.py",
        "docs/../data.csv",  # dot-dot from inside the client's root
        ".env",  # denied, even with a matching prefix
    ],
)
async def test_a_narrowed_client_cannot_subscribe_outside_its_own_roots(
    root: Path, sandbox: Sandbox, target: str
) -> None:
    async def only_docs(context: Any) -> ListRootsResult:
        del context
        return ListRootsResult(roots=[Root.model_validate({"uri": f"file://{root}/docs"})])

    async with (
        watched(root, sandbox) as (server, _watcher),
        Client(server, mode="legacy", list_roots_callback=only_docs) as client,
    ):
        with pytest.raises(MCPError) as refused:
            await _subscribe(client, f"file://{root}/{target}")
        assert refused.value.code == -32602
        assert "subscribe" in refused.value.message.lower()


async def test_a_narrowed_client_hears_only_about_files_inside_its_own_roots(
    root: Path, sandbox: Sandbox
) -> None:
    inbox = Inbox()
    current = [f"file://{root}/docs"]

    async def roots(context: Any) -> ListRootsResult:
        del context
        return ListRootsResult(roots=[Root.model_validate({"uri": uri}) for uri in current])

    guide, main = root / "docs" / "guide.md", root / "src" / "pkg" / "main.py"
    async with (
        watched(root, sandbox) as (server, _watcher),
        Client(server, mode="legacy", list_roots_callback=roots, message_handler=inbox) as client,
    ):
        await _subscribe(client, file_uri(str(guide)))
        guide.write_text("# Guide, revised\n")
        await inbox.next_of(ResourceUpdatedNotification)
        assert _updated(inbox) == [file_uri(str(guide))]

        # The client narrows its roots to src/: the guide subscription no longer reaches it.
        current[:] = [f"file://{root}/src"]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            await client.send_roots_list_changed()  # pyright: ignore[reportDeprecated] -- handshake-era API
        with anyio.fail_after(10):
            while True:  # roots/list_changed is a notification: poll until the new roots apply
                try:
                    await _subscribe(client, file_uri(str(main)))
                    break
                except MCPError:
                    continue
        seen = len(inbox.items)
        guide.write_text("# Guide, revised again\n")
        main.write_text("def main():\n    return 3\n")
        await inbox.next_of(ResourceUpdatedNotification, seen)
        with anyio.fail_after(10):
            while file_uri(str(main)) not in _updated(inbox):
                await inbox.next_of(ResourceUpdatedNotification, len(inbox.items))
        assert file_uri(str(guide)) not in _updated(inbox)[1:]
