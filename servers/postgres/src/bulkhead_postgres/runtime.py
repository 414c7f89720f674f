"""The server's lifetime: the database (embedded when no DSN is given), the role check, cleanup."""

import logging
import sys
from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from typing import Any

from bulkhead.errors import UnavailableError
from bulkhead_postgres.catalog import Catalog
from bulkhead_postgres.database import Database
from bulkhead_postgres.settings import PostgresSettings

__all__ = ["running"]

logger = logging.getLogger("bulkhead_postgres")


def _stop_start(message: str) -> None:
    sys.stderr.write(f"bulkhead-postgres: {message}\n")
    raise SystemExit(2)


@asynccontextmanager
async def running(settings: PostgresSettings, database: Database) -> AsyncGenerator[None]:
    """Connect, check the role, and clean up on the way out.

    With no DSN the embedded demo database is started first. A role that can write stops the start
    unless allow_privileged_role is set.
    """
    embedded: Any = None
    if settings.dsn is None:
        from bulkhead_postgres.embedded import start_embedded_async  # noqa: PLC0415 -- only the demo needs it

        embedded = await start_embedded_async()
        database.dsn = embedded.dsn
    try:
        try:
            name, findings = await Catalog(database, settings.schemas).role_findings()
        except UnavailableError as exc:
            _stop_start(f"cannot use the database (dsn): {exc}")
            raise
        serious = [f for f in findings if f.severity in ("critical", "high")]
        if serious and not settings.allow_privileged_role:
            _stop_start(
                f"refusing to serve: {serious[0].issue}. Connect as a read-only role "
                "(bulkhead-postgres --print-setup-sql prints the SQL), or set allow_privileged_role."
            )
        if serious:
            database.privileged = True
            logger.warning("serving with a privileged role: %s", "; ".join(f.issue for f in serious))
        logger.info("connected as role %s", name)
        yield
    finally:
        await database.close()
        if embedded is not None:
            await embedded.aclose()
