"""bulkhead-prompts: a prompt library served over MCP."""

__all__: list[str] = []
