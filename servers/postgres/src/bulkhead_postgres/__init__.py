"""bulkhead-postgres: read-only SQL against PostgreSQL that no prompt can turn into a write."""

__all__: list[str] = []
