"""`bulkhead-users`: settings -> logging -> server -> transport."""

import contextlib
from collections.abc import Sequence

from bulkhead.logging import configure_logging
from bulkhead.serve import serve
from bulkhead.settings import load_settings
from bulkhead_users.backend import create_directory, opened
from bulkhead_users.server import build_server
from bulkhead_users.settings import UsersSettings

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> None:
    """Run bulkhead-users with settings from env vars and `argv`."""
    settings = load_settings(UsersSettings, argv)
    configure_logging(settings.log_level, settings.log_format)
    directory = create_directory(settings)
    server = build_server(settings, directory)
    with contextlib.suppress(KeyboardInterrupt):
        serve(server, settings, resources=opened(directory))
