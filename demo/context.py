"""What every step of one demo run shares: its settings and folder, Redis, the metrics, the
component processes and the console."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import redis
from rich.console import Console

from learnrec.demo.metrics import DemoMetrics
from learnrec.demo.processes import Fleet
from learnrec.shared.config import Settings
from learnrec.shared.redis_keys import RedisKeys


@dataclass(frozen=True)
class RunContext:
    settings: Settings  # with the run's own topic prefix, Redis key prefix and model folder
    folder: Path        # the run's report folder
    redis: redis.Redis
    keys: RedisKeys
    metrics: DemoMetrics
    fleet: Fleet
    console: Console
