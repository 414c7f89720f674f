"""Running one checked, read-only statement, and the catalog queries, on a pool of connections.

Every call: `BEGIN READ ONLY`; `SET LOCAL` of the statement, lock and idle-in-transaction timeouts
(through `set_config`, so values travel as parameters); the statement through the extended query
protocol (prepare + portal), rows pulled in batches up to `max_rows + 1` and a byte budget; a check
that the transaction is still open (if the statement escaped it, the connection is thrown away);
and always `ROLLBACK`. No MCP imports here.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import AsyncGenerator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import anyio
import asyncpg
from asyncpg.pool import PoolConnectionProxy
from pydantic_core import PydanticSerializationError, to_json

from bulkhead.dsn import check_ports
from bulkhead.errors import BulkheadError, UnavailableError
from bulkhead_postgres.guard import CheckedStatement
from bulkhead_postgres.literals import Lifted
from bulkhead_postgres.values import (
    SESSION_SETTINGS,
    Converter,
    JsonValue,
    column_converter,
    convert_rows,
    install_codecs,
    without_lone_surrogates,
)

if TYPE_CHECKING:
    from bulkhead_postgres.settings import PostgresSettings

__all__ = ["Column", "Database", "Limits", "QueryFailedError", "QueryResult", "compact_json"]

logger = logging.getLogger("bulkhead_postgres.database")

REMEMBERED_SHAPES = 256
"""Lifted query shapes remembered per pool, to tell a repeated shape from a one-off."""

BATCH_ROWS = 200
"""Rows pulled from the portal at a time: memory stays flat however big the table."""

CLEANUP_SECONDS = 5
"""How long stopping a cancelled command and the rollback after a call may take before the
connection is thrown away."""

_ALL_BUSY = "Every database connection is busy; try again in a moment."
_LOST = "The database connection was lost (the server may be restarting); try the call again."

_END_OF_CALL = "ROLLBACK; SELECT pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL"
"""Ends every call in one round trip: the transaction, and anything a session could have kept."""


async def _already_reset(_connection: object) -> None:
    """The pool's reset on release: `_read_only` already ended the call with `_END_OF_CALL`."""


_CONNECTION_LOST = (
    OSError,
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.PostgresConnectionError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError,
    asyncpg.exceptions.InterfaceError,
)


def _count_mismatch(placeholders: int, given: int) -> str:
    """The error for params that do not match the statement's $1, $2 ... placeholders."""
    if placeholders == 0:
        return (
            f"The statement has no $1, $2 ... placeholders, but {given} params were given. "
            "Leave params out, or refer to each value as $1, $2 ... in the SQL."
        )
    wanted = "$1" if placeholders == 1 else f"$1 to ${placeholders}"
    return (
        f"The statement uses {wanted}, so params needs {placeholders} value"
        f"{'' if placeholders == 1 else 's'}, in order; {given} were given."
    )


CANCEL_RESEND_FIRST = 0.05
"""Seconds after the first cancel request before it is sent again; the wait doubles each time."""

CANCEL_RESEND_MAX = 1.0
"""The longest wait between two cancel requests for the same command."""


# asyncpg's private API, in this one place. asyncpg answers a cancelled call by sending ONE
# CancelRequest, and marks its protocol "cancelling" until the backend's ReadyForQuery says the
# command ended. PostgreSQL only acts on a cancel at its next CHECK_FOR_INTERRUPTS while executing;
# one that arrives while the backend handles Parse / Bind or waits between messages is dropped when
# it reads the next message (postgres.c: ProcessInterrupts ignores QueryCancelPending while
# DoingCommandRead). So a cancel that races the Parse/Bind is lost and the statement runs on to
# its statement_timeout. These helpers see whether a cancelled command is still in flight and send
# the cancel request again.
def _private(connection: PoolConnectionProxy[asyncpg.Record]) -> tuple[Any, Any]:
    """The asyncpg connection behind the pool's proxy, and its protocol."""
    proxy: Any = connection
    raw: Any = proxy._con
    return raw, raw._protocol


def _released(connection: PoolConnectionProxy[asyncpg.Record]) -> bool:
    """Whether the pool already took the connection back: asyncpg does so when it is lost.

    The proxy then refuses every method (`is_closed()` and `terminate()` included) with an
    InterfaceError, and there is nothing left to end or to release.
    """
    proxy: Any = connection
    return proxy._con is None


def _command_in_flight(connection: PoolConnectionProxy[asyncpg.Record]) -> bool:
    """Whether asyncpg is waiting for the backend to end a command whose call was cancelled."""
    _, protocol = _private(connection)
    return bool(protocol._is_cancelling())


async def _command_ended(connection: PoolConnectionProxy[asyncpg.Record]) -> None:
    """Returns once the backend acknowledged the end of the cancelled command."""
    _, protocol = _private(connection)
    await protocol._wait_for_cancellation()


async def _send_cancel_request(connection: PoolConnectionProxy[asyncpg.Record]) -> None:
    """Send one more CancelRequest for the backend's current command; returns once it was delivered."""
    raw, _ = _private(connection)
    sent: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    raw._cancel_current_command(sent)
    await sent


async def _stop_cancelled_command(connection: PoolConnectionProxy[asyncpg.Record]) -> None:
    """Make sure the command of a cancelled call stops on the server, not at its statement_timeout.

    Sends the cancel request again after 50 ms, then at doubling intervals up to 1 s, until the
    backend reports that the command ended. Unbounded: the caller bounds it (and discards the
    connection when the bound is hit). Each request is delivered before the next step, so a late
    one cannot hit the next command on this connection (the backend drops a cancel that arrives
    while it is idle).
    """
    wait = CANCEL_RESEND_FIRST
    while _command_in_flight(connection):
        with anyio.move_on_after(wait):
            await _command_ended(connection)
        if not _command_in_flight(connection) or connection.is_closed():
            return
        logger.debug("the backend has not stopped the cancelled command yet; cancelling it again")
        await _send_cancel_request(connection)
        wait = min(wait * 2, CANCEL_RESEND_MAX)


def compact_json(value: Any) -> str:
    """Plain JSON data as compact JSON text (`ensure_ascii=False`, no spaces), by pydantic-core.

    About five times as fast as `json.dumps(value, ensure_ascii=False, separators=(",", ":"))`
    on rows (0.2 against 1.0 ms for 1,000 rows of seven columns, most of json's time going to
    `float.__repr__`), and the same text but for floats below 1e-4, written `0.00001` and `1e-7`
    where json writes `1e-05` and `1e-07`: the same numbers, in the form the SDK writes the
    structured content in on the wire.
    """
    return to_json(value).decode()


def _within_budget(batch: list[list[JsonValue]], budget: int) -> tuple[int, int | None, str]:
    """(budget left, None, JSON) when the whole batch fits; else (budget, how many rows fit, JSON).

    A row costs its compact JSON plus one byte. The batch is measured in one go; only a batch
    that does not fit is measured again row by row, to find where to cut. The JSON returned is
    that of the rows kept, comma-separated without the brackets: the text of the result reuses it.
    """
    if not batch:
        return budget, None, ""
    try:
        text = compact_json(batch)
    except PydanticSerializationError:
        # A lone surrogate (from a `json` value) has no UTF-8 form: U+FFFD stands in for it, in
        # the rows returned too (the batch is the caller's, changed in place).
        batch[:] = [without_lone_surrogates(row) for row in batch]
        text = compact_json(batch)
    size = len(text) - 1
    if size <= budget:
        return budget - size, None, text[1:-1]
    pieces: list[str] = []
    for index, row in enumerate(batch):
        piece = compact_json(row)
        budget -= len(piece) + 1
        if budget < 0:
            return budget, index, ",".join(pieces)
        pieces.append(piece)
    return budget, None, ",".join(pieces)  # pragma: no cover -- the rows add up to the batch's size


class QueryFailedError(BulkheadError):
    """PostgreSQL refused or failed the statement; the text carries SQLSTATE, message, hint, position."""

    def __init__(self, error: asyncpg.PostgresError, lifted: Lifted | None = None) -> None:
        fields = error.as_dict()
        if lifted is not None and str(fields.get("position", "")).isdigit():
            # The position is in the text that ran; the caller wrote the literal one.
            fields["position"] = str(lifted.original_position(int(fields["position"])))
        sqlstate = str(fields.get("sqlstate", "?????"))
        parts = [f"PostgreSQL error {sqlstate}: {fields.get('message', str(error))}."]
        if fields.get("detail"):
            parts.append(f"Detail: {fields['detail']}.")
        if fields.get("hint"):
            parts.append(f"Hint: {fields['hint']}.")
        if fields.get("position"):
            parts.append(f"At character {fields['position']} of the statement.")
        if sqlstate == "57014":
            parts.append("The statement hit the time limit: add a WHERE clause or LIMIT, or aggregate.")
        elif sqlstate == "25006":
            parts.append("This server only reads: the database refused a write.")
        super().__init__(" ".join(part.replace("..", ".") for part in parts))
        self.sqlstate = sqlstate


@dataclass(frozen=True)
class Limits:
    """Per-call limits."""

    statement_timeout_ms: int
    lock_timeout_ms: int
    idle_in_transaction_timeout_ms: int
    max_rows: int
    max_bytes: int
    max_cell_chars: int

    @classmethod
    def from_settings(cls, settings: PostgresSettings) -> Limits:
        """The limits the settings name."""
        return cls(
            statement_timeout_ms=settings.statement_timeout_ms,
            lock_timeout_ms=settings.lock_timeout_ms,
            idle_in_transaction_timeout_ms=settings.idle_in_transaction_timeout_ms,
            max_rows=settings.max_rows,
            max_bytes=settings.max_bytes,
            max_cell_chars=settings.max_cell_chars,
        )


@dataclass(frozen=True)
class Column:
    """A result column: its name and PostgreSQL type."""

    name: str
    type: str


@dataclass
class QueryResult:
    """Rows as arrays (duplicate column names survive), and how the call ended."""

    columns: list[Column]
    rows: list[list[JsonValue]] = field(default_factory=list[list[JsonValue]])
    truncated: bool = False
    truncated_reason: str | None = None
    elapsed_ms: float = 0.0
    rows_json: str = "[]"
    """`rows` as compact JSON (`ensure_ascii=False`, no spaces), made while the byte budget was
    checked, so a result's text copy need not serialise the rows again."""


class Database:
    """A pool of connections that only ever runs statements inside read-only transactions."""

    def __init__(
        self,
        dsn: str,
        limits: Limits,
        *,
        pool_size: int = 4,
        target_session_attrs: str | None = None,
        connect_timeout: float = 10.0,
    ) -> None:
        self.dsn = dsn
        self.limits = limits
        self._pool_size = pool_size
        self._target_session_attrs = target_session_attrs
        self._connect_timeout = connect_timeout
        self._pool: asyncpg.Pool | None = None
        self._lock = anyio.Lock()
        # Calls whose answer is out while their ROLLBACK and release still run (see `run`).
        self._ending: set[asyncio.Task[None]] = set()
        # Set when the role was found able to write and the operator allowed it anyway.
        self.privileged = False
        self._begin_sql = self._begin_text()
        self._shapes: OrderedDict[str, None] = OrderedDict()
        self._descriptions: dict[int, tuple[Any, list[Column], list[Converter]]] = {}

    async def _connect_pool(self) -> asyncpg.Pool:
        extra: dict[str, Any] = {}
        if self._target_session_attrs:
            extra["target_session_attrs"] = self._target_session_attrs
        try:
            check_ports(self.dsn)
            return await asyncpg.create_pool(
                self.dsn,
                min_size=1,
                max_size=self._pool_size,
                timeout=self._connect_timeout,
                init=install_codecs,
                reset=_already_reset,
                server_settings=dict(SESSION_SETTINGS),
                **extra,
            )
        except (ValueError, OverflowError, asyncpg.exceptions.ClientConfigurationError):
            # asyncpg's own text may quote part of a malformed DSN, password included.
            raise UnavailableError("The dsn setting is not a valid PostgreSQL connection string.") from None
        except (*_CONNECTION_LOST, TimeoutError, asyncpg.PostgresError) as exc:
            reason = (
                exc.as_dict().get("message") if isinstance(exc, asyncpg.PostgresError) else type(exc).__name__
            )
            raise UnavailableError(
                f"The database cannot be reached right now ({reason}); try again in a moment."
            ) from None

    async def pool(self) -> asyncpg.Pool:
        """The pool, connecting on first use (and again after a failed first attempt)."""
        if self._pool is None:
            async with self._lock:
                if self._pool is None:
                    self._pool = await self._connect_pool()
        return self._pool

    async def close(self) -> None:
        """Close every connection (after the calls that are still ending have ended)."""
        if self._ending:
            await asyncio.gather(*self._ending, return_exceptions=True)
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()

    def _begin_text(self) -> str:
        # Our own fixed text with integers from validated settings (never user SQL), so one
        # simple-protocol round trip opens the transaction and sets its limits.
        limits = self.limits
        return (
            "BEGIN READ ONLY; "
            f"SET LOCAL statement_timeout = {int(limits.statement_timeout_ms)}; "
            f"SET LOCAL lock_timeout = {int(limits.lock_timeout_ms)}; "
            f"SET LOCAL idle_in_transaction_session_timeout = {int(limits.idle_in_transaction_timeout_ms)}"
        )

    async def _begin(self, connection: PoolConnectionProxy[asyncpg.Record]) -> None:
        await connection.execute(self._begin_sql)

    def _repeated_shape(self, lifted: Lifted) -> bool:
        """Whether `lifted`'s shape ran before (recently): only then is it worth a prepared statement.

        A shape seen once runs as its literal text through the unnamed statement, which needs no
        Close later; a one-off query gains nothing from being prepared and cached.

        Known difference (as for any prepared statement, `$n` ones included): PostgreSQL plans a
        prepared statement again when a table it reads changes or the search path changes, but not
        when a new object appears that the same names would now resolve to (a table of the same
        name in an earlier schema of an unchanged search path, a better-matching function or
        operator). Until asyncpg evicts it, the prepared shape keeps reading what it resolved to
        when prepared, where its literal text would already resolve to the new object.
        """
        shapes = self._shapes
        if lifted.sql in shapes:
            shapes.move_to_end(lifted.sql)
            return True
        shapes[lifted.sql] = None
        if len(shapes) > REMEMBERED_SHAPES:
            shapes.popitem(last=False)
        return False

    @asynccontextmanager
    async def _read_only(self, connection: PoolConnectionProxy[asyncpg.Record]) -> AsyncGenerator[None]:
        try:
            # Inside the try: a call cancelled during BEGIN is cleaned up like any other.
            await self._begin(connection)
            yield
        finally:
            # Shielded: a cancelled call still stops its command and rolls back (or loses its
            # connection) before it ends.
            with anyio.CancelScope(shield=True):
                await self._end_call_bounded(connection)

    async def _end_call_bounded(self, connection: PoolConnectionProxy[asyncpg.Record]) -> None:
        with anyio.move_on_after(CLEANUP_SECONDS) as cleanup:
            await self._end_call(connection)
        if cleanup.cancelled_caught and not _released(connection):
            connection.terminate()

    async def _end_and_release(
        self, pool: asyncpg.Pool, connection: PoolConnectionProxy[asyncpg.Record]
    ) -> None:
        try:
            await self._end_call_bounded(connection)
        except Exception:
            logger.exception("ending a call failed; discarding its connection")
            if not _released(connection):
                connection.terminate()
        finally:
            try:
                await pool.release(connection)
            except Exception:
                logger.exception("releasing a connection failed")

    @staticmethod
    async def _end_call(connection: PoolConnectionProxy[asyncpg.Record]) -> None:
        if _released(connection) or connection.is_closed():
            return
        if _command_in_flight(connection):
            await _stop_cancelled_command(connection)
        if _released(connection) or connection.is_closed():
            return
        if not connection.is_in_transaction():
            logger.warning("a statement left its read-only transaction; discarding the connection")
            connection.terminate()
            return
        try:
            await connection.execute(_END_OF_CALL)
        except (*_CONNECTION_LOST, asyncpg.PostgresError):
            connection.terminate()

    async def _acquire(self, pool: asyncpg.Pool) -> PoolConnectionProxy[asyncpg.Record]:
        if (
            logger.isEnabledFor(logging.DEBUG)
            and pool.get_idle_size() == 0
            and pool.get_size() >= pool.get_max_size()
        ):
            logger.debug("every connection is busy; the call waits for one")
        try:
            return await pool.acquire(timeout=self._connect_timeout)
        except TimeoutError as exc:
            raise UnavailableError(_ALL_BUSY) from exc
        except _CONNECTION_LOST as exc:
            raise UnavailableError(_LOST) from exc

    @asynccontextmanager
    async def _connection(self) -> AsyncGenerator[PoolConnectionProxy[asyncpg.Record]]:
        pool = await self.pool()
        connection = await self._acquire(pool)
        try:
            yield connection
        except _CONNECTION_LOST as exc:
            raise UnavailableError(_LOST) from exc
        finally:
            with anyio.CancelScope(shield=True):
                await pool.release(connection)

    async def run(
        self, statement: CheckedStatement, params: Sequence[Any] = (), max_rows: int | None = None
    ) -> QueryResult:
        """Run a checked statement read-only and return at most `max_rows` rows within the byte budget."""
        limits = self.limits
        row_cap = min(max_rows or limits.max_rows, limits.max_rows)
        started = time.perf_counter()
        pool = await self.pool()
        connection = await self._acquire(pool)
        lifted = statement.lifted if not params and statement.lifted else None
        if lifted is not None and not self._repeated_shape(lifted):
            lifted = None
        sql, values = (statement.sql, params) if lifted is None else (lifted.sql, lifted.values)
        began = False
        try:
            try:
                await self._begin(connection)
                began = True
                try:
                    result = await self._collect(connection, sql, values, row_cap)
                except (
                    asyncpg.exceptions.InvalidCachedStatementError,
                    asyncpg.exceptions.OutdatedSchemaCacheError,
                ) as stale:
                    # A cached statement whose tables changed shape since it was prepared (ALTER
                    # TABLE): PostgreSQL will not run it with another result type, on this
                    # connection, ever again. asyncpg's own executor drops its statement cache
                    # and prepares again; `_collect` goes around that executor, so it is done
                    # here, once, in a new transaction, as the literal text would simply have run.
                    # Likewise a composite type that changed (ALTER TYPE ... ADD ATTRIBUTE) no
                    # longer matches asyncpg's cached codec for it, whichever statement reads it:
                    # asyncpg's executor reloads its type cache then; without that, every later
                    # call on this connection would fail the same way.
                    raw, _ = _private(connection)
                    if isinstance(stale, asyncpg.exceptions.OutdatedSchemaCacheError):
                        await raw.reload_schema_state()
                    else:
                        raw._drop_local_statement_cache()
                    await connection.execute("ROLLBACK")
                    await self._begin(connection)
                    result = await self._collect(connection, sql, values, row_cap)
            except asyncpg.PostgresError as exc:
                if isinstance(exc, _CONNECTION_LOST):
                    raise
                raise QueryFailedError(exc, lifted) from None
            except (asyncpg.exceptions.DataError, TypeError, ValueError) as exc:
                raise BulkheadError(
                    f"A parameter does not fit its placeholder: {exc}. Pass numbers as JSON numbers, "
                    "and dates, times and exact decimals as strings."
                ) from None
        except BaseException as exc:
            # Failed or cancelled: the command is stopped, the transaction rolled back (or the
            # connection discarded) and the connection released before the error goes on.
            with anyio.CancelScope(shield=True):
                await self._end_and_release(pool, connection)
            # A connection the server ended while it sat idle in the pool can fail our BEGIN
            # with asyncpg's "another operation is in progress" while asyncpg is still reading
            # the server's last message: lost as well (cleaning up threw it away).
            if isinstance(exc, _CONNECTION_LOST) or (
                not began and isinstance(exc, asyncpg.exceptions.InternalClientError)
            ):
                raise UnavailableError(_LOST) from exc
            raise
        # The answer is complete: its ROLLBACK and the release need not hold it up. The connection
        # goes back to the pool only once the call has ended; close() waits for those still ending.
        ending = asyncio.get_running_loop().create_task(self._end_and_release(pool, connection))
        self._ending.add(ending)
        ending.add_done_callback(self._ending.discard)
        result.elapsed_ms = round((time.perf_counter() - started) * 1000, 3)
        return result

    async def _collect(
        self, connection: PoolConnectionProxy[asyncpg.Record], sql: str, params: Sequence[Any], row_cap: int
    ) -> QueryResult:
        """Rows through the unnamed portal, in batches, up to the row cap and the byte budget.

        Extended protocol only. A statement with parameters is likely to come again: it is prepared
        once (named, in asyncpg's cache), and later calls bind and execute it in one round trip. A
        literal statement is prepared as the unnamed statement: one Parse/Describe round trip and
        nothing cached that would have to be closed when evicted. The first batch comes with the
        Bind; the unnamed portal needs no Close (the ROLLBACK ends it).
        """
        limits = self.limits
        raw, protocol = _private(connection)
        cached = bool(params)
        state: Any = await raw._get_statement(sql, None, named=cached, use_cache=cached)
        placeholders = len(state._get_parameters())
        if placeholders != len(params):
            raise BulkheadError(_count_mismatch(placeholders, len(params)))
        columns, converters = self._described(state, remember=cached)
        wanted = row_cap + 1
        records, _, done = await protocol.bind_execute(state, params, "", min(wanted, BATCH_ROWS), True, None)
        rows: list[list[JsonValue]] = []
        budget = limits.max_bytes
        fetched = 0
        truncated: str | None = None
        pieces: list[str] = []
        while True:
            fetched += len(records)
            batch = convert_rows(records, converters)
            over_cap = fetched > row_cap
            if over_cap:
                del batch[row_cap - len(rows) :]
            budget, fits, piece = _within_budget(batch, budget)
            rows.extend(batch if fits is None else batch[:fits])
            if piece:
                pieces.append(piece)
            if fits is not None:
                truncated = f"more than {limits.max_bytes} bytes of row data"
            elif over_cap:
                truncated = f"more than {row_cap} rows"
            if truncated is not None or done:
                break
            records, _, done = await protocol.execute(
                state, "", min(wanted - fetched, BATCH_ROWS), True, None
            )
        return QueryResult(
            columns=columns,
            rows=rows,
            truncated=truncated is not None,
            truncated_reason=truncated,
            rows_json=f"[{','.join(pieces)}]",
        )

    def _described(self, state: Any, *, remember: bool) -> tuple[list[Column], list[Converter]]:
        """The columns of a prepared statement and a converter for each.

        Worked out once for a statement in asyncpg's cache: the same state object comes back for
        the same text.
        """
        key = id(state)
        known = self._descriptions.get(key) if remember else None
        if known is not None and known[0] is state:
            return known[1], known[2]
        attributes: Sequence[Any] = state._get_attributes()
        columns = [Column(str(a.name), str(a.type.name)) for a in attributes]
        cut = self.limits.max_cell_chars
        converters = [column_converter(str(a.type.name), cut, str(a.type.schema)) for a in attributes]
        if remember:
            if len(self._descriptions) >= REMEMBERED_SHAPES:
                self._descriptions.clear()
            # The state is kept alive with its description, so its id cannot be reused meanwhile.
            self._descriptions[key] = (state, columns, converters)
        return columns, converters

    async def catalog(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        """Our own catalog SQL (never user text), under the same read-only transaction and timeouts."""
        async with self._connection() as connection, self._read_only(connection):
            try:
                return await connection.fetch(sql, *args)
            except asyncpg.PostgresError as exc:
                if isinstance(exc, _CONNECTION_LOST):
                    raise
                raise QueryFailedError(exc) from None
