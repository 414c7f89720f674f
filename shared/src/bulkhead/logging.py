"""Logging for Bulkhead servers: JSON or text, to stderr only.

stdout is the protocol channel in stdio mode, so no handler here ever writes to it.
"""

import json
import logging
import sys
import time
from typing import Any, Literal

__all__ = ["JsonFormatter", "configure_logging"]

_STANDARD_ATTRS = frozenset(
    logging.LogRecord("", 0, "", 0, "", None, None).__dict__.keys()
    | {"message", "asctime", "taskName", "color_message"}
)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, extra fields, traceback."""

    def format(self, record: logging.LogRecord) -> str:
        """Render `record` as a single line of JSON."""
        audit = record.__dict__.get("audit")
        if isinstance(audit, dict):
            # An audit record is its own flat JSON object (with its own time), not a message.
            entry = {"time": None, "level": record.levelname.lower(), "logger": record.name}
            return json.dumps(entry | audit, default=str, ensure_ascii=False)
        entry: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
        }
        entry["message"] = record.getMessage()
        for key, value in record.__dict__.items():
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["traceback"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


def configure_logging(
    level: Literal["debug", "info", "warning", "error"] = "info",
    fmt: Literal["json", "text"] = "json",
) -> None:
    """Send every log record to stderr in `fmt`, replacing any handler already installed.

    Call it before building the server: `MCPServer()` calls `logging.basicConfig()`, which does
    nothing once the root logger has a handler.
    """
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # uvicorn's access log would print request lines (and query strings) we do not want.
    logging.getLogger("uvicorn.access").disabled = True
