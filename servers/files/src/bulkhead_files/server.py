"""`build_server`: bulkhead-files' tools and resources, wired to a `Sandbox`. No domain logic."""

from bulkhead.app import BulkheadServer
from bulkhead_files.sandbox import Sandbox
from bulkhead_files.settings import FilesSettings

__all__ = ["build_server"]

INSTRUCTIONS = """\
Read-only access to a few directory trees."""


def build_server(settings: FilesSettings, sandbox: Sandbox) -> BulkheadServer:
    """The bulkhead-files MCP server over `sandbox`."""
    del sandbox
    return BulkheadServer(settings, instructions=INSTRUCTIONS, version="0.1.0")
