"""`bulkhead-postgres`: settings -> logging -> server -> transport."""

import contextlib
import sys
from collections.abc import Sequence
from importlib.resources import files

from bulkhead.logging import configure_logging
from bulkhead.settings import load_settings
from bulkhead_postgres.settings import PostgresSettings

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> None:
    """Run bulkhead-postgres with settings from env vars and `argv`."""
    settings = load_settings(PostgresSettings, argv)
    if settings.print_setup_sql:
        sys.stdout.write(
            files("bulkhead_postgres").joinpath("sql", "setup-role.sql").read_text(encoding="utf-8")
        )
        return
    configure_logging(settings.log_level, settings.log_format)
    if settings.dsn is None and "schemas" not in settings.model_fields_set:
        from bulkhead_postgres.embedded import SCHEMAS  # noqa: PLC0415

        # The embedded demo database keeps its tables in its own schemas.
        settings = settings.model_copy(update={"schemas": list(SCHEMAS)})
    # The MCP SDK is most of the start-up time: import it only once the settings are known to be good.
    from bulkhead.serve import serve  # noqa: PLC0415
    from bulkhead_postgres.database import Database, Limits  # noqa: PLC0415
    from bulkhead_postgres.runtime import running  # noqa: PLC0415
    from bulkhead_postgres.server import build_server  # noqa: PLC0415

    database = Database(
        settings.dsn.get_secret_value() if settings.dsn else "",
        Limits.from_settings(settings),
        pool_size=settings.pool_size,
        target_session_attrs=settings.target_session_attrs,
    )
    server = build_server(settings, database)
    with contextlib.suppress(KeyboardInterrupt):
        serve(server, settings, resources=running(settings, database))
