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
    """A search: free text over `text_fields`, exact filters, and an order."""

    text: str | None
    text_fields: tuple[str, ...]
    filters: tuple[tuple[str, str], ...]
    sort: str


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
        """One person by id, or by email or username when those are visible."""
        record = await self.directory.get(key.strip(), self.policy.keys)
        if record is None:
            by = ", ".join(self.policy.keys)
            raise NotFoundError(f"No user has the {by} {key!r}. Use search_users to find people by name.")
        return record

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
        order = sort or ("display_name" if "display_name" in self.policy.sorts else "id")
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

    async def direct_reports(
        self, key: str, sort: str | None, offset: int, limit: int
    ) -> tuple[Record, Page]:
        """The person and a page of the people whose manager they are."""
        self._require("manager_id", "Manager information")
        person = await self.get(key)
        query = self.query(None, {}, sort)
        query = Query(None, (), (("manager_id", _norm(str(person["id"]))),), query.sort)
        return self.project(person), await self.search(query, offset, limit)

    async def groups(self, offset: int, limit: int) -> tuple[list[tuple[str, int]], int]:
        """A page of (group, member count), and how many groups there are."""
        self._require("groups", "Group information")
        return await self.directory.groups(offset, limit)

    async def group_members(self, group: str, sort: str | None, offset: int, limit: int) -> Page:
        """A page of the members of `group`."""
        self._require("groups", "Group information")
        query = self.query(None, {"groups": group}, sort)
        page = await self.search(query, offset, limit)
        if page.total == 0:
            raise NotFoundError(f"No group is named {group!r}. Use list_groups to see the group names.")
        return page
