"""Settings of bulkhead-users (env prefix `BULKHEAD_USERS_`)."""

from pathlib import Path
from typing import ClassVar

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import SettingsConfigDict

from bulkhead.settings import CommaList, ServerSettings
from bulkhead_users.fields import DEFAULT_FIELDS, check_fields
from bulkhead_users.sqlnames import quote_columns, quote_identifier

__all__ = ["BUNDLED_DIRECTORY", "UsersSettings"]

BUNDLED_DIRECTORY = Path(__file__).parent / "data" / "directory.json"
"""The synthetic directory served when neither --directory nor --dsn is given."""


class UsersSettings(ServerSettings):
    """Everything bulkhead-users can be told."""

    model_config = SettingsConfigDict(env_prefix="BULKHEAD_USERS_", cli_prog_name="bulkhead-users")
    server_name: ClassVar[str] = "users"

    port: int = Field(
        default=8101,
        ge=0,
        le=65535,
        description="TCP port to bind in http mode (0 picks a free port and logs it).",
    )

    directory: Path | None = Field(
        default=None,
        description=(
            "A JSON or CSV file of users, reloaded when it changes. Unset (and no --dsn): the bundled "
            "synthetic directory of 600 people."
        ),
    )

    dsn: SecretStr | None = Field(
        default=None,
        description=(
            "PostgreSQL connection string (postgresql://user:password@host/db); when set, users are read "
            "from --table instead of a file."
        ),
    )

    table: str = Field(
        default="users", description="The PostgreSQL table (or schema.table) that holds one row per user."
    )

    columns: CommaList = Field(
        default_factory=list[str],
        description=(
            "Column names that differ from our field names, as field=column pairs (for example "
            "email=mail,display_name=cn)."
        ),
    )

    pool_size: int = Field(default=4, ge=1, le=100, description="Most PostgreSQL connections open at once.")

    fields: CommaList = Field(
        default_factory=lambda: list(DEFAULT_FIELDS),
        description=(
            "The field allow-list: the only fields that appear in results and that search, sort and "
            "lookups may use (id is always included). Default: all but phone and personal_address. "
            "Available: id, username, email, display_name, given_name, family_name, title, department, "
            "location, manager_id, groups, employment_type, start_date, phone, personal_address."
        ),
    )

    @field_validator("fields")
    @classmethod
    def _known_fields(cls, value: list[str]) -> list[str]:
        check_fields(value)
        return value

    @field_validator("table")
    @classmethod
    def _plain_table(cls, value: str) -> str:
        quote_identifier(value)
        return value

    @field_validator("columns")
    @classmethod
    def _pairs(cls, value: list[str]) -> list[str]:
        mapping: dict[str, str] = {}
        for pair in value:
            name, sep, column = pair.partition("=")
            if not sep or not name or not column:
                raise ValueError(f"{pair!r} is not field=column")
            if name in mapping:
                raise ValueError(f"{name!r} is given a column twice")
            mapping[name] = column
        quote_columns(mapping)
        return value

    def column_map(self) -> dict[str, str]:
        """`columns` as a dict."""
        return dict(pair.split("=", 1) for pair in self.columns)
