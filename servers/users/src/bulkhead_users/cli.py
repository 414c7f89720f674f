"""`bulkhead-users`: settings -> logging -> server -> transport."""

import contextlib
from collections.abc import Sequence

from bulkhead.logging import configure_logging
from bulkhead.settings import load_settings
from bulkhead_users.settings import UsersSettings

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> None:
    """Run bulkhead-users with settings from env vars and `argv`."""
    settings = load_settings(UsersSettings, argv)
    configure_logging(settings.log_level, settings.log_format)
    # The MCP SDK is most of the start-up time: import it only once the settings are known to be
    # good, so a configuration mistake is reported at once.
    from bulkhead.serve import serve  # noqa: PLC0415
    from bulkhead_users.backend import create_directory, opened  # noqa: PLC0415
    from bulkhead_users.server import build_server  # noqa: PLC0415

    directory = create_directory(settings)
    server = build_server(settings, directory)
    with contextlib.suppress(KeyboardInterrupt):
        serve(server, settings, resources=opened(directory))
