"""bulkhead-files: a directory tree as MCP resources, read-only, confined, live."""

__all__: list[str] = []
