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


BACKTRACKING_GLOBS = [
    "*a" * 12 + "*b",  # polynomial of degree 12 in `re` against a long name of a's
    "*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*[!a]",
    "**a" * 10 + "**b",
]


@pytest.mark.parametrize("glob", BACKTRACKING_GLOBS)
async def test_a_backtracking_glob_stops_at_the_time_limit_and_the_server_keeps_answering(
    root: Path, sandbox: Sandbox, glob: str
) -> None:
    from bulkhead.testing import connect  # noqa: PLC0415
    from bulkhead_files.server import build_server  # noqa: PLC0415
    from tests.files.conftest import make_settings  # noqa: PLC0415

    (root / "docs" / ("a" * 200)).write_text("aaa\n")
    server = build_server(make_settings(root, search_timeout_ms=300), sandbox)
    async with connect(server) as client:
        with anyio.fail_after(30):  # `re` held the GIL for hours here: nothing could even time out
            found = await client.call_tool("find_files", {"glob": glob})
            searched = await client.call_tool("search_text", {"pattern": "a", "glob": glob})
            listing = await client.call_tool("list_directory", {"path": "docs"})
    # Answered in bounded time: finished (the `regex` engine sees some at once) or cut by the limit.
    assert found.structured_content is not None
    assert found.structured_content["stopped"] in (None, "time limit reached")
    assert found.structured_content["paths"] == []
    assert searched.structured_content is not None
    assert searched.structured_content["stopped"] in (None, "time limit reached")
    assert not listing.is_error


async def test_globs_with_many_wildcards_still_match_what_they_should(root: Path, sandbox: Sandbox) -> None:
    from bulkhead.testing import connect  # noqa: PLC0415
    from bulkhead_files.server import build_server  # noqa: PLC0415
    from tests.files.conftest import make_settings  # noqa: PLC0415

    server = build_server(make_settings(root), sandbox)
    async with connect(server) as client:
        names = await client.call_tool("find_files", {"glob": "*g*i*d*.m?"})
        paths = await client.call_tool("find_files", {"glob": "s*c/**/m*i*.p*"})
        text = await client.call_tool("search_text", {"pattern": "pip", "glob": "*u*i*e*"})
    assert names.structured_content is not None
    assert names.structured_content["paths"] == [str(root / "docs" / "guide.md")]
    assert paths.structured_content is not None
    assert paths.structured_content["paths"] == [str(root / "src" / "pkg" / "main.py")]
    assert text.structured_content is not None
    assert [m["path"] for m in text.structured_content["matches"]] == [str(root / "docs" / "guide.md")]


async def test_a_file_name_that_is_not_utf8_breaks_no_listing_or_search(root: Path, sandbox: Sandbox) -> None:
    import os  # noqa: PLC0415

    from bulkhead.testing import connect  # noqa: PLC0415
    from bulkhead_files.server import build_server  # noqa: PLC0415
    from tests.files.conftest import make_settings  # noqa: PLC0415

    docs = os.path.join(os.fsencode(root), b"docs")
    for raw in (b"bad\xff.txt", b"\xc3(.txt", b"\xed\xa0\x80.txt"):  # invalid, truncated, encoded surrogate
        fd = os.open(os.path.join(docs, raw), os.O_WRONLY | os.O_CREAT, 0o644)
        os.write(fd, b"hello from a badly named file\n")
        os.close(fd)
    os.mkdir(os.path.join(docs, b"dir\xfe"))
    server = build_server(make_settings(root), sandbox)
    async with connect(server) as client:
        resources = await client.list_resources()
        listing = await client.call_tool("list_directory", {"path": "docs", "details": True})
        found = await client.call_tool("find_files", {"glob": "*.txt"})
        searched = await client.call_tool("search_text", {"pattern": "badly named"})
    names = sorted(r.name for r in resources.resources)
    assert "docs/guide.md" in names
    assert all(name.isprintable() and name.encode() for name in names)
    assert listing.structured_content is not None
    assert listing.structured_content["entries"] == ["guide.md", "notes.txt"]
    assert found.structured_content is not None
    assert found.structured_content["paths"] == [str(root / "docs" / "notes.txt")]
    assert searched.structured_content is not None
    assert searched.structured_content["matches"] == []


@pytest.mark.parametrize("name", ["\ud800", "docs/\udcff.md", "a\udfffb"])
async def test_a_resource_uri_with_a_lone_surrogate_is_an_unknown_resource(
    root: Path, sandbox: Sandbox, name: str
) -> None:
    from bulkhead.testing import connect  # noqa: PLC0415
    from bulkhead_files.server import build_server  # noqa: PLC0415
    from tests.files.conftest import make_settings  # noqa: PLC0415

    async with connect(build_server(make_settings(root), sandbox)) as client:
        with pytest.raises(MCPError) as caught:
            await client.read_resource(f"file://{root}/{name}")
        fine = await client.read_resource(f"file://{root}/docs/guide.md")
    assert caught.value.error.code == -32602
    assert "lone surrogate" in caught.value.error.message
    assert fine.contents
