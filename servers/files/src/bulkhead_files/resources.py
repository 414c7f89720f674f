"""Every readable file as a resource: paginated resources/list, `file:///{+path}`, sized reads."""

import os
from collections.abc import Iterable
from dataclasses import replace
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import anyio
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel.helper_types import ReadResourceContents
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ResourceError, UnexpectedResourceError
from mcp_types import Annotations, InputRequiredResult, ListResourcesResult, PaginatedRequestParams, Resource
from pydantic import AnyUrl

from bulkhead.app import BulkheadServer
from bulkhead.errors import BulkheadError, NotFoundError, ResourceNotFoundError
from bulkhead_files.clientroots import ClientRoots
from bulkhead_files.sandbox import Sandbox
from bulkhead_files.settings import FilesSettings
from bulkhead_files.tree import INLINE_READ_BYTES, FileRange, Limits, Tree, guess_mime, iso_time

__all__ = ["FILE_TEMPLATE", "FilesServer", "file_uri", "install_resources", "path_of"]

FILE_TEMPLATE = "file:///{+path}"


def file_uri(path: str) -> str:
    """The `file://` URI of an absolute path."""
    return "file://" + quote(path, safe="/")


def path_of(uri: str) -> str:
    """The absolute path a `file://` URI names.

    Raises:
        ResourceNotFoundError: not a local file URI.
    """
    parts = urlsplit(uri)
    if parts.scheme != "file" or parts.netloc not in ("", "localhost") or parts.query or parts.fragment:
        raise ResourceNotFoundError(
            f"Unknown resource: {uri[:200]}. File resources look like file:///absolute/path."
        )
    path = unquote(parts.path)
    if not path.isascii():
        try:
            path.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate ("\ud800" in the JSON): no file has that name
            raise ResourceNotFoundError(
                f"Unknown resource: {uri[:200]!r} is not valid Unicode text (it holds a lone surrogate)."
            ) from None
    return path


class _FileReads(MCPServer[Any]):
    """Reads `file://` URIs itself, so each file keeps its own MIME type (a template has one)."""

    file_reader: Any = None

    async def read_resource(
        self, uri: AnyUrl | str, context: Context[Any, Any] | None = None
    ) -> Iterable[ReadResourceContents] | InputRequiredResult:
        text = str(uri)
        if self.file_reader is not None and text.startswith("file:"):
            return await self.file_reader(text, context)
        return await super().read_resource(uri, context)


class FilesServer(BulkheadServer, _FileReads):  # pyright: ignore[reportIncompatibleMethodOverride] -- BulkheadServer._handle_call_tool may hand the SDK a dict (bulkhead.results.wire_form)
    """A `BulkheadServer` (audit, error references) whose file resources are read by `_FileReads`."""


async def _whole(tree: Tree, path: str, cap: int) -> FileRange:
    with tree.sandbox.open(path) as opened:
        if opened.st.st_size > cap:
            raise _too_big(opened.path, opened.st.st_size, cap)
        if opened.st.st_size <= INLINE_READ_BYTES:
            found = tree.read_opened(opened, 0, cap)
        else:
            found = await anyio.to_thread.run_sync(tree.read_opened, opened, 0, cap)
    if found.next_offset is not None:
        raise _too_big(found.path, found.size, cap)
    return found


def _too_big(path: str, size: int, cap: int) -> BulkheadError:
    return BulkheadError(
        f"{path} is {size} bytes, more than the {cap}-byte limit of resources/read; read it in ranges "
        "with the read_file tool (offset and length)."
    )


def _page(sandbox: Sandbox, offset: int, limit: int, budget: int) -> tuple[list[Resource], bool]:
    resources: list[Resource] = []
    index = 0
    for entry in sandbox.walk(budget=[budget]):
        if index < offset:
            index += 1
            continue
        if len(resources) == limit:
            return resources, True
        index += 1
        try:
            st = entry.entry.stat(follow_symlinks=False)
        except OSError:
            continue
        name = entry.relative if len(sandbox.roots) == 1 else os.path.join(entry.root.path, entry.relative)
        resources.append(
            Resource(
                uri=file_uri(entry.path),
                name=name,
                mime_type=guess_mime(entry.parts[-1]),
                size=st.st_size,
                annotations=Annotations(last_modified=iso_time(st.st_mtime)),
            )
        )
    return resources, False


def install_resources(
    server: BulkheadServer, settings: FilesSettings, roots: ClientRoots, limits: Limits
) -> None:
    """Serve every file as a resource on `server` (a `FilesServer`)."""
    read_limits = replace(limits, max_read_bytes=settings.max_resource_bytes)

    async def read(uri: str, context: Context[Any, Any] | None) -> list[ReadResourceContents]:
        try:
            path = path_of(uri)
            tree = Tree(await roots.sandbox_for(context), read_limits)
            found = await _whole(tree, path, settings.max_resource_bytes)
        except NotFoundError as exc:
            raise ResourceNotFoundError(str(exc)) from None
        except BulkheadError as exc:
            raise ResourceError(str(exc)) from None
        except (ResourceError, ResourceNotFoundError):
            raise
        except Exception as exc:
            raise UnexpectedResourceError(f"Error reading resource {uri}") from exc
        content: str | bytes = found.text if found.text is not None else found.data
        return [ReadResourceContents(content=content, mime_type=found.mime_type)]

    if isinstance(server, _FileReads):
        server.file_reader = read

    async def list_resources(
        ctx: ServerRequestContext[Any, Any], params: PaginatedRequestParams | None
    ) -> ListResourcesResult:
        scope = {"resources": "list"}
        offset = server.cursors.decode(params.cursor if params else None, scope)
        sandbox = await roots.sandbox_for(ctx)
        page, more = await anyio.to_thread.run_sync(
            _page, sandbox, offset, settings.page_size, settings.max_walk_entries
        )
        cursor = server.cursors.encode(offset + settings.page_size, scope) if more else None
        return ListResourcesResult(resources=page, next_cursor=cursor)

    server._lowlevel_server.add_request_handler(  # pyright: ignore[reportPrivateUsage] -- MCPServer's own handler ignores cursors
        "resources/list", PaginatedRequestParams, list_resources
    )

    @server.resource(
        FILE_TEMPLATE,
        name="file",
        title="A file under the roots",
        description="Any readable file by absolute path: text as text, binaries as base64 with a MIME type.",
    )
    async def file_template(path: str) -> str:  # pragma: no cover -- `FilesServer` reads file:// itself
        raise ResourceNotFoundError(f"Unknown resource: file:///{path[:200]}")

    del file_template
