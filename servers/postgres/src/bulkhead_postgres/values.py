"""PostgreSQL values as faithful JSON.

Exactness first: numeric keeps every digit (as a string), timestamps keep their zone and
`infinity`, intervals come out in ISO 8601, bytea as PostgreSQL's hex form, NaN and infinities as
strings (JSON has no such numbers), integers beyond 2^53 as strings (JSON readers in JavaScript
would round them). The text-format types are decoded by PostgreSQL itself (see `TEXT_TYPES`).
"""

import functools
import ipaddress
import json
import re
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
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
    "without_lone_surrogates",
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


def _float(value: float | None) -> JsonValue:
    if value is None:
        return None
    if value != value:  # noqa: PLR0124 -- NaN is the one value not equal to itself
        return "NaN"
    if value in (_INF, _NEG_INF):
        return "Infinity" if value > 0 else "-Infinity"
    return value


def _array(value: list[Any] | None, element: Converter) -> JsonValue:
    if value is None:
        return None
    # A multi-dimensional array decodes to nested lists.
    return [_array(item, element) if isinstance(item, list) else element(item) for item in value]  # pyright: ignore[reportUnknownArgumentType] -- decoded array


_INF = float("inf")
_NEG_INF = float("-inf")


def column_converter(type_name: str, max_chars: int, schema: str = "pg_catalog") -> Converter:  # noqa: PLR0911 -- one branch per type family
    """The converter for every value of a column of PostgreSQL type `type_name`, picked once.

    Only built-in types (`pg_catalog`) get a converter of their own; an array of one (`name[]`)
    gets its element type's converter applied to each element. Anything else goes through
    `to_json_value`, which looks at each value.
    """
    if schema != "pg_catalog":
        return functools.partial(to_json_value, max_chars=max_chars)
    if type_name in _SAME_TYPES:
        return _same
    if type_name in _TEXT_LIKE:
        return functools.partial(_text, max_chars=max_chars)
    if type_name == "int8":
        return _int8
    if type_name in ("float4", "float8"):
        return _float
    if type_name.endswith("[]") and type_name[:-2] in _SIMPLE_ELEMENTS:
        return functools.partial(_array, element=column_converter(type_name[:-2], max_chars))
    return functools.partial(to_json_value, max_chars=max_chars)


_SIMPLE_ELEMENTS = _SAME_TYPES | _TEXT_LIKE | {"int8", "float4", "float8"}
"""Element types whose arrays are converted element by element with their own converter."""


@dataclass
class _Plan:
    """How `convert_rows` treats each column, worked out once per batch."""

    texts: list[tuple[int, int]] = field(default_factory=list[tuple[int, int]])
    floats: list[int] = field(default_factory=list[int])
    text_arrays: list[tuple[int, int, Converter]] = field(default_factory=list[tuple[int, int, Converter]])
    others: list[tuple[int, Converter]] = field(default_factory=list[tuple[int, Converter]])


def _plan(converters: Sequence[Converter]) -> _Plan:
    plan = _Plan()
    for index, converter in enumerate(converters):
        bound: Any = converter
        partial = isinstance(bound, functools.partial)
        element: Any = bound.keywords.get("element") if partial else None
        if partial and bound.func is _text:
            plan.texts.append((index, int(bound.keywords["max_chars"])))
        elif converter is _float:
            plan.floats.append(index)
        elif partial and isinstance(element, functools.partial) and element.func is _text:
            plan.text_arrays.append((index, int(element.keywords["max_chars"]), converter))
        elif converter is not _same:
            plan.others.append((index, converter))
    return plan


def convert_rows(records: Sequence[Sequence[Any]], converters: Sequence[Converter]) -> list[list[JsonValue]]:
    """Rows of decoded values as JSON arrays, each column through its own converter.

    Columns whose values are already exact JSON are copied as they are; text columns, float
    columns and arrays of text are only checked inline (length, finiteness), and a value goes
    through its converter only when the check finds something to change.
    """
    plan = _plan(converters)
    rows: list[list[Any]] = [list(record) for record in records]
    if not (plan.texts or plan.floats or plan.text_arrays or plan.others):
        return rows
    for row in rows:
        for index, limit in plan.texts:
            value = row[index]
            if isinstance(value, str) and len(value) > limit:
                row[index] = _cut(value, limit)
        for index in plan.floats:
            number = row[index]
            # False for NaN and both infinities, which become strings.
            if number is not None and not (_NEG_INF < number < _INF):
                row[index] = _float(number)
        for index, limit, converter in plan.text_arrays:
            items: list[Any] | None = row[index]
            # The decoded list is this row's own: it stays as it is unless an element is not a
            # short string (a NULL, a nested dimension, a long text).
            if items is not None:
                for item in items:
                    if item.__class__ is not str or len(item) > limit:
                        row[index] = converter(items)
                        break
        for index, converter in plan.others:
            row[index] = converter(row[index])
    return rows


_SURROGATE = re.compile("[\ud800-\udfff]")


def without_lone_surrogates(row: list[JsonValue]) -> list[JsonValue]:
    r"""`row` with every UTF-16 surrogate in its strings (and object keys) replaced by U+FFFD.

    PostgreSQL's `json` type keeps its text as written, so `'"\ud800"'::json` decodes to a string
    holding a lone surrogate, which UTF-8 (and so JSON on the wire) cannot carry. A decoded pair
    is one character already, so any surrogate left is a lone one. Only called for a batch that
    could not be serialised: the common case pays nothing.
    """
    return [_replace_surrogates(value) for value in row]


def _replace_surrogates(value: JsonValue) -> JsonValue:
    if isinstance(value, str):
        return _SURROGATE.sub("\ufffd", value)
    if isinstance(value, list):
        return [_replace_surrogates(item) for item in value]
    if isinstance(value, dict):
        return {_SURROGATE.sub("\ufffd", key): _replace_surrogates(item) for key, item in value.items()}
    return value
