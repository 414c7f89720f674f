"""Settings of bulkhead-postgres (env prefix `BULKHEAD_POSTGRES_`)."""

from typing import ClassVar, Literal

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from bulkhead.settings import CommaList, ServerSettings

__all__ = ["PostgresSettings"]


class PostgresSettings(ServerSettings):
    """Everything bulkhead-postgres can be told."""

    model_config = SettingsConfigDict(env_prefix="BULKHEAD_POSTGRES_", cli_prog_name="bulkhead-postgres")
    server_name: ClassVar[str] = "postgres"

    port: int = Field(
        default=8103, ge=0, le=65535, description="TCP port to bind in http mode (0 picks a free port)."
    )
    dsn: SecretStr | None = Field(
        default=None,
        description=(
            "PostgreSQL connection string (postgresql://reader:password@host/db). Unset: a throwaway "
            "demo database is started from the machine's PostgreSQL programs."
        ),
    )
    schemas: CommaList = Field(
        default_factory=lambda: ["public"],
        description=(
            "Schemas the catalog tools and resources show (queries may still name others the role can read)."
        ),
    )
    statement_timeout_ms: int = Field(
        default=5000, ge=1, le=600_000, description="Longest a statement may run, in milliseconds."
    )
    lock_timeout_ms: int = Field(
        default=1000,
        ge=1,
        le=600_000,
        description="Longest a statement may wait for a lock, in milliseconds.",
    )
    idle_in_transaction_timeout_ms: int = Field(
        default=10_000,
        ge=1,
        le=600_000,
        description="Longest a transaction may sit idle, in milliseconds (a stuck call cannot hold locks).",
    )
    max_rows: int = Field(
        default=500, ge=1, le=100_000, description="Most rows a query returns; a call may ask for fewer."
    )
    max_bytes: int = Field(
        default=1_000_000,
        ge=1024,
        le=100_000_000,
        description="Most bytes of row data (as JSON) a query returns; the rest is cut and flagged.",
    )
    max_cell_chars: int = Field(
        default=2000,
        ge=16,
        le=10_000_000,
        description="Longest text value returned; longer ones are cut with a marker.",
    )
    pool_size: int = Field(default=4, ge=1, le=100, description="Most connections open at once.")
    allow_explain_analyze: bool = Field(
        default=False,
        description=(
            "Let explain run ANALYZE (it executes the statement, still read-only and under the timeouts)."
        ),
    )
    allow_privileged_role: bool = Field(
        default=False,
        description=(
            "Serve even when the role is a superuser or can write (every call then logs a warning). "
            "Use a read-only role instead: `bulkhead-postgres --print-setup-sql`."
        ),
    )
    target_session_attrs: (
        Literal["any", "primary", "standby", "prefer-standby", "read-write", "read-only"] | None
    ) = Field(
        default=None, description="Which server of a multi-host DSN to use (for example prefer-standby)."
    )
    print_setup_sql: bool = Field(
        default=False, description="Print the SQL that creates a proper read-only role, and exit."
    )
