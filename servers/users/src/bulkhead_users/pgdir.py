"""A directory in a PostgreSQL table, read with asyncpg.

The table and its column names are configurable (`column_map` maps our field names to yours);
identifiers are validated and quoted, values always travel as query parameters. `groups` is a
`text[]` column. Ordering uses the "C" collation so results come in the same order as from the
file backend, and when several rows share an email or username the lowest id (in that order)
wins, as in the file backend. Connections are opened lazily and re-opened after a database
restart; every session uses the ISO date style, so dates read as YYYY-MM-DD whatever the
database's own DateStyle.

Only the columns of the allow-list (`fields`) are ever selected, checked or searched: the others
are read as NULL, so hidden values never reach this process, and an operator may withhold them
with column privileges (`GRANT SELECT (id, display_name, ...) ON users TO reader`).

`open()` checks the table before the server serves: a missing table, a missing id column or a
missing privilege stops the start with a reason, and a malformed DSN is reported without quoting
it (it may hold a password). NULL entries in the groups array are ignored.

Case-insensitive matching (search text, filters, email and username lookups) lower-cases with
the database's `lower()`, the file backend with Python's `str.lower()`. They agree on ASCII, and
on nearly all of Unicode where the database's default collation is ICU or a UTF-8 libc locale
(a few characters whose lower case is two characters, like "İ", may still differ). In a database
with the "C" or POSIX locale, PostgreSQL lower-cases ASCII letters only, so "ÉLODIE" in the table
is not found by "élodie" there, though it is in a file. There is no portable way to fold case
fully in such a database (ICU collations may be missing; `casefold()` is PostgreSQL 18+), so the
difference stays: give such a database an ICU or UTF-8 locale, or store such values as people
will type them.
"""

from collections.abc import Iterable, Sequence
from typing import Any

import asyncpg

from bulkhead.dsn import check_ports
from bulkhead.errors import UnavailableError
from bulkhead_users.directory import Page, Query, Record
from bulkhead_users.fields import ALL_FIELDS, LIST_FIELDS, check_fields
from bulkhead_users.sqlnames import quote_columns, quote_identifier

__all__ = ["PostgresDirectory"]

_CONNECTION_LOST = (
    OSError,
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.PostgresConnectionError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.AdminShutdownError,
)


def _reason(exc: BaseException) -> str:
    """A short, DSN-free reason: the server's message, or the socket error."""
    if isinstance(exc, asyncpg.PostgresError):
        return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return str(exc) or type(exc).__name__


class PostgresDirectory:
    """The `Directory` backend for a PostgreSQL table."""

    def __init__(
        self,
        dsn: str,
        table: str = "users",
        column_map: dict[str, str] | None = None,
        pool_size: int = 4,
        timeout: float = 10.0,
        fields: Iterable[str] = ALL_FIELDS,
    ) -> None:
        """A backend over `table`, reading only the columns of `fields` (id always).

        Pass the allow-list (`FieldPolicy.visible`) as `fields`; the others are read as NULL.
        Raises ValueError for an unknown field or an identifier that is not plain.
        """
        fields = tuple(fields)
        check_fields(fields)
        self._dsn = dsn
        self._table = quote_identifier(table)
        self._columns = quote_columns(column_map or {})
        self._fields = frozenset({"id", *fields})
        self._pool_size = pool_size
        self._timeout = timeout
        self._pool: asyncpg.Pool | None = None
        self._present: tuple[str, ...] = ()

    async def _ensure_pool(self) -> asyncpg.Pool:
        if self._pool is None:
            try:
                check_ports(self._dsn)
                pool = await asyncpg.create_pool(
                    self._dsn,
                    min_size=1,
                    max_size=self._pool_size,
                    timeout=self._timeout,
                    command_timeout=self._timeout,
                    server_settings={"DateStyle": "ISO, YMD"},
                )
            except (asyncpg.InterfaceError, ValueError, OverflowError):
                # OverflowError: a port outside 0-65535, which only the socket layer notices.
                # The DSN parser's messages quote pieces of the DSN, which may be the password.
                raise ValueError(
                    "dsn is not a valid PostgreSQL connection string "
                    "(postgresql://user:password@host:port/database, special characters in the "
                    "password percent-encoded)"
                ) from None
            except (OSError, asyncpg.PostgresError) as exc:
                raise UnavailableError(
                    f"The user directory database cannot be reached right now ({_reason(exc)}); "
                    "try again in a moment."
                ) from exc
            try:
                await self._inspect(pool)
            except BaseException:
                await pool.close()
                raise
            self._pool = pool
        return self._pool

    async def _inspect(self, pool: asyncpg.Pool) -> None:
        """Learn which mapped columns exist, and check that the table can be read as mapped."""
        try:
            async with pool.acquire() as connection:
                names = await connection.fetch(
                    "SELECT attname FROM pg_attribute WHERE attrelid = $1::regclass AND attnum > 0 "
                    "AND NOT attisdropped",
                    self._table,
                )
                existing = {f'"{row["attname"]}"' for row in names}
                if self._columns["id"] not in existing:
                    raise ValueError(f"table {self._table} has no id column {self._columns['id']}")
                self._present = tuple(
                    name for name in ALL_FIELDS if name in self._fields and self._columns[name] in existing
                )
                # Reads nothing, but fails now (not at every call) on a missing privilege or a
                # column that does not convert to text (or text[] for groups). Only the columns
                # of the allow-list are named, so privileges on the others do not matter.
                await connection.fetch(f"SELECT {self._select()} FROM {self._table} LIMIT 0")
        except TimeoutError as exc:
            # A subclass of OSError: caught first, or it would read as a lost connection.
            raise UnavailableError(
                f"The user directory database did not answer within {self._timeout:g} seconds "
                f"while checking table {self._table}; try again in a moment."
            ) from exc
        except _CONNECTION_LOST as exc:
            raise UnavailableError(
                f"The user directory database cannot be reached right now ({_reason(exc)}); "
                "try again in a moment."
            ) from exc
        except (asyncpg.UndefinedTableError, asyncpg.InvalidSchemaNameError):
            raise ValueError(f"table {self._table} does not exist (or this role cannot see it)") from None
        except asyncpg.PostgresError as exc:
            raise ValueError(f"cannot read table {self._table}: {_reason(exc)}") from None

    async def open(self) -> None:
        """Connect now (at start), so a bad DSN or table is reported before serving."""
        await self._ensure_pool()

    def _select(self) -> str:
        parts: list[str] = []
        for name in ALL_FIELDS:
            column = self._columns[name]
            if name not in self._present:
                parts.append(f"NULL AS {name}")
            elif name in LIST_FIELDS:
                parts.append(f"array_remove({column}::text[], NULL) AS {name}")
            else:
                parts.append(f"{column}::text AS {name}")
        return ", ".join(parts)

    async def _fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        pool = await self._ensure_pool()
        try:
            return await pool.fetch(sql, *args)
        except TimeoutError as exc:
            # A subclass of OSError: caught first, or it would read as a lost connection.
            raise UnavailableError(
                f"The user directory database did not answer within {self._timeout:g} seconds; "
                "try again in a moment."
            ) from exc
        except _CONNECTION_LOST as exc:
            raise UnavailableError(
                "The user directory database connection was lost; try the request again."
            ) from exc

    @staticmethod
    def _record(row: asyncpg.Record) -> Record:
        record: Record = {}
        for name in ALL_FIELDS:
            value = row[name]
            record[name] = list(value or []) if name in LIST_FIELDS else value
        return record

    def _where(self, query: Query, args: list[Any]) -> str:
        clauses: list[str] = []
        if query.text is not None:
            args.append(query.text)
            tests = [
                f"strpos(lower(coalesce({self._columns[name]}::text, '')), ${len(args)}) > 0"
                for name in query.text_fields
                if name in self._present
            ]
            clauses.append("(" + (" OR ".join(tests) or "false") + ")")
        for name, value in query.filters:
            if name not in self._present:
                clauses.append("false")
                continue
            args.append(value)
            column = self._columns[name]
            if name in LIST_FIELDS:
                clauses.append(
                    f"EXISTS (SELECT 1 FROM unnest({column}::text[]) AS g WHERE lower(g) = ${len(args)})"
                )
            else:
                clauses.append(f"lower({column}::text) = ${len(args)}")
        for name, value in query.exact:
            if name not in self._present:
                clauses.append("false")
                continue
            args.append(value)
            clauses.append(f"{self._columns[name]}::text = ${len(args)}")
        return " AND ".join(clauses) or "true"

    async def get(self, key: str, key_fields: Sequence[str]) -> Record | None:
        """The record whose id, or else email or username (if in `key_fields`), is `key`."""
        for name in key_fields:
            if name not in self._present:
                continue
            column = self._columns[name]
            test = f"{column}::text = $1" if name == "id" else f"lower({column}::text) = lower($1)"
            order = f'{self._columns["id"]}::text COLLATE "C"'
            sql = f"SELECT {self._select()} FROM {self._table} WHERE {test} ORDER BY {order} LIMIT 1"
            rows = await self._fetch(sql, key)
            if rows:
                return self._record(rows[0])
        return None

    async def search(self, query: Query, offset: int, limit: int) -> Page:
        """Matching records in `query.sort` order (C collation), sliced, with the total."""
        args: list[Any] = []
        where = self._where(query, args)
        sort = self._columns[query.sort]
        order = "''" if query.sort not in self._present else f"lower(coalesce({sort}::text, ''))"
        args += [limit, offset]
        sql = (
            f"SELECT {self._select()}, count(*) OVER () AS total FROM {self._table} WHERE {where} "
            f'ORDER BY {order} COLLATE "C", {self._columns["id"]}::text COLLATE "C" '
            f"LIMIT ${len(args) - 1} OFFSET ${len(args)}"
        )
        rows = await self._fetch(sql, *args)
        if not rows and offset > 0:
            count = await self._fetch(
                f"SELECT count(*) AS total FROM {self._table} WHERE {where}", *args[:-2]
            )
            return Page([], int(count[0]["total"]))
        return Page([self._record(row) for row in rows], int(rows[0]["total"]) if rows else 0)

    async def groups(self, offset: int, limit: int) -> tuple[list[tuple[str, int]], int]:
        """Groups with member counts, by name (case-insensitive, then exact)."""
        if "groups" not in self._present:
            return [], 0
        names = f"{self._table}, unnest({self._columns['groups']}::text[]) AS g WHERE g IS NOT NULL"
        rows = await self._fetch(
            f"SELECT g AS name, count(*) AS members, count(*) OVER () AS total FROM {names} GROUP BY g "
            f'ORDER BY lower(g) COLLATE "C", g COLLATE "C" LIMIT $1 OFFSET $2',
            limit,
            offset,
        )
        if not rows and offset > 0:
            # Past the end (the data shrank since the cursor was made): still report the real total.
            count = await self._fetch(f"SELECT count(DISTINCT g) AS total FROM {names}")
            return [], int(count[0]["total"])
        total = int(rows[0]["total"]) if rows else 0
        return [(row["name"], int(row["members"])) for row in rows], total

    async def aclose(self) -> None:
        """Close the pool."""
        if self._pool is not None:
            await self._pool.close()
            self._pool = None
