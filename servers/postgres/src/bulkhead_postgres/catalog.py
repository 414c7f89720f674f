"""What is in the database, and what the connected role can do: the catalog queries.

Only schemas on the configured list are described. Every query here is our own SQL with values
as parameters. No MCP imports.
"""

from dataclasses import dataclass
from typing import Any

from bulkhead.errors import InvalidArgumentError, NotFoundError
from bulkhead_postgres.database import Database

__all__ = ["Catalog", "Finding", "TableRef", "quote_identifier"]

_TABLE_KINDS = {
    "r": "table",
    "p": "partitioned table",
    "v": "view",
    "m": "materialized view",
    "f": "foreign table",
}
_KIND_LIST = list(_TABLE_KINDS)

DANGEROUS_ROLES = {
    "pg_read_server_files": "reads any file the database server can read",
    "pg_write_server_files": "writes files on the database server",
    "pg_execute_server_program": "runs programs on the database server",
    "pg_signal_backend": "can cancel or terminate other sessions",
    "pg_write_all_data": "can write every table",
    "pg_checkpoint": "can force checkpoints",
}

# Functions PostgreSQL revokes from PUBLIC by default: being able to run one means someone granted
# it. (pg_terminate_backend is PUBLIC but only reaches the role's own sessions; the power to signal
# others comes with pg_signal_backend, checked above.)
RISKY_FUNCTIONS = {
    "pg_catalog.pg_read_file(text)": "reads files on the database server",
    "pg_catalog.pg_read_binary_file(text)": "reads files on the database server",
    "pg_catalog.pg_ls_dir(text)": "lists directories on the database server",
    "pg_catalog.lo_import(text)": "reads server files into large objects",
    "pg_catalog.lo_export(oid, text)": "writes large objects to server files",
    "pg_catalog.pg_reload_conf()": "reloads the server configuration",
}


def quote_identifier(name: str) -> str:
    """`name` as a double-quoted SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


@dataclass(frozen=True)
class TableRef:
    """A table the catalog knows, in a visible schema."""

    schema: str
    name: str
    kind: str

    @property
    def sql(self) -> str:
        """The quoted `schema.table` to put in SQL text."""
        return f"{quote_identifier(self.schema)}.{quote_identifier(self.name)}"

    @property
    def uri(self) -> str:
        """The resource URI of the table."""
        return f"postgres://{self.schema}/{self.name}"


@dataclass(frozen=True)
class Finding:
    """Something the connected role can do that a read-only server should not, and the fix."""

    severity: str
    issue: str
    fix: str


def _split_name(table: str) -> tuple[str | None, str]:
    if table.count(".") > 1:
        raise InvalidArgumentError(f"{table!r} is not a table name; give `table` or `schema.table`.")
    schema, _, name = table.rpartition(".")
    strip = str.strip
    return (strip(schema).strip('"') or None), strip(name).strip('"')


class Catalog:
    """Catalog queries limited to the visible schemas."""

    def __init__(self, database: Database, schemas: list[str]) -> None:
        self.database = database
        self.schemas = schemas

    async def schema_list(self) -> list[dict[str, Any]]:
        """Visible schemas that exist, with their comment and number of tables."""
        rows = await self.database.catalog(
            "SELECT n.nspname AS name, obj_description(n.oid, 'pg_namespace') AS comment, "
            "(SELECT count(*) FROM pg_class c WHERE c.relnamespace = n.oid "
            "AND c.relkind::text = ANY($2::text[])) "
            "AS tables FROM pg_namespace n WHERE n.nspname = ANY($1::text[]) ORDER BY n.nspname",
            self.schemas,
            _KIND_LIST,
        )
        return [dict(row) for row in rows]

    async def tables(self, schema: str | None = None) -> list[dict[str, Any]]:
        """Tables and views in `schema` (or every visible schema), with row estimates and comments."""
        if schema is not None and schema not in self.schemas:
            visible = ", ".join(self.schemas)
            raise NotFoundError(
                f"Schema {schema!r} is not visible on this server; visible schemas: {visible}."
            )
        rows = await self.database.catalog(
            "SELECT n.nspname AS schema, c.relname AS name, c.relkind::text AS kind, "
            "CASE WHEN c.reltuples < 0 THEN NULL ELSE c.reltuples::bigint END AS row_estimate, "
            "obj_description(c.oid, 'pg_class') AS comment "
            "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = ANY($1::text[]) AND c.relkind::text = ANY($2::text[]) "
            "ORDER BY n.nspname, c.relname",
            [schema] if schema else self.schemas,
            _KIND_LIST,
        )
        return [{**dict(row), "kind": _TABLE_KINDS[row["kind"]]} for row in rows]

    async def resolve(self, table: str) -> TableRef:
        """The visible table `table` (`name` or `schema.name`) names; NotFoundError otherwise."""
        schema, name = _split_name(table)
        return await self.lookup(schema, name, shown=table)

    async def lookup(self, schema: str | None, name: str, *, shown: str | None = None) -> TableRef:
        """The visible table `name` in `schema` (or the first visible schema that has it)."""
        candidates = ([schema] if schema in self.schemas else []) if schema else self.schemas
        rows = await self.database.catalog(
            "SELECT n.nspname AS schema, c.relname AS name, c.relkind::text AS kind "
            "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = ANY($1::text[]) AND c.relname = $2 AND c.relkind::text = ANY($3::text[]) "
            "ORDER BY array_position($1::text[], n.nspname::text) LIMIT 1",
            candidates,
            name,
            _KIND_LIST,
        )
        if not rows:
            visible = ", ".join(self.schemas)
            raise NotFoundError(
                f"No table or view named {shown or name!r} in the visible schemas ({visible}). "
                "Use list_tables to see what exists."
            )
        row = rows[0]
        return TableRef(row["schema"], row["name"], _TABLE_KINDS[row["kind"]])

    async def describe(self, ref: TableRef) -> dict[str, Any]:
        """Columns, keys, indexes, comment and row estimate of `ref`."""
        regclass = ref.sql
        head = await self.database.catalog(
            "SELECT obj_description(c.oid, 'pg_class') AS comment, "
            "CASE WHEN c.reltuples < 0 THEN NULL ELSE c.reltuples::bigint END AS row_estimate "
            "FROM pg_class c WHERE c.oid = $1::regclass",
            regclass,
        )
        columns = await self.database.catalog(
            "SELECT a.attname AS name, format_type(a.atttypid, a.atttypmod) AS type, NOT "
            "a.attnotnull AS nullable, "
            "pg_get_expr(d.adbin, d.adrelid) AS default, col_description(a.attrelid, a.attnum) AS comment "
            "FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum "
            "WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
            regclass,
        )
        constraints = await self.database.catalog(
            "SELECT con.conname AS name, con.contype::text AS type, "
            "ARRAY(SELECT a.attname FROM unnest(con.conkey) WITH ORDINALITY k(n, i) "
            "JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.n ORDER BY "
            "k.i)::text[] AS columns, "
            "CASE WHEN con.contype = 'f' THEN con.confrelid::regclass::text END AS ref_table, "
            "ARRAY(SELECT a.attname FROM unnest(con.confkey) WITH ORDINALITY k(n, i) "
            "JOIN pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.n ORDER BY "
            "k.i)::text[] AS ref_columns "
            "FROM pg_constraint con WHERE con.conrelid = $1::regclass AND con.contype IN ('p', 'f', 'u') "
            "ORDER BY con.contype, con.conname",
            regclass,
        )
        indexes = await self.database.catalog(
            "SELECT i.relname AS name, pg_get_indexdef(x.indexrelid) AS definition, x.indisunique AS unique, "
            "x.indisprimary AS primary FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid "
            "WHERE x.indrelid = $1::regclass ORDER BY i.relname",
            regclass,
        )
        primary: list[str] = next(
            (list[str](c["columns"]) for c in constraints if c["type"] == "p"), list[str]()
        )
        return {
            "schema": ref.schema,
            "name": ref.name,
            "kind": ref.kind,
            "comment": head[0]["comment"] if head else None,
            "row_estimate": head[0]["row_estimate"] if head else None,
            "columns": [dict(column) for column in columns],
            "primary_key": primary,
            "foreign_keys": [
                {
                    "name": c["name"],
                    "columns": list(c["columns"]),
                    "ref_table": c["ref_table"],
                    "ref_columns": list(c["ref_columns"]),
                }
                for c in constraints
                if c["type"] == "f"
            ],
            "unique": [
                {"name": c["name"], "columns": list(c["columns"])} for c in constraints if c["type"] == "u"
            ],
            "indexes": [dict(index) for index in indexes],
        }

    async def role_findings(self) -> tuple[str, list[Finding]]:
        """The connected role's name and every way it could change or escape the database."""
        database = self.database
        [role] = await database.catalog(
            "SELECT current_user AS name, rolsuper, rolcreaterole, rolcreatedb, rolreplication, rolbypassrls "
            "FROM pg_roles WHERE rolname = current_user"
        )
        name = role["name"]
        findings: list[Finding] = []
        quoted = quote_identifier(name)
        if role["rolsuper"]:
            findings.append(
                Finding(
                    "critical",
                    f"role {name} is a superuser: it can do anything, including run programs",
                    "connect as a dedicated read-only role instead (bulkhead-postgres --print-setup-sql)",
                )
            )
        for flag, what in (
            ("rolcreaterole", "create and alter roles"),
            ("rolcreatedb", "create databases"),
            ("rolreplication", "stream the whole database as a replication client"),
            ("rolbypassrls", "bypass row-level security"),
        ):
            if role[flag] and not role["rolsuper"]:
                findings.append(
                    Finding("high", f"role {name} can {what}", f"ALTER ROLE {quoted} NO{flag[3:].upper()};")
                )
        writable = await database.catalog(
            "SELECT n.nspname AS schema, c.relname AS name, "
            "array_remove(ARRAY[CASE WHEN has_table_privilege(c.oid, 'INSERT') THEN 'INSERT' END, "
            "CASE WHEN has_table_privilege(c.oid, 'UPDATE') THEN 'UPDATE' END, "
            "CASE WHEN has_table_privilege(c.oid, 'DELETE') THEN 'DELETE' END, "
            "CASE WHEN has_table_privilege(c.oid, 'TRUNCATE') THEN 'TRUNCATE' END], NULL)::text[] AS "
            "privileges "
            "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') "
            "AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%' "
            "AND (has_table_privilege(c.oid, 'INSERT') OR has_table_privilege(c.oid, 'UPDATE') "
            "OR has_table_privilege(c.oid, 'DELETE') OR has_table_privilege(c.oid, 'TRUNCATE')) "
            "ORDER BY 1, 2 LIMIT 50"
        )
        if writable and not role["rolsuper"]:
            tables = ", ".join(f"{row['schema']}.{row['name']}" for row in writable[:10])
            findings.append(
                Finding(
                    "high",
                    f"role {name} can write {len(writable)}{'+' if len(writable) == 50 else ''} "
                    f"tables ({tables})",
                    f"REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON ALL TABLES IN SCHEMA <schema> FROM "
                    f"{quoted};",
                )
            )
        creatable = await database.catalog(
            "SELECT nspname AS schema FROM pg_namespace WHERE has_schema_privilege(oid, 'CREATE') "
            "AND nspname NOT IN ('pg_catalog', 'information_schema') AND nspname NOT LIKE 'pg_temp%' "
            "AND nspname NOT LIKE 'pg_toast%' ORDER BY 1"
        )
        if creatable and not role["rolsuper"]:
            schemas = ", ".join(row["schema"] for row in creatable)
            findings.append(
                Finding(
                    "medium",
                    f"role {name} can create objects in schemas {schemas}",
                    f"REVOKE CREATE ON SCHEMA {schemas} FROM {quoted}, PUBLIC;",
                )
            )
        member_of = await database.catalog(
            "SELECT r.rolname AS name FROM pg_roles r WHERE r.rolname = ANY($1::text[]) "
            "AND pg_has_role(current_user, r.oid, 'MEMBER') ORDER BY 1",
            list(DANGEROUS_ROLES),
        )
        if not role["rolsuper"]:
            for row in member_of:
                findings.append(
                    Finding(
                        "high",
                        f"role {name} is a member of {row['name']}, which {DANGEROUS_ROLES[row['name']]}",
                        f"REVOKE {row['name']} FROM {quoted};",
                    )
                )
        executable = await database.catalog(
            "SELECT f AS signature FROM unnest($1::text[]) f "
            "WHERE to_regprocedure(f) IS NOT NULL AND has_function_privilege(to_regprocedure(f), 'EXECUTE')",
            list(RISKY_FUNCTIONS),
        )
        if not role["rolsuper"]:
            for row in executable:
                signature = row["signature"]
                findings.append(
                    Finding(
                        "high",
                        f"role {name} can execute {signature}, which {RISKY_FUNCTIONS[signature]}",
                        f"REVOKE EXECUTE ON FUNCTION {signature} FROM {quoted}, PUBLIC;",
                    )
                )
        [read_only] = await database.catalog(
            "SELECT current_setting('default_transaction_read_only') AS value"
        )
        if read_only["value"] != "on":
            findings.append(
                Finding(
                    "low",
                    f"role {name} does not default to read-only transactions (every call still runs "
                    f"read-only)",
                    f"ALTER ROLE {quoted} SET default_transaction_read_only = on;",
                )
            )
        return name, findings

    @staticmethod
    def privileged(findings: list[Finding]) -> bool:
        """Whether `findings` make the role unfit for a read-only server (superuser, or can write)."""
        return any(f.severity in ("critical", "high") for f in findings)
