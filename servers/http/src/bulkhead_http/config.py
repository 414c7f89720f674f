"""The operator's configuration: which APIs to wrap, how to authenticate, limits, and their tools.

A YAML file (`--config`) parsed into pydantic models. Every mistake stops the start with one line
that names the file and the place in it (`apis[0].auth.env: ...`). Secrets are read here, once,
from environment variables or files, and held as `SecretStr`; their values never appear in an
error.
"""

import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal, Self
from urllib.parse import urlsplit

import httpx2
import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from bulkhead.settings import ConfigError

__all__ = [
    "HTTP_METHODS",
    "READ_METHODS",
    "ApiConfig",
    "AuthConfig",
    "HttpConfig",
    "IncludeRule",
    "Limits",
    "OpenApiConfig",
    "OperationOverride",
    "ParameterConfig",
    "ToolConfig",
    "load_config",
    "parse_config",
]

HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
READ_METHODS = frozenset({"GET", "HEAD"})
"""The methods an API serves when writes are not enabled for it."""

_TOOL_NAME = r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$"
ToolName = Annotated[str, Field(pattern=_TOOL_NAME, description="A tool name: letters, digits, _ . -")]
ApiName = Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_-]{0,39}$")]
Method = Literal["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]

FORBIDDEN_HEADERS = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "cookie",
        "host",
        "content-length",
        "transfer-encoding",
        "connection",
        "upgrade",
        "te",
        "trailer",
        "keep-alive",
        "expect",
    }
)
"""Header parameters the model may never set: auth and framing belong to the server."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


class AuthConfig(_Strict):
    """How requests to an API authenticate. The secret comes from `env` or `file`, never inline."""

    type: Literal["none", "bearer", "api_key", "basic"] = "none"
    location: Literal["header", "query"] = Field(default="header", alias="in")
    name: str = Field(default="X-API-Key", pattern=r"^[A-Za-z0-9_.-]{1,100}$")
    env: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    file: Path | None = None
    username: str | None = Field(default=None, max_length=200)
    secret: SecretStr | None = Field(default=None, exclude=True)
    """Filled by `load_config` from `env` or `file`."""

    @model_validator(mode="after")
    def _source(self) -> Self:
        if self.type == "none":
            if self.env or self.file:
                raise ValueError("auth: `env` / `file` given but `type` is none")
            return self
        if self.secret is None and (self.env is None) == (self.file is None):
            raise ValueError(f"auth: a {self.type} secret needs exactly one of `env` or `file`")
        if self.type == "basic" and not self.username:
            raise ValueError("auth: basic auth needs a `username`")
        return self


class Limits(_Strict):
    """Timeouts, sizes, retries, concurrency and rate of one API."""

    connect_timeout: float = Field(default=5.0, gt=0, le=120)
    read_timeout: float = Field(default=15.0, gt=0, le=600)
    total_timeout: float = Field(default=30.0, gt=0, le=900)
    max_response_bytes: int = Field(default=1_000_000, ge=1024, le=100_000_000)
    max_text_chars: int = Field(default=20_000, ge=100, le=10_000_000)
    max_error_body_chars: int = Field(default=1_000, ge=0, le=100_000)
    concurrency: int = Field(default=8, ge=1, le=1000)
    rate_per_second: float | None = Field(default=None, gt=0, le=100_000)
    retries: int = Field(default=2, ge=0, le=10)
    backoff_seconds: float = Field(default=0.2, ge=0, le=60)
    max_retry_after: float = Field(default=10.0, ge=0, le=600)


class ParameterConfig(_Strict):
    """One parameter of an explicitly configured tool."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.\-\[\]]{1,100}$")
    location: Literal["path", "query", "header"] = Field(alias="in")
    required: bool = False
    description: str = ""
    schema_: dict[str, Any] = Field(default_factory=lambda: {"type": "string"}, alias="schema")

    @model_validator(mode="after")
    def _checks(self) -> Self:
        if self.location == "header" and self.name.lower() in FORBIDDEN_HEADERS:
            raise ValueError(f"parameters: header {self.name!r} is set by the server, not by a tool argument")
        if self.location == "path" and not self.required:
            raise ValueError(f"parameters: path parameter {self.name!r} must be required")
        return self


class ToolConfig(_Strict):
    """An operation given by hand: method, path template, parameters and an optional JSON body."""

    name: ToolName
    method: Method = "GET"
    path: str = Field(pattern=r"^/", max_length=2000)
    description: str = Field(default="", max_length=4000)
    parameters: list[ParameterConfig] = Field(default_factory=list[ParameterConfig])
    body: dict[str, Any] | None = None
    """JSON Schema of a JSON request body (the tool's `body` argument)."""
    body_required: bool = False
    output_schema: dict[str, Any] | None = None
    """JSON Schema of the JSON the upstream answers with on success."""

    @model_validator(mode="after")
    def _path_parameters(self) -> Self:
        placeholders = set(re.findall(r"\{([^{}]+)\}", self.path))
        declared = {p.name for p in self.parameters if p.location == "path"}
        if placeholders != declared:
            missing = sorted(placeholders - declared) or sorted(declared - placeholders)
            raise ValueError(
                f"path {self.path!r}: every {{placeholder}} needs a path parameter and vice versa "
                f"(mismatch: {', '.join(missing)})"
            )
        return self


class IncludeRule(_Strict):
    """Selects OpenAPI operations: every given field must match."""

    operation_id: str | None = None
    tag: str | None = None
    path: str | None = None
    """A glob over the path template, e.g. `/tickets/*` or `/tickets/{ticket_id}`."""
    method: Method | None = None

    @model_validator(mode="after")
    def _something(self) -> Self:
        if not (self.operation_id or self.tag or self.path or self.method):
            raise ValueError("include: a rule needs operation_id, tag, path or method")
        return self


class OperationOverride(_Strict):
    """A different tool name or description for one OpenAPI operation."""

    name: ToolName | None = None
    description: str | None = Field(default=None, max_length=4000)


class OpenApiConfig(_Strict):
    """An OpenAPI 3.0 / 3.1 document and the allow-list of operations to expose."""

    source: str = Field(min_length=1)
    """A file (relative to the configuration file) or an http(s) URL (fetched through the API's guard)."""
    include: list[IncludeRule] = Field(min_length=1)
    overrides: dict[str, OperationOverride] = Field(default_factory=dict[str, OperationOverride])


class ApiConfig(_Strict):
    """One upstream API."""

    name: ApiName
    base_url: str
    description: str = Field(default="", max_length=2000)
    allow_private_network: bool = False
    """Allow loopback, private (RFC 1918 / ULA) and CGNAT addresses; metadata and link-local never."""
    allow_writes: bool = False
    """Expose POST / PUT / PATCH / DELETE operations too (read-only by default)."""
    follow_redirects: bool = False
    """Follow redirects to the same origin (re-checked on every hop); never to another origin."""
    max_redirects: int = Field(default=3, ge=0, le=10)
    ca_file: Path | None = None
    """PEM bundle of the CAs that sign this API's certificate (default: the system's)."""
    auth: AuthConfig = Field(default_factory=AuthConfig)
    limits: Limits = Field(default_factory=Limits)
    tools: list[ToolConfig] = Field(default_factory=list[ToolConfig])
    openapi: OpenApiConfig | None = None

    @field_validator("base_url")
    @classmethod
    def _base_url(cls, value: str) -> str:
        return check_base_url(value)

    @model_validator(mode="after")
    def _has_tools(self) -> Self:
        if not self.tools and self.openapi is None:
            raise ValueError("an API needs `tools` or `openapi`")
        return self


class HttpConfig(_Strict):
    """The whole configuration file."""

    apis: list[ApiConfig] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique(self) -> Self:
        names = [api.name for api in self.apis]
        if len(set(names)) != len(names):
            raise ValueError("apis: two APIs share a name")
        return self


def check_base_url(value: str) -> str:
    """A base URL as the server will use it, or ValueError saying what is wrong with it."""
    if any(ch in value for ch in "\r\n\t\x00 \\"):
        raise ValueError("base_url must not contain whitespace, backslashes or control characters")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"base_url scheme must be http or https, not {parts.scheme!r}")
    if "@" in parts.netloc:
        raise ValueError("base_url must not carry user information (user@host); configure `auth` instead")
    if not parts.hostname:
        raise ValueError("base_url needs a host")
    if parts.query or parts.fragment:
        raise ValueError("base_url must not have a query or fragment")
    try:
        _ = parts.port
        httpx2.URL(value)
    except (ValueError, httpx2.InvalidURL) as exc:
        raise ValueError(f"base_url is not a valid URL: {str(exc)[:100]}") from None
    return value.rstrip("/")


def _location(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "config"


def _read_secret(api: ApiConfig, base: Path) -> ApiConfig:
    auth = api.auth
    if auth.type == "none":
        return api
    where = f"apis.{api.name}.auth"
    if auth.env is not None:
        value = os.environ.get(auth.env)
        if not value:
            raise ConfigError(f"{where}.env: environment variable {auth.env} is not set")
    else:
        assert auth.file is not None
        path = auth.file if auth.file.is_absolute() else base / auth.file
        try:
            value = path.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{where}.file: cannot read {path}: {type(exc).__name__}") from None
        if not value:
            raise ConfigError(f"{where}.file: {path} is empty")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise ConfigError(f"{where}: the secret contains control characters")
    return api.model_copy(update={"auth": auth.model_copy(update={"secret": SecretStr(value)})})


def parse_config(data: Any, *, source: str, base: Path) -> HttpConfig:
    """Validate parsed YAML `data`; `source` names the file in errors, `base` resolves relative paths."""
    try:
        config = HttpConfig.model_validate(data)
    except ValidationError as exc:
        error = exc.errors()[0]
        message = str(error["msg"]).removeprefix("Value error, ")
        raise ConfigError(f"{source}: {_location(error['loc'])}: {message}") from None
    apis: list[ApiConfig] = []
    for given in config.apis:
        try:
            api = _read_secret(given, base)
        except ConfigError as exc:
            raise ConfigError(f"{source}: {exc}") from None
        if api.ca_file is not None and not api.ca_file.is_absolute():
            api = api.model_copy(update={"ca_file": base / api.ca_file})
        if api.ca_file is not None and not api.ca_file.is_file():
            raise ConfigError(f"{source}: apis.{api.name}.ca_file: {api.ca_file} is not a file")
        apis.append(api)
    return config.model_copy(update={"apis": apis})


def load_config(path: Path) -> HttpConfig:
    """Read and validate the configuration file at `path`.

    Raises:
        ConfigError: one line naming the file, the place in it and the problem.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config: cannot read {path}: {type(exc).__name__}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}:{where} is not valid YAML") from None
    return parse_config(data, source=str(path), base=path.parent)
