"""Files as resources: paginated resources/list, the file:/// template, text and blob reads."""

import base64
from pathlib import Path

import pytest
from mcp import MCPError
from mcp_types import BlobResourceContents, TextResourceContents

from bulkhead.app import BulkheadServer
from bulkhead.testing import connect
from bulkhead_files.resources import file_uri
from bulkhead_files.sandbox import Sandbox
from bulkhead_files.server import build_server
from tests.files.conftest import PNG, SECRET, make_settings

pytestmark = pytest.mark.anyio

ERAS = ["legacy", "2026-07-28"]


@pytest.mark.parametrize("era", ERAS)
async def test_resources_list_names_every_readable_file_with_type_size_and_time(
    server: BulkheadServer, root: Path, era: str
) -> None:
    async with connect(server, era) as client:
        listed = await client.list_resources()
    by_name = {r.name: r for r in listed.resources}
    assert set(by_name) == {
        "data.csv",
        "docs/guide.md",
        "docs/notes.txt",
        "logo.png",
        "src/pkg/main.py",
        "src/pkg/util.py",
    }
    csv = by_name["data.csv"]
    assert csv.uri == f"file://{root}/data.csv"
    assert csv.mime_type == "text/csv"
    assert csv.size == (root / "data.csv").stat().st_size
    assert csv.annotations is not None
    assert csv.annotations.last_modified is not None
    assert csv.annotations.last_modified.endswith("Z")
    assert by_name["logo.png"].mime_type == "image/png"
    assert listed.next_cursor is None


@pytest.mark.parametrize("era", ERAS)
async def test_resources_list_pages_through_thousands_of_files(
    root: Path, sandbox: Sandbox, era: str
) -> None:
    for d in range(5):
        folder = root / "bulk" / f"part{d}"
        folder.mkdir(parents=True)
        for i in range(1000):
            (folder / f"{i:04d}.txt").write_text(str(i))
    server = build_server(make_settings(root, page_size=900), sandbox)
    uris: list[str] = []
    async with connect(server, era) as client:
        cursor = None
        pages = 0
        while True:
            page = await client.list_resources(cursor=cursor)
            uris += [r.uri for r in page.resources]
            pages += 1
            cursor = page.next_cursor
            if cursor is None:
                break
        with pytest.raises(MCPError):
            await client.list_resources(cursor="forged." + "A" * 24)
    assert pages == 6
    assert len(uris) == 5006
    assert len(set(uris)) == 5006


@pytest.mark.parametrize("era", ERAS)
async def test_the_file_template_is_listed(server: BulkheadServer, era: str) -> None:
    async with connect(server, era) as client:
        templates = (await client.list_resource_templates()).resource_templates
    assert [t.uri_template for t in templates] == ["file:///{+path}"]


@pytest.mark.parametrize("era", ERAS)
async def test_reading_a_text_file_gives_text_with_its_mime_type(
    server: BulkheadServer, root: Path, era: str
) -> None:
    async with connect(server, era) as client:
        result = await client.read_resource(file_uri(str(root / "docs" / "guide.md")))
    [content] = result.contents
    assert isinstance(content, TextResourceContents)
    assert content.text == (root / "docs" / "guide.md").read_text()
    assert content.mime_type == "text/markdown"


@pytest.mark.parametrize("era", ERAS)
async def test_reading_a_binary_file_gives_a_base64_blob(
    server: BulkheadServer, root: Path, era: str
) -> None:
    async with connect(server, era) as client:
        result = await client.read_resource(file_uri(str(root / "logo.png")))
    [content] = result.contents
    assert isinstance(content, BlobResourceContents)
    assert base64.b64decode(content.blob) == PNG
    assert content.mime_type == "image/png"


async def test_names_that_need_escaping_round_trip_through_their_uri(
    server: BulkheadServer, root: Path
) -> None:
    name = "a file #1 50% [x].txt"
    (root / name).write_text("escaped")
    async with connect(server) as client:
        listed = {r.name: r.uri for r in (await client.list_resources()).resources}
        result = await client.read_resource(listed[name])
    assert result.contents[0].text == "escaped"  # type: ignore[union-attr]  # pyright: ignore[reportAttributeAccessIssue]


async def test_a_file_over_the_size_cap_points_to_ranged_reads(root: Path, sandbox: Sandbox) -> None:
    (root / "big.log").write_text("x" * 5000)
    server = build_server(make_settings(root, max_resource_bytes=1024), sandbox)
    async with connect(server) as client:
        with pytest.raises(MCPError) as caught:
            await client.read_resource(file_uri(str(root / "big.log")))
    assert "read_file" in str(caught.value)
    assert "5000" in str(caught.value)


@pytest.mark.parametrize(
    "template",
    [
        "file://{parent}/outside/secret.txt",
        "file://{root}/../outside/secret.txt",
        "file://{root}/%2e%2e/outside/secret.txt",
        "file://{root}/..%2foutside%2fsecret.txt",
        "file://{root}/.env",
        "file://{root}/.git/config",
        "file://{root}/id_rsa",
        "file://{root}-private/secret.txt",
        "file://evil.example{root}/data.csv",
        "file://{root}/data.csv%00.txt",
        "file:///etc/passwd",
        "http://localhost{root}/data.csv",
        "file://{root}/missing.txt",
    ],
)
async def test_resource_reads_outside_the_roots_or_of_secrets_fail_cleanly(
    server: BulkheadServer, root: Path, template: str
) -> None:
    uri = template.format(root=root, parent=root.parent)
    async with connect(server) as client:
        with pytest.raises(MCPError) as caught:
            await client.read_resource(uri)
        ok = await client.read_resource(file_uri(str(root / "data.csv")))
    assert SECRET not in str(caught.value)
    assert "hunter2" not in str(caught.value)
    assert "Internal error" not in str(caught.value)
    assert ok.contents


async def test_a_symlink_swapped_in_after_listing_is_not_read(server: BulkheadServer, root: Path) -> None:
    async with connect(server) as client:
        listed = {r.name: r.uri for r in (await client.list_resources()).resources}
        (root / "data.csv").unlink()
        (root / "data.csv").symlink_to(root.parent / "outside" / "secret.txt")
        with pytest.raises(MCPError) as caught:
            await client.read_resource(listed["data.csv"])
    assert SECRET not in str(caught.value)


async def test_every_resource_read_is_audited(root: Path, sandbox: Sandbox, tmp_path: Path) -> None:
    import json  # noqa: PLC0415

    audit = tmp_path / "audit.jsonl"
    server = build_server(make_settings(root, audit=str(audit)), sandbox)
    async with connect(server) as client:
        await client.read_resource(file_uri(str(root / "data.csv")))
        with pytest.raises(MCPError):
            await client.read_resource(file_uri(str(root / ".env")))
    server.audit.close()
    records = [json.loads(line) for line in audit.read_text().splitlines()]
    reads = [r for r in records if r["operation"] == "resources/read"]
    assert [r["outcome"] for r in reads] == ["ok", "rejected"]
