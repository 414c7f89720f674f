"""`bulkhead-prompts`: settings -> logging -> library -> server -> transport; or `check DIR`."""

import contextlib
import logging
import sys
from collections.abc import Sequence

from bulkhead.logging import configure_logging
from bulkhead.settings import load_settings
from bulkhead_prompts.settings import PromptsSettings

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> None:
    """Run bulkhead-prompts with settings from env vars and `argv` (or `check DIR`)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["check"]:
        from bulkhead_prompts.check import main as check  # noqa: PLC0415

        raise SystemExit(check(args[1:]))
    settings = load_settings(PromptsSettings, args)
    configure_logging(settings.log_level, settings.log_format)
    # The MCP SDK is most of the start-up time: import it only once the settings are known to be good.
    from bulkhead.notify import ChangeNotifier  # noqa: PLC0415
    from bulkhead.serve import serve  # noqa: PLC0415
    from bulkhead_prompts.library import Library  # noqa: PLC0415
    from bulkhead_prompts.runtime import running  # noqa: PLC0415
    from bulkhead_prompts.server import build_server  # noqa: PLC0415

    library = Library(
        settings.library_root, max_file_bytes=settings.max_file_bytes, max_prompts=settings.max_prompts
    )
    library.load_all()
    log = logging.getLogger("bulkhead_prompts")
    for problem in library.problems:
        log.warning("library problem: %s", problem, extra={"problem": str(problem)})
    log.info("serving %d prompts", len(library))
    notifier = ChangeNotifier()
    server = build_server(settings, library, notifier)
    with contextlib.suppress(KeyboardInterrupt):
        serve(server, settings, resources=running(settings, library, notifier))
