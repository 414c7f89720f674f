"""PostgreSQL values as faithful JSON.

Exactness first: numeric keeps every digit (as a string), timestamps keep their zone and
`infinity`, intervals come out in ISO 8601, bytea as PostgreSQL's hex form, NaN and infinities as
strings (JSON has no such numbers), integers beyond 2^53 as strings (JSON readers in JavaScript
would round them). The text-format types are decoded by PostgreSQL itself (see `TEXT_TYPES`).
"""

import functools
import ipaddress
import json
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import asyncpg
from asyncpg import Range

__all__ = [
    "SESSION_SETTINGS",
    "TEXT_TYPES",
    "Converter",
    "JsonValue",
    "column_converter",
    "convert_rows",
    "install_codecs",
    "to_json_value",
]

JsonValue = None | bool | int | float | str | list["JsonValue"] | dict[str, "JsonValue"]

TEXT_TYPES = ("numeric", "money", "timestamp", "timestamptz", "date", "time", "timetz", "interval")
"""Types read in PostgreSQL's own text form: exact, and independent of Python's datetime limits."""

SESSION_SETTINGS = {
    "DateStyle": "ISO, YMD",
    "IntervalStyle": "iso_8601",
    "TimeZone": "UTC",
    # The guard's parser lexes strings this way; a server default of off would let backslashes
    # make the database see a different statement than the one the guard judged.
    "standard_conforming_strings": "on",
}
"""Session settings that make the text forms above unambiguous."""

_SAFE_INT = 2**53 - 1


def _encode_json(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


async def install_codecs(connection: asyncpg.Connection) -> None:
    """Read the `TEXT_TYPES` as text and json/jsonb as parsed JSON on `connection`."""
    for name in TEXT_TYPES:
        await connection.set_type_codec(name, schema="pg_catalog", encoder=str, decoder=str, format="text")
    for name in ("json", "jsonb"):
        await connection.set_type_codec(
            name, schema="pg_catalog", encoder=_encode_json, decoder=json.loads, format="text"
        )


def _cut(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return text[:limit] + f"...[cut: {len(text) - limit} more characters]"


def to_json_value(value: Any, max_chars: int) -> JsonValue:  # noqa: PLR0911, PLR0912 -- one branch per value family
    """`value` as decoded by asyncpg (with our codecs), as exact JSON; strings cut at `max_chars`."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value if -_SAFE_INT <= value <= _SAFE_INT else str(value)
    if isinstance(value, float):
        if value != value:  # noqa: PLR0124 -- NaN is the one value not equal to itself
            return "NaN"
        if value in (float("inf"), float("-inf")):
            return "Infinity" if value > 0 else "-Infinity"
        return value
    if isinstance(value, str):
        return _cut(value, max_chars)
    if isinstance(value, bytes | bytearray | memoryview):
        return _cut("\\x" + bytes(value).hex(), max_chars)  # pyright: ignore[reportUnknownArgumentType] -- bytes-like
    if isinstance(value, uuid.UUID | ipaddress.IPv4Address | ipaddress.IPv6Address):
        return str(value)
    if isinstance(value, ipaddress.IPv4Network | ipaddress.IPv6Network | ipaddress.IPv4Interface):
        return str(value)
    if isinstance(value, ipaddress.IPv6Interface):
        return str(value)
    if isinstance(value, Range):
        bounds: Range[Any] = value  # pyright: ignore[reportUnknownVariableType] -- element type is the column's
        return {
            "lower": to_json_value(bounds.lower, max_chars),
            "upper": to_json_value(bounds.upper, max_chars),
            "lower_inc": bounds.lower_inc,
            "upper_inc": bounds.upper_inc,
            "empty": bounds.isempty,
        }
    if isinstance(value, list | tuple):
        return [to_json_value(item, max_chars) for item in value]  # pyright: ignore[reportUnknownVariableType] -- decoded array
    if isinstance(value, asyncpg.Record):
        return {str(key): to_json_value(item, max_chars) for key, item in value.items()}
    if isinstance(value, Mapping):
        return {str(key): to_json_value(item, max_chars) for key, item in value.items()}  # pyright: ignore[reportUnknownVariableType, reportUnknownArgumentType] -- decoded JSON object
    return _cut(str(value), max_chars)


Converter = Callable[[Any], JsonValue]
"""Turns one decoded value of a column into its JSON form."""

_SAME_TYPES = frozenset({"bool", "int2", "int4", "oid"})
"""Types asyncpg decodes to values that are already exact JSON (or None)."""

_TEXT_LIKE = frozenset({"text", "varchar", "bpchar", "char", "name", "citext", *TEXT_TYPES})
"""Types that decode to `str` (ours in `TEXT_TYPES` through the text codecs)."""


def _same(value: Any) -> JsonValue:
    return value


def _text(value: str | None, max_chars: int) -> JsonValue:
    if value is None or len(value) <= max_chars:
        return value
    return _cut(value, max_chars)


def _int8(value: int | None) -> JsonValue:
    if value is None or -_SAFE_INT <= value <= _SAFE_INT:
        return value
    return str(value)


def column_converter(type_name: str, max_chars: int) -> Converter:
    """The converter for every value of a column of PostgreSQL type `type_name`, picked once."""
    if type_name in _SAME_TYPES:
        return _same
    if type_name in _TEXT_LIKE:
        return functools.partial(_text, max_chars=max_chars)
    if type_name == "int8":
        return _int8
    return functools.partial(to_json_value, max_chars=max_chars)


def convert_rows(records: Sequence[Sequence[Any]], converters: Sequence[Converter]) -> list[list[JsonValue]]:
    """Rows of decoded values as JSON arrays, each column through its own converter."""
    if all(converter is _same for converter in converters):
        return [list(record) for record in records]
    pairs = list(enumerate(converters))
    return [[converter(record[index]) for index, converter in pairs] for record in records]
