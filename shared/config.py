"""Configuration from environment variables, with defaults that work for a local setup.

Every variable is read once into a frozen :class:`Settings`, made of one small typed model per
component: ``connection`` (Kafka, Redis, prefixes, credentials), ``encoder``, ``versions``,
``stream``, ``serving``, ``trainer``, ``local`` (the development launcher) and ``process``
(``cache_dir``, ``metrics_port``). Components take the object (or their part),
never ``os.environ``. The connection variables keep the names the tooling world uses
(``KAFKA_BOOTSTRAP_SERVERS``, ``REDIS_URL``); everything else is ``LEARNREC_<NAME>``, where a
field of ``serving``, ``trainer`` or ``encoder`` is named with its part as a prefix:
``LEARNREC_SERVING_PORT`` is ``settings.serving.port``, ``LEARNREC_ENCODER`` is
``settings.encoder.name``. Code may also name a setting by that flat name (``serving_port``):
``Settings(serving_port=8001)``, ``settings.replace(serving_port=8001)``.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, model_validator
from pydantic_settings import BaseSettings

from learnrec.shared.config_parts import (
    ConnectionSettings,
    EncoderSettings,
    LocalServicesSettings,
    ProcessSettings,
    ServingSettings,
    StreamSettings,
    TrainerSettings,
    VersionSettings,
)

PARTS: dict[str, type[BaseSettings]] = {
    "process": ProcessSettings, "connection": ConnectionSettings, "local": LocalServicesSettings, "encoder": EncoderSettings,
    "versions": VersionSettings, "stream": StreamSettings, "serving": ServingSettings,
    "trainer": TrainerSettings,
}
# The parts whose fields are named with the part as a prefix in the flat (environment) names.
_PREFIXED = {"encoder", "serving", "trainer"}


def _flat_names() -> dict[str, tuple[str, str]]:
    """Flat setting name (``serving_port``; ``encoder`` for the encoder's name; also the
    environment names of aliased fields, such as ``REDIS_URL``) -> (part, field)."""
    names = {}
    for part, model in PARTS.items():
        for field, info in model.model_fields.items():
            flat = part if (part, field) == ("encoder", "name") else f"{part}_{field}" if part in _PREFIXED else field
            names[flat] = (part, field)
            aliases = info.validation_alias.choices if isinstance(info.validation_alias, AliasChoices) else []
            names |= {alias: (part, field) for alias in aliases if isinstance(alias, str) and alias.isupper()}
    return names


FLAT_NAMES = _flat_names()


def _route(values: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Flat names -> {part: {field: value}}; an unknown name raises."""
    by_part: dict[str, dict[str, Any]] = {}
    for key, value in values.items():
        if key not in FLAT_NAMES:
            raise ValueError(f"unknown setting {key!r}")
        part, field = FLAT_NAMES[key]
        by_part.setdefault(part, {})[field] = value
    return by_part


class Settings(BaseModel):
    """Every setting of a learnrec process, one typed part per component; ``Settings()`` reads
    each part from the environment."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    process: ProcessSettings = Field(default_factory=ProcessSettings)
    connection: ConnectionSettings = Field(default_factory=ConnectionSettings)
    local: LocalServicesSettings = Field(default_factory=LocalServicesSettings)
    encoder: EncoderSettings = Field(default_factory=EncoderSettings)
    versions: VersionSettings = Field(default_factory=VersionSettings)
    stream: StreamSettings = Field(default_factory=StreamSettings)
    serving: ServingSettings = Field(default_factory=ServingSettings)
    trainer: TrainerSettings = Field(default_factory=TrainerSettings)

    @model_validator(mode="before")
    @classmethod
    def _from_flat_names(cls, data: Any) -> Any:
        """``Settings(serving_port=8001)``: a part named by flat names is read from the
        environment for the rest."""
        if not isinstance(data, dict):
            return data
        flat = {k: v for k, v in data.items() if k in FLAT_NAMES and not isinstance(v, dict | BaseSettings)}
        if not flat:
            return data
        by_part = _route(flat)
        rest = {k: v for k, v in data.items() if k not in flat}
        return rest | {part: PARTS[part](**values) for part, values in by_part.items()}

    def replace(self, **values: Any) -> Settings:
        """A validated copy with ``values`` given by flat names (``serving_port=8001``)."""
        parts = {part: PARTS[part].model_validate(getattr(self, part).model_dump() | fields)
                 for part, fields in _route(values).items()}
        return self.model_copy(update=parts)


def process_env(settings: Settings) -> dict[str, str]:
    """The environment variables under which a child process (``learnrec ...``) reads the same
    servers, prefixes and model folder as ``settings``."""
    return {
        "KAFKA_BOOTSTRAP_SERVERS": settings.connection.kafka_bootstrap_servers,
        "REDIS_URL": settings.connection.redis_url,
        "LEARNREC_TOPIC_PREFIX": settings.connection.topic_prefix,
        "LEARNREC_REDIS_PREFIX": settings.connection.redis_prefix,
        "LEARNREC_MODEL_DIR": str(Path(settings.versions.model_dir).resolve()),
    }


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read from the environment on first use."""
    return Settings()
