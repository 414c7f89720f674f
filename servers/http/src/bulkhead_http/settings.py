"""Settings of bulkhead-http (env prefix `BULKHEAD_HTTP_`)."""

from pathlib import Path
from typing import ClassVar

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from bulkhead.settings import ServerSettings

__all__ = ["HttpSettings"]


class HttpSettings(ServerSettings):
    """Everything bulkhead-http can be told."""

    model_config = SettingsConfigDict(env_prefix="BULKHEAD_HTTP_", cli_prog_name="bulkhead-http")
    server_name: ClassVar[str] = "http"

    port: int = Field(
        default=8104, ge=0, le=65535, description="TCP port to bind in http mode (0 picks a free port)."
    )
    config: Path | None = Field(
        default=None,
        description=(
            "YAML file describing the APIs to wrap (base URL, auth, limits, tools or an OpenAPI document "
            "with an allow-list). Unset: a demo ticket tracker is started on 127.0.0.1 and wrapped."
        ),
    )
    meta_tools: bool = Field(
        default=False,
        description=(
            "Publish two tools, search_operations and call_operation, instead of one tool per operation "
            "(for large APIs whose tool list would flood the model's context)."
        ),
    )
