"""bulkhead-files tools through the in-memory client, in both protocol eras, on real files."""

import base64
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp_types import CallToolResult, EmbeddedResource, TextContent

from bulkhead.app import BulkheadServer
from bulkhead.testing import connect
from bulkhead_files.sandbox import Sandbox
from bulkhead_files.server import build_server
from tests.files.conftest import PNG, SECRET, make_settings

pytestmark = pytest.mark.anyio

ERAS = ["legacy", "2026-07-28"]


def data(result: CallToolResult) -> dict[str, Any]:
    assert not result.is_error, result.content
    assert result.structured_content is not None
    return result.structured_content


def text_of(result: CallToolResult) -> str:
    return "".join(block.text for block in result.content if isinstance(block, TextContent))


def error_text(result: CallToolResult) -> str:
    assert result.is_error, result.structured_content
    return text_of(result)


@pytest.mark.parametrize("era", ERAS)
async def test_every_tool_is_listed_read_only_with_an_output_schema(server: BulkheadServer, era: str) -> None:
    async with connect(server, era) as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
    assert set(tools) == {"list_directory", "read_file", "find_files", "search_text", "file_info"}
    for tool in tools.values():
        assert tool.annotations is not None
        assert tool.annotations.read_only_hint is True
        assert tool.annotations.destructive_hint is False
        assert tool.output_schema is not None
        assert tool.description
        assert "ctx" not in tool.input_schema.get("properties", {})


@pytest.mark.parametrize("era", ERAS)
async def test_list_directory_shows_entries_without_hidden_or_secret_ones(
    server: BulkheadServer, root: Path, era: str
) -> None:
    async with connect(server, era) as client:
        top = data(await client.call_tool("list_directory", {}))
        docs = data(await client.call_tool("list_directory", {"path": "docs", "details": True}))
        same = data(await client.call_tool("list_directory", {"path": str(root / "docs"), "details": True}))
    assert top["path"] == str(root)
    assert top["entries"] == ["data.csv", "docs/", "logo.png", "src/"]
    assert "details" not in top
    assert top["total"] == 4
    assert top["next_cursor"] is None
    assert docs == same
    assert docs["entries"] == ["guide.md", "notes.txt"]
    guide = docs["details"][0]
    assert guide["name"] == "guide.md"
    assert guide["type"] == "file"
    assert guide["size"] == (root / "docs" / "guide.md").stat().st_size
    assert guide["modified"].endswith("Z")


async def test_list_directory_marks_links_and_special_files(server: BulkheadServer, root: Path) -> None:
    import os  # noqa: PLC0415

    (root / "link.md").symlink_to("docs/guide.md")
    os.mkfifo(root / "pipe")
    async with connect(server) as client:
        result = await client.call_tool("list_directory", {})
    listing = data(result)
    assert listing["entries"] == ["data.csv", "docs/", "link.md@", "logo.png", "pipe|", "src/"]
    assert text_of(result).splitlines()[1:] == listing["entries"]


async def test_list_directory_pages_a_big_directory_with_tamper_evident_cursors(
    root: Path, sandbox: Sandbox
) -> None:
    big = root / "big"
    big.mkdir()
    for i in range(2500):
        (big / f"f{i:05d}.txt").write_text("x")
    server = build_server(make_settings(root, page_size=1000), sandbox)
    names: list[str] = []
    async with connect(server) as client:
        cursor = None
        pages = 0
        while True:
            page = data(await client.call_tool("list_directory", {"path": "big", "cursor": cursor}))
            names += page["entries"]
            pages += 1
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert pages == 3
        assert names == sorted(f"f{i:05d}.txt" for i in range(2500))
        first = data(await client.call_tool("list_directory", {"path": "big"}))
        forged = first["next_cursor"][:-2] + "AA"
        assert "cursor" in error_text(
            await client.call_tool("list_directory", {"path": "big", "cursor": forged})
        )
        other = await client.call_tool("list_directory", {"path": "docs", "cursor": first["next_cursor"]})
        assert "cursor" in error_text(other)


@pytest.mark.parametrize("era", ERAS)
async def test_read_file_returns_text_once_with_its_envelope(
    server: BulkheadServer, root: Path, era: str
) -> None:
    async with connect(server, era) as client:
        result = await client.call_tool("read_file", {"path": "docs/guide.md"})
    meta = data(result)
    assert meta == {
        "path": str(root / "docs" / "guide.md"),
        "mime_type": "text/markdown",
        "encoding": "utf-8",
        "offset": 0,
        "length": len((root / "docs" / "guide.md").read_bytes()),
        "size": len((root / "docs" / "guide.md").read_bytes()),
        "truncated": False,
        "next_offset": None,
    }
    assert len(result.content) == 1
    assert text_of(result) == (root / "docs" / "guide.md").read_text()


async def test_read_file_reads_ranges_and_never_splits_a_character(
    server: BulkheadServer, root: Path
) -> None:
    raw = (root / "docs" / "notes.txt").read_bytes()  # "café au lait\n": é is two bytes at 3-4
    async with connect(server) as client:
        first = await client.call_tool("read_file", {"path": "docs/notes.txt", "length": 4})
        meta = data(first)
        assert meta["truncated"] is True
        assert meta["next_offset"] == 3
        assert first.content[0].text == "caf"  # type: ignore[union-attr]  # pyright: ignore[reportAttributeAccessIssue]
        assert "offset=3" in text_of(first)
        rest = await client.call_tool("read_file", {"path": "docs/notes.txt", "offset": meta["next_offset"]})
        assert data(rest)["truncated"] is False
        assert "caf" + text_of(rest) == raw.decode()
        past = data(await client.call_tool("read_file", {"path": "docs/notes.txt", "offset": 10_000}))
        assert past["length"] == 0


async def test_read_file_returns_binaries_as_a_base64_blob_with_their_mime_type(
    server: BulkheadServer,
) -> None:
    async with connect(server) as client:
        result = await client.call_tool("read_file", {"path": "logo.png"})
    meta = data(result)
    assert meta["encoding"] == "base64"
    assert meta["mime_type"] == "image/png"
    block = result.content[0]
    assert isinstance(block, EmbeddedResource)
    assert base64.b64decode(block.resource.blob) == PNG  # type: ignore[union-attr]  # pyright: ignore[reportAttributeAccessIssue]


async def test_read_file_is_capped_by_the_server_limit(root: Path, sandbox: Sandbox) -> None:
    (root / "big.txt").write_text("a" * 5000)
    server = build_server(make_settings(root, max_read_bytes=1024), sandbox)
    async with connect(server) as client:
        meta = data(await client.call_tool("read_file", {"path": "big.txt", "length": 4096}))
    assert meta["length"] == 1024
    assert meta["next_offset"] == 1024
    assert meta["size"] == 5000


@pytest.mark.parametrize(
    "path",
    [
        "../outside/secret.txt",
        "/etc/passwd",
        ".env",
        ".git/config",
        "id_rsa",
        "~/x",
        "docs/../../outside/secret.txt",
    ],
)
async def test_read_file_refuses_escapes_and_secrets_with_a_clear_error(
    server: BulkheadServer, path: str
) -> None:
    async with connect(server) as client:
        result = await client.call_tool("read_file", {"path": path})
    message = error_text(result)
    assert SECRET not in message
    assert "hunter2" not in message
    assert "Internal error" not in message


async def test_read_file_through_an_escaping_symlink_is_refused(server: BulkheadServer, root: Path) -> None:
    (root / "link.txt").symlink_to(root.parent / "outside" / "secret.txt")
    async with connect(server) as client:
        result = await client.call_tool("read_file", {"path": "link.txt"})
    assert "outside" in error_text(result)


async def test_read_file_of_a_fifo_answers_at_once(server: BulkheadServer, root: Path) -> None:
    import os  # noqa: PLC0415

    os.mkfifo(root / "pipe")
    async with connect(server) as client:
        result = await client.call_tool("read_file", {"path": "pipe"})
    assert "not a regular file" in error_text(result)


@pytest.mark.parametrize("era", ERAS)
async def test_find_files_matches_names_and_paths(server: BulkheadServer, root: Path, era: str) -> None:
    async with connect(server, era) as client:
        py = data(await client.call_tool("find_files", {"glob": "*.py"}))
        md = data(await client.call_tool("find_files", {"glob": "docs/**/*.MD"}))
        under = data(await client.call_tool("find_files", {"glob": "*.py", "path": "src/pkg"}))
        secrets = data(await client.call_tool("find_files", {"glob": "*"}))
    assert py["paths"] == [str(root / "src/pkg/main.py"), str(root / "src/pkg/util.py")]
    assert md["paths"] == [str(root / "docs/guide.md")]
    assert under["paths"] == py["paths"]
    assert not any(p.endswith((".env", "config", "id_rsa")) for p in secrets["paths"])
    assert len(secrets["paths"]) == 6


async def test_find_files_pages_through_thousands_of_files(root: Path, sandbox: Sandbox) -> None:
    many = root / "many"
    for d in range(30):
        (many / f"d{d:02d}").mkdir(parents=True)
        for i in range(100):
            (many / f"d{d:02d}" / f"item{i:03d}.log").write_text("")
    server = build_server(make_settings(root, page_size=700), sandbox)
    found: list[str] = []
    async with connect(server) as client:
        cursor = None
        while True:
            page = data(await client.call_tool("find_files", {"glob": "*.log", "cursor": cursor}))
            found += page["paths"]
            cursor = page["next_cursor"]
            if cursor is None:
                break
    assert len(found) == 3000
    assert len(set(found)) == 3000


@pytest.mark.parametrize("era", ERAS)
async def test_search_text_finds_lines_literally_or_by_regex(
    server: BulkheadServer, root: Path, era: str
) -> None:
    async with connect(server, era) as client:
        literal = data(await client.call_tool("search_text", {"pattern": "install"}))
        regex = data(await client.call_tool("search_text", {"pattern": r"^def \w+\(", "regex": True}))
        dots = data(await client.call_tool("search_text", {"pattern": "a.c", "path": "docs"}))
        one_file = data(await client.call_tool("search_text", {"pattern": "Ada", "path": "data.csv"}))
        secret = data(await client.call_tool("search_text", {"pattern": "hunter2"}))
    assert literal["matches"] == [
        {"path": str(root / "docs/guide.md"), "line": 3, "text": "Install with pip."}
    ]
    assert regex["matches"] == [{"path": str(root / "src/pkg/main.py"), "line": 1, "text": "def main():"}]
    assert dots["matches"] == []
    assert one_file["matches"][0]["line"] == 2
    assert secret["matches"] == []
    assert literal["truncated"] is False


async def test_search_text_is_bounded_by_matches_and_survives_a_catastrophic_regex(
    root: Path, sandbox: Sandbox
) -> None:
    (root / "many.txt").write_text("needle\n" * 1000)
    (root / "evil.txt").write_text("a" * 5000 + "!\n")
    server = build_server(make_settings(root, max_search_matches=10, search_timeout_ms=300), sandbox)
    async with connect(server) as client:
        capped = data(await client.call_tool("search_text", {"pattern": "needle", "max_matches": 500}))
        evil = data(
            await client.call_tool("search_text", {"pattern": "(a+)+$", "regex": True, "path": "evil.txt"})
        )
        bad = await client.call_tool("search_text", {"pattern": "(unclosed", "regex": True})
    assert len(capped["matches"]) == 10
    assert capped["stopped"] == "match limit reached"
    assert evil["truncated"] is True
    assert evil["stopped"] == "time limit reached"
    assert "regular expression" in error_text(bad)


@pytest.mark.parametrize("era", ERAS)
async def test_file_info_describes_files_and_directories(
    server: BulkheadServer, root: Path, era: str
) -> None:
    async with connect(server, era) as client:
        info = data(await client.call_tool("file_info", {"path": "data.csv"}))
        folder = data(await client.call_tool("file_info", {"path": "docs"}))
        denied = await client.call_tool("file_info", {"path": ".env"})
    assert info["type"] == "file"
    assert info["size"] == (root / "data.csv").stat().st_size
    assert info["mime_type"] == "text/csv"
    assert info["uri"] == f"file://{root}/data.csv"
    assert len(info["permissions"]) == 4
    assert folder["type"] == "directory"
    assert "not available" in error_text(denied)


async def test_unknown_and_extra_arguments_are_named(server: BulkheadServer) -> None:
    async with connect(server) as client:
        extra = await client.call_tool("read_file", {"path": "data.csv", "mode": "w"})
        missing = await client.call_tool("read_file", {})
        huge = await client.call_tool("read_file", {"path": "x" * 10_000})
    assert "mode" in error_text(extra)
    assert missing.is_error
    assert huge.is_error


async def test_client_roots_narrow_what_the_tools_see(server: BulkheadServer, root: Path) -> None:
    from mcp import Client  # noqa: PLC0415
    from mcp_types import ListRootsResult, Root  # noqa: PLC0415

    async def only_docs(context: Any) -> ListRootsResult:
        del context
        return ListRootsResult(
            roots=[
                Root.model_validate({"uri": f"file://{root}/docs"}),
                Root.model_validate({"uri": f"file://{root.parent}"}),
            ]
        )

    async with Client(server, mode="legacy", list_roots_callback=only_docs) as client:
        listing = data(await client.call_tool("list_directory", {}))
        outside_docs = await client.call_tool("read_file", {"path": str(root / "data.csv")})
    assert listing["path"] == "/"
    assert listing["entries"] == [f"{root}/docs/", f"{root}/"]
    assert not outside_docs.is_error  # the client's second root contains ours: ours is kept, never widened


async def test_client_roots_elsewhere_leave_nothing_to_read(server: BulkheadServer, root: Path) -> None:
    from mcp import Client  # noqa: PLC0415
    from mcp_types import ListRootsResult, Root  # noqa: PLC0415

    async def elsewhere(context: Any) -> ListRootsResult:
        del context
        return ListRootsResult(roots=[Root.model_validate({"uri": f"file://{root.parent}/outside"})])

    async with Client(server, mode="legacy", list_roots_callback=elsewhere) as client:
        result = await client.call_tool("read_file", {"path": "data.csv"})
        secret = await client.call_tool("read_file", {"path": str(root.parent / "outside" / "secret.txt")})
    assert "client's roots" in error_text(result)
    assert SECRET not in error_text(secret)


async def test_search_text_filters_by_glob_and_case(server: BulkheadServer, root: Path) -> None:
    async with connect(server) as client:
        only_py = data(await client.call_tool("search_text", {"pattern": "token", "glob": "*.py"}))
        exact = data(await client.call_tool("search_text", {"pattern": "token", "case_sensitive": True}))
        loose = data(await client.call_tool("search_text", {"pattern": "TOKEN"}))
    assert [m["path"] for m in only_py["matches"]] == [str(root / "src/pkg/util.py")]
    assert exact["matches"] == []
    assert loose["matches"] == only_py["matches"]


async def test_find_files_with_a_path_glob_and_character_classes(server: BulkheadServer, root: Path) -> None:
    async with connect(server) as client:
        by_path = data(await client.call_tool("find_files", {"glob": "src/*/m*.py"}))
        classes = data(await client.call_tool("find_files", {"glob": "[dl]*.[!t]*"}))
        nothing = data(await client.call_tool("find_files", {"glob": "*.rs"}))
        outside = await client.call_tool("find_files", {"glob": "*", "path": "/etc"})
    assert by_path["paths"] == [str(root / "src/pkg/main.py")]
    assert classes["paths"] == [str(root / "data.csv"), str(root / "logo.png")]
    assert nothing["paths"] == []
    assert "outside" in error_text(outside)


async def test_client_roots_are_asked_again_after_they_change(root: Path, sandbox: Sandbox) -> None:
    import warnings  # noqa: PLC0415

    from mcp import Client  # noqa: PLC0415
    from mcp_types import ListRootsResult, Root  # noqa: PLC0415

    server = build_server(make_settings(root), sandbox)
    current = [f"file://{root}/docs"]

    async def roots(context: Any) -> ListRootsResult:
        del context
        return ListRootsResult(roots=[Root.model_validate({"uri": uri}) for uri in current])

    async with Client(server, mode="legacy", list_roots_callback=roots) as client:
        assert data(await client.call_tool("list_directory", {}))["path"] == str(root / "docs")
        current[:] = [f"file://{root}/src"]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            await client.send_roots_list_changed()  # pyright: ignore[reportDeprecated] -- handshake-era API
        with anyio.fail_after(10):
            while True:
                listing = data(await client.call_tool("list_directory", {}))
                if listing["path"] == str(root / "src"):
                    break
