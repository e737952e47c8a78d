"""Configuration from environment variables, with defaults that work for a local setup.

Every variable is read once into a frozen :class:`Settings`; components take the object, never
``os.environ``. The connection variables keep the names the tooling world uses
(``KAFKA_BOOTSTRAP_SERVERS``, ``REDIS_URL``); everything else is prefixed ``LEARNREC_``.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr
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

    # Credentials and TLS, passed to every Kafka and Redis client (shared/kafka_io.py,
    # shared/redis_client.py). Passwords are SecretStr: never in logs or reprs.
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = "PLAIN"
    kafka_sasl_username: str = ""
    kafka_sasl_password: SecretStr = SecretStr("")
    kafka_ssl_cafile: str = ""  # the CA that signed the brokers' certificates (default: the system's)
    kafka_ssl_certfile: str = ""  # a client certificate and key, for brokers that require one
    kafka_ssl_keyfile: str = ""
    redis_username: str = ""  # an ACL user (empty: "default")
    redis_password: SecretStr = SecretStr("")
    redis_ssl_ca_certs: str = ""  # TLS is a rediss:// URL; this CA verifies the server (default: the system's)

    # The local services launcher (devtools/local_services.py, development only).
    cache_dir: Path = Path(".cache")
    kafka_version: str = "4.1.1"
    kafka_port: int = 19092
    kafka_controller_port: int = 19093
    kafka_heap: str = "512m"
    redis_port: int = 16379

    # Where model versions (ONNX towers, checkpoints) live on disk.
    model_dir: Path = Path("artifacts/models")

    # Frozen content encoder: an alias (``minilm``, ``smollm2``) or a Hugging Face name/path.
    encoder: str = "minilm"
    encoder_max_tokens: int = Field(default=128, ge=8)
    encoder_batch_size: int = Field(default=32, ge=1)
    # torch intra-op threads of the item encoder. One is the fast choice on small shared
    # machines: with two threads on two busy cores a one-item encode took 0.9 s instead of 20 ms.
    encoder_threads: int = Field(default=1, ge=1)
    # The runtime of the item encoder: torch (the GPU path; fp32 on CPU) or ONNX Runtime on CPU,
    # fp32 or dynamic int8, exported once into {cache_dir}/onnx-encoders (shared/model/
    # onnx_encoder.py; MiniLM on 2 CPU threads: docs/MODEL.md). ONNX threads: encoder_threads.
    encoder_runtime: Literal["torch", "onnx", "onnx-int8"] = "torch"

    # Model versions: before any trained version exists a bootstrap version serves. With
    # ``bootstrap_model`` empty it is the content embedding under a seeded random orthogonal
    # projection to ``bootstrap_output_dim``; else a version folder or a checkpoint file.
    bootstrap_model: str = ""
    bootstrap_output_dim: int = Field(default=64, ge=1)
    bootstrap_seed: int = 0
    onnx_threads: int = Field(default=1, ge=1)

    # Stream workers (learnrec stream items|history).
    item_batch_size: int = Field(default=64, ge=1)
    history_batch_size: int = Field(default=2000, ge=1)
    history_length: int = Field(default=50, ge=1)
    # A user's history expires this long after their last event (30 days), and at most this
    # many users are kept (the least recently active leave first; about 1.5 KB each).
    history_ttl_s: int = Field(default=30 * 24 * 3600, ge=1)
    history_max_users: int = Field(default=2_000_000, ge=1)
    popularity_bucket_s: int = Field(default=3600, ge=1)
    popularity_window_buckets: int = Field(default=24, ge=1)
    item_updates_maxlen: int = Field(default=100_000, ge=1)
    # How long the group waits for a silent worker before moving its partitions (6 s is the
    # broker's minimum; kafka_io documents the 10 s default).
    kafka_session_timeout_ms: int = Field(default=10_000, ge=6_000)
    # How long a consumer waits, before joining its group, for the broker to report its topics'
    # partitions (a topic created a moment ago); then it fails with a clear error.
    kafka_metadata_wait_s: float = Field(default=60.0, gt=0)
    # Prometheus /metrics port of a worker; 0 disables the endpoint.
    metrics_port: int = Field(default=0, ge=0)

    # Serving (learnrec serve). A new model version is noticed within one poll; catalogues
    # smaller than ``serving_exact_below`` items are searched exactly, larger ones by HNSW.
    serving_host: str = "127.0.0.1"
    serving_port: int = Field(default=8000, ge=1, le=65535)
    serving_version_poll_s: float = Field(default=0.5, gt=0)
    # API keys (comma-separated; empty: no authentication), whether /metrics stays open without
    # one, and the largest request body accepted (413 beyond).
    serving_api_keys: SecretStr = SecretStr("")
    serving_metrics_open: bool = True
    serving_max_body_bytes: int = Field(default=64 * 1024, ge=1)
    serving_max_in_flight: int = Field(default=32, ge=1)  # more /v1/ requests at once: 503 (serving/shedding.py)
    serving_exact_below: int = Field(default=20_000, ge=1)
    serving_hnsw_ef: int = Field(default=128, ge=1)
    serving_hnsw_m: int = Field(default=16, ge=2)
    serving_content_cache_items: int = Field(default=100_000, ge=0)
    serving_popular_refresh_s: float = Field(default=2.0, gt=0)

    # Online trainer (learnrec train online). Its checkpoint (model + optimizer + consumed
    # offsets + sequences) is the source of truth for where it resumes, not Kafka's offsets.
    trainer_checkpoint: Path = Path("artifacts/trainer/online.ckpt")
    # Where to start when no online checkpoint exists: an offline checkpoint, or "" (scratch).
    trainer_init: str = ""
    trainer_batch_size: int = Field(default=256, ge=1)
    trainer_lr: float = Field(default=1e-3, gt=0)
    # Linear learning-rate warm-up over the first steps of a fresh optimizer (a start from an
    # offline checkpoint or from scratch): Adam's first steps are otherwise full-size.
    trainer_warmup_steps: int = Field(default=20, ge=0)
    trainer_weight_decay: float = Field(default=0.01, ge=0)
    trainer_temperature: float = Field(default=0.05, gt=0)
    # Replay: past-sequence examples mixed into each step, as a fraction of its new examples,
    # drawn from a reservoir of this many snapshots.
    trainer_replay_fraction: float = Field(default=1.0, ge=0)
    trainer_replay_capacity: int = Field(default=20_000, ge=0)
    # Users whose recent sequence the trainer keeps (memory and checkpoint size are bounded by
    # this x the model's max_len); past it the least recently active user is forgotten.
    trainer_max_users: int = Field(default=1_000_000, ge=1)
    # Negatives per step: this many items drawn uniformly from every known item (their item
    # vectors computed in the step; all of them when fewer are known).
    trainer_negatives: int = Field(default=1024, ge=1)
    # Intra-op threads: 1 by default (two threads on two cores shared with other busy processes
    # ran 7-8x slower than one; see docs/TRAINER.md).
    trainer_threads: int = Field(default=1, ge=1)
    # Item representation of a model started from scratch: hybrid (content + ID), none
    # (content only) or only (ID only). A model from a checkpoint keeps its own.
    trainer_item_ids: Literal["hybrid", "none", "only"] = "hybrid"
    # Trained interactions an item needs before it gets a row in the ID table (until then its
    # content alone represents it; the offline default, chosen on validation: docs/MODEL.md).
    trainer_id_min_count: int = Field(default=10, ge=1)
    # The publish gate: the most recent events held back from training, on which a candidate
    # version must reach the current one's Recall@10 minus the tolerance (docs/TRAINER.md).
    trainer_gate_events: int = Field(default=500, ge=0)
    trainer_gate_tolerance: float = Field(default=0.01, ge=0)
    trainer_gate_min_events: int = Field(default=100, ge=1)
    trainer_seed: int = 0
    trainer_checkpoint_every: int = Field(default=5_000, ge=1)
    # Publish a version after this many trained events, or this many seconds after the first
    # event not yet in a published version (whichever comes first).
    trainer_publish_every_events: int = Field(default=20_000, ge=1)
    trainer_publish_every_s: float = Field(default=60.0, gt=0)
    trainer_publish_batch_size: int = Field(default=1024, ge=1)
    trainer_keep_versions: int = Field(default=3, ge=1)
    # A publisher renews its lease on the version it publishes after every batch of items; a
    # preparing version whose lease ran out (its publisher died) is aborted by the next publish
    # or by ``learnrec model abort``.
    model_publish_lease_s: float = Field(default=120.0, gt=0)
    # A failed publish is retried after this long, doubling up to the maximum.
    trainer_publish_retry_s: float = Field(default=5.0, gt=0)
    trainer_publish_retry_max_s: float = Field(default=300.0, gt=0)
    # Keep {event_id: times trained} in the checkpoint (tests of exactly-once training).
    trainer_audit: bool = False


def process_env(settings: Settings) -> dict[str, str]:
    """The environment variables under which a child process (``learnrec ...``) reads the same
    servers, prefixes and model folder as ``settings``."""
    return {
        "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
        "REDIS_URL": settings.redis_url,
        "LEARNREC_TOPIC_PREFIX": settings.topic_prefix,
        "LEARNREC_REDIS_PREFIX": settings.redis_prefix,
        "LEARNREC_MODEL_DIR": str(Path(settings.model_dir).resolve()),
    }


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read from the environment on first use."""
    return Settings()
