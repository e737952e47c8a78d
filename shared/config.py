"""Configuration from environment variables, with defaults that work for a local setup.

Every variable is read once into a frozen :class:`Settings`; components take the object, never
``os.environ``. The connection variables keep the names the tooling world uses
(``KAFKA_BOOTSTRAP_SERVERS``, ``REDIS_URL``); everything else is prefixed ``LEARNREC_``.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LEARNREC_", frozen=True, extra="ignore")

    kafka_bootstrap_servers: str = Field(
        default="127.0.0.1:19092",
        validation_alias=AliasChoices("KAFKA_BOOTSTRAP_SERVERS", "LEARNREC_KAFKA_BOOTSTRAP_SERVERS"),
    )
    redis_url: str = Field(
        default="redis://127.0.0.1:16379/0",
        validation_alias=AliasChoices("REDIS_URL", "LEARNREC_REDIS_URL"),
    )
    # Prefixes isolate deployments (and tests) sharing one broker or one Redis.
    topic_prefix: str = ""
    redis_prefix: str = "learnrec"
    partitions: int = Field(default=4, ge=1, le=1024)
    replication_factor: int = Field(default=1, ge=1)

    # Local services launcher (learnrec services up|down|status).
    cache_dir: Path = Path(".cache")
    kafka_version: str = "4.1.1"
    kafka_port: int = 19092
    kafka_controller_port: int = 19093
    kafka_heap: str = "512m"
    redis_port: int = 16379

    # Where model versions (ONNX towers, checkpoints) live on disk.
    model_dir: Path = Path("artifacts/models")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read from the environment on first use."""
    return Settings()
