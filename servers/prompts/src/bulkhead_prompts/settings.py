"""Settings of bulkhead-prompts (env prefix `BULKHEAD_PROMPTS_`)."""

from pathlib import Path
from typing import ClassVar

from pydantic import Field, field_validator
from pydantic_settings import SettingsConfigDict

from bulkhead.settings import ServerSettings

__all__ = ["STARTER_LIBRARY", "PromptsSettings"]

STARTER_LIBRARY = Path(__file__).parent / "library"
"""The built-in starter library, served when --library is not given."""


class PromptsSettings(ServerSettings):
    """Everything bulkhead-prompts can be told."""

    model_config = SettingsConfigDict(env_prefix="BULKHEAD_PROMPTS_", cli_prog_name="bulkhead-prompts")
    server_name: ClassVar[str] = "prompts"

    port: int = Field(
        default=8105,
        ge=0,
        le=65535,
        description="TCP port to bind in http mode (0 picks a free port and logs it).",
    )

    library: Path | None = Field(
        default=None,
        description=(
            "The prompt library: a directory of Markdown files with YAML front matter, watched for "
            "changes. Unset: the built-in starter library."
        ),
    )

    tools: bool = Field(
        default=False,
        description=("Also offer the tools list_prompts and get_prompt, for clients that speak only tools."),
    )

    watch: bool = Field(
        default=True,
        description="Reload prompts when library files change (the built-in library is never watched).",
    )

    watch_polling: bool = Field(
        default=False,
        description=(
            "Poll the library for changes instead of using file system events (for network mounts and "
            "container volumes that deliver none)."
        ),
    )

    reload_debounce_ms: int = Field(
        default=200,
        ge=0,
        le=60_000,
        description="How long a burst of file changes may last before it is reloaded as one (milliseconds).",
    )

    max_file_bytes: int = Field(
        default=256 * 1024,
        ge=1024,
        le=16 * 1024 * 1024,
        description="The largest prompt or embedded file loaded; bigger files are reported and skipped.",
    )

    max_prompts: int = Field(
        default=10_000, ge=1, le=1_000_000, description="The most prompt files loaded from the library."
    )

    max_argument_chars: int = Field(
        default=100_000,
        ge=1,
        le=4_000_000,
        description="The longest argument value accepted by prompts/get (characters).",
    )

    page_size: int = Field(default=100, ge=1, le=1000, description="Prompts per prompts/list page.")

    @field_validator("library")
    @classmethod
    def _directory(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_dir():
            raise ValueError(f"{value} is not a directory")
        return value

    @property
    def library_root(self) -> Path:
        """The library directory to serve."""
        return self.library if self.library is not None else STARTER_LIBRARY

    @property
    def watching(self) -> bool:
        """Whether the library is watched for changes."""
        return self.watch and self.library is not None
