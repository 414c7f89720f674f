"""`build_server`: bulkhead-postgres' tools and resources, wired to a `Database`. No domain logic."""

import functools
import json
import logging
from typing import Annotated, Any

import anyio
from mcp_types import CallToolResult
from pydantic import Field

from bulkhead.app import BulkheadServer
from bulkhead.errors import InvalidArgumentError, ResourceNotFoundError
from bulkhead.errors import NotFoundError as _NotFound
from bulkhead.results import READ_ONLY, structured
from bulkhead_postgres.catalog import Catalog
from bulkhead_postgres.database import Database, QueryResult, compact_json
from bulkhead_postgres.guard import MAX_SQL_LENGTH, CheckedStatement, check_explainable, check_read_only
from bulkhead_postgres.models import (
    QueryOutput,
    RoleFinding,
    RoleReport,
    SchemaInfo,
    SchemaList,
    TableDescription,
    TableInfo,
    TableList,
)
from bulkhead_postgres.settings import PostgresSettings

__all__ = ["build_server"]

logger = logging.getLogger("bulkhead_postgres")

INSTRUCTIONS = """\
Read-only SQL on a PostgreSQL database. Explore first: list_schemas, list_tables, then
describe_table for the columns, keys and comments of the tables you need, and sample_rows to see
real values. Then query with one SELECT (or VALUES, TABLE, SHOW, EXPLAIN) per call; use $1, $2 ...
placeholders with params for values. Writes, session changes and side-effect functions are
rejected, results are capped, and every call runs in a read-only transaction with a time limit."""

SqlText = Annotated[str, Field(min_length=1, max_length=MAX_SQL_LENGTH, description="One SQL statement")]

LONG_SQL = 5_000
"""Statements longer than this are checked on a worker thread: parsing them can take a while."""


async def _checked(sql: str, *, allow_explain_analyze: bool) -> CheckedStatement:
    if len(sql) <= LONG_SQL:
        return check_read_only(sql, allow_explain_analyze=allow_explain_analyze)
    return await anyio.to_thread.run_sync(
        functools.partial(check_read_only, sql, allow_explain_analyze=allow_explain_analyze)
    )


TableName = Annotated[
    str, Field(min_length=1, max_length=200, description="A table or view: `name` or `schema.name`")
]
Param = str | int | float | bool | None | list[Any] | dict[str, Any]


def _output(result: QueryResult) -> CallToolResult:
    """The `QueryOutput` fields as plain JSON data (the rows already are), without a model.

    The text copy is the compact JSON of the same data, put together around the rows' JSON that
    `Database.run` made while it checked the byte budget: the rows are serialised once, not twice.
    """
    columns = [{"name": c.name, "type": c.type} for c in result.columns]
    tail = {
        "row_count": len(result.rows),
        "truncated": result.truncated,
        "truncated_reason": result.truncated_reason,
        "elapsed_ms": result.elapsed_ms,
    }
    text = f'{{"columns":{compact_json(columns)},"rows":{result.rows_json},{compact_json(tail)[1:]}'
    return structured({"columns": columns, "rows": result.rows, **tail}, text=text)


def build_server(settings: PostgresSettings, database: Database) -> BulkheadServer:  # noqa: PLR0915 -- one nested function per tool
    """The bulkhead-postgres MCP server over `database`."""
    catalog = Catalog(database, settings.schemas)
    server = BulkheadServer(settings, instructions=INSTRUCTIONS, version="0.1.0")
    max_rows_cap = settings.max_rows

    def warn() -> None:
        if database.privileged:
            logger.warning(
                "serving with a privileged role (allow_privileged_role is set); use a read-only role"
            )

    @server.tool(annotations=READ_ONLY)
    async def query(
        sql: SqlText,
        params: Annotated[
            list[Param] | None, Field(max_length=100, description="Values for $1, $2 ... in order")
        ] = None,
        max_rows: Annotated[int | None, Field(ge=1, description="Return at most this many rows")] = None,
    ) -> Annotated[CallToolResult, QueryOutput]:
        """Run one read-only SQL statement and return its rows.

        Accepts SELECT, VALUES, TABLE, SHOW and EXPLAIN of those; anything that writes, changes the
        session or calls a side-effect function is rejected with the reason. Put values in `params`
        and refer to them as $1, $2 ... instead of pasting them into the SQL. Rows come back as
        arrays in column order, with column names and types; `truncated` is true when the row cap
        (`max_rows`, at most the server's limit) or the byte budget cut the result, so add a LIMIT,
        filter or aggregate. Numeric values keep all their digits as strings; timestamps are UTC.
        """
        warn()
        checked = await _checked(sql, allow_explain_analyze=settings.allow_explain_analyze)
        cap = min(max_rows or max_rows_cap, max_rows_cap)
        return _output(await database.run(checked, params or [], cap))

    @server.tool(annotations=READ_ONLY)
    async def explain(
        sql: SqlText,
        analyze: Annotated[
            bool,
            Field(description="Also run the statement and report real timings (if the server allows it)"),
        ] = False,
    ) -> Annotated[CallToolResult, QueryOutput]:
        """Show PostgreSQL's plan for one SELECT as JSON, to check indexes and costs before running it.

        With analyze=true the statement really runs (read-only, under the time limit) and the plan
        carries actual row counts and timings; this is only available when the operator enabled it.
        """
        warn()
        inner = check_explainable(sql)
        if analyze and not settings.allow_explain_analyze:
            raise InvalidArgumentError(
                "explain with analyze=true is disabled on this server; call it with analyze=false."
            )
        options = "FORMAT JSON, ANALYZE, BUFFERS" if analyze else "FORMAT JSON"
        checked = check_read_only(f"EXPLAIN ({options}) {inner.sql}", allow_explain_analyze=analyze)
        return _output(await database.run(checked, [], 1))

    @server.tool(annotations=READ_ONLY)
    async def list_schemas() -> Annotated[CallToolResult, SchemaList]:
        """List the schemas this server shows, with their comments and how many tables each holds."""
        warn()
        rows = await catalog.schema_list()
        return structured(SchemaList(schemas=[SchemaInfo.model_validate(row) for row in rows]))

    @server.tool(annotations=READ_ONLY)
    async def list_tables(
        schema: Annotated[
            str | None, Field(default=None, max_length=63, description="Only this schema; omit for all")
        ] = None,
    ) -> Annotated[CallToolResult, TableList]:
        """List tables and views with their kind, estimated row count and comment.

        Use describe_table next for the columns of the ones that matter.
        """
        warn()
        rows = await catalog.tables(schema)
        tables = [
            TableInfo.model_validate({**row, "uri": f"postgres://{row['schema']}/{row['name']}"})
            for row in rows
        ]
        return structured(TableList(tables=tables))

    @server.tool(annotations=READ_ONLY)
    async def describe_table(table: TableName) -> Annotated[CallToolResult, TableDescription]:
        """Describe one table or view, to read before writing SQL against it.

        Returns columns (type, nullability, default, comment), primary and foreign keys, unique
        constraints, indexes, the table's comment and its estimated row count.
        """
        warn()
        ref = await catalog.resolve(table)
        return structured(TableDescription.model_validate(await catalog.describe(ref)))

    @server.tool(annotations=READ_ONLY)
    async def sample_rows(
        table: TableName,
        n: Annotated[int, Field(ge=1, le=100, description="How many rows (1-100)")] = 5,
    ) -> Annotated[CallToolResult, QueryOutput]:
        """Return a few rows of a table or view exactly as stored, to see real values and formats.

        The rows are whichever the database returns first, not a random sample.
        """
        warn()
        ref = await catalog.resolve(table)
        # The name comes from the catalog and is quoted; the count travels as a parameter.
        checked = check_read_only(f"SELECT * FROM {ref.sql} LIMIT $1")  # noqa: S608
        return _output(await database.run(checked, [n], n))

    @server.tool(annotations=READ_ONLY)
    async def check_role() -> Annotated[CallToolResult, RoleReport]:
        """Report what the connected database role can do beyond reading, with the fix for each finding.

        Checks: superuser, write privileges, schemas it can create in, dangerous predefined roles,
        risky functions it may execute, and whether it defaults to read-only transactions.
        """
        name, findings = await catalog.role_findings()
        return structured(
            RoleReport(
                role=name,
                read_only=not Catalog.privileged(findings),
                findings=[RoleFinding(severity=f.severity, issue=f.issue, fix=f.fix) for f in findings],
            )
        )

    @server.resource(
        "postgres://overview",
        name="overview",
        title="Database overview",
        description="Every visible schema and table with comments and row estimates, as JSON.",
        mime_type="application/json",
    )
    async def overview() -> str:
        schemas = await catalog.schema_list()
        tables = await catalog.tables()
        for row in tables:
            row["uri"] = f"postgres://{row['schema']}/{row['name']}"
        return json.dumps({"schemas": schemas, "tables": tables}, default=str)

    @server.resource(
        "postgres://{schema}/{table}",
        name="table",
        title="A table's description",
        description="Columns, keys, indexes and comments of one table or view, as JSON.",
        mime_type="application/json",
    )
    async def table_resource(schema: str, table: str) -> str:
        try:
            ref = await catalog.lookup(schema, table)
        except _NotFound as exc:
            raise ResourceNotFoundError(str(exc)) from None
        return json.dumps(await catalog.describe(ref), default=str)

    del query, explain, list_schemas, list_tables, describe_table, sample_rows, check_role
    del overview, table_resource
    return server
