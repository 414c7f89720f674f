"""Settings of bulkhead-files (env prefix `BULKHEAD_FILES_`)."""

import os
from importlib.resources import files
from pathlib import Path
from typing import ClassVar

from pydantic import Field, field_validator
from pydantic_settings import CliPositionalArg, SettingsConfigDict

from bulkhead.settings import CommaList, ServerSettings

__all__ = ["DEFAULT_DENY", "FilesSettings", "sample_tree"]

DEFAULT_DENY = [
    ".git",
    ".hg",
    ".svn",
    ".env",
    ".env.*",
    "*.env",
    ".ssh",
    ".aws",
    ".azure",
    ".gnupg",
    ".kube",
    ".docker",
    ".netrc",
    ".npmrc",
    ".pypirc",
    ".pgpass",
    ".htpasswd",
    ".git-credentials",
    "credentials",
    "credentials.*",
    "secrets.*",
    "id_rsa*",
    "id_dsa*",
    "id_ecdsa*",
    "id_ed25519*",
    "*.pem",
    "*.key",
    "*.p12",
    "*.pfx",
    "*.jks",
    "*.keystore",
    "*.kdbx",
    "*.gpg",
    "*.asc",
]
"""Names hidden by default: version-control internals, env files, keys and credential stores."""


def sample_tree() -> Path:
    """The bundled sample project served when no roots are given."""
    return Path(str(files("bulkhead_files").joinpath("sample")))


class FilesSettings(ServerSettings):
    """Everything bulkhead-files can be told."""

    model_config = SettingsConfigDict(env_prefix="BULKHEAD_FILES_", cli_prog_name="bulkhead-files")
    server_name: ClassVar[str] = "files"

    roots: CliPositionalArg[CommaList] = Field(
        default_factory=list[str],
        description=(
            "Directories to serve, read-only (positional arguments, or BULKHEAD_FILES_ROOTS as a "
            "comma-separated list). Unset: a bundled sample project."
        ),
    )
    port: int = Field(
        default=8102, ge=0, le=65535, description="TCP port to bind in http mode (0 picks a free port)."
    )
    deny: CommaList = Field(
        default_factory=lambda: list(DEFAULT_DENY),
        description=(
            "Glob patterns of names (or, with a `/`, relative paths) that are never listed or read, "
            "case-insensitively. Replaces the default list of secret-looking names; an empty list denies "
            "nothing."
        ),
    )
    show_hidden: bool = Field(
        default=False, description="Serve names that start with a dot (the deny list still applies)."
    )
    allow_hard_links: bool = Field(
        default=False,
        description=(
            "Serve files that have more than one hard link. Off by default: a hard link can make a file "
            "from outside a root appear inside it."
        ),
    )
    client_roots: bool = Field(
        default=True,
        description=(
            "Ask handshake-era clients for their roots (roots/list) and narrow the served roots to them; "
            "client roots can never widen what is configured here."
        ),
    )
    page_size: int = Field(
        default=1000,
        ge=1,
        le=10_000,
        description="Entries per page of resources/list, list_directory and find_files.",
    )
    max_read_bytes: int = Field(
        default=1_048_576,
        ge=1024,
        le=64 * 1_048_576,
        description="Most bytes one read_file call returns; longer files are read in ranges.",
    )
    max_resource_bytes: int = Field(
        default=4 * 1_048_576,
        ge=1024,
        le=256 * 1_048_576,
        description="Largest file resources/read returns whole; larger ones are read with read_file ranges.",
    )
    search_timeout_ms: int = Field(
        default=5000, ge=10, le=120_000, description="Longest one find_files or search_text call walks."
    )
    max_search_matches: int = Field(
        default=200, ge=1, le=10_000, description="Most matches one search_text call returns."
    )
    max_search_file_bytes: int = Field(
        default=4 * 1_048_576,
        ge=1024,
        le=1024 * 1_048_576,
        description="search_text skips files larger than this.",
    )
    max_walk_entries: int = Field(
        default=500_000,
        ge=100,
        le=50_000_000,
        description="Most directory entries one walk (search, resources/list) visits before it stops.",
    )
    watch: bool = Field(
        default=True, description="Watch the roots and notify subscribed clients when files change."
    )
    watch_polling: bool = Field(
        default=False,
        description="Poll for changes instead of using inotify (for containers and network filesystems).",
    )
    watch_debounce_ms: int = Field(
        default=200, ge=10, le=60_000, description="Changes within this window are sent as one notification."
    )

    @field_validator("roots")
    @classmethod
    def _usable_roots(cls, value: list[str]) -> list[str]:
        resolved: list[str] = []
        for entry in value:
            path = Path(entry).expanduser()
            try:
                real = path.resolve(strict=True)
            except (OSError, RuntimeError):
                raise ValueError(f"{entry} does not exist") from None
            if not real.is_dir():
                raise ValueError(f"{entry} is not a directory")
            if not os.access(real, os.R_OK | os.X_OK):
                raise ValueError(f"{entry} is not readable by this process")
            if str(real) not in resolved:
                resolved.append(str(real))
        return resolved
