"""The parts of :class:`~learnrec.shared.config.Settings`: one small typed model per component,
each read from its environment variables (``LEARNREC_<NAME>``; see :mod:`learnrec.shared.config`)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class ConnectionSettings(BaseSettings):
    """Where the Kafka brokers and the Redis server are, how to reach them (credentials, TLS),
    and the prefixes that isolate deployments (and tests) sharing one broker or one Redis."""

    model_config = SettingsConfigDict(env_prefix="LEARNREC_", frozen=True, extra="ignore")

    kafka_bootstrap_servers: str = Field(
        default="127.0.0.1:19092",
        validation_alias=AliasChoices("KAFKA_BOOTSTRAP_SERVERS", "LEARNREC_KAFKA_BOOTSTRAP_SERVERS",
                                      "kafka_bootstrap_servers"),
    )
    redis_url: str = Field(
        default="redis://127.0.0.1:16379/0",
        validation_alias=AliasChoices("REDIS_URL", "LEARNREC_REDIS_URL", "redis_url"),
    )
    topic_prefix: str = ""
    redis_prefix: str = "learnrec"
    partitions: int = Field(default=4, ge=1, le=1024)
    replication_factor: int = Field(default=1, ge=1)
    # REDIS_URL names one node of a Redis Cluster: the client follows the cluster's slot map, and
    # every key of the deployment shares one hash tag (shared/redis_keys.py).
    redis_cluster: bool = False
    # More nodes of that cluster, "host:port,host:port": a client that starts while the node of
    # REDIS_URL is down reaches the cluster through these.
    redis_cluster_nodes: str = ""
    # On a Redis Cluster, the stream workers wait until this many replicas hold a batch's writes
    # before they commit its offsets (0: they do not wait), so a master's failover loses nothing.
    redis_wait_replicas: int = Field(default=1, ge=0)
    redis_wait_timeout_ms: int = Field(default=2000, ge=1)
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
    # How long the group waits for a silent worker before moving its partitions (6 s is the
    # broker's minimum; kafka_io documents the 10 s default).
    kafka_session_timeout_ms: int = Field(default=10_000, ge=6_000)
    # How long a consumer waits, before joining its group, for the broker to report its topics'
    # partitions (a topic created a moment ago); then it fails with a clear error.
    kafka_metadata_wait_s: float = Field(default=60.0, gt=0)


class LocalServicesSettings(BaseSettings):
    """The local Kafka and Redis of ``devtools/local_services.py`` (development only)."""

    model_config = SettingsConfigDict(env_prefix="LEARNREC_", frozen=True, extra="ignore")

    kafka_version: str = "4.1.1"
    kafka_port: int = 19092
    kafka_controller_port: int = 19093
    kafka_heap: str = "512m"
    # The three-node cluster of devtools/kafka_cluster.py: node n's broker and controller ports
    # are these plus n - 1.
    kafka_cluster_port: int = 19191
    kafka_cluster_controller_port: int = 19291
    # The Redis Cluster of devtools/redis_cluster.py: six nodes from this port on.
    redis_cluster_port: int = 17001
    redis_port: int = 16379


class EncoderSettings(BaseSettings):
    """The frozen content encoder: ``name`` an alias (``minilm``, ``smollm2``) or a Hugging Face
    name or path (``LEARNREC_ENCODER``)."""

    model_config = SettingsConfigDict(env_prefix="LEARNREC_ENCODER_", frozen=True, extra="ignore")

    name: str = Field(default="minilm", validation_alias=AliasChoices("LEARNREC_ENCODER", "name"))
    max_tokens: int = Field(default=128, ge=8)
    batch_size: int = Field(default=32, ge=1)
    # torch intra-op threads of the item encoder. One is the fast choice on small shared
    # machines: with two threads on two busy cores a one-item encode took 0.9 s instead of 20 ms.
    threads: int = Field(default=1, ge=1)
    # The runtime of the item encoder: torch (the GPU path; fp32 on CPU) or ONNX Runtime on CPU,
    # fp32 or dynamic int8, exported once into {cache_dir}/onnx-encoders (shared/model/
    # onnx_encoder.py; MiniLM on 2 CPU threads: docs/MODEL.md). ONNX threads: encoder_threads.
    runtime: Literal["torch", "onnx", "onnx-int8"] = "torch"


class VersionSettings(BaseSettings):
    """Model versions: their folder, the bootstrap version, ONNX threads, the publisher's lease.
    Before any trained version exists a bootstrap version serves: with ``bootstrap_model`` empty,
    the content embedding under a seeded random orthogonal projection to
    ``bootstrap_output_dim``; else a version folder or a checkpoint file."""

    model_config = SettingsConfigDict(env_prefix="LEARNREC_", frozen=True, extra="ignore")

    model_dir: Path = Path("artifacts/models")
    bootstrap_model: str = ""
    bootstrap_output_dim: int = Field(default=64, ge=1)
    bootstrap_seed: int = 0
    onnx_threads: int = Field(default=1, ge=1)
    # A publisher renews its lease on the version it publishes after every batch of items; a
    # preparing version whose lease ran out (its publisher died) is aborted by the next publish
    # or by ``learnrec model abort``.
    model_publish_lease_s: float = Field(default=120.0, gt=0)


class StreamSettings(BaseSettings):
    """The stream workers (``learnrec stream items|history``)."""

    model_config = SettingsConfigDict(env_prefix="LEARNREC_", frozen=True, extra="ignore")

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


class ServingSettings(BaseSettings):
    """The API (``learnrec serve``). A new model version is noticed within one poll; catalogues
    smaller than ``exact_below`` items are searched exactly, larger ones by HNSW."""

    model_config = SettingsConfigDict(env_prefix="LEARNREC_SERVING_", frozen=True, extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    version_poll_s: float = Field(default=0.5, gt=0)
    # API keys (comma-separated; empty: no authentication), whether /metrics stays open without
    # one, and the largest request body accepted (413 beyond).
    api_keys: SecretStr = SecretStr("")
    metrics_open: bool = True
    max_body_bytes: int = Field(default=64 * 1024, ge=1)
    # /v1/ requests past the queue bounds get 503 (serving/shedding.py): more than max_in_flight at
    # once, or a queue that has not drained for max_queue_ms
    max_in_flight: int = Field(default=32, ge=1)
    max_queue_ms: float = Field(default=10.0, gt=0)
    max_model_batch: int = Field(default=4, ge=1)  # requests per user-tower batch (serving/model_step.py)
    exact_below: int = Field(default=20_000, ge=1)
    hnsw_ef: int = Field(default=128, ge=1)
    hnsw_m: int = Field(default=16, ge=2)
    content_cache_items: int = Field(default=100_000, ge=0)
    popular_refresh_s: float = Field(default=2.0, gt=0)


class TrainerSettings(BaseSettings):
    """The online trainer (``learnrec train online``). Its checkpoint (model + optimizer +
    consumed offsets + sequences) is the source of truth for where it resumes, not Kafka's
    offsets. Each field that :class:`~learnrec.trainer.config.TrainConfig` has is read into it
    by name."""

    model_config = SettingsConfigDict(env_prefix="LEARNREC_TRAINER_", frozen=True, extra="ignore")

    checkpoint: Path = Path("artifacts/trainer/online.ckpt")
    # Where to start when no online checkpoint exists: an offline checkpoint, or "" (scratch).
    init: str = ""
    batch_size: int = Field(default=256, ge=1)
    lr: float = Field(default=1e-3, gt=0)
    # Linear learning-rate warm-up over the first steps of a fresh optimizer (a start from an
    # offline checkpoint or from scratch): Adam's first steps are otherwise full-size.
    warmup_steps: int = Field(default=20, ge=0)
    weight_decay: float = Field(default=0.01, ge=0)
    temperature: float = Field(default=0.05, gt=0)
    # Replay: past-sequence examples mixed into each step, as a fraction of its new examples,
    # drawn from a reservoir of this many snapshots.
    replay_fraction: float = Field(default=1.0, ge=0)
    replay_capacity: int = Field(default=20_000, ge=0)
    # Users whose recent sequence the trainer keeps (memory and checkpoint size are bounded by
    # this x the model's max_len); past it the least recently active user is forgotten.
    max_users: int = Field(default=1_000_000, ge=1)
    # Negatives per step: this many items drawn uniformly from every known item (their item
    # vectors computed in the step; all of them when fewer are known).
    negatives: int = Field(default=1024, ge=1)
    # Intra-op threads: 1 by default (two threads on two cores shared with other busy processes
    # ran 7-8x slower than one; see docs/TRAINER.md).
    threads: int = Field(default=1, ge=1)
    # Item representation of a model started from scratch: hybrid (content + ID), none
    # (content only) or only (ID only). A model from a checkpoint keeps its own.
    item_ids: Literal["hybrid", "none", "only"] = "hybrid"
    # Trained interactions an item needs before it gets a row in the ID table (until then its
    # content alone represents it; the offline default, chosen on validation: docs/MODEL.md).
    id_min_count: int = Field(default=10, ge=1)
    # The publish gate: the most recent events held back from training, on which a candidate
    # version must reach the current one's Recall@10 minus the tolerance (docs/TRAINER.md).
    gate_events: int = Field(default=500, ge=0)
    gate_tolerance: float = Field(default=0.01, ge=0)
    gate_min_events: int = Field(default=100, ge=1)
    seed: int = 0
    checkpoint_every: int = Field(default=5_000, ge=1)
    # Publish a version after this many trained events, or this many seconds after the first
    # event not yet in a published version (whichever comes first).
    publish_every_events: int = Field(default=20_000, ge=1)
    publish_every_s: float = Field(default=60.0, gt=0)
    publish_batch_size: int = Field(default=1024, ge=1)
    keep_versions: int = Field(default=3, ge=1)
    # A failed publish is retried after this long, doubling up to the maximum.
    publish_retry_s: float = Field(default=5.0, gt=0)
    publish_retry_max_s: float = Field(default=300.0, gt=0)
    # Keep {event_id: times trained} in the checkpoint (tests of exactly-once training).
    audit: bool = False
    # A trainer group (docs/TRAINER.md, "A group of trainers"): several trainers share the
    # interaction partitions and keep one model (PyTorch distributed, gloo); the group's
    # checkpoint is in Redis. group_host: the address the other members reach this one at;
    # a member silent for group_member_ttl_s is gone; a collective waits group_timeout_s.
    group: bool = False
    group_host: str = "127.0.0.1"
    group_member_ttl_s: float = Field(default=5.0, gt=0)
    group_timeout_s: float = Field(default=60.0, gt=0)

class ProcessSettings(BaseSettings):
    """Process-wide: where caches live (embeddings, ONNX encoders, the launcher's downloads), and
    the Prometheus /metrics port of a worker (0 disables the endpoint)."""

    model_config = SettingsConfigDict(env_prefix="LEARNREC_", frozen=True, extra="ignore")

    cache_dir: Path = Path(".cache")
    metrics_port: int = Field(default=0, ge=0)
