"""A directory held in memory, loaded from a JSON or CSV file and reloaded when the file changes.

JSON: a list of objects, or an object with a `users` list. CSV: a header row of field names;
`groups` is a `;`-separated list. Unknown columns are ignored; every record needs an `id`.
When several records share an email or username, lookups find the one with the lowest id (in
code point order, as the PostgreSQL backend does). A file that fails to reload is logged and the
previous contents keep serving.
"""

import csv
import io
import json
import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

from bulkhead_users.directory import Page, Query, Record
from bulkhead_users.fields import ALL_FIELDS, LIST_FIELDS

__all__ = ["DirectoryFileError", "FileDirectory", "parse_records"]

logger = logging.getLogger("bulkhead_users.filedir")

RECHECK_SECONDS = 1.0
"""How often, at most, the file's modification time is checked."""


class DirectoryFileError(ValueError):
    """The directory file cannot be used; the message names the file and the record."""


_SCALARS = (str, int, float, bool)
"""What a field's value (or a groups entry) may be in JSON: nested lists and objects are refused."""


def _clean(raw: dict[str, Any], where: str) -> Record:
    record: Record = {}
    for name in ALL_FIELDS:
        value = raw.get(name)
        if name in LIST_FIELDS:
            if isinstance(value, str):
                items: list[Any] = [part.strip() for part in value.split(";") if part.strip()]
            elif value is None:
                items = []
            elif isinstance(value, list):
                # null entries are left out, as the PostgreSQL backend leaves out NULLs in its array.
                items = [item for item in cast("list[Any]", value) if item is not None]
            else:
                raise DirectoryFileError(f"{where}: {name} must be a list of strings")
            if not all(isinstance(item, _SCALARS) for item in items):
                raise DirectoryFileError(f"{where}: {name} must be a list of strings")
            record[name] = [str(item) for item in items]
        elif value is None or value == "":
            record[name] = None
        elif not isinstance(value, _SCALARS):
            raise DirectoryFileError(f"{where}: {name} must be a string or a number")
        else:
            record[name] = str(value)
    if not record["id"]:
        raise DirectoryFileError(f"{where}: the record has no id")
    return record


def parse_records(data: bytes, path: Path) -> list[Record]:
    """Parse a JSON or CSV directory file (chosen by the file's suffix) into records.

    Raises:
        DirectoryFileError: the file cannot be used; the message names it (and the record at fault).
    """
    if path.suffix.lower() == ".csv":
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise DirectoryFileError(f"{path}: not UTF-8 text (byte {exc.start} cannot be decoded)") from None
        reader = csv.DictReader(io.StringIO(text))
        try:
            raw_records: list[Any] = list(reader)
        except csv.Error as exc:
            # For one, a field over the csv module's limit (128 KiB) is refused here.
            raise DirectoryFileError(
                f"{path}: line {reader.reader.line_num}: not readable CSV ({exc})"
            ) from None
        first_line = 2
    else:
        try:
            parsed = json.loads(data)
        except RecursionError:
            raise DirectoryFileError(f"{path}: not valid JSON (nested too deeply)") from None
        except ValueError as exc:  # UnicodeDecodeError too: JSON must be UTF-8
            raise DirectoryFileError(f"{path}: not valid JSON ({exc})") from None
        if isinstance(parsed, dict) and "users" in parsed:
            parsed = parsed["users"]  # pyright: ignore[reportUnknownVariableType] -- JSON object
        if not isinstance(parsed, list):
            raise DirectoryFileError(f"{path}: expected a list of user objects (or {{'users': [...]}})")
        raw_records = parsed  # pyright: ignore[reportUnknownVariableType] -- JSON list
        first_line = 0
    records: list[Record] = []
    seen: set[str] = set()
    for index, raw in enumerate(raw_records):
        where = f"{path}: {'line' if first_line else 'record'} {index + first_line}"
        if not isinstance(raw, dict):
            raise DirectoryFileError(f"{where}: expected an object")
        record = _clean(raw, where)  # pyright: ignore[reportUnknownArgumentType] -- JSON object
        if record["id"] in seen:
            raise DirectoryFileError(f"{where}: duplicate id {record['id']!r}")
        seen.add(record["id"])
        records.append(record)
    return records


def _lower(value: Any) -> str:
    return value.lower() if isinstance(value, str) else ""


class _Index:
    """Records with the lookups and lower-cased copies a search needs."""

    def __init__(self, records: list[Record]) -> None:
        self.records = records
        self.by_key: dict[str, dict[str, Record]] = {"id": {}, "email": {}, "username": {}}
        self.lowered: list[dict[str, Any]] = []
        for record in records:
            self.by_key["id"][record["id"]] = record
            for name in ("email", "username"):
                if record.get(name):
                    key = record[name].lower()
                    held = self.by_key[name].get(key)
                    if held is None or record["id"] < held["id"]:
                        self.by_key[name][key] = record
            self.lowered.append(
                {
                    name: [item.lower() for item in record[name]]
                    if name in LIST_FIELDS
                    else _lower(record[name])
                    for name in ALL_FIELDS
                }
            )
        self.sorted: dict[str, list[int]] = {}

    def order(self, field: str) -> list[int]:
        if field not in self.sorted:
            lowered = self.lowered
            self.sorted[field] = sorted(
                range(len(self.records)), key=lambda i: (lowered[i][field], self.records[i]["id"])
            )
        return self.sorted[field]


class FileDirectory:
    """The `Directory` backend for JSON and CSV files."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._index = _Index([])
        self._stamp: tuple[int, int] | None = None
        self._checked = 0.0

    async def open(self) -> None:
        """Read the file now (see `load`)."""
        await self.load()

    async def load(self) -> None:
        """Read the file now; raises DirectoryFileError (or OSError) when it cannot be used."""
        import aiofiles  # noqa: PLC0415 -- a few ms of start-up that only the file backend needs

        stat = os.stat(self.path)
        async with aiofiles.open(self.path, "rb") as handle:
            data = await handle.read()
        self._index = _Index(parse_records(data, self.path))
        self._stamp = (stat.st_mtime_ns, stat.st_size)
        self._checked = time.monotonic()
        logger.info("loaded %d users from %s", len(self._index.records), self.path)

    async def _fresh(self) -> _Index:
        now = time.monotonic()
        if self._stamp is None or now - self._checked >= RECHECK_SECONDS:
            self._checked = now
            try:
                stat = os.stat(self.path)
                if (stat.st_mtime_ns, stat.st_size) != self._stamp:
                    await self.load()
            except (OSError, DirectoryFileError) as exc:
                logger.warning("keeping the previous directory: cannot reload %s: %s", self.path, exc)
        return self._index

    async def get(self, key: str, key_fields: Sequence[str]) -> Record | None:
        """The record whose id, or else email or username (if in `key_fields`), is `key`."""
        index = await self._fresh()
        for name in key_fields:
            found = index.by_key[name].get(key if name == "id" else key.lower())
            if found is not None:
                return found
        return None

    async def search(self, query: Query, offset: int, limit: int) -> Page:
        """Matching records in `query.sort` order, sliced."""
        index = await self._fresh()
        matches: list[Record] = []
        total = 0
        for position in index.order(query.sort):
            low = index.lowered[position]
            if query.text is not None and not any(query.text in low[name] for name in query.text_fields):
                continue
            if not all(
                value in low[name] if name in LIST_FIELDS else low[name] == value
                for name, value in query.filters
            ):
                continue
            record = index.records[position]
            if not all(record[name] == value for name, value in query.exact):
                continue
            if offset <= total < offset + limit:
                matches.append(record)
            total += 1
        return Page(matches, total)

    async def groups(self, offset: int, limit: int) -> tuple[list[tuple[str, int]], int]:
        """Groups with member counts, by name (case-insensitive, then exact)."""
        index = await self._fresh()
        counts: dict[str, int] = {}
        for record in index.records:
            for group in record["groups"]:
                counts[group] = counts.get(group, 0) + 1
        names = sorted(counts, key=lambda name: (name.lower(), name))
        return [(name, counts[name]) for name in names[offset : offset + limit]], len(names)

    async def aclose(self) -> None:
        """Nothing to release: the file is read whole and closed at each load."""
