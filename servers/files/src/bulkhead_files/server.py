"""`build_server`: bulkhead-files' tools and resources, wired to a `Sandbox`. No domain logic."""

import base64
import functools
import json
from typing import Annotated, Any
from urllib.parse import urlsplit

import anyio
from mcp.server.context import ServerRequestContext
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ResourceError
from mcp.shared.exceptions import MCPError
from mcp_types import INVALID_PARAMS, CallToolResult, TextContent
from pydantic import Field

from bulkhead.app import BulkheadServer
from bulkhead.errors import BulkheadError, ResourceNotFoundError
from bulkhead.notify import ChangeNotifier
from bulkhead.results import READ_ONLY, structured
from bulkhead.validation import Cursor
from bulkhead_files.clientroots import ClientRoots
from bulkhead_files.models import (
    DirectoryListing,
    FileInfo,
    FoundFiles,
    ReadFileOutput,
    TextMatch,
    TextSearch,
)
from bulkhead_files.resources import FilesServer, file_uri, install_resources, path_of
from bulkhead_files.sandbox import MAX_PATH_CHARS, Sandbox
from bulkhead_files.settings import FilesSettings
from bulkhead_files.tree import FileRange, Limits, Tree, iso_time

__all__ = ["build_server", "limits_from"]

INSTRUCTIONS = """\
Read-only access to one or more directory trees (the roots). Paths are absolute, or relative to
the first root. Start with list_directory (no path lists the root), find_files to locate files by
name, search_text to find lines by content, then read_file; large files are read in ranges with
offset/next_offset. Every file is also a resource (file:///absolute/path). Hidden files and
secret-looking files (.env, keys, .git ...) are never served."""

PathArg = Annotated[
    str,
    Field(
        min_length=1,
        max_length=MAX_PATH_CHARS,
        description="A path inside the roots: absolute, or relative to the first root",
    ),
]
OptionalPath = Annotated[
    str | None,
    Field(
        default=None,
        max_length=MAX_PATH_CHARS,
        description="A directory inside the roots (absolute, or relative to the first root); omit for all",
    ),
]


def limits_from(settings: FilesSettings) -> Limits:
    """The per-call bounds the settings describe."""
    return Limits(
        page_size=settings.page_size,
        max_read_bytes=settings.max_read_bytes,
        search_timeout=settings.search_timeout_ms / 1000,
        max_search_matches=settings.max_search_matches,
        max_search_file_bytes=settings.max_search_file_bytes,
        max_walk_entries=settings.max_walk_entries,
    )


def _read_result(found: FileRange) -> CallToolResult:
    length = len(found.data)
    meta = ReadFileOutput(
        path=found.path,
        mime_type=found.mime_type,
        encoding="utf-8" if found.text is not None else "base64",
        offset=found.offset,
        length=length,
        size=found.size,
        truncated=found.next_offset is not None,
        next_offset=found.next_offset,
    )
    content: list[Any]
    if found.text is not None:
        # The text travels once, in the content block every client reads; the structured part
        # carries only where it sits in the file.
        content = [TextContent(type="text", text=found.text)]
    else:
        content = [
            {
                "type": "resource",
                "resource": {
                    "uri": file_uri(found.path),
                    "mimeType": found.mime_type,
                    "blob": base64.b64encode(found.data).decode(),
                },
            }
        ]
    if found.next_offset is not None:
        content.append(
            TextContent(
                type="text",
                text=(
                    f"[bytes {found.offset}-{found.offset + length} of {found.size}; call read_file with "
                    f"offset={found.next_offset} to read on]"
                ),
            )
        )
    return CallToolResult.model_validate(
        {"content": content, "structuredContent": meta.model_dump(mode="json", by_alias=True)}
    )


async def _check_subscribe(roots: ClientRoots, ctx: ServerRequestContext[Any, Any], uri: str) -> None:
    """Subscriptions only to files this connection may read: inside its client's roots, not denied.

    Other URIs are accepted as the protocol expects (nothing here ever changes them).
    """
    if urlsplit(uri).scheme != "file":
        return
    try:
        path = path_of(uri)
        if not path.startswith("/"):
            raise ResourceNotFoundError(f"Unknown resource: {uri[:200]}. Give file:///absolute/path.")
        (await roots.sandbox_for(ctx)).locate(path)
    except (BulkheadError, ResourceError) as exc:
        raise MCPError(INVALID_PARAMS, f"Cannot subscribe: {exc}") from None


def build_server(
    settings: FilesSettings, sandbox: Sandbox, notifier: ChangeNotifier | None = None
) -> BulkheadServer:
    """The bulkhead-files MCP server over `sandbox`; `notifier` sends its change notifications."""
    notifier = notifier if notifier is not None else ChangeNotifier()
    server = FilesServer(settings, instructions=INSTRUCTIONS, version="0.1.0", subscriptions=notifier.bus)
    limits = limits_from(settings)
    roots = ClientRoots(server, sandbox, enabled=settings.client_roots)

    notifier.install(
        server,
        resources=True,
        subscribe=True,
        check_subscribe=functools.partial(_check_subscribe, roots),
        may_hear=roots.may_hear,
    )

    async def tree_for(ctx: Context[Any, Any]) -> Tree:
        return Tree(await roots.sandbox_for(ctx), limits)

    @server.tool(annotations=READ_ONLY)
    async def list_directory(
        ctx: Context[Any, Any],
        path: OptionalPath = None,
        cursor: Cursor = None,
        details: Annotated[bool, Field(description="Also give each entry's size and modified time")] = False,
    ) -> Annotated[CallToolResult, DirectoryListing]:
        """List one directory, a page at a time: names sorted, directories marked with a trailing /.

        Symbolic links end with @, other special files with |. With details=true each entry also
        comes with its type, size and modified time. Pass `next_cursor` back as `cursor` for the
        next page. Omit `path` for the root (or the list of roots when there are several). Hidden
        and secret-looking entries are left out. Use find_files to look for a name anywhere below.
        """
        tree = await tree_for(ctx)
        scope = {"tool": "list_directory", "path": path, "details": details}
        offset = server.cursors.decode(cursor, scope)
        shown, names, extra, total = await tree.list_directory_async(
            path, offset, settings.page_size, details=details
        )
        end = offset + settings.page_size
        next_cursor = server.cursors.encode(end, scope) if end < total else None
        # Plain data: a thousand pydantic entries would cost more than the listing itself. The text
        # copy is the listing as a person would read it, not the JSON again.
        listing: dict[str, Any] = {
            "path": shown,
            "entries": names,
            "total": total,
            "next_cursor": next_cursor,
        }
        if extra is not None:
            listing["details"] = extra
            text = json.dumps(listing, separators=(",", ":"))
        else:
            text = "\n".join([f"{shown} ({total} entries)", *names])
            if next_cursor is not None:
                text += f"\n[more: call list_directory again with cursor={next_cursor}]"
        return CallToolResult(content=[TextContent(type="text", text=text)], structured_content=listing)

    @server.tool(annotations=READ_ONLY)
    async def read_file(
        ctx: Context[Any, Any],
        path: PathArg,
        offset: Annotated[int, Field(ge=0, description="First byte to read (default 0)")] = 0,
        length: Annotated[
            int | None, Field(ge=1, description="Most bytes to read; default and cap: the server's limit")
        ] = None,
    ) -> Annotated[CallToolResult, ReadFileOutput]:
        """Read a file, or a byte range of it: text as text, binary files as a base64 blob.

        Returns at most the server's per-call limit (about 1 MiB by default). When more follows,
        `truncated` is true and `next_offset` says where to continue: call again with
        offset=next_offset. Ranges of text end on a character boundary.
        """
        tree = await tree_for(ctx)
        found = await tree.read_async(path, offset, length)
        return _read_result(found)

    @server.tool(annotations=READ_ONLY)
    async def find_files(
        ctx: Context[Any, Any],
        glob: Annotated[
            str,
            Field(
                min_length=1,
                max_length=500,
                description="`*.py`, `report-202?.csv`, `docs/**/*.md`: without / it matches names, "
                "with / paths below `path`; case-insensitive",
            ),
        ],
        path: OptionalPath = None,
        cursor: Cursor = None,
    ) -> Annotated[CallToolResult, FoundFiles]:
        """Find files by name (a glob) anywhere below a directory, a page of absolute paths at a time.

        Use search_text instead to find files by what they contain. The walk is bounded in time
        and entries; `stopped` says when it ended early.
        """
        tree = await tree_for(ctx)
        scope = {"tool": "find_files", "glob": glob, "path": path}
        offset = server.cursors.decode(cursor, scope)
        found = await anyio.to_thread.run_sync(tree.find, glob, path, offset, settings.page_size)
        next_cursor = server.cursors.encode(offset + len(found.paths), scope) if found.more else None
        return structured(FoundFiles(paths=found.paths, next_cursor=next_cursor, stopped=found.stopped))

    @server.tool(annotations=READ_ONLY)
    async def search_text(
        ctx: Context[Any, Any],
        pattern: Annotated[
            str, Field(min_length=1, max_length=500, description="Text to find (literal unless regex=true)")
        ],
        path: OptionalPath = None,
        regex: Annotated[bool, Field(description="Treat pattern as a regular expression")] = False,
        case_sensitive: Annotated[bool, Field(description="Match case exactly")] = False,
        glob: Annotated[
            str | None, Field(max_length=500, description="Only files whose names match, such as *.py")
        ] = None,
        max_matches: Annotated[
            int, Field(ge=1, le=10_000, description="Most matching lines to return (capped by the server)")
        ] = 50,
    ) -> Annotated[CallToolResult, TextSearch]:
        """Find lines containing a text (or matching a regular expression) in the files below a path.

        `path` may also be one file. Binary files and very large files are skipped; the search is
        bounded in time and matches, and `truncated`/`stopped` say when it ended early. Each
        match gives the path, line number and the line (cut to 400 characters); read_file shows more.
        """
        tree = await tree_for(ctx)
        hits = await anyio.to_thread.run_sync(
            functools.partial(
                tree.search_text,
                pattern,
                is_regex=regex,
                case_sensitive=case_sensitive,
                path=path,
                glob=glob,
                max_matches=max_matches,
            )
        )
        return structured(
            TextSearch(
                matches=[TextMatch(path=h.path, line=h.line, text=h.text) for h in hits.hits],
                files_searched=hits.files_searched,
                truncated=hits.stopped is not None,
                stopped=hits.stopped,
            )
        )

    @server.tool(annotations=READ_ONLY)
    async def file_info(ctx: Context[Any, Any], path: PathArg) -> Annotated[CallToolResult, FileInfo]:
        """Metadata of a file or directory: type, size, times, permissions, MIME type, resource URI."""
        tree = await tree_for(ctx)
        opened, mime = await anyio.to_thread.run_sync(tree.info, path)
        st = opened.st
        return structured(
            FileInfo(
                path=opened.path,
                type="directory" if opened.is_dir else "file",
                size=st.st_size,
                modified=iso_time(st.st_mtime),
                accessed=iso_time(st.st_atime),
                changed=iso_time(st.st_ctime),
                permissions=f"{st.st_mode & 0o7777:04o}",
                mime_type=mime,
                uri=file_uri(opened.path),
            )
        )

    install_resources(server, settings, roots, limits)
    del list_directory, read_file, find_files, search_text, file_info
    return server
