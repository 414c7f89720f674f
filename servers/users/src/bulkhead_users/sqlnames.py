"""The table and column names of the PostgreSQL backend, checked and quoted.

Kept apart from `pgdir` (and so from asyncpg) so that the settings can refuse a bad `--table` or
`--columns` at start, with one line, before anything connects.
"""

import re
from collections.abc import Mapping

from bulkhead_users.fields import ALL_FIELDS, check_fields

__all__ = ["quote_columns", "quote_identifier"]

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_$]{0,62}")


def quote_identifier(name: str, *, qualified: bool = True) -> str:
    """`name` as a quoted SQL identifier; with `qualified`, `schema.name` is allowed too.

    Raises:
        ValueError: `name` is not a plain identifier (letters, digits, `_` and `$`, at most 63).
    """
    parts = name.split(".") if qualified else [name]
    if len(parts) > 2 or not all(_IDENTIFIER.fullmatch(part) for part in parts):
        schema = "; optional schema." if qualified else ""
        raise ValueError(
            f"{name!r} is not a plain SQL identifier (letters, digits, _ and $, "
            f"not starting with a digit{schema})"
        )
    return ".".join(f'"{part}"' for part in parts)


def quote_columns(column_map: Mapping[str, str]) -> dict[str, str]:
    """Every field's quoted column: the column `column_map` names for it, else the field's own name.

    Raises:
        ValueError: `column_map` names an unknown field or a column that is not a plain identifier.
    """
    check_fields(column_map)
    return {name: quote_identifier(column_map.get(name, name), qualified=False) for name in ALL_FIELDS}
