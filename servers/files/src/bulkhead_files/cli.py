"""`bulkhead-files`: settings -> logging -> server -> transport."""

import contextlib
from collections.abc import Sequence

from bulkhead.logging import configure_logging
from bulkhead.settings import load_settings
from bulkhead_files.settings import FilesSettings

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> None:
    """Run bulkhead-files with settings from env vars and `argv`."""
    settings = load_settings(FilesSettings, argv)
    configure_logging(settings.log_level, settings.log_format)
    # The MCP SDK is most of the start-up time: import it only once the settings are known to be good.
    from bulkhead.notify import ChangeNotifier  # noqa: PLC0415
    from bulkhead.serve import serve  # noqa: PLC0415
    from bulkhead_files.runtime import running  # noqa: PLC0415
    from bulkhead_files.sandbox import Sandbox  # noqa: PLC0415
    from bulkhead_files.server import build_server  # noqa: PLC0415

    sandbox = Sandbox.from_settings(settings)
    notifier = ChangeNotifier()
    server = build_server(settings, sandbox, notifier)
    with contextlib.suppress(KeyboardInterrupt):
        serve(server, settings, resources=running(settings, sandbox, notifier))
