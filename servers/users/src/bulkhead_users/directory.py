"""The user directory: one interface, two backends, and the privacy rules on top.

`Directory` is what a backend implements (`FileDirectory`, `PostgresDirectory`); it returns whole
records. `UserLookup` is what the server calls: it checks every argument against the field
allow-list before a backend sees it, and projects every record onto the allow-list before anyone
else sees it. A hidden field cannot be searched, filtered, sorted or looked up by, so not even a
"no match" can reveal its value. No MCP imports here.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from bulkhead.errors import InvalidArgumentError, NotFoundError
from bulkhead_users.fields import LIST_FIELDS, FieldPolicy

__all__ = ["MAX_CHAIN", "Directory", "Page", "Query", "Record", "UserLookup"]

Record = dict[str, Any]
"""A whole directory record: field name to value (str, list of str, or None)."""

MAX_CHAIN = 50
"""The longest manager chain followed; deeper (or cyclic) data is cut there."""


@dataclass(frozen=True)
class Query:
    """A search: free text over `text_fields`, filters, and an order.

    `text` and `filters` values are lower-cased and match case-insensitively; `exact` values match
    exactly, case and all (a manager id: `a1` and `A1` are different people).
    """

    text: str | None
    text_fields: tuple[str, ...]
    filters: tuple[tuple[str, str], ...]
    sort: str
    exact: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Page:
    """A slice of results and the total number of matches."""

    items: list[Record]
    total: int


class Directory(Protocol):
    """A backend: whole records in, whole records out; no privacy logic."""

    async def open(self) -> None:
        """Load the file or connect to the database; raise if the backend cannot be used."""
        ...

    async def get(self, key: str, key_fields: Sequence[str]) -> Record | None:
        """The record whose id (or, in this order, another of `key_fields`) equals `key`."""
        ...

    async def search(self, query: Query, offset: int, limit: int) -> Page:
        """Records matching `query`, ordered by `query.sort` then id."""
        ...

    async def groups(self, offset: int, limit: int) -> tuple[list[tuple[str, int]], int]:
        """(group, member count) pairs ordered by name, and the number of groups."""
        ...

    async def aclose(self) -> None:
        """Release files, pools and connections."""
        ...


def _norm(value: str) -> str:
    return value.strip().lower()


class UserLookup:
    """The privacy-checked operations the tools expose."""

    def __init__(self, directory: Directory, policy: FieldPolicy) -> None:
        self.directory = directory
        self.policy = policy

    def project(self, record: Record) -> Record:
        """`record` with only the allowed fields (lists copied, missing fields as None)."""
        out: Record = {}
        for name in self.policy.visible:
            value = record.get(name)
            out[name] = list(value or []) if name in LIST_FIELDS else value
        return out

    def _require(self, name: str, what: str) -> None:
        if not self.policy.allows(name):
            raise InvalidArgumentError(f"{what} is not available on this server.")

    async def get(self, key: str) -> Record:
        """One person (the whole record) by id, or by email or username when those are visible."""
        if not key.strip():
            raise InvalidArgumentError(
                "user is blank: pass an id, email address or username, or use search_users to find "
                "people by name."
            )
        record = await self.directory.get(key.strip(), self.policy.keys)
        if record is None:
            keys = self.policy.keys
            by = " or ".join(keys) if len(keys) < 3 else f"{', '.join(keys[:-1])} or {keys[-1]}"
            raise NotFoundError(f"No user has the {by} {key!r}. Use search_users to find people by name.")
        return record

    async def person(self, user_id: str) -> Record | None:
        """The visible fields of the person whose id is exactly `user_id`, or None."""
        record = await self.directory.get(user_id, ("id",))
        return None if record is None else self.project(record)

    def query(
        self,
        text: str | None,
        filters: dict[str, str | None],
        sort: str | None,
    ) -> Query:
        """Validate search arguments against the allow-list and build a backend query."""
        chosen: list[tuple[str, str]] = []
        for name, value in filters.items():
            if value is None or not value.strip():
                continue
            if name not in self.policy.filters:
                available = ", ".join(self.policy.filters) or "none"
                raise InvalidArgumentError(
                    f"Filtering by {name!r} is not available on this server; filters: {available}."
                )
            chosen.append((name, _norm(value)))
        order = sort or self.policy.default_sort
        if order not in self.policy.sorts:
            raise InvalidArgumentError(
                f"Cannot sort by {order!r}; choose one of: {', '.join(self.policy.sorts)}."
            )
        needle = _norm(text) if text and text.strip() else None
        return Query(text=needle, text_fields=self.policy.text, filters=tuple(chosen), sort=order)

    async def search(self, query: Query, offset: int, limit: int) -> Page:
        """A page of visible records matching `query`."""
        page = await self.directory.search(query, offset, limit)
        return Page([self.project(item) for item in page.items], page.total)

    async def manager_chain(self, key: str) -> tuple[Record, list[Record], bool]:
        """The person, their managers nearest first, and whether the chain was cut short.

        The chain stops at the top, at MAX_CHAIN managers, at a loop in the data, or at a
        manager id that is not in the directory (the last three count as cut short).
        """
        self._require("manager_id", "Manager information")
        person = await self.get(key)
        chain: list[Record] = []
        seen = {person["id"]}
        current = person
        truncated = False
        while current.get("manager_id"):
            manager = await self.directory.get(str(current["manager_id"]), ("id",))
            if manager is None or manager["id"] in seen or len(chain) >= MAX_CHAIN:
                truncated = True
                break
            seen.add(manager["id"])
            chain.append(self.project(manager))
            current = manager
        return self.project(person), chain, truncated

    async def reports_query(self, key: str, sort: str | None) -> tuple[Record, Query]:
        """The person `key` names (visible fields) and the query for their direct reports.

        Reports are the people whose manager_id is exactly the person's id (ids are
        case-sensitive); run the query with `search`.
        """
        self._require("manager_id", "Manager information")
        person = await self.get(key)
        order = self.query(None, {}, sort).sort
        return self.project(person), Query(None, (), (), order, exact=(("manager_id", str(person["id"])),))

    async def groups(self, offset: int, limit: int) -> tuple[list[tuple[str, int]], int]:
        """A page of (group, member count), and how many groups there are."""
        self._require("groups", "Group information")
        return await self.directory.groups(offset, limit)

    def group_query(self, group: str, sort: str | None) -> Query:
        """The query for the members of `group` (case-insensitive); run it with `group_members`."""
        self._require("groups", "Group information")
        if not group.strip():
            raise InvalidArgumentError("group is blank: pass a group name; list_groups shows them.")
        return self.query(None, {"groups": group}, sort)

    async def group_members(self, query: Query, offset: int, limit: int) -> Page:
        """A page of the members of the group `query` (from `group_query`) names."""
        page = await self.search(query, offset, limit)
        if page.total == 0:
            group = dict(query.filters).get("groups")
            raise NotFoundError(f"No group is named {group!r}. Use list_groups to see the group names.")
        return page
