"""What the tools return."""

from typing import Any

from pydantic import BaseModel, Field

from bulkhead.results import unchecked_items

__all__ = [
    "ColumnInfo",
    "ForeignKey",
    "IndexInfo",
    "QueryOutput",
    "RoleFinding",
    "RoleReport",
    "SchemaInfo",
    "SchemaList",
    "TableDescription",
    "TableInfo",
    "TableList",
    "UniqueKey",
]


def _string_or_null(schema: dict[str, Any]) -> None:
    """Publish `{"type": ["string", "null"]}` instead of pydantic's `anyOf` of the two.

    The same values; a client's JSON Schema validator checks them in one step, not two sub-schemas.
    """
    schema.pop("anyOf", None)
    schema["type"] = ["string", "null"]


class QueryOutput(BaseModel):
    """Rows of a read-only statement, as arrays in column order."""

    columns: list[dict[str, str]] = Field(
        description="Each column, in order, as an object: {name, type} (its PostgreSQL type)",
        json_schema_extra=unchecked_items,
    )
    rows: list[list[Any]] = Field(
        description="One array per row: each row is an array of values in column order (exact JSON forms)",
        json_schema_extra=unchecked_items,
    )
    row_count: int = Field(description="How many rows are returned here")
    truncated: bool = Field(description="True if more rows existed than were returned")
    truncated_reason: str | None = Field(
        default=None, description="Why the result was cut, when it was", json_schema_extra=_string_or_null
    )
    elapsed_ms: float = Field(description="Time the database took, in milliseconds")


class SchemaInfo(BaseModel):
    """A schema."""

    name: str
    comment: str | None
    tables: int = Field(description="Tables and views in it")


class SchemaList(BaseModel):
    """The visible schemas."""

    schemas: list[SchemaInfo]


class TableInfo(BaseModel):
    """A table or view."""

    schema_name: str = Field(alias="schema")
    name: str
    kind: str = Field(description="table, view, materialized view, partitioned table or foreign table")
    row_estimate: int | None = Field(description="The planner's estimate (null if never analyzed)")
    comment: str | None
    uri: str = Field(description="The resource with its description")


class TableList(BaseModel):
    """Tables and views."""

    tables: list[TableInfo]


class ColumnInfo(BaseModel):
    """A column."""

    name: str
    type: str
    nullable: bool
    default: str | None
    comment: str | None


class ForeignKey(BaseModel):
    """A foreign key."""

    name: str
    columns: list[str]
    ref_table: str
    ref_columns: list[str]


class UniqueKey(BaseModel):
    """A unique constraint."""

    name: str
    columns: list[str]


class IndexInfo(BaseModel):
    """An index."""

    name: str
    definition: str
    unique: bool
    primary: bool


class TableDescription(BaseModel):
    """Everything needed to write correct SQL against one table."""

    schema_name: str = Field(alias="schema")
    name: str
    kind: str
    comment: str | None
    row_estimate: int | None
    columns: list[ColumnInfo]
    primary_key: list[str]
    foreign_keys: list[ForeignKey]
    unique: list[UniqueKey]
    indexes: list[IndexInfo]


class RoleFinding(BaseModel):
    """One thing the role can do that a read-only server should not."""

    severity: str = Field(description="critical, high, medium or low")
    issue: str
    fix: str = Field(description="SQL (or a step) that removes the risk")


class RoleReport(BaseModel):
    """What the connected role can do."""

    role: str
    read_only: bool = Field(description="True when nothing critical or high was found")
    findings: list[RoleFinding]
