r"""The embedded demo database: a throwaway PostgreSQL cluster, loaded with a demo shop, read-only.

With no DSN configured, bulkhead-postgres serves this instead of refusing to start: a cluster
from the machine's own PostgreSQL programs (found as for the tests, see `bulkhead.pgcluster`), a
database `bulkhead_demo` loaded from `sql/demo.sql`, and the role `bulkhead_reader` made by
`sql/setup-role.sql`, the same recipe operators run against their own databases. The server
gets the role's DSN; nothing of it outlives `EmbeddedDatabase.stop()`.

Authentication: the superuser is trusted only on the cluster's Unix socket, in a directory only
its owner can enter; TCP on 127.0.0.1 asks every role for a password (SCRAM), and the reader's
is a fresh random one, so other users of the machine reach neither.

`render_psql_script` applies a psql script without psql: it understands the few meta-commands
`setup-role.sql` uses (`\set`, `\if :{?name}` / `\if :name`, `\else`, `\endif`) and
interpolates `:name`, `:'name'` and `:"name"` outside quotes and comments, as psql does.
"""

import logging
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib.resources import files
from types import TracebackType
from typing import Self

import anyio
import anyio.to_thread
import asyncpg

from bulkhead.pgcluster import ThrowawayCluster, find_bindir

__all__ = [
    "DATABASE",
    "ROLE",
    "SCHEMAS",
    "EmbeddedDatabase",
    "render_psql_script",
    "start_embedded",
    "start_embedded_async",
]

DATABASE = "bulkhead_demo"
"""The demo database's name."""

ROLE = "bulkhead_reader"
"""The read-only role the server logs in as."""

SCHEMAS = ("shop", "support")
"""The schemas `demo.sql` creates, all readable by `ROLE`."""

_logger = logging.getLogger(__name__)

_STATEMENT_TIMEOUT = "30s"
_PSQL_BOOLEANS = {"on": True, "off": False, "true": True, "false": False, "yes": True, "no": False}
_META_COMMAND = re.compile(r"^\s*\\(?P<command>[a-z_]+)(?:\s+(?P<argument>.*?))?\s*$")
# What psql leaves alone (comments, strings, quoted names, dollar-quoted bodies) and what it replaces.
_SQL_TOKEN = re.compile(
    r"""
      --[^\n]*
    | /\*.*?\*/
    | '(?:[^']|'')*'
    | "(?:[^"]|"")*"
    | \$(?P<tag>(?:[A-Za-z_]\w*)?)\$.*?\$(?P=tag)\$
    | (?<!:):'(?P<literal>\w+)'
    | (?<!:):"(?P<identifier>\w+)"
    | (?<![:\w]):(?P<raw>[A-Za-z_]\w*)
    """,
    re.DOTALL | re.VERBOSE,
)


def _sql_file(name: str) -> str:
    return files("bulkhead_postgres").joinpath("sql", name).read_text(encoding="utf-8")


def _quote_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _quote_identifier(value: str) -> str:
    return '"' + value.replace('"', '""') + '"'


def _condition(argument: str, values: Mapping[str, str], where: str) -> bool:
    if match := re.fullmatch(r":\{\?(\w+)\}", argument):
        return match[1] in values
    if (match := re.fullmatch(r":(\w+)", argument)) and match[1] in values:
        value = values[match[1]].lower()
        if value in _PSQL_BOOLEANS:
            return _PSQL_BOOLEANS[value]
        raise ValueError(f"{where}: {match[1]}={values[match[1]]!r} is not a psql boolean (on / off)")
    raise ValueError(f"{where}: cannot evaluate \\if {argument}")


def _interpolate(sql: str, values: Mapping[str, str]) -> str:
    def replace(match: re.Match[str]) -> str:
        if name := match["literal"] or match["identifier"]:
            if name not in values:
                raise ValueError(f"the script uses the psql variable {name!r}, which has no value")
            value = values[name]
            if "\x00" in value:
                raise ValueError(f"the psql variable {name!r} holds a NUL character")
            return _quote_literal(value) if match["literal"] else _quote_identifier(value)
        raw = match["raw"]
        return values[raw] if raw is not None and raw in values else match[0]

    return _SQL_TOKEN.sub(replace, sql)


def render_psql_script(script: str, variables: Mapping[str, str]) -> str:
    r"""Turn a psql script into plain SQL, with its variables filled in as psql would.

    Supported meta-commands, each on a line of its own: `\set name value` (the value one word
    or `:other`), `\if :{?name}`, `\if :name` (a psql boolean), `\else` and `\endif`. Any other
    meta-command (`\password`, `\prompt`, ...) is fine in a branch not taken and an error in one
    taken: give the variable that branch asks for. `:'name'` becomes a string literal, `:"name"`
    a quoted identifier and `:name` the value itself (so it must be SQL already); outside
    quotes, comments and dollar-quoted bodies only, as in psql.

    Args:
        script: the text of the psql script.
        variables: the values of its variables, as `psql -v name=value` would give them.

    Returns:
        SQL to run as one multi-statement string.

    Raises:
        ValueError: the script uses something this function does not support, or a variable
            without a value.
    """
    values = dict(variables)
    # One entry per open \if: (is the current branch taken, has any branch of it been taken).
    branches: list[tuple[bool, bool]] = []
    kept: list[str] = []
    for number, line in enumerate(script.splitlines(), 1):
        active = all(taken for taken, _ in branches)
        meta = _META_COMMAND.match(line)
        if meta is None:
            if active:
                kept.append(line)
        elif meta["command"] in {"if", "else", "endif"}:
            _branch(meta["command"], meta["argument"] or "", values, branches, f"line {number}")
        elif active:
            _meta_command(meta["command"], meta["argument"] or "", values, f"line {number}")
    if branches:
        raise ValueError("the script ends inside an \\if block")
    return _interpolate("\n".join(kept) + "\n", values)


def _branch(
    command: str, argument: str, values: Mapping[str, str], branches: list[tuple[bool, bool]], where: str
) -> None:
    r"""Follow `\if`, `\else` and `\endif`, evaluating a condition only where it matters."""
    active = all(taken for taken, _ in branches)
    if command == "if":
        taken = active and _condition(argument, values, where)
        # Inside a branch not taken, no branch of a nested \if may be taken either.
        branches.append((taken, taken or not active))
        return
    if not branches:
        raise ValueError(f"{where}: \\{command} without \\if")
    _, done = branches.pop()
    if command == "else":
        branches.append((not done, True))


def _meta_command(command: str, argument: str, values: dict[str, str], where: str) -> None:
    r"""Run a meta-command in a branch taken: only `\set` is supported."""
    parts = argument.split(maxsplit=1)
    if command != "set" or not parts:
        raise ValueError(f"{where}: \\{command} needs psql; give the variable this branch asks for")
    value = parts[1] if len(parts) == 2 else ""
    if value.startswith(":"):
        if value[1:] not in values:
            raise ValueError(f"{where}: \\set {argument} uses a variable without a value")
        value = values[value[1:]]
    values[parts[0]] = value


@dataclass(eq=False)
class EmbeddedDatabase:
    """A running demo database; `stop()` stops the cluster and removes its directory."""

    cluster: ThrowawayCluster
    """The throwaway cluster underneath."""
    dsn: str = field(repr=False)
    """How the server connects: the read-only role over TCP on 127.0.0.1, password included."""
    admin_dsn: str
    """The superuser over the cluster's Unix socket (for tests and troubleshooting)."""
    database: str = DATABASE
    """The demo database's name."""
    role: str = ROLE
    """The read-only role's name."""
    schemas: tuple[str, ...] = SCHEMAS
    """The schemas the role may read."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    def stop(self) -> None:
        """Stop the cluster and remove its directory; safe to call twice."""
        if self.cluster.is_running():
            _logger.info("stopping the embedded PostgreSQL cluster in %s", self.cluster.base_dir)
        self.cluster.destroy()

    async def aclose(self) -> None:
        """`stop()` from async code, in a worker thread, and even when the caller is being cancelled."""
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(self.stop)


async def _load(cluster: ThrowawayCluster, password: str) -> str:
    """Create the demo database, load the demo and make the role; return the server's version."""
    admin = await asyncpg.connect(cluster.socket_dsn())
    try:
        await admin.execute(f"CREATE DATABASE {_quote_identifier(DATABASE)}")
    finally:
        await admin.close()
    setup_role = render_psql_script(
        _sql_file("setup-role.sql"),
        {
            "role": ROLE,
            "password": password,
            "database": DATABASE,
            "schemas": ", ".join(_quote_identifier(schema) for schema in SCHEMAS),
            "owner": cluster.superuser,
            "statement_timeout": _STATEMENT_TIMEOUT,
            # The demo database is ours alone: nobody else relies on PUBLIC's TEMPORARY right.
            "revoke_temp": "on",
        },
    )
    connection = await asyncpg.connect(cluster.socket_dsn(DATABASE))
    try:
        # Multi-statement scripts through execute() are fine here: both are our own SQL files,
        # shipped in this package, never text from a user or a model.
        await connection.execute(_sql_file("demo.sql"))
        await connection.execute(setup_role)
        return str(await connection.fetchval("SHOW server_version"))
    finally:
        await connection.close()


def _started(cluster: ThrowawayCluster, password: str, version: str) -> EmbeddedDatabase:
    _logger.info(
        "embedded PostgreSQL %s started in %s, listening on %s:%d (server log %s); database %s holds "
        "the demo schemas %s, readable by the read-only role %s",
        version,
        cluster.base_dir,
        cluster.host,
        cluster.port,
        cluster.log_file,
        DATABASE,
        ", ".join(SCHEMAS),
        ROLE,
    )
    return EmbeddedDatabase(
        cluster=cluster,
        dsn=cluster.dsn(DATABASE, user=ROLE, password=password),
        admin_dsn=cluster.socket_dsn(DATABASE),
    )


def _cluster(bindir: str | None, bindir_setting: str | None) -> ThrowawayCluster:
    return ThrowawayCluster(find_bindir(bindir, setting=bindir_setting), host_auth="scram-sha-256")


def start_embedded(*, bindir: str | None = None, bindir_setting: str | None = None) -> EmbeddedDatabase:
    """Start a throwaway cluster with the demo database and its read-only role; blocks 1-3 seconds.

    From async code, run it in a worker thread (`anyio.to_thread.run_sync`), or better await
    `start_embedded_async()`, which also cleans up when the caller is cancelled half-way.

    Args:
        bindir: the directory of the PostgreSQL server programs; searched for when omitted.
        bindir_setting: the name of the setting `bindir` came from, for error messages.

    Returns:
        The running database; `dsn` is what the server connects with. Stop it when done.

    Raises:
        bulkhead.pgcluster.PgClusterError: no PostgreSQL programs, or the cluster would not start.
    """
    cluster = _cluster(bindir, bindir_setting)
    password = secrets.token_urlsafe(24)
    try:
        cluster.start()
        # asyncpg needs an event loop; this thread gets one of its own for the load.
        version = anyio.run(_load, cluster, password)
    except BaseException:
        cluster.destroy()
        raise
    return _started(cluster, password, version)


async def start_embedded_async(
    *, bindir: str | None = None, bindir_setting: str | None = None
) -> EmbeddedDatabase:
    """`start_embedded()` for async code: the blocking steps run in worker threads.

    A cancellation while it starts stops and removes the half-made cluster before it propagates.

    Args:
        bindir: the directory of the PostgreSQL server programs; searched for when omitted.
        bindir_setting: the name of the setting `bindir` came from, for error messages.

    Returns:
        The running database; `dsn` is what the server connects with. Stop it when done
        (`await database.aclose()`, or use it as an async context manager).

    Raises:
        bulkhead.pgcluster.PgClusterError: no PostgreSQL programs, or the cluster would not start.
    """
    cluster = await anyio.to_thread.run_sync(_cluster, bindir, bindir_setting)
    password = secrets.token_urlsafe(24)
    try:
        await anyio.to_thread.run_sync(cluster.start)
        version = await _load(cluster, password)
    except BaseException:
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(cluster.destroy)
        raise
    return _started(cluster, password, version)
