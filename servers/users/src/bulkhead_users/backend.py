"""Choosing and opening the directory backend the settings describe."""

import logging
import sys
from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager

from bulkhead.errors import UnavailableError
from bulkhead_users.directory import Directory
from bulkhead_users.fields import FieldPolicy
from bulkhead_users.filedir import FileDirectory
from bulkhead_users.settings import BUNDLED_DIRECTORY, UsersSettings

__all__ = ["create_directory", "opened"]

logger = logging.getLogger("bulkhead_users")


def create_directory(settings: UsersSettings) -> Directory:
    """A not-yet-opened backend: PostgreSQL when --dsn is set, else the file (bundled by default)."""
    if settings.dsn is not None:
        from bulkhead_users.pgdir import PostgresDirectory  # noqa: PLC0415 -- asyncpg loads only when used

        return PostgresDirectory(
            settings.dsn.get_secret_value(),
            table=settings.table,
            column_map=settings.column_map(),
            pool_size=settings.pool_size,
            # Only the allow-list's columns are read: hidden values never enter the process.
            fields=FieldPolicy(settings.fields).visible,
        )
    return FileDirectory(settings.directory or BUNDLED_DIRECTORY)


@asynccontextmanager
async def opened(directory: Directory) -> AsyncGenerator[Directory]:
    """Open `directory` for the server's lifetime; a backend that cannot open stops the start (exit 2)."""
    try:
        await directory.open()
    except (OSError, ValueError, UnavailableError) as exc:
        # The exception text never includes the DSN: asyncpg reports host and port, not passwords.
        # ValueError covers DirectoryFileError (a subclass) and the backends' refusals of the table.
        setting = "dsn" if not isinstance(directory, FileDirectory) else "directory"
        reason = str(exc) if isinstance(exc, ValueError) else f"{type(exc).__name__}: {exc}"
        sys.stderr.write(f"bulkhead-users: cannot open the directory ({setting}): {reason}\n")
        raise SystemExit(2) from None
    try:
        yield directory
    finally:
        await directory.aclose()
