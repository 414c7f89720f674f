"""One structured audit record per tool call, resource read and prompt get.

Records are produced in one place (`bulkhead.app.BulkheadServer`), never by individual tools. They
carry who asked (the token's name, never the token), what was asked (arguments with secret-looking
keys redacted and long values cut), how it ended and how long it took; never the result itself.
"""

import asyncio
import json
import logging
import re
import time
from pathlib import Path
from typing import Any, Literal, TextIO

__all__ = ["AuditLog", "Outcome", "redact_arguments"]

Outcome = Literal["ok", "rejected", "error", "cancelled"]

_SECRET_KEY = re.compile(r"pass|secret|token|api[-_]?key|auth|credential|cookie|session|dsn", re.IGNORECASE)
_MAX_VALUE = 200
_MAX_ITEMS = 20


def _cut(value: Any, depth: int = 0) -> Any:
    if isinstance(value, str):
        return (
            value
            if len(value) <= _MAX_VALUE
            else value[:_MAX_VALUE] + f"...(+{len(value) - _MAX_VALUE} chars)"
        )
    if depth >= 3:
        return "[nested]" if isinstance(value, dict | list) else value
    if isinstance(value, dict):
        return redact_arguments(value, depth + 1)  # pyright: ignore[reportUnknownArgumentType] -- JSON object
    if isinstance(value, list):
        items = [_cut(item, depth + 1) for item in value[:_MAX_ITEMS]]  # pyright: ignore[reportUnknownVariableType] -- JSON array
        if len(value) > _MAX_ITEMS:  # pyright: ignore[reportUnknownArgumentType] -- JSON array
            items.append(f"...(+{len(value) - _MAX_ITEMS} items)")  # pyright: ignore[reportUnknownArgumentType] -- JSON array
        return items
    return value


def redact_arguments(arguments: dict[str, Any] | None, depth: int = 0) -> dict[str, Any]:
    """A copy of `arguments` safe to log: secret-looking keys redacted, long values cut."""
    if not arguments:
        return {}
    safe: dict[str, Any] = {}
    for index, (key, value) in enumerate(arguments.items()):
        if index >= _MAX_ITEMS:
            safe["..."] = f"+{len(arguments) - _MAX_ITEMS} keys"
            break
        name = _cut(str(key))
        safe[name] = "[redacted]" if _SECRET_KEY.search(name) else _cut(value, depth)
    return safe


class _Encoded:
    """An audit entry that becomes its JSON text only when a log message is formatted."""

    __slots__ = ("entry",)

    def __init__(self, entry: dict[str, Any]) -> None:
        self.entry = entry

    def __str__(self) -> str:
        return json.dumps(self.entry, default=str, ensure_ascii=False)


class AuditLog:
    """Writes audit records as JSON lines to stderr (through logging), to a file, or nowhere."""

    def __init__(self, server: str, sink: str = "stderr") -> None:
        self.server = server
        self._logger = logging.getLogger("bulkhead.audit")
        # Audit records are not diagnostics: they are written whatever --log-level says.
        self._logger.setLevel(logging.INFO)
        self._file: TextIO | None = None
        self.enabled = sink != "off"
        self._pending: list[dict[str, Any]] = []
        self._flush_scheduled = False
        if sink not in ("stderr", "off"):
            self._file = Path(sink).open("a", encoding="utf-8", buffering=1)  # noqa: SIM115 -- lives as long as the server

    def record(
        self,
        *,
        operation: str,
        target: str,
        arguments: dict[str, Any] | None,
        outcome: Outcome,
        started: float,
        principal: str,
        request_id: str | None,
        result_size: int | None = None,
        reason: str | None = None,
    ) -> None:
        """Make one record, written on the event loop's next turn (at once outside a loop).

        `started` is a `time.perf_counter()` reading from before the work.
        """
        if not self.enabled:
            return
        entry: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "server": self.server,
            "request_id": request_id,
            "principal": principal,
            "operation": operation,
            "target": _cut(target),
            "arguments": redact_arguments(arguments),
            "outcome": outcome,
            "duration_ms": round((time.perf_counter() - started) * 1000, 3),
            "result_size": result_size,
        }
        if reason is not None:
            entry["reason"] = _cut(reason)
        self._pending.append(entry)
        if self._flush_scheduled:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.flush()
            return
        # Written on the loop's next turn, after the answer that is going out now: the record
        # costs the caller no latency. `flush()` (also called when the server stops) writes what
        # is still pending.
        self._flush_scheduled = True
        loop.call_soon(self.flush)

    def flush(self) -> None:
        """Write the records made so far."""
        self._flush_scheduled = False
        pending, self._pending = self._pending, []
        for entry in pending:
            self._write(entry)

    def _write(self, entry: dict[str, Any]) -> None:
        if self._file is not None:
            self._file.write(json.dumps(entry, default=str, ensure_ascii=False) + "\n")
        elif self._logger.isEnabledFor(logging.INFO):
            # The whole record is the message, so text-format logs carry it as well as JSON ones;
            # it is encoded only if a formatter asks (the JSON one reads `audit` instead). The
            # record is made here, not by `info()`, which would walk the stack for a caller
            # nothing prints: together a third of what auditing a trivial call costs.
            record = self._logger.makeRecord(
                self._logger.name,
                logging.INFO,
                __file__,
                0,
                "%s",
                (_Encoded(entry),),
                None,
                extra={"audit": entry},
            )
            self._logger.handle(record)

    def close(self) -> None:
        """Write what is pending and close the audit file, if there is one."""
        self.flush()
        if self._file is not None:
            self._file.close()
            self._file = None
