"""Settings every Bulkhead server shares: env vars and CLI flags from one pydantic-settings class.

Each server subclasses `ServerSettings`, sets its own env prefix (`BULKHEAD_<NAME>_`) and adds its
own fields. Every field is an environment variable and a `--kebab-case` flag at the same time; the
attribute docstring is its `--help` text.
"""

import ipaddress
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, NoReturn, Self, TypeVar

from pydantic import BeforeValidator, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, CliApp, NoDecode, SettingsConfigDict, SettingsError

__all__ = ["CommaList", "ConfigError", "ServerSettings", "load_settings", "parse_token_pairs"]

_S = TypeVar("_S", bound="ServerSettings")


class ConfigError(ValueError):
    """Configuration that cannot work; the message names the setting and what to do."""


def _split_commas(value: Any) -> Any:
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                return json.loads(text)
            except ValueError:
                raise ValueError("is neither a comma-separated list nor a JSON list") from None
        return [part.strip() for part in text.split(",") if part.strip()]
    return value


# The splitter travels with the type, so every CommaList field (a server's own too) accepts it.
CommaList = Annotated[list[str], NoDecode, BeforeValidator(_split_commas)]
"""A list setting written as `a,b,c` in an env var or flag (JSON lists are accepted too)."""


def parse_token_pairs(text: str, *, source: str) -> dict[str, str]:
    """Parse `name:token` pairs separated by commas or newlines into {token: name}.

    Blank lines and lines starting with `#` are ignored (so a tokens file can carry comments).
    The error names `source` and the line, never the token itself.
    """
    tokens: dict[str, str] = {}
    for number, raw in enumerate(text.replace(",", "\n").splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, token = line.partition(":")
        name, token = name.strip(), token.strip()
        if not sep or not name or not token:
            raise ConfigError(f"{source}: entry {number} is not of the form name:token")
        if len(token) < 16:
            raise ConfigError(f"{source}: the token named {name!r} is shorter than 16 characters")
        if token in tokens:
            raise ConfigError(f"{source}: the token named {name!r} is also used by {tokens[token]!r}")
        tokens[token] = name
    return tokens


def _same_file_as_stdout(path: Path) -> bool:
    try:
        return os.path.samestat(os.stat(path), os.fstat(1))
    except OSError:
        return False


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class ServerSettings(BaseSettings):
    """What every Bulkhead server can be told, by env var or by flag."""

    model_config = SettingsConfigDict(
        env_prefix="BULKHEAD_",
        cli_kebab_case=True,
        cli_implicit_flags=True,
        cli_hide_none_type=True,
        cli_avoid_json=True,
        cli_show_env_vars=True,
        extra="ignore",
        validate_default=True,
    )

    server_name: ClassVar[str] = "bulkhead"
    """The server's short name (`users`, `files`, ...): audit records and the env prefix use it."""

    transport: Literal["stdio", "http"] = Field(
        default="stdio",
        description=(
            "How clients reach the server: `stdio` for desktop clients, `http` for Streamable HTTP at "
            "/mcp and legacy SSE at /sse from one process."
        ),
    )

    host: str = Field(
        default="127.0.0.1",
        description=(
            "Address to bind in http mode. A non-loopback address requires --tokens (or "
            "--allow-unauthenticated) and --allowed-hosts."
        ),
    )

    port: int = Field(
        default=8000,
        ge=0,
        le=65535,
        description="TCP port to bind in http mode (0 picks a free port and logs it).",
    )

    log_level: Literal["debug", "info", "warning", "error"] = Field(
        default="info", description="Lowest level of log record written to stderr."
    )

    log_format: Literal["json", "text"] = Field(
        default="json",
        description="Log record format on stderr: one JSON object per line, or plain text for people.",
    )

    audit: str = Field(
        default="stderr",
        description=(
            "Where audit records go: `stderr` (with the logs), `off`, or a file path (JSON lines, appended)."
        ),
    )

    tokens: SecretStr | None = Field(
        default=None,
        description=(
            "Bearer tokens accepted in http mode, as `name:token` pairs separated by commas. The name is "
            "what audit records show; the token never appears anywhere."
        ),
    )

    tokens_file: Path | None = Field(
        default=None,
        description="A file of `name:token` lines (blank lines and `#` comments allowed), read at start.",
    )

    allow_unauthenticated: bool = Field(
        default=False,
        description=(
            "Serve http on a non-loopback address without tokens. Only behind a proxy that authenticates "
            "for us."
        ),
    )

    allowed_hosts: CommaList = Field(
        default_factory=list[str],
        description=(
            "Extra values accepted in the Host header (`name` or `name:port`; `name:*` for any port). "
            "Loopback names are always accepted. Required when binding a non-loopback address."
        ),
    )

    allowed_origins: CommaList = Field(
        default_factory=list[str],
        description="Extra values accepted in the Origin header (for example `https://app.example.com`).",
    )

    stateless_http: bool = Field(
        default=False,
        description=(
            "Serve handshake-era Streamable HTTP without sessions, so any replica can answer any request "
            "(2026-07-28 requests are stateless either way)."
        ),
    )

    cursor_secret: SecretStr | None = Field(
        default=None,
        min_length=16,
        description=(
            "Key that signs pagination cursors. Give every replica the same value so a cursor from one is"
            " accepted by another; unset, a random key is made at start."
        ),
    )

    direct_calls: bool = Field(
        default=True,
        description=(
            "Over stdio, answer plain tools/call requests without the SDK's per-request dispatch "
            "(same validation, errors, audit and answers; about 0.3 ms less CPU per call). Off: every "
            "request goes through the SDK's session."
        ),
    )

    event_loop: Literal["auto", "uvloop", "asyncio"] = Field(
        default="auto",
        description=(
            "Event loop: `uvloop` (libuv, less CPU per request), `asyncio` (the standard library's), "
            "or `auto`: uvloop where it is installed (Linux and macOS), else asyncio."
        ),
    )

    @field_validator("audit")
    @classmethod
    def _audit_target(cls, value: str) -> str:
        # Checked here so a bad path is one line at start, not a traceback from opening it later.
        if value in ("stderr", "off"):
            return value
        path = Path(value)
        if value in ("/dev/stdout", "/dev/fd/1", "/proc/self/fd/1") or _same_file_as_stdout(path):
            raise ValueError(f"{value} is stdout, the stdio protocol channel; use `stderr`, `off` or a file")
        if path.is_dir():
            raise ValueError(f"{value} is a directory; give a file path, `stderr` or `off`")
        target = path if path.exists() else path.parent
        if not target.exists():
            raise ValueError(f"the directory of {value} does not exist")
        if not os.access(target, os.W_OK):
            raise ValueError(f"{value} is not writable")
        return value

    @model_validator(mode="after")
    def _check_exposure(self) -> Self:
        if self.transport != "http" or _is_loopback(self.host):
            return self
        if not self.tokens and not self.tokens_file and not self.allow_unauthenticated:
            raise ConfigError(
                f"host: binding {self.host} exposes the server beyond this machine; set tokens "
                "(or tokens_file), or pass --allow-unauthenticated if a proxy authenticates callers"
            )
        if not self.allowed_hosts:
            raise ConfigError(
                f"allowed_hosts: binding {self.host} needs the host names clients will use "
                "(for example --allowed-hosts mcp.example.com), so DNS-rebinding protection stays on"
            )
        return self

    @property
    def is_loopback(self) -> bool:
        """Whether the http transport binds only to this machine."""
        return _is_loopback(self.host)

    def token_table(self) -> dict[str, str]:
        """Accepted bearer tokens mapped to their names, from --tokens and --tokens-file."""
        table: dict[str, str] = {}
        if self.tokens is not None:
            table.update(parse_token_pairs(self.tokens.get_secret_value(), source="tokens"))
        if self.tokens_file is not None:
            try:
                text = self.tokens_file.read_text(encoding="utf-8")
            except OSError as exc:
                raise ConfigError(f"tokens_file: cannot read {self.tokens_file}: {exc.strerror}") from None
            except UnicodeDecodeError:
                raise ConfigError(f"tokens_file: {self.tokens_file} is not UTF-8 text") from None
            table.update(parse_token_pairs(text, source="tokens_file"))
        if not table and (self.tokens is not None or self.tokens_file is not None):
            # A tokens setting that yields nothing must not quietly mean "no authentication".
            source = "tokens" if self.tokens is not None else f"tokens_file: {self.tokens_file}"
            raise ConfigError(f"{source}: no name:token entries found; add at least one")
        return table


def _first_error_line(exc: ValidationError, env_prefix: str) -> str:
    error = exc.errors()[0]
    field = ".".join(str(part) for part in error["loc"]) or "settings"
    message = str(error["msg"]).removeprefix("Value error, ")
    if isinstance(error.get("ctx", {}).get("error"), ConfigError):
        return message
    flag = "--" + field.replace("_", "-")
    return f"{field} ({flag} / {env_prefix}{field.upper()}): {message}"


def _without_values(message: str) -> str:
    """An argparse complaint about unknown arguments, naming the flags but not their values.

    A mistyped `--token name:secret` must not print the secret.
    """
    head, marker, rest = message.partition("unrecognized arguments:")
    if not marker:
        return message
    words = rest.split()
    # Flags by name; a stray positional word is shown only by how long it is.
    shown = [w.split("=", 1)[0] if w.startswith("-") else f"<positional, {len(w)} characters>" for w in words]
    return f"{head}{marker} {' '.join(shown)}"


def _fail(prog: str, line: str) -> NoReturn:
    sys.stderr.write(f"{prog}: invalid configuration: {line}\n")
    raise SystemExit(2)


def load_settings(cls: type[_S], argv: Sequence[str] | None = None) -> _S:
    """Build settings from env vars and CLI flags; on bad input print one line and exit 2.

    `--help` prints every setting with its env var and exits 0.
    """
    prefix = str(cls.model_config.get("env_prefix", ""))
    prog = cls.model_config.get("cli_prog_name") or f"bulkhead-{cls.server_name}"
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        settings = CliApp.run(cls, cli_args=args, cli_prog_name=prog, cli_exit_on_error=False)
        settings.token_table()
    except ValidationError as exc:
        _fail(prog, _first_error_line(exc, prefix))
    except (ConfigError, SettingsError) as exc:
        _fail(prog, _without_values(str(exc).splitlines()[0]))
    return settings
