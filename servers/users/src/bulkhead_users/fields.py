"""The fields a directory record can have, and which of them the model may ever see."""

from collections.abc import Iterable
from typing import Final

__all__ = [
    "ALL_FIELDS",
    "DEFAULT_FIELDS",
    "FILTER_FIELDS",
    "KEY_FIELDS",
    "LIST_FIELDS",
    "SORT_FIELDS",
    "TEXT_FIELDS",
    "FieldPolicy",
    "check_fields",
]

ALL_FIELDS: Final = (
    "id",
    "username",
    "email",
    "display_name",
    "given_name",
    "family_name",
    "title",
    "department",
    "location",
    "manager_id",
    "groups",
    "employment_type",
    "start_date",
    "phone",
    "personal_address",
)
"""Every field a record may carry, in display order."""

DEFAULT_FIELDS: Final = tuple(name for name in ALL_FIELDS if name not in {"phone", "personal_address"})
"""Shown unless the operator says otherwise: everything but phone numbers and home addresses."""

KEY_FIELDS: Final = ("id", "email", "username")
"""Fields `get_user` looks a person up by (only those on the allow-list)."""

TEXT_FIELDS: Final = ("display_name", "username", "email", "given_name", "family_name", "title", "department")
"""Fields free-text search looks in (only those on the allow-list)."""

FILTER_FIELDS: Final = ("department", "title", "location", "groups", "employment_type")
"""Fields search can filter on exactly (only those on the allow-list)."""

SORT_FIELDS: Final = ("display_name", "family_name", "id", "title", "department", "location", "start_date")
"""Fields results can be ordered by (only those on the allow-list)."""

LIST_FIELDS: Final = frozenset({"groups"})
"""Fields whose value is a list of strings."""


def check_fields(names: Iterable[str]) -> None:
    """Raise ValueError naming the first of `names` that is not a field (the one place this is checked)."""
    for name in names:
        if name not in ALL_FIELDS:
            raise ValueError(f"unknown field {name!r}; fields are: {', '.join(ALL_FIELDS)}")


class FieldPolicy:
    """The allow-list: the only fields that may appear in results, filters, sorts and lookups."""

    def __init__(self, allowed: Iterable[str]) -> None:
        allowed = tuple(allowed)
        check_fields(allowed)
        chosen = {"id", *allowed}
        self.visible: tuple[str, ...] = tuple(name for name in ALL_FIELDS if name in chosen)
        self.keys = tuple(name for name in KEY_FIELDS if name in chosen)
        self.text = tuple(name for name in TEXT_FIELDS if name in chosen)
        self.filters = tuple(name for name in FILTER_FIELDS if name in chosen)
        self.sorts = tuple(name for name in SORT_FIELDS if name in chosen)
        self.default_sort = "display_name" if "display_name" in chosen else "id"

    def allows(self, name: str) -> bool:
        """Whether `name` is on the allow-list."""
        return name in self.visible
