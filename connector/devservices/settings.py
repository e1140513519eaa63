"""Settings of `streamrec dev`: where local services keep their data, logs and state."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from connector.settings import ENV_PREFIX


class DevSettings(BaseSettings):
    """Settings of the local development services started by `streamrec dev up`."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, frozen=True, extra="ignore")

    dev_dir: Path = Field(
        Path(".streamrec/dev"),
        description="Folder of the local services' data, logs and PID file (relative to cwd).",
    )
    dev_start_timeout: float = Field(
        120.0, description="Seconds to wait for a local service to answer after it starts."
    )
    dev_kafka_heap: str = Field("768m", description="Java heap (-Xmx) of the local broker.")
