"""bulkhead-http: wrap an HTTP API as MCP tools, with no way to reach anything else."""

__all__: list[str] = []
