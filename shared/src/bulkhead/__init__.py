"""Bulkhead: the shared package of the Bulkhead MCP servers."""

__all__: list[str] = []
