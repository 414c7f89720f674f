"""bulkhead-users: a read-only MCP server for looking people up in a user directory."""

__all__: list[str] = []
